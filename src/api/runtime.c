/* SPDX-License-Identifier: MIT */
/*
 * runtime.c — initialisation (explicit or on first use), settings from the
 * environment, shutdown and global statistics.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "api/api.h"
#include "pmm/pmm.h"
#include "pager/pager.h"
#include "uffd/uffd.h"

#define DEFAULT_SPAN (16ull << 40)            /* 16 TiB of file offsets */
#define MIN_SPAN (64ull << 30)
#define DEFAULT_RESIZABLE_WINDOW (1ull << 30) /* 1 GiB */

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic bool initialised;
static uint64_t resizable_window = DEFAULT_RESIZABLE_WINDOW;
static _Atomic uint64_t next_id = 1;
static const struct api_layer_hooks *_Atomic layer_hooks;

void api_set_layer_hooks(const struct api_layer_hooks *hooks)
{
	atomic_store(&layer_hooks, hooks);
}

uint64_t api_next_id(void)
{
	return atomic_fetch_add(&next_id, 1);
}

uint64_t api_resizable_window(void)
{
	return resizable_window;
}

/* "123", "64K", "16M", "2G", "1T" → bytes.  -EINVAL for anything else. */
static int parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	unsigned shift = 0;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int settings_from(const struct uvmo_config *cfg, struct pmm_config *pc,
			 uint32_t *tracking)
{
	const char *env;
	int rc;

	pc->limit_bytes = cfg ? cfg->pool_limit : 0;
	if (!pc->limit_bytes && (env = getenv("UVMO_POOL_LIMIT")) && *env) {
		rc = parse_bytes(env, &pc->limit_bytes);
		if (rc < 0)
			return rc;
	}
	pc->span_bytes = cfg && cfg->pool_span ? cfg->pool_span : DEFAULT_SPAN;
	pc->numa_node = -1;
	if (cfg && cfg->numa_node)
		pc->numa_node = cfg->numa_node - 1;
	else if ((env = getenv("UVMO_NUMA_NODE")) && *env) {
		char *end;
		long node = strtol(env, &end, 10);
		if (*end || node < 0 || node > 4095)
			return -EINVAL;
		pc->numa_node = (int)node;
	}
	*tracking = UVMO_TRACKING_AUTO;
	if ((env = getenv("UVMO_DIRTY_TRACKING")) && *env) {
		if (strcmp(env, "sync") == 0)
			*tracking = UVMO_TRACKING_SYNC;
		else if (strcmp(env, "async") == 0)
			*tracking = UVMO_TRACKING_ASYNC;
		else if (strcmp(env, "auto") != 0)
			return -EINVAL;
	}
	resizable_window = cfg && cfg->resizable_window
				   ? page_round_up(cfg->resizable_window)
				   : DEFAULT_RESIZABLE_WINDOW;
	return 0;
}

/* fork(): every uvmo lock is taken before and released after, in the
 * parent and the child alike, and the child gets a pool of its own
 * (src/uffd/fork.c). */
static void fork_prepare(void)
{
	pthread_mutex_lock(&init_lock);
	const struct api_layer_hooks *h = atomic_load(&layer_hooks);
	if (h && h->fork_prepare)
		h->fork_prepare();
	uffd_fork_prepare();
	handle_table_lock();
	pager_fork_prepare();
}

static void fork_parent(void)
{
	pager_fork_parent();
	handle_table_unlock();
	uffd_fork_parent();
	pthread_mutex_unlock(&init_lock);
	const struct api_layer_hooks *h = atomic_load(&layer_hooks);
	if (h && h->fork_parent)
		h->fork_parent();
}

static void fork_child(void)
{
	handle_table_unlock();
	uffd_fork_child();
	pager_fork_child();
	pthread_mutex_unlock(&init_lock);
	const struct api_layer_hooks *h = atomic_load(&layer_hooks);
	if (h && h->fork_child)
		h->fork_child();
}

static void register_fork_handlers(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static int init_locked(const struct uvmo_config *cfg)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, register_fork_handlers);
	struct pmm_config pc;
	uint32_t tracking;
	int rc = settings_from(cfg, &pc, &tracking);
	if (rc < 0)
		return rc;
	bool explicit_span = cfg && cfg->pool_span;
	/* Address space can be scarce (sanitizers reserve much of it): with
	 * the default span, halve until the physmap fits. */
	for (;;) {
		rc = pmm_init(&pc);
		if (rc != -ENOMEM || explicit_span || pc.span_bytes <= MIN_SPAN)
			break;
		pc.span_bytes /= 2;
	}
	if (rc < 0)
		return rc;
	cow_init();
	struct uffd_config uc = {
		.root_size = cfg ? cfg->root_vmar_size : 0,
		.threads = cfg ? cfg->fault_threads : 0,
		.tracking = tracking,
		.rest_ms = cfg ? cfg->handler_rest_ms : 0,
	};
	rc = uffd_init(&uc);
	if (rc == 0) {
		rc = api_vmar_init();
		if (rc < 0)
			uffd_fini();
	}
	if (rc < 0) {
		pmm_fini();
		return rc;
	}
	atomic_store(&initialised, true);
	return 0;
}

int api_ensure_init(void)
{
	if (likely(atomic_load_explicit(&initialised, memory_order_acquire)))
		return 0;
	pthread_mutex_lock(&init_lock);
	int rc = atomic_load(&initialised) ? 0 : init_locked(NULL);
	pthread_mutex_unlock(&init_lock);
	return rc;
}

UVMO_EXPORT int uvmo_init(const struct uvmo_config *cfg)
{
	pthread_mutex_lock(&init_lock);
	int rc = atomic_load(&initialised) ? -EBUSY : init_locked(cfg);
	pthread_mutex_unlock(&init_lock);
	return rc;
}

UVMO_EXPORT void uvmo_shutdown(void)
{
	pthread_mutex_lock(&init_lock);
	if (atomic_load(&initialised)) {
		const struct api_layer_hooks *h = atomic_load(&layer_hooks);
		if (h && h->shutdown)
			h->shutdown();
		handle_close_all();
		api_vmar_fini();
		uffd_fini();
		pmm_fini();
		atomic_store(&initialised, false);
	}
	pthread_mutex_unlock(&init_lock);
}

UVMO_EXPORT int uvmo_get_stats(struct uvmo_stats *out)
{
	struct pmm_stats ps;
	struct cow_stats cs;
	int rc;

	if (!out)
		return -EINVAL;
	rc = api_ensure_init();
	if (rc < 0)
		return rc;
	pmm_get_stats(&ps);
	cow_get_stats(&cs);
	memset(out, 0, sizeof(*out));
	out->pool_limit = ps.limit_bytes;
	out->committed_bytes = ps.frames << PAGE_SHIFT;
	out->peak_committed_bytes = ps.peak_frames << PAGE_SHIFT;
	out->host_bytes = ps.host_bytes;
	out->vmos = handle_count(HANDLE_VMO);
	out->nodes = cs.nodes;
	out->hidden_nodes = cs.hidden_nodes;
	out->windows = ps.windows;
	out->cow_copies = cs.copies;
	out->cow_moves = cs.moves;
	out->zero_fills = cs.zero_fills;
	out->merges = cs.merges;
	out->discards = cs.discards;
	out->metadata_bytes = cs.metadata_bytes;
	struct uffd_stats us;
	uffd_get_stats(&us);
	out->missing_faults = us.missing_faults;
	out->wp_faults = us.wp_faults;
	out->sigbus_faults = us.sigbus_faults;
	out->dirty_tracking = us.async_tracking ? UVMO_DIRTY_TRACKING_ASYNC
						 : UVMO_DIRTY_TRACKING_SYNC;
	out->async_tracked_vmos = cs.async_nodes;
	out->dirty_scans = us.dirty_scans;
	out->direct_file_mappings = us.direct_file_mappings;
	out->dirty_scan_ns = us.dirty_scan_ns;
	out->handler_rests = us.handler_rests;
	out->handler_recalls = us.handler_recalls;
	out->handlers_waiting = us.handlers_waiting;
	out->vmars = handle_count(HANDLE_VMAR);
	return 0;
}

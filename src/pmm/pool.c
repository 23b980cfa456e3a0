/* SPDX-License-Identifier: MIT */
/*
 * pool.c — the memfd that holds every frame, the physmap over it, and the
 * accounting of frames against the pool limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pmm/pmm.h"
#include "pmm/pool_private.h"
#include "pmm/ranges.h"

struct pool pool = { .fd = -1 };

bool pmm_ready(void)
{
	return pool.fd >= 0;
}

static int apply_numa_policy(char *map, int node)
{
	if (numa_available() < 0)
		return node < 0 ? 0 : -EINVAL;
	if (node >= 0) {
		if (node > numa_max_node() || numa_node_size64(node, NULL) < 0)
			return -EINVAL;
		numa_tonode_memory(map, pool.span_pages << PAGE_SHIFT, node);
	} else {
		numa_setlocal_memory(map, pool.span_pages << PAGE_SHIFT);
	}
	return 0;
}

int pmm_init(const struct pmm_config *cfg)
{
	uint64_t span = cfg->span_bytes;
	int rc;

	if (pmm_ready())
		return -EBUSY;
	if (span == 0 || !page_aligned(span) || span < (64ull << 20) ||
	    span > (1ull << 46))
		return -EINVAL;

	pool.fd = memfd_create("uvmo-pool", MFD_CLOEXEC);
	if (pool.fd < 0)
		return -errno;
	if (ftruncate(pool.fd, (off_t)span) < 0) {
		rc = -errno;
		goto fail_fd;
	}
	/* MAP_NORESERVE: the span is address space, not memory; frames are
	 * accounted by pmm itself. */
	pool.physmap = mmap(NULL, span, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_NORESERVE, pool.fd, 0);
	if (pool.physmap == MAP_FAILED) {
		rc = -errno;
		goto fail_fd;
	}
	pool.span_pages = span >> PAGE_SHIFT;
	rc = apply_numa_policy(pool.physmap, cfg->numa_node);
	if (rc < 0)
		goto fail_map;
	pool.numa_node = cfg->numa_node;
	pool.limit_frames = cfg->limit_bytes >> PAGE_SHIFT;
	atomic_store(&pool.frames, 0);
	atomic_store(&pool.peak_frames, 0);
	pool.windows = 0;
	pthread_mutex_init(&pool.lock, NULL);
	ranges_init(pool.span_pages);
	return 0;

fail_map:
	munmap(pool.physmap, span);
fail_fd:
	close(pool.fd);
	pool.fd = -1;
	return rc;
}

void pmm_fini(void)
{
	if (!pmm_ready())
		return;
	ranges_fini();
	munmap(pool.physmap, pool.span_pages << PAGE_SHIFT);
	close(pool.fd);
	pool.fd = -1;
	pool.physmap = NULL;
	pthread_mutex_destroy(&pool.lock);
}

void pmm_set_reclaim_hook(uint64_t (*hook)(uint64_t pages))
{
	pool.reclaim = hook;
}

static bool charge_fits(uint64_t n)
{
	uint64_t cur = atomic_load(&pool.frames);
	for (;;) {
		if (pool.limit_frames && cur + n > pool.limit_frames)
			return false;
		if (atomic_compare_exchange_weak(&pool.frames, &cur, cur + n))
			break;
	}
	uint64_t peak = atomic_load(&pool.peak_frames);
	while (cur + n > peak &&
	       !atomic_compare_exchange_weak(&pool.peak_frames, &peak, cur + n))
		;
	return true;
}

static int charge(uint64_t n)
{
	if (charge_fits(n))
		return 0;
	if (pool.reclaim) {
		uint64_t cur = atomic_load(&pool.frames);
		uint64_t want = cur + n > pool.limit_frames
				      ? cur + n - pool.limit_frames : n;
		pool.reclaim(want);
		if (charge_fits(n))
			return 0;
	}
	return -ENOMEM;
}

static void (*freed_hook)(void);

void pmm_set_freed_hook(void (*hook)(void))
{
	freed_hook = hook;
}

static void uncharge(uint64_t n)
{
	UVMO_ASSERT(atomic_load(&pool.frames) >= n);
	atomic_fetch_sub(&pool.frames, n);
	if (freed_hook)
		freed_hook();
}

static off_t slot_offset(const struct pmm_window *w, uint64_t pg)
{
	UVMO_ASSERT(pg < w->pages);
	return (off_t)((w->base + pg) << PAGE_SHIFT);
}

void *pmm_slot_addr(const struct pmm_window *w, uint64_t pg)
{
	return pool.physmap + slot_offset(w, pg);
}

/*
 * Populate zero-filled pages by write-faulting them through the physmap
 * with MADV_POPULATE_WRITE: a host out of memory then shows as an error,
 * not a SIGBUS, and the pages are ordinary written pages (fallocate would
 * leave them "unwritten", which SEEK_DATA reports as holes).
 */
static int populate(off_t off, uint64_t n)
{
	if (madvise(pool.physmap + off, n << PAGE_SHIFT, MADV_POPULATE_WRITE) < 0)
		return errno == EFAULT || errno == EHWPOISON ? -ENOMEM : -errno;
	return 0;
}

static void punch(off_t off, uint64_t n)
{
	int rc = fallocate(pool.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			   off, (off_t)(n << PAGE_SHIFT));
	(void)rc;
	UVMO_ASSERT(rc == 0); /* shmem always supports punching holes */
}

static __thread uint64_t reserved;
static __thread const struct pmm_installer *installer;

/*
 * Copies deferred by pmm_frame_fill for the installer: one run of
 * consecutive slots of one window whose sources are consecutive too (a
 * fault-ahead window of pages inherited from one ancestor), handed to the
 * installer in one call — one UFFDIO_COPY instead of one per page.
 */
#define MAX_DEFERRED_FILLS 64
static __thread struct {
	const struct pmm_window *w;
	uint64_t pg, n;
	const char *src;
} deferred;

static int fill_hole(off_t off, const void *src);

void pmm_flush_fills(void)
{
	if (!deferred.n)
		return;
	const struct pmm_window *w = deferred.w;
	uint64_t pg = deferred.pg, n = deferred.n;
	const char *src = deferred.src;
	deferred.n = 0;
	if (installer && installer->fill(installer->ctx, w, pg, n, src) == 0)
		return;
	/* The installer did part of it or none: copy the rest by hand.  A
	 * page it did is left alone — it is mapped already, and a thread may
	 * have written it since (every slot of the run was a hole before, so
	 * a populated one is the installer's).  Too late to fail: the frames
	 * are counted, so a host out of memory gets a plain copy, which the
	 * kernel backs or kills us for, like any memory. */
	for (uint64_t i = 0; i < n; i++) {
		if (pmm_slot_populated(w, pg + i))
			continue;
		if (fill_hole(slot_offset(w, pg + i), src + i * PAGE_SIZE) < 0)
			memcpy(pmm_slot_addr(w, pg + i), src + i * PAGE_SIZE, PAGE_SIZE);
	}
}

void pmm_set_installer(const struct pmm_installer *i)
{
	pmm_flush_fills();
	installer = i;
}

/* Defer the copy of @src into hole @pg of @w if the installer takes it,
 * extending the deferred run when it continues it. */
static bool deferred_fill(const struct pmm_window *w, uint64_t pg, const void *src)
{
	if (!installer || !installer->takes || !installer->takes(installer->ctx, w, pg, 1))
		return false;
	bool continues = deferred.n && deferred.w == w && deferred.pg + deferred.n == pg &&
			 deferred.src + deferred.n * PAGE_SIZE == (const char *)src &&
			 deferred.n < MAX_DEFERRED_FILLS;
	if (!continues) {
		pmm_flush_fills();
		deferred.w = w;
		deferred.pg = pg;
		deferred.src = src;
	}
	deferred.n++;
	return true;
}

static bool installed(const struct pmm_window *w, uint64_t pg, uint64_t n,
		      const void *src)
{
	return installer && installer->fill(installer->ctx, w, pg, n, src) == 0;
}

int pmm_reserve(uint64_t n)
{
	UVMO_ASSERT(reserved == 0);
	int rc = charge(n);
	if (rc == 0)
		reserved = n;
	return rc;
}

void pmm_unreserve(void)
{
	if (reserved)
		uncharge(reserved);
	reserved = 0;
}

int pmm_frame_charge(struct pmm_window *w, uint64_t n)
{
	int rc = 0;
	if (reserved >= n)
		reserved -= n;
	else
		rc = charge(n);
	if (rc == 0)
		w->frames += n;
	return rc;
}

int pmm_frame_populate(const struct pmm_window *w, uint64_t pg, uint64_t n)
{
	pmm_flush_fills();
	return installed(w, pg, n, NULL) ? 0 : populate(slot_offset(w, pg), n);
}

int pmm_frame_alloc(struct pmm_window *w, uint64_t pg, uint64_t n)
{
	int rc = pmm_frame_charge(w, n);
	if (rc < 0)
		return rc;
	rc = pmm_frame_populate(w, pg, n);
	if (rc < 0)
		pmm_frame_free(w, pg, n);
	return rc;
}

/*
 * Write a whole page into a hole with pwrite(2): shmem allocates the page
 * locked and publishes it only once filled, so a concurrent fault on a
 * mapping of the slot waits and never sees it half-written (a memcpy
 * through the physmap would first fault in a zero page others could map).
 */
static int fill_hole(off_t off, const void *src)
{
	/*
	 * The kernel copies with page faults disabled; if the source is not
	 * mapped (a frame of the physmap that was filled by pwrite and never
	 * touched), the first attempt copies nothing, and shmem then zeroes
	 * the page, marks it up to date — visible to every mapping — and
	 * copies again.  Copying through a buffer that is surely mapped keeps
	 * the page invisible until it is whole.
	 */
	static __thread unsigned char bounce[PAGE_SIZE] __attribute__((aligned(64)));
	memcpy(bounce, src, PAGE_SIZE);
	ssize_t done = 0;
	while (done < (ssize_t)PAGE_SIZE) {
		ssize_t n = pwrite(pool.fd, bounce + done, PAGE_SIZE - (size_t)done,
				   off + done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == ENOSPC ? -ENOMEM : -errno;
		}
		done += n;
	}
	return 0;
}

int pmm_frame_fill(struct pmm_window *w, uint64_t pg, const void *src)
{
	int rc = 0;
	bool from_reserve = reserved > 0;
	if (from_reserve)
		reserved--;
	else
		rc = charge(1);
	if (rc < 0)
		return rc;
	if (deferred_fill(w, pg, src)) {
		w->frames++;
		return 0;
	}
	pmm_flush_fills();
	rc = installed(w, pg, 1, src) ? 0 : fill_hole(slot_offset(w, pg), src);
	if (rc < 0) {
		punch(slot_offset(w, pg), 1);
		if (from_reserve)
			reserved++;
		else
			uncharge(1);
		return rc;
	}
	w->frames++;
	return 0;
}

void pmm_frame_free(struct pmm_window *w, uint64_t pg, uint64_t n)
{
	pmm_flush_fills();
	UVMO_ASSERT(w->frames >= n);
	punch(slot_offset(w, pg), n);
	w->frames -= n;
	uncharge(n);
}

void pmm_frame_move(struct pmm_window *dst, uint64_t dpg,
		   struct pmm_window *src, uint64_t spg)
{
	/* One frame before, one after: no charge changes hands.  A failing
	 * pwrite (host out of memory) falls back to a copy by hand, which
	 * the kernel backs or kills us for, like any memory. */
	pmm_flush_fills();
	if (!installed(dst, dpg, 1, pmm_slot_addr(src, spg)) &&
	    fill_hole(slot_offset(dst, dpg), pmm_slot_addr(src, spg)) < 0)
		memcpy(pmm_slot_addr(dst, dpg), pmm_slot_addr(src, spg), PAGE_SIZE);
	punch(slot_offset(src, spg), 1);
	src->frames--;
	dst->frames++;
}

bool pmm_slot_populated(const struct pmm_window *w, uint64_t pg)
{
	off_t off = slot_offset(w, pg);
	return lseek(pool.fd, off, SEEK_DATA) == off;
}

bool pmm_window_data_run(const struct pmm_window *w, uint64_t from, uint64_t end,
			 uint64_t *first, uint64_t *last)
{
	if (from >= end)
		return false;
	pmm_flush_fills();
	off_t start = slot_offset(w, from), stop = (off_t)((w->base + end) << PAGE_SHIFT);
	off_t data = lseek(pool.fd, start, SEEK_DATA);
	if (data < 0 || data >= stop)
		return false; /* ENXIO: no data after start */
	off_t hole = lseek(pool.fd, data, SEEK_HOLE);
	if (hole < 0 || hole > stop)
		hole = stop;
	*first = ((uint64_t)data >> PAGE_SHIFT) - w->base;
	*last = ((uint64_t)hole >> PAGE_SHIFT) - w->base;
	return true;
}

void pmm_frame_adopt(struct pmm_window *w, uint64_t pg)
{
	(void)pg; /* only checked */
	UVMO_ASSERT(pg < w->pages);
	uint64_t cur = atomic_fetch_add(&pool.frames, 1) + 1;
	uint64_t peak = atomic_load(&pool.peak_frames);
	while (cur > peak && !atomic_compare_exchange_weak(&pool.peak_frames, &peak, cur))
		;
	w->frames++;
}

uint64_t pmm_frames_charged(void)
{
	return atomic_load(&pool.frames);
}

void pmm_get_stats(struct pmm_stats *out)
{
	struct stat st;
	memset(out, 0, sizeof(*out));
	if (!pmm_ready())
		return;
	out->limit_bytes = pool.limit_frames << PAGE_SHIFT;
	out->frames = atomic_load(&pool.frames);
	out->peak_frames = atomic_load(&pool.peak_frames);
	pthread_mutex_lock(&pool.lock);
	out->windows = pool.windows;
	pthread_mutex_unlock(&pool.lock);
	if (fstat(pool.fd, &st) == 0)
		out->host_bytes = (uint64_t)st.st_blocks * 512;
}

int pmm_fd(void)
{
	return pool.fd;
}

bool pmm_has_room(void)
{
	return !pool.limit_frames || atomic_load(&pool.frames) < pool.limit_frames;
}

/*
 * In a child of fork(): the pool memfd is still the parent's file, so the
 * child would write into the parent's frames.  Give the child a file of its
 * own holding a copy of every frame (found with SEEK_DATA: the cost follows
 * the frames, not the span), and a physmap over it.  The caller has frozen
 * the parent's writers until this returns.  The window file offsets stay
 * the same, so every mapping can be remapped at the same offset.
 */
int pmm_fork_child(void)
{
	uint64_t span = pool.span_pages << PAGE_SHIFT;
	int fd = memfd_create("uvmo-pool", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)span) < 0)
		goto fail;
	char *map = mmap(NULL, span, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (map == MAP_FAILED)
		goto fail;
	apply_numa_policy(map, pool.numa_node); /* checked at init */
	off_t pos = 0;
	for (;;) {
		off_t data = lseek(pool.fd, pos, SEEK_DATA);
		if (data < 0)
			break; /* ENXIO: no more data */
		off_t hole = lseek(pool.fd, data, SEEK_HOLE);
		if (hole < 0)
			hole = (off_t)span;
		memcpy(map + data, pool.physmap + data, (size_t)(hole - data));
		pos = hole;
	}
	munmap(pool.physmap, span);
	close(pool.fd);
	pool.fd = fd;
	pool.physmap = map;
	pthread_mutex_init(&pool.lock, NULL);
	return 0;
fail:
	close(fd);
	return -ENOMEM;
}

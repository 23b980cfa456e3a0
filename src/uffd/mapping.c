/* SPDX-License-Identifier: MIT */
/*
 * mapping.c — one mapping: a MAP_SHARED VMA over its node's window,
 * registered with userfaultfd, kept coherent by cow's callbacks; or, for a
 * read-only mapping of a node whose content is a file's and that nothing
 * writes (cow_direct_file), a MAP_SHARED VMA of the file itself, which the
 * kernel serves from its page cache (read-ahead and fault-around
 * included) and which cow's callbacks leave alone: no snapshot, supply or
 * window move can change what it must show.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <uvmo/uvmo.h>

#include "pmm/pmm.h"
#include "uffd/uffd_private.h"

static struct mapping *of(struct cow_mapping *cm)
{
	return (struct mapping *)((char *)cm - offsetof(struct mapping, cm));
}

static int prot_of(uint32_t perms)
{
	return ((perms & UVMO_PERM_READ) ? PROT_READ : 0) |
	       ((perms & UVMO_PERM_WRITE) ? PROT_WRITE : 0) |
	       ((perms & UVMO_PERM_EXECUTE) ? PROT_EXEC : 0);
}

static uint64_t len_of(const struct mapping *m)
{
	return m->r.end - m->r.start;
}

/* Map [start, start + len) of the window at @file_offset into place. */
static int map_window(struct mapping *m, uint64_t file_offset, bool write_protect)
{
	void *p = mmap((void *)(uintptr_t)m->r.start, len_of(m), prot_of(m->perms),
		       MAP_SHARED | MAP_FIXED, pmm_fd(),
		       (off_t)(file_offset + m->node_offset));
	if (p == MAP_FAILED)
		return -errno;
	int rc = engine_register(mapping_uffd(m), m->r.start, len_of(m));
	if (rc < 0)
		return rc;
	/* Async tracking needs every page protected, holes too (shmem keeps
	 * a marker), or a write would go unrecorded. */
	if (write_protect || m->async)
		engine_write_protect(mapping_uffd(m), m->r.start, len_of(m), true);
	return 0;
}

static _Atomic uint64_t direct_mappings;

uint64_t mapping_direct_count(void)
{
	return atomic_load(&direct_mappings);
}

/* Map the file at the node offset into place (no userfaultfd). */
static int map_file(struct mapping *m)
{
	void *p = mmap((void *)(uintptr_t)m->r.start, len_of(m), prot_of(m->perms),
		       MAP_SHARED | MAP_FIXED, cow_direct_file(m->node), (off_t)m->node_offset);
	return p == MAP_FAILED ? -errno : 0;
}

static int install(struct cow_mapping *cm, uint64_t file_offset, bool write_protect,
		   bool track_async)
{
	struct mapping *m = of(cm);
	if (m->direct) {
		if (map_file(m) == 0) {
			/* After fork() the child maps it again: counted once. */
			if (!m->installed)
				atomic_fetch_add(&direct_mappings, 1);
			m->installed = true;
			return 0;
		}
		/* (A file the kernel will not map so after all: through the
		 * pager, like any paged VMO.  The file pager keeps the usual
		 * causes — hugetlbfs, noexec mounts — from getting here.) */
		m->direct = false;
	}
	m->async = track_async;
	int rc = map_window(m, file_offset, write_protect);
	if (rc < 0) {
		space_release(m->r.start, len_of(m));
	} else {
		m->installed = true;
		m->file_offset = file_offset;
	}
	return rc;
}

/* The part of node pages [first, end) that @m shows, as an address range;
 * false if none. */
static bool node_range_in(const struct mapping *m, uint64_t first, uint64_t end,
			  uint64_t *addr, uint64_t *len)
{
	uint64_t m_first = m->node_offset >> PAGE_SHIFT;
	uint64_t m_end = m_first + (len_of(m) >> PAGE_SHIFT);
	uint64_t lo = max_u64(first, m_first), hi = min_u64(end, m_end);
	if (lo >= hi)
		return false;
	*addr = m->r.start + ((lo - m_first) << PAGE_SHIFT);
	*len = (hi - lo) << PAGE_SHIFT;
	return true;
}

static void write_protect(struct cow_mapping *cm, uint64_t first, uint64_t end)
{
	struct mapping *m = of(cm);
	uint64_t addr, len;
	/* Dead or not: until its range is released it is still mapped. */
	if (!m->direct && node_range_in(m, first, end, &addr, &len))
		engine_write_protect(mapping_uffd(m), addr, len, true);
}

/*
 * A mapping cannot be registered with two userfaultfds, so moving it is
 * unregister, then register: in between, an access is served by the
 * kernel as for any shared mapping — cow makes that harmless (tracking.c).
 * Unregistering wakes the threads waiting on the old one; they fault
 * again on the new one.  If the mapping cannot be registered again it is
 * taken away (SIGSEGV), never left unwatched over the window's holes.
 */
static int set_tracking(struct cow_mapping *cm, bool async)
{
	struct mapping *m = of(cm);
	if (m->dead || !m->installed || m->async == async || m->direct)
		return 0;
	int rc = engine_unregister(mapping_uffd(m), m->r.start, len_of(m));
	if (rc < 0)
		return rc; /* still registered where it was */
	m->async = async;
	rc = engine_register(mapping_uffd(m), m->r.start, len_of(m));
	if (rc < 0) {
		m->async = false;
		if (engine_register(engine.fd, m->r.start, len_of(m)) < 0) {
			m->dead = true;
			space_release(m->r.start, len_of(m));
			return rc;
		}
	}
	engine_write_protect(mapping_uffd(m), m->r.start, len_of(m), true);
	return rc;
}

struct scan_report {
	const struct mapping *m;
	void (*written)(void *arg, uint64_t first, uint64_t end);
	void *arg;
};

static void report_written(void *arg, uint64_t addr, uint64_t len)
{
	const struct scan_report *r = arg;
	uint64_t first = (addr - r->m->r.start + r->m->node_offset) >> PAGE_SHIFT;
	r->written(r->arg, first, first + (len >> PAGE_SHIFT));
}

static int scan_written(struct cow_mapping *cm,
			void (*written)(void *arg, uint64_t first, uint64_t end), void *arg)
{
	struct mapping *m = of(cm);
	if (!m->async || !m->installed)
		return -EINVAL;
	if (m->dead)
		return 0; /* its writes are lost anyway: detaching says so */
	struct scan_report r = { m, written, arg };
	return engine_scan_written(m->r.start, len_of(m), report_written, &r);
}

static void populate(struct cow_mapping *cm, uint64_t first, uint64_t end)
{
	struct mapping *m = of(cm);
	uint64_t addr, len;
	if (!m->dead && !m->direct && node_range_in(m, first, end, &addr, &len))
		madvise((void *)(uintptr_t)addr, len, MADV_POPULATE_READ); /* best effort */
}

static void window_changed(struct cow_mapping *cm, uint64_t file_offset,
			   uint64_t old_size, uint64_t new_size)
{
	struct mapping *m = of(cm);

	if (m->dead || m->direct)
		return;
	if (file_offset != m->file_offset) {
		/* The window moved: map it anew.  Borrowed frames moved with
		 * it, so write-protect everything; owned pages pay one extra
		 * fault each. */
		m->file_offset = file_offset;
		if (map_window(m, file_offset, true) < 0)
			space_release(m->r.start, len_of(m)); /* accesses: SIGSEGV */
	}
	if (new_size > old_size)
		engine_clear_poisons(); /* pages past the old end may work now */
}

static const struct cow_mapping_ops mapping_ops = {
	.install = install,
	.write_protect = write_protect,
	.populate = populate,
	.window_changed = window_changed,
	.set_tracking = set_tracking,
	.scan_written = scan_written,
};

int mapping_create(struct vmar *v, uint64_t addr, uint64_t len,
		   const struct map_target *t, uint64_t vmo_offset, uint32_t perms,
		   struct mapping **out)
{
	struct mapping *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->r.start = addr;
	m->r.end = addr + len;
	m->vmar = v;
	m->node = t->node;
	m->node_offset = t->base + vmo_offset;
	m->node_limit = t->limit ? t->base + t->limit : UINT64_MAX;
	m->perms = perms;
	m->writable = t->writable;
	m->direct = cow_direct_file(t->node) >= 0 && t->limit && !t->writable &&
		    !(perms & UVMO_PERM_WRITE) && m->node_offset + len <= m->node_limit;
	m->cm.ops = &mapping_ops;
	int rc = cow_mapping_attach(m->node, &m->cm, m->node_offset + len);
	if (rc < 0) {
		free(m);
		return rc;
	}
	*out = m;
	return 0;
}

static void mark_dead(void *arg)
{
	struct mapping *m = arg;
	m->dead = true;
}

static void detach_and_free(struct mapping *m)
{
	if (m->direct && m->installed)
		atomic_fetch_sub(&direct_mappings, 1);
	cow_mapping_detach(m->node, &m->cm);
	free(m);
}

struct split_args {
	struct mapping *m;
	uint64_t addr;
};

static void cut_end(void *arg)
{
	struct split_args *a = arg;
	a->m->r.end = a->addr;
}

int mapping_split(struct mapping *m, uint64_t addr, struct mapping **right)
{
	struct mapping *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = *m;
	if (r->direct && r->installed)
		atomic_fetch_add(&direct_mappings, 1);
	r->r.start = addr;
	r->node_offset = m->node_offset + (addr - m->r.start);
	cow_mapping_attach_split(r->node, &r->cm);
	struct split_args a = { m, addr };
	cow_mapping_update(m->node, cut_end, &a);
	RB_INSERT(region_tree, &m->vmar->children, &r->r);
	*right = r;
	return 0;
}

struct protect_args {
	struct mapping *m;
	uint32_t perms;
	int rc;
};

static void apply_protection(void *arg)
{
	struct protect_args *a = arg;
	struct mapping *m = a->m;
	int prot = prot_of(a->perms);
	if (mprotect((void *)(uintptr_t)m->r.start, m->r.end - m->r.start, prot) < 0) {
		a->rc = -errno;
		return;
	}
	m->perms = a->perms;
}

/* Split @m so that [start, end) (inside it) is a mapping of its own. */
static int isolate(struct mapping *m, uint64_t start, uint64_t end, struct mapping **mid)
{
	struct mapping *right;
	int rc;

	*mid = m;
	if (end < m->r.end) {
		rc = mapping_split(m, end, &right);
		if (rc < 0)
			return rc;
	}
	if (start > m->r.start)
		return mapping_split(m, start, mid);
	return 0;
}

int mapping_unmap_range(struct mapping *m, uint64_t start, uint64_t end)
{
	struct mapping *mid;
	int rc = isolate(m, start, end, &mid);
	if (rc < 0)
		return rc;
	/* Mark it dead (no remap may bring the window back), take the pages
	 * away, and only then detach: until the range is gone a snapshot must
	 * still be able to protect it, or a racing write could reach a frame
	 * the snapshot borrowed. */
	RB_REMOVE(region_tree, &mid->vmar->children, &mid->r);
	cow_mapping_update(mid->node, mark_dead, mid);
	space_release(mid->r.start, len_of(mid));
	detach_and_free(mid);
	return 0;
}

int mapping_protect_range(struct mapping *m, uint64_t start, uint64_t end,
			  uint32_t perms)
{
	struct mapping *mid;
	int rc = isolate(m, start, end, &mid);
	if (rc < 0)
		return rc;
	/* Write access appears only as the kernel allows it: pages still
	 * write-protected by userfaultfd stay so, and fault into cow. */
	struct protect_args a = { mid, perms, 0 };
	cow_mapping_update(mid->node, apply_protection, &a);
	return a.rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * space.c — the root reservation, VMARs and their children, and finding
 * the mapping behind a faulting address.
 *
 * Address allocation inside a VMAR (Asterinas' rule): just above the
 * highest child if it fits, else the first gap from the bottom.  Unmapped
 * ranges go back to the root's PROT_NONE reservation at once, so the gaps
 * are always reusable and 100,000 map/unmap cycles do not fragment.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <uvmo/uvmo.h>

#include "pmm/pmm.h"
#include "uffd/uffd_private.h"

#define DEFAULT_ROOT_SIZE (4ull << 40)
#define MIN_ROOT_SIZE (1ull << 30)
#define ALL_RIGHTS (UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_CAN_MAP_WRITE | \
		    UVMO_VMAR_CAN_MAP_EXECUTE | UVMO_VMAR_CAN_MAP_SPECIFIC)
#define PERMS (UVMO_PERM_READ | UVMO_PERM_WRITE | UVMO_PERM_EXECUTE)

pthread_rwlock_t aspace_lock = PTHREAD_RWLOCK_INITIALIZER;
struct vmar root_vmar;

static int region_cmp(const struct region *a, const struct region *b)
{
	return a->start < b->start ? -1 : a->start > b->start;
}

RB_GENERATE(region_tree, region, link, region_cmp)

static bool managed(const void *p, size_t len)
{
	uint64_t a = (uint64_t)(uintptr_t)p;
	return a < root_vmar.r.end && a + len > root_vmar.r.start;
}

int uffd_init(const struct uffd_config *cfg)
{
	uint64_t size = cfg->root_size ? page_round_up(cfg->root_size) : DEFAULT_ROOT_SIZE;
	void *p = MAP_FAILED;

	/* Address space may be scarce (sanitizers): halve the default until
	 * it fits; a size the caller chose is tried as it is. */
	for (;;) {
		p = mmap(NULL, size, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p != MAP_FAILED || cfg->root_size || size / 2 < MIN_ROOT_SIZE)
			break;
		size /= 2;
	}
	if (p == MAP_FAILED)
		return -ENOMEM;
	int rc = engine_start(cfg->threads, cfg->tracking, cfg->rest_ms);
	if (rc < 0) {
		munmap(p, size);
		return rc;
	}
	root_vmar = (struct vmar){ .r = { .start = (uint64_t)(uintptr_t)p,
					  .end = (uint64_t)(uintptr_t)p + size,
					  .is_vmar = true },
				   .rights = ALL_RIGHTS };
	RB_INIT(&root_vmar.children);
	atomic_init(&root_vmar.refs, 1);
	cow_set_managed_memory(managed);
	cow_set_async_tracking(engine.async_fd >= 0);
	pmm_set_freed_hook(engine_clear_poisons);
	return 0;
}

static void destroy_children(struct vmar *v);

void uffd_fini(void)
{
	if (root_vmar.r.end == 0)
		return;
	pthread_rwlock_wrlock(&aspace_lock);
	destroy_children(&root_vmar);
	pthread_rwlock_unlock(&aspace_lock);
	pmm_set_freed_hook(NULL);
	engine_stop();
	cow_set_managed_memory(NULL);
	munmap((void *)(uintptr_t)root_vmar.r.start, root_vmar.r.end - root_vmar.r.start);
	root_vmar = (struct vmar){ 0 };
}

void uffd_enter(void)
{
	pthread_rwlock_rdlock(&aspace_lock);
}

void uffd_leave(void)
{
	pthread_rwlock_unlock(&aspace_lock);
}

struct vmar *vmar_root(void)
{
	return &root_vmar;
}

void vmar_get(struct vmar *v)
{
	atomic_fetch_add(&v->refs, 1);
}

void vmar_put(struct vmar *v)
{
	if (v == &root_vmar)
		return;
	if (atomic_fetch_sub(&v->refs, 1) == 1)
		free(v);
}

uint64_t vmar_start(const struct vmar *v)
{
	return v->r.start;
}

void space_release(uint64_t start, uint64_t len)
{
	/* Replacing the range with a fresh PROT_NONE reservation drops the
	 * mapping and its userfaultfd registration in one step. */
	mmap((void *)(uintptr_t)start, len, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
}

bool space_pool_has_room(void)
{
	return pmm_has_room();
}

/* ---- lookups (address-space lock held) ---- */

static struct region *region_at(struct region_tree *t, uint64_t addr)
{
	struct region key = { .start = addr };
	struct region *r = RB_NFIND(region_tree, t, &key);
	if (r && r->start == addr)
		return r;
	r = r ? RB_PREV(region_tree, t, r) : RB_MAX(region_tree, t);
	return r && addr < r->end ? r : NULL;
}

/* The first child overlapping [start, end), or NULL. */
static struct region *first_overlap(struct region_tree *t, uint64_t start, uint64_t end)
{
	struct region *r = region_at(t, start);
	if (r)
		return r;
	struct region key = { .start = start };
	r = RB_NFIND(region_tree, t, &key);
	return r && r->start < end ? r : NULL;
}

struct mapping *space_find_mapping(uint64_t addr)
{
	struct vmar *v = &root_vmar;
	for (;;) {
		struct region *r = region_at(&v->children, addr);
		if (!r)
			return NULL;
		if (!r->is_vmar)
			return (struct mapping *)r;
		v = (struct vmar *)r;
	}
}

/* At most 64 pages (256 KiB) served per fault.  Zircon stops at 16, but
 * here a round trip costs several kernel faults, and a sequential stream
 * reaches 64 only after six hits in a row: measured with bench/fault, 64
 * makes first touches 27% and sequential clone reads 15% cheaper than 16,
 * for at most 63 pages served past where a stream stops. */
#define FAULT_AHEAD 63u

/*
 * Fill holes of the faulting mapping's window by installing the pages
 * straight into the mapping: the slot is filled and mapped in one step, so
 * the woken thread finds its page mapped instead of faulting a second time.
 * Anything else (another window, outside the mapping) is left to pmm.
 */
struct install_target {
	struct mapping *m;
	uint64_t addr; /* the faulting page */
	/* A missing fault: the faulting page and its fault-ahead window
	 * (empty for a write-protect fault). */
	uint64_t fault_start, fault_end;
};

/* The address at which the mapping shows slots [pg, pg + n) of @w, or 0
 * if it does not show them all. */
static uint64_t mapped_at(const struct mapping *m, const struct pmm_window *w, uint64_t pg,
			  uint64_t n)
{
	uint64_t off = pg << PAGE_SHIFT;
	if (pmm_window_file_offset(w) != m->file_offset || off < m->node_offset)
		return 0;
	uint64_t addr = m->r.start + (off - m->node_offset);
	if (addr >= m->r.end || (n << PAGE_SHIFT) > m->r.end - addr)
		return 0;
	return addr;
}

static bool mapping_takes(void *ctx, const struct pmm_window *w, uint64_t pg, uint64_t n)
{
	const struct install_target *t = ctx;
	return mapped_at(t->m, w, pg, n) != 0;
}

static int install_into_mapping(void *ctx, const struct pmm_window *w, uint64_t pg,
				uint64_t n, const void *src)
{
	const struct install_target *t = ctx;
	uint64_t addr = mapped_at(t->m, w, pg, n);
	uint64_t len = n << PAGE_SHIFT;
	if (!addr)
		return -EINVAL;
	/* A copy that completes the whole window (a random fault's one
	 * page, or a run pmm deferred) answers the fault itself, saving a
	 * UFFDIO_WAKE; one that
	 * leaves fault-ahead pages to do must not wake yet.  Zero runs do
	 * not: they are installed with the tree lock dropped (cow/fill.c),
	 * and a thread woken then preempts its handler before the handler
	 * has finished (measured: first touches 9% slower). */
	bool answers = src && addr <= t->fault_start && addr + len >= t->fault_end;
	int fd = mapping_uffd(t->m);
	return src ? engine_install_copy(fd, addr, src, len, answers)
		   : engine_install_zero(fd, addr, len);
}

/* The faulting page and the fault-ahead pages after it, which the VMO
 * now owns: one ioctl unprotects them all, so a sequential writer takes
 * one write-protect fault per fault-ahead window, not one per page. */
static void lift_write_protection(void *arg, uint64_t pages)
{
	const struct install_target *t = arg;
	engine_write_protect(mapping_uffd(t->m), t->addr, pages << PAGE_SHIFT,
			     false); /* also wakes */
}

int space_resolve_fault(uint64_t addr, bool wp, bool write)
{
	struct mapping *m = space_find_mapping(addr);
	if (!m)
		return -ESRCH;
	uint64_t off = addr - m->r.start + m->node_offset;
	if (off >= m->node_limit)
		return -ERANGE;

	/* Sequential faults earn a growing window; anything else starts a
	 * new stream, so random access costs no memory it does not touch.
	 * The streams are hints read and written without a lock: a race
	 * costs at most a window size. */
	uint32_t ahead = 0;
	struct fault_stream *stream = NULL;
	for (unsigned i = 0; i < FAULT_STREAMS && !stream; i++)
		if (atomic_load_explicit(&m->streams[i].next_fault, memory_order_relaxed) == addr)
			stream = &m->streams[i];
	if (stream) {
		ahead = atomic_load_explicit(&stream->ahead, memory_order_relaxed);
		ahead = ahead ? min_u64(2 * ahead, FAULT_AHEAD) : 1;
	} else {
		uint32_t slot = atomic_fetch_add_explicit(&m->next_stream_slot, 1,
							  memory_order_relaxed);
		stream = &m->streams[slot % FAULT_STREAMS];
	}
	uint64_t room = min_u64((m->r.end - addr) >> PAGE_SHIFT,
				m->node_limit == UINT64_MAX ? UINT64_MAX
							    : (m->node_limit - off) >> PAGE_SHIFT);
	ahead = (uint32_t)min_u64(ahead, room ? room - 1 : 0);
	/* A write-protect fault is answered under the tree lock: were the
	 * protection lifted after it, a snapshot taken in between would have
	 * its frame written through this mapping. */
	struct install_target target = { m, addr, 0, 0 };
	if (!wp) { /* a write-protect fault installs no page of its own */
		target.fault_start = addr;
		target.fault_end = addr + ((uint64_t)ahead + 1) * PAGE_SIZE;
	}
	struct pmm_installer installer = {
		.fill = install_into_mapping, .takes = mapping_takes, .ctx = &target
	};
	if (cow_fault_installs_writable(m->node))
		pmm_set_installer(&installer);
	int rc = cow_fault(m->node, off >> PAGE_SHIFT, ahead, wp || write,
			   wp ? lift_write_protection : NULL, &target);
	pmm_set_installer(NULL);
	if (rc == 0 || rc == -EINPROGRESS) {
		atomic_store_explicit(&stream->ahead, ahead, memory_order_relaxed);
		atomic_store_explicit(&stream->next_fault,
				      addr + ((uint64_t)ahead + 1) * PAGE_SIZE,
				      memory_order_relaxed);
	}
	return rc;
}

static void for_each_in(struct vmar *v, void (*fn)(struct mapping *m, void *arg),
			void *arg)
{
	struct region *r, *next;
	RB_FOREACH_SAFE(r, region_tree, &v->children, next) {
		if (r->is_vmar)
			for_each_in((struct vmar *)r, fn, arg);
		else
			fn((struct mapping *)r, arg);
	}
}

void space_for_each_mapping(void (*fn)(struct mapping *m, void *arg), void *arg)
{
	for_each_in(&root_vmar, fn, arg);
}

/* ---- allocation ---- */

static int find_free(struct vmar *v, uint64_t size, uint64_t *out)
{
	struct region *max = RB_MAX(region_tree, &v->children);
	uint64_t top = max ? max->end : v->r.start;
	if (v->r.end - top >= size) {
		*out = top;
		return 0;
	}
	uint64_t prev = v->r.start;
	struct region *r;
	RB_FOREACH(r, region_tree, &v->children) {
		if (r->start - prev >= size) {
			*out = prev;
			return 0;
		}
		prev = r->end;
	}
	return -ENOMEM;
}

/* Where a new child of @size goes: SPECIFIC at @offset, else anywhere. */
static int place(struct vmar *v, uint32_t options, uint64_t offset, uint64_t size,
		 uint64_t *addr)
{
	if (options & (UVMO_VMAR_SPECIFIC | UVMO_VMAR_SPECIFIC_OVERWRITE)) {
		if (!(v->rights & UVMO_VMAR_CAN_MAP_SPECIFIC))
			return -EACCES;
		if (range_overflows(offset, size) || offset + size > v->r.end - v->r.start)
			return -ENOMEM;
		*addr = v->r.start + offset;
		return 0;
	}
	return find_free(v, size, addr);
}

int vmar_allocate(struct vmar *parent, uint32_t options, uint64_t offset,
		  uint64_t size, struct vmar **child)
{
	uint32_t rights = options & ALL_RIGHTS;
	uint64_t addr;
	int rc;

	if ((options & ~(ALL_RIGHTS | UVMO_VMAR_SPECIFIC)) || !size ||
	    !page_aligned(size) || !page_aligned(offset))
		return -EINVAL;
	pthread_rwlock_wrlock(&aspace_lock);
	if (parent->destroyed) {
		rc = -EBADF;
		goto out;
	}
	if (rights & ~parent->rights) {
		rc = -EACCES;
		goto out;
	}
	rc = place(parent, options, offset, size, &addr);
	if (rc == 0 && first_overlap(&parent->children, addr, addr + size))
		rc = -ENOMEM;
	if (rc < 0)
		goto out;
	struct vmar *v = calloc(1, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	v->r = (struct region){ .start = addr, .end = addr + size, .is_vmar = true };
	v->parent = parent;
	v->rights = rights;
	RB_INIT(&v->children);
	atomic_init(&v->refs, 2); /* the caller's handle, the parent's tree */
	RB_INSERT(region_tree, &parent->children, &v->r);
	*child = v;
out:
	pthread_rwlock_unlock(&aspace_lock);
	return rc;
}

/* ---- removing children ---- */

static void destroy_vmar_locked(struct vmar *v);

/* Remove every child of @v overlapping [start, end); partly covered
 * mappings are cut, sub-VMARs must lie wholly inside (checked before). */
static int clear_range(struct vmar *v, uint64_t start, uint64_t end)
{
	struct region *r;
	while ((r = first_overlap(&v->children, start, end))) {
		if (r->is_vmar) {
			destroy_vmar_locked((struct vmar *)r);
			continue;
		}
		int rc = mapping_unmap_range((struct mapping *)r, max_u64(r->start, start),
					     min_u64(r->end, end));
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* True if a sub-VMAR of @v crosses a boundary of [start, end). */
static bool cuts_a_vmar(struct vmar *v, uint64_t start, uint64_t end)
{
	for (struct region *r = first_overlap(&v->children, start, end);
	     r && r->start < end; r = RB_NEXT(region_tree, &v->children, r))
		if (r->is_vmar && (r->start < start || r->end > end))
			return true;
	return false;
}

static void destroy_children(struct vmar *v)
{
	clear_range(v, v->r.start, v->r.end);
}

static void destroy_vmar_locked(struct vmar *v)
{
	destroy_children(v);
	v->destroyed = true;
	if (v->parent) {
		RB_REMOVE(region_tree, &v->parent->children, &v->r);
		v->parent = NULL;
		vmar_put(v); /* the parent's reference */
	}
}

int vmar_destroy(struct vmar *v)
{
	if (v == &root_vmar)
		return -EACCES;
	pthread_rwlock_wrlock(&aspace_lock);
	int rc = v->destroyed ? -EBADF : 0;
	if (rc == 0)
		destroy_vmar_locked(v);
	pthread_rwlock_unlock(&aspace_lock);
	return rc;
}

/* ---- mappings ---- */

static int check_range(struct vmar *v, uint64_t addr, uint64_t len)
{
	if (!len || !page_aligned(addr) || !page_aligned(len) || range_overflows(addr, len))
		return -EINVAL;
	if (addr < v->r.start || addr + len > v->r.end)
		return -EINVAL;
	return 0;
}

/* Every byte of [start, end) is in a mapping directly in @v. */
static bool fully_mapped(struct vmar *v, uint64_t start, uint64_t end)
{
	uint64_t at = start;
	for (struct region *r = first_overlap(&v->children, start, end);
	     r && r->start < end; r = RB_NEXT(region_tree, &v->children, r)) {
		if (r->is_vmar || r->start > at)
			return false;
		at = r->end;
	}
	return at >= end;
}

static int vmar_op_range_locked(struct vmar *v, uint32_t op, uint64_t addr, uint64_t len);

int vmar_map(struct vmar *v, uint32_t options, uint64_t vmar_offset,
	     const struct map_target *t, uint64_t vmo_offset, uint64_t len,
	     uint64_t *addr_out)
{
	uint32_t perms = options & PERMS;
	uint64_t addr;
	int rc;

	if ((options & ~(PERMS | UVMO_VMAR_SPECIFIC | UVMO_VMAR_SPECIFIC_OVERWRITE |
			 UVMO_VMAR_MAP_RANGE | UVMO_VMAR_ALLOW_FAULTS)) ||
	    !len || !page_aligned(len) || !page_aligned(vmo_offset) ||
	    !page_aligned(vmar_offset))
		return -EINVAL;
	if (range_overflows(vmo_offset, len))
		return -ERANGE;
	if (((perms & (UVMO_PERM_WRITE | UVMO_PERM_EXECUTE)) && !(perms & UVMO_PERM_READ)))
		return -EINVAL;

	pthread_rwlock_wrlock(&aspace_lock);
	if (v->destroyed) {
		rc = -EBADF;
		goto out;
	}
	/* CAN_MAP_READ is bit 8 for PERM_READ's bit 0, and so on. */
	if ((perms << 8) & ~v->rights || ((perms & UVMO_PERM_WRITE) && !t->writable)) {
		rc = -EACCES;
		goto out;
	}
	uint64_t reach = t->limit ? t->limit : cow_size(t->node);
	if (vmo_offset + len > reach &&
	    (t->limit || !(options & UVMO_VMAR_ALLOW_FAULTS))) {
		rc = -ERANGE; /* a slice never shows past its end */
		goto out;
	}
	rc = place(v, options, vmar_offset, len, &addr);
	if (rc < 0)
		goto out;
	if (options & UVMO_VMAR_SPECIFIC_OVERWRITE) {
		if (cuts_a_vmar(v, addr, addr + len) ||
		    (first_overlap(&v->children, addr, addr + len) &&
		     first_overlap(&v->children, addr, addr + len)->is_vmar)) {
			rc = -EINVAL;
			goto out;
		}
		rc = clear_range(v, addr, addr + len);
		if (rc < 0)
			goto out;
	} else if (first_overlap(&v->children, addr, addr + len)) {
		rc = -ENOMEM;
		goto out;
	}
	struct mapping *m;
	rc = mapping_create(v, addr, len, t, vmo_offset, perms, &m);
	if (rc < 0)
		goto out;
	RB_INSERT(region_tree, &v->children, &m->r);
	*addr_out = addr;
	pthread_rwlock_unlock(&aspace_lock);
	if (options & UVMO_VMAR_MAP_RANGE) {
		/* Populating faults, and fault handlers take the lock for
		 * reading: hold it only for reading here. */
		rc = vmar_op_range(v, UVMO_OP_MAP_RANGE, addr, len);
		if (rc < 0)
			vmar_unmap(v, addr, len);
	}
	return rc;
out:
	pthread_rwlock_unlock(&aspace_lock);
	return rc;
}

/* Apply a VMO operation to the mapped [addr, addr + len) of @v (fully
 * mapped, directly in @v).  Lock held. */
static int op_on_mapping(struct mapping *m, uint32_t op, uint64_t start, uint64_t end)
{
	uint64_t off = start - m->r.start + m->node_offset;
	uint64_t len = end - start;
	uint64_t size = cow_size(m->node);
	int rc = 0;

	switch (op) {
	case UVMO_OP_COMMIT:
	case UVMO_OP_DECOMMIT:
		if (!(m->perms & UVMO_PERM_WRITE))
			return -EACCES;
		if (off + len > size || off + len > m->node_limit)
			return -ERANGE;
		return op == UVMO_OP_COMMIT ? cow_commit(m->node, off, len)
					    : cow_zero(m->node, off, len);
	case UVMO_OP_MAP_RANGE:
		/* Commit what a write could need, then have the kernel map
		 * every page now; past the VMO's end there is nothing. */
		len = off < size ? min_u64(len, size - off) : 0;
		if (len && (m->perms & UVMO_PERM_WRITE))
			rc = cow_commit(m->node, off, len);
		if (rc == 0 && len &&
		    madvise((void *)(uintptr_t)start, len, MADV_POPULATE_READ) < 0)
			rc = -errno == -EFAULT ? -ENOMEM : -errno;
		return rc;
	case UVMO_OP_DONT_NEED:
	case UVMO_OP_ALWAYS_NEED:
		return 0;
	default:
		return -EINVAL;
	}
}

static int vmar_op_range_locked(struct vmar *v, uint32_t op, uint64_t addr, uint64_t len)
{
	int rc = check_range(v, addr, len);
	if (rc == 0 && !fully_mapped(v, addr, addr + len))
		rc = -ENOMEM;
	for (struct region *r = rc ? NULL : first_overlap(&v->children, addr, addr + len);
	     rc == 0 && r && r->start < addr + len; r = RB_NEXT(region_tree, &v->children, r))
		rc = op_on_mapping((struct mapping *)r, op, max_u64(r->start, addr),
				   min_u64(r->end, addr + len));
	return rc;
}

int vmar_op_range(struct vmar *v, uint32_t op, uint64_t addr, uint64_t len)
{
	if (op != UVMO_OP_COMMIT && op != UVMO_OP_DECOMMIT && op != UVMO_OP_MAP_RANGE &&
	    op != UVMO_OP_DONT_NEED && op != UVMO_OP_ALWAYS_NEED)
		return -EINVAL;
	pthread_rwlock_rdlock(&aspace_lock);
	int rc = v->destroyed ? -EBADF : vmar_op_range_locked(v, op, addr, len);
	pthread_rwlock_unlock(&aspace_lock);
	return rc;
}

int vmar_unmap(struct vmar *v, uint64_t addr, uint64_t len)
{
	pthread_rwlock_wrlock(&aspace_lock);
	int rc = v->destroyed ? -EBADF : check_range(v, addr, len);
	if (rc == 0 && cuts_a_vmar(v, addr, addr + len))
		rc = -EINVAL;
	if (rc == 0)
		rc = clear_range(v, addr, addr + len);
	pthread_rwlock_unlock(&aspace_lock);
	return rc;
}

int vmar_protect(struct vmar *v, uint32_t options, uint64_t addr, uint64_t len)
{
	uint32_t perms = options & PERMS;

	if (options & ~PERMS)
		return -EINVAL;
	if ((perms & (UVMO_PERM_WRITE | UVMO_PERM_EXECUTE)) && !(perms & UVMO_PERM_READ))
		return -EINVAL;
	pthread_rwlock_wrlock(&aspace_lock);
	int rc = v->destroyed ? -EBADF : check_range(v, addr, len);
	if (rc == 0 && !fully_mapped(v, addr, addr + len))
		rc = -ENOMEM;
	if (rc == 0 && ((perms << 8) & ~v->rights))
		rc = -EACCES;
	/* Check every mapping's handle rights first: all or nothing. */
	for (struct region *r = rc ? NULL : first_overlap(&v->children, addr, addr + len);
	     r && r->start < addr + len; r = RB_NEXT(region_tree, &v->children, r))
		if ((perms & UVMO_PERM_WRITE) && !((struct mapping *)r)->writable)
			rc = -EACCES;
	if (rc == 0) {
		struct region *r = first_overlap(&v->children, addr, addr + len);
		while (rc == 0 && r && r->start < addr + len) {
			struct region *next = RB_NEXT(region_tree, &v->children, r);
			rc = mapping_protect_range((struct mapping *)r, max_u64(r->start, addr),
						   min_u64(r->end, addr + len), perms);
			r = next;
		}
	}
	pthread_rwlock_unlock(&aspace_lock);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * paged.c — pager-backed roots: absent pages, waits on the page source,
 * supply, and the dirty states Clean → Dirty → AwaitingClean → Clean.
 *
 * Only roots are paged, and no snapshot inserts a hidden node above one,
 * so every frame of a paged root is its own, at its home slot.
 *
 * Mappings.  A mapping of a paged root is write-protected wherever a page
 * is not Dirty: that is how the first write through a mapping is seen
 * (cow_fault marks the page Dirty, or asks the pager, before the
 * protection is lifted under the tree lock).  Every path that makes a page
 * not Dirty (writeback, a supply into a hole, an eviction) protects its
 * range in every mapping first, under the tree lock, so no write can slip
 * in unseen between the state change and the protection.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cow/cow_private.h"

static __thread struct cow_wait own_wait;
static __thread struct cow_wait *next_wait;    /* cow_wait_use */
static __thread struct cow_wait *pending_wait; /* the last -EINPROGRESS */

void cow_wait_use(struct cow_wait *w)
{
	next_wait = w;
}

int cow_wait_sleep(void)
{
	struct cow_wait *w = pending_wait;
	pending_wait = NULL;
	if (!w)
		return 0;
	w->ops->sleep(w->source, w);
	return w->result;
}

int cow_create_paged(uint64_t size, uint64_t capacity, uint32_t flags,
		     struct cow_source *source, const struct cow_source_ops *ops,
		     struct cow_node **out)
{
	struct cow_node *n;
	int rc = cow_create(size, capacity, flags & COW_RESIZABLE, &n);
	if (rc < 0)
		return rc;
	n->flags |= N_PAGED;
	n->installs_writable = false;
	if (flags & COW_TRAP_DIRTY)
		n->flags |= N_TRAP_DIRTY;
	n->source = source;
	n->source_ops = ops;
	n->source_limit = size;
	n->holds = 1;
	*out = n;
	return 0;
}

bool cow_is_paged(const struct cow_node *n)
{
	return node_paged(n); /* immutable */
}

struct cow_source *cow_node_source(struct cow_node *n)
{
	tree_lock(n->tree);
	struct cow_source *s = node_paged(n) ? n->source : NULL;
	tree_unlock(n->tree);
	return s;
}

void cow_node_hold(struct cow_node *n)
{
	tree_lock(n->tree);
	UVMO_ASSERT(node_paged(n) && n->holds > 0);
	n->holds++;
	tree_unlock(n->tree);
}

void cow_node_release(struct cow_node *n)
{
	struct cow_tree *tree = n->tree;
	bool last_node = false;

	tree_lock(tree);
	UVMO_ASSERT(n->holds > 0);
	if (--n->holds == 0) {
		node_free(n);
		last_node = tree->nodes == 0;
	}
	tree_unlock(tree);
	if (last_node)
		tree_free(tree);
}

/* The last holder is gone (tree lock held): give the frames back, tell the
 * source, and free the node unless a hold keeps its memory. */
void paged_die(struct cow_node *n)
{
	cow_drop_own_pages(n, 0, UINT64_MAX);
	if (n->source)
		n->source_ops->gone(n->source);
	n->source = NULL;
	n->dead = true;
	if (--n->holds == 0)
		node_free(n);
}

int cow_pager_keep(struct cow_node *n)
{
	tree_lock(n->tree);
	int rc = -ENOENT;
	if (node_paged(n) && !n->dead && n->source) {
		n->refs++;
		n->source_refs++;
		rc = 0;
	}
	tree_unlock(n->tree);
	return rc;
}

void cow_pager_unkeep(struct cow_node *n)
{
	tree_lock(n->tree);
	UVMO_ASSERT(n->source_refs > 0);
	n->source_refs--;
	tree_unlock(n->tree);
	cow_node_unref(n);
}

/* Fires on every drop that leaves only the source's references; the
 * source must take a repeat calmly (a reference taken and dropped again
 * through the source's own handle would repeat it). */
void paged_ref_dropped(struct cow_node *n)
{
	if (n->source_refs && n->refs == n->source_refs && n->source &&
	    n->source_ops->unused)
		n->source_ops->unused(n->source);
}

uint16_t paged_state(const struct cow_node *n, uint64_t pg)
{
	uint16_t e = pl_get(&n->pages, pg);
	if (e & (E_PRESENT | E_ZERO))
		return e & (E_DIRTY | E_AWAIT);
	return pg >= size_pages(n->source_limit) ? E_DIRTY : 0;
}

/* ---- waiting ---- */

/* Set @bit on the entries of [first, end) that lack it, and ask the
 * source for each run of them. */
static int mark_and_request(struct cow_node *n, uint32_t kind, uint16_t bit,
			    uint64_t first, uint64_t end)
{
	uint64_t run = first, run_len = 0;
	int rc = 0;

	for (uint64_t pg = first; pg < end; pg++) {
		uint16_t e = pl_get(&n->pages, pg);
		bool ask = !(e & bit) &&
			   (kind == COW_WAIT_READ ? page_absent(n, pg, e)
						  : !(paged_state(n, pg) & E_DIRTY));
		if (ask)
			rc = node_set_entry(n, pg, e | bit);
		if (ask && rc == 0) {
			if (!run_len)
				run = pg;
			run_len++;
			continue;
		}
		if (run_len)
			n->source_ops->request(n->source, kind, run, run_len);
		run_len = 0;
		if (rc < 0)
			return rc;
	}
	if (run_len)
		n->source_ops->request(n->source, kind, run, run_len);
	return 0;
}

int paged_need(struct cow_node *n, uint32_t kind, uint64_t pg, uint64_t count)
{
	if (!n->source)
		return -EBUSY;
	int rc = mark_and_request(n, kind, kind == COW_WAIT_READ ? E_READ_REQ : E_DIRTY_REQ,
				  pg, pg + count);
	if (rc < 0)
		return rc;
	struct cow_wait *w = next_wait ? next_wait : &own_wait;
	next_wait = NULL;
	w->source = n->source;
	w->ops = n->source_ops;
	w->kind = kind;
	w->pg = pg;
	w->count = count;
	w->result = 0;
	w->done = false;
	n->source_ops->link_wait(n->source, w);
	pending_wait = w;
	return -EINPROGRESS;
}

/* The first page of [first, end) for which @want holds, or @end. */
static uint64_t find_page(struct cow_node *n, uint64_t first, uint64_t end,
			  bool (*want)(struct cow_node *n, uint64_t pg))
{
	uint64_t pg = first;
	while (pg < end && !want(n, pg))
		pg++;
	return pg;
}

static bool is_absent(struct cow_node *n, uint64_t pg)
{
	return page_absent(n, pg, pl_get(&n->pages, pg));
}

static bool is_not_dirty(struct cow_node *n, uint64_t pg)
{
	return !(paged_state(n, pg) & E_DIRTY);
}

/* Wait (@kind) for the span from the first to the last page of
 * [first, end) for which @want holds, if any. */
static int need_span(struct cow_node *n, uint32_t kind, uint64_t first, uint64_t end,
		     bool (*want)(struct cow_node *n, uint64_t pg))
{
	uint64_t pg = find_page(n, first, end, want);
	if (pg >= end)
		return 0;
	uint64_t last = pg;
	for (uint64_t p = pg + 1; p < end; p++)
		if (want(n, p))
			last = p;
	return paged_need(n, kind, pg, last + 1 - pg);
}

int paged_need_present(struct cow_node *n, uint64_t first, uint64_t end)
{
	/* Absent pages lie below the source limit only. */
	return need_span(n, COW_WAIT_READ, first, min_u64(end, size_pages(n->source_limit)),
			 is_absent);
}

int paged_check_write(struct cow_node *n, uint64_t first, uint64_t end)
{
	if (!(n->flags & N_TRAP_DIRTY) || !n->source)
		return 0;
	return need_span(n, COW_WAIT_DIRTY, first, end, is_not_dirty);
}

/* Pages of [first, end) that exist become Dirty (outstanding DIRTY
 * requests are answered by it). */
static void set_dirty(struct cow_node *n, uint64_t first, uint64_t end)
{
	uint64_t pg;
	uint16_t e;
	PL_FOREACH(&n->pages, first, end, pg, e) {
		if (e & (E_PRESENT | E_ZERO))
			node_set_entry(n, pg, (e & ~(E_AWAIT | E_DIRTY_REQ)) | E_DIRTY);
	}
}

void paged_mark_dirty(struct cow_node *n, uint64_t first, uint64_t end)
{
	set_dirty(n, first, end);
	n->modified = true;
}

/* Give every page of [first, end) a frame (none is absent): zero markers
 * and the zero tail get a zero frame in their current dirty state. */
int paged_own_pages(struct cow_node *n, uint64_t first, uint64_t end)
{
	for (uint64_t pg = first; pg < end; pg++) {
		uint16_t e = pl_get(&n->pages, pg);
		if (e & E_PRESENT)
			continue;
		UVMO_ASSERT(!page_absent(n, pg, e));
		int rc = pl_reserve(&n->pages, pg);
		if (rc == 0)
			rc = pmm_frame_alloc(n->home, pg, 1);
		if (rc < 0) {
			pl_trim(&n->pages, pg);
			return rc;
		}
		node_set_entry(n, pg, E_PRESENT | paged_state(n, pg) |
					      (e & E_DIRTY_REQ));
		count(&cow_counters.zero_fills, 1);
	}
	return 0;
}

/* ---- the source's side ---- */

static int check_served(struct cow_node *n, uint64_t off, uint64_t len)
{
	if (n->dead || !n->source)
		return -ENOENT;
	if (range_overflows(off, len) || off + len > n->size)
		return -ERANGE;
	return 0;
}

/* Map the runs of framed pages of [first, end) into every mapping (never
 * a hole: populating one would fault into uvmo under this tree lock). */
static void populate_supplied(struct cow_node *n, uint64_t first, uint64_t end)
{
	if (LIST_EMPTY(&n->mappings))
		return;
	uint64_t pg = first;
	while (pg < end) {
		if (!(pl_get(&n->pages, pg) & E_PRESENT)) {
			pg++;
			continue;
		}
		uint64_t run = pg;
		while (run < end && (pl_get(&n->pages, run) & E_PRESENT))
			run++;
		struct cow_mapping *m;
		LIST_FOREACH(m, &n->mappings, link)
			m->ops->populate(m, pg, run);
		pg = run;
	}
}

int cow_set_direct_file(struct cow_node *n, int fd)
{
	if (!node_paged(n) || n->parent || n->direct_fd >= 0 || !LIST_EMPTY(&n->mappings)) {
		close(fd);
		return -EINVAL;
	}
	n->direct_fd = fd;
	return 0;
}

int cow_direct_file(const struct cow_node *n)
{
	return n->direct_fd;
}

int cow_pager_supply(struct cow_node *n, uint64_t off, uint64_t len, const void *data)
{
	tree_lock(n->tree);
	int rc = check_served(n, off, len);
	uint64_t first = off >> PAGE_SHIFT, end = (off + len) >> PAGE_SHIFT;
	if (rc == 0) {
		/* Clean pages must appear write-protected everywhere. */
		cow_notify_protect(n, first, end);
	}
	for (uint64_t pg = first; rc == 0 && pg < end; pg++) {
		uint16_t e = pl_get(&n->pages, pg);
		if (!page_absent(n, pg, e))
			continue; /* never overwrite */
		if (!data) {
			rc = node_set_entry(n, pg, E_ZERO);
			continue;
		}
		rc = pl_reserve(&n->pages, pg);
		if (rc == 0)
			rc = pmm_frame_fill(n->home, pg,
					    (const char *)data + ((pg - first) << PAGE_SHIFT));
		if (rc == 0)
			node_set_entry(n, pg, E_PRESENT);
		else
			pl_trim(&n->pages, pg);
	}
	/* A page evicted and supplied again may differ from what children
	 * cached of it. */
	if (!LIST_EMPTY(&n->paged_children))
		alow_invalidate(n, first, end);
	populate_supplied(n, first, end);
	VALIDATE(n);
	tree_unlock(n->tree);
	return rc;
}

/* Clear @bits on every entry of [first, end). */
static void clear_bits(struct cow_node *n, uint64_t first, uint64_t end, uint16_t bits)
{
	uint64_t pg;
	uint16_t e;
	PL_FOREACH(&n->pages, first, end, pg, e) {
		if (e & bits)
			node_set_entry(n, pg, e & ~bits);
	}
}

int cow_pager_unrequest(struct cow_node *n, uint64_t off, uint64_t len)
{
	tree_lock(n->tree);
	int rc = check_served(n, off, len);
	if (rc == 0)
		clear_bits(n, off >> PAGE_SHIFT, (off + len) >> PAGE_SHIFT,
			   E_READ_REQ | E_DIRTY_REQ);
	VALIDATE(n);
	tree_unlock(n->tree);
	return rc;
}

int cow_pager_dirty(struct cow_node *n, uint64_t off, uint64_t len)
{
	tree_lock(n->tree);
	int rc = check_served(n, off, len);
	if (rc == 0) {
		set_dirty(n, off >> PAGE_SHIFT, (off + len) >> PAGE_SHIFT);
		VALIDATE(n);
	}
	tree_unlock(n->tree);
	return rc;
}

int cow_pager_writeback_begin(struct cow_node *n, uint64_t off, uint64_t len)
{
	tree_lock(n->tree);
	int rc = check_served(n, off, len);
	uint64_t first = off >> PAGE_SHIFT, end = (off + len) >> PAGE_SHIFT;
	if (rc == 0) {
		/* The zero tail gets markers, so that its pages can carry
		 * their own state from now on. */
		uint64_t tail = max_u64(first, size_pages(n->source_limit));
		for (uint64_t pg = tail; rc == 0 && pg < end; pg++)
			if (!pl_get(&n->pages, pg))
				rc = node_set_entry(n, pg, E_ZERO | E_DIRTY);
	}
	if (rc == 0) {
		/* Protect before the state changes: a write after this must
		 * fault and make the page Dirty again. */
		cow_notify_protect(n, first, end);
		uint64_t pg;
		uint16_t e;
		PL_FOREACH(&n->pages, first, end, pg, e) {
			if (e & E_DIRTY)
				node_set_entry(n, pg, (e & ~E_DIRTY) | E_AWAIT);
		}
		VALIDATE(n);
	}
	tree_unlock(n->tree);
	return rc;
}

int cow_pager_writeback_end(struct cow_node *n, uint64_t off, uint64_t len)
{
	tree_lock(n->tree);
	int rc = check_served(n, off, len);
	if (rc == 0) {
		clear_bits(n, off >> PAGE_SHIFT, (off + len) >> PAGE_SHIFT, E_AWAIT);
		/* Clean pages at the source limit are now the pager's too. */
		uint64_t lim = size_pages(n->source_limit);
		while (lim < size_pages(n->size)) {
			uint16_t e = pl_get(&n->pages, lim);
			if (!(e & (E_PRESENT | E_ZERO)) || (e & (E_DIRTY | E_AWAIT)))
				break;
			lim++;
		}
		n->source_limit = lim << PAGE_SHIFT;
		VALIDATE(n);
	}
	tree_unlock(n->tree);
	return rc;
}

int64_t cow_pager_evict(struct cow_node *n, uint64_t off, uint64_t len)
{
	int64_t evicted = 0;

	tree_lock(n->tree);
	int rc = check_served(n, off, len);
	if (rc == 0) {
		uint64_t first = off >> PAGE_SHIFT;
		uint64_t end = min_u64((off + len) >> PAGE_SHIFT, size_pages(n->source_limit));
		uint64_t pg;
		uint16_t e;
		PL_FOREACH(&n->pages, first, end, pg, e) {
			if (!(e & (E_PRESENT | E_ZERO)) ||
			    (e & (E_DIRTY | E_AWAIT | E_DIRTY_REQ)))
				continue;
			if (e & E_PRESENT)
				pmm_frame_free(n->home, pg, 1);
			node_set_entry(n, pg, e & E_READ_REQ);
			evicted++;
		}
		/* A punched slot may lose its protection in a mapping; and the
		 * children's caches must ask again, as the root will. */
		if (evicted) {
			cow_notify_protect(n, first, end);
			alow_invalidate(n, first, end);
		}
		VALIDATE(n);
	}
	tree_unlock(n->tree);
	return rc < 0 ? rc : evicted;
}

int cow_pager_dirty_ranges(struct cow_node *n, uint64_t off, uint64_t len,
			   bool (*emit)(void *arg, uint64_t off, uint64_t len, bool zero),
			   void *arg, uint64_t *total)
{
	struct run_emitter r = { .emit = emit, .arg = arg };

	tree_lock(n->tree);
	int rc = check_served(n, off, len);
	if (rc == 0) {
		uint64_t first = off >> PAGE_SHIFT, end = (off + len) >> PAGE_SHIFT;
		uint64_t lim = size_pages(n->source_limit);
		uint64_t cursor = max_u64(first, lim); /* the tail: gaps are dirty zeros */
		uint64_t pg;
		uint16_t e;
		PL_FOREACH(&n->pages, first, end, pg, e) {
			if (pg >= lim && pg > cursor)
				add_run(&r, cursor, pg, true);
			if (pg >= lim)
				cursor = pg + 1;
			if ((e & (E_PRESENT | E_ZERO)) && (e & (E_DIRTY | E_AWAIT)))
				add_run(&r, pg, pg + 1, !(e & E_PRESENT));
		}
		if (cursor < end)
			add_run(&r, cursor, end, true);
		flush_run(&r);
	}
	tree_unlock(n->tree);
	*total = r.total;
	return rc;
}

int cow_pager_modified(struct cow_node *n, bool reset, bool *modified)
{
	tree_lock(n->tree);
	int rc = n->dead || !n->source ? -ENOENT : 0;
	if (rc == 0) {
		*modified = n->modified;
		if (reset && n->modified) {
			n->modified = false;
			/* Writes through mappings to Dirty pages are not seen;
			 * protect everything so the next one is. */
			cow_notify_protect(n, 0, UINT64_MAX);
		}
	}
	tree_unlock(n->tree);
	return rc;
}

uint64_t cow_pager_detach(struct cow_node *n)
{
	uint64_t lost = 0;

	tree_lock(n->tree);
	if (!n->dead && n->source) {
		n->source = NULL;
		uint64_t pg;
		uint16_t e;
		PL_FOREACH(&n->pages, 0, UINT64_MAX, pg, e) {
			if (e & (E_DIRTY | E_AWAIT))
				lost++;
			if (e & (E_READ_REQ | E_DIRTY_REQ))
				node_set_entry(n, pg, e & ~(E_READ_REQ | E_DIRTY_REQ));
		}
		VALIDATE(n);
	}
	tree_unlock(n->tree);
	return lost;
}

/* ---- operations on a paged root (tree lock held) ---- */

int paged_zero(struct cow_node *n, uint64_t off, uint64_t len)
{
	uint64_t first = off >> PAGE_SHIFT, end = page_round_up(off + len) >> PAGE_SHIFT;
	uint64_t first_full = page_round_up(off) >> PAGE_SHIFT;
	uint64_t end_full = page_round_down(off + len) >> PAGE_SHIFT;
	int rc = 0;

	/* Partial pages keep part of their content: it must be here. */
	if (first < first_full || end_full < first_full)
		rc = paged_need_present(n, first, first + 1);
	if (rc == 0 && end_full < end && end_full >= first_full)
		rc = paged_need_present(n, end - 1, end);
	if (rc == 0)
		rc = paged_check_write(n, first, end);
	/* Everything that can fail comes first: frames for partial pages,
	 * page-list chunks for the markers. */
	uint64_t need = 0;
	if (first < first_full || end_full < first_full)
		need += !(pl_get(&n->pages, first) & E_PRESENT);
	if (end_full < end && end_full >= first_full && end - 1 != first)
		need += !(pl_get(&n->pages, end - 1) & E_PRESENT);
	if (rc == 0)
		rc = pmm_reserve(need);
	if (rc < 0)
		return rc;
	/* Only pages below the source limit get new markers (the tail is a
	 * Dirty zero already): reserve exactly their chunks. */
	uint64_t marked_end = min_u64(end_full, size_pages(n->source_limit));
	for (uint64_t pg = first_full; rc == 0 && pg < marked_end; pg += PL_CHUNK_PAGES)
		rc = pl_reserve(&n->pages, pg);
	if (rc == 0 && marked_end > first_full)
		rc = pl_reserve(&n->pages, marked_end - 1);
	for (uint64_t pg = first; rc == 0 && pg < end; pg++) {
		if (pg >= first_full && pg < end_full)
			continue;
		uint64_t start = pg == first ? off & (PAGE_SIZE - 1) : 0;
		uint64_t stop = pg == end - 1 && ((off + len) & (PAGE_SIZE - 1))
					? (off + len) & (PAGE_SIZE - 1) : PAGE_SIZE;
		rc = paged_own_pages(n, pg, pg + 1);
		if (rc == 0)
			memset((char *)pmm_slot_addr(n->home, pg) + start, 0, stop - start);
	}
	pmm_unreserve();
	if (rc < 0)
		return rc;
	uint64_t lim = size_pages(n->source_limit);
	for (uint64_t pg = first_full; pg < end_full; pg++) {
		uint16_t e = pl_get(&n->pages, pg);
		if (!e && pg >= lim)
			continue; /* the tail: a Dirty zero already */
		if (e & E_PRESENT)
			pmm_frame_free(n->home, pg, 1);
		node_set_entry(n, pg, E_ZERO | E_DIRTY);
	}
	paged_mark_dirty(n, first, end);
	alow_invalidate(n, first, end);
	return 0;
}

void paged_shrink(struct cow_node *n, uint64_t size)
{
	cow_drop_own_pages(n, size_pages(size), UINT64_MAX);
	n->size = size;
	n->source_limit = min_u64(n->source_limit, size);
	n->modified = true;
	alow_parent_shrank(n, size);
	/* Waiters for pages cut off try again, and find them gone. */
	if (n->source)
		n->source_ops->cut(n->source, size_pages(size));
}

int paged_fault(struct cow_node *n, uint64_t pg, uint64_t ahead, bool write)
{
	uint16_t e = pl_get(&n->pages, pg);
	if (page_absent(n, pg, e)) {
		if (!n->source)
			return -EBUSY;
		/* Ask for the run of absent pages from here, as far as the
		 * fault-ahead window goes: a sequential reader's next pages. */
		uint64_t end = pg + 1;
		uint64_t stop = min_u64(pg + 1 + ahead, size_pages(n->source_limit));
		while (end < stop && is_absent(n, end))
			end++;
		return paged_need(n, COW_WAIT_READ, pg, end - pg);
	}
	int rc = write ? paged_check_write(n, pg, pg + 1) : 0;
	if (rc < 0)
		return rc;
	if (!(e & E_PRESENT))
		rc = paged_own_pages(n, pg, pg + 1);
	if (rc == 0 && write) {
		paged_mark_dirty(n, pg, pg + 1);
		alow_invalidate(n, pg, pg + 1);
	}
	return rc;
}

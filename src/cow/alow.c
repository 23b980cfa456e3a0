/* SPDX-License-Identifier: MIT */
/*
 * alow.c — at-least-on-write children of pager-backed roots.
 *
 * Such a child C hangs directly under its paged root R (no hidden node):
 * where C has no page of its own it shows R's *current* content — later
 * writes to R and later supplies included — and C's first write of a page
 * copies R's page as it is then.  R keeps a list of these children and
 * holds them no reference; each child holds one reference on R.
 *
 * Mappings.  A mapping of C must show R's current content without owning
 * it, so a read fault puts a *cache* of R's page in C's window slot
 * (E_CACHE: a frame C does not own), write-protected in C's mappings.
 * Invariant: an E_CACHE frame holds R's current content at that offset.
 * It is kept by (1) write-protecting the page in R's mappings before the
 * cache is filled, so that every later write to R faults or is a call,
 * and (2) every change of R's content (writes, faults that dirty a page,
 * zero, shrink, supply) dropping the children's caches of those pages
 * (alow_invalidate), all under the tree lock.  C's first write of a
 * cached page takes the cache over as its own page without a copy.
 */
#include <errno.h>
#include <string.h>

#include "cow/cow_private.h"

enum parent_view { PV_ZERO, PV_FRAME, PV_ABSENT };

/* What C's page @pg shows of R; *@ppg gets R's page offset. */
static enum parent_view parent_view(const struct cow_node *c, uint64_t pg, uint64_t *ppg)
{
	const struct cow_node *r = c->parent;
	if (pg >= size_pages(c->parent_limit))
		return PV_ZERO;
	*ppg = pg + size_pages(c->parent_offset);
	uint16_t e = pl_get(&r->pages, *ppg);
	if (e & E_PRESENT)
		return PV_FRAME;
	return page_absent(r, *ppg, e) ? PV_ABSENT : PV_ZERO;
}

int cow_paged_child(struct cow_node *r, uint64_t off, uint64_t size, uint64_t visible,
		    uint64_t capacity, uint32_t flags, bool snapshot_modified,
		    struct cow_node **out)
{
	struct cow_node *c;
	int rc;

	tree_lock(r->tree);
	if (!node_paged(r)) {
		rc = -EINVAL;
		goto out;
	}
	if (off > r->size) {
		rc = -ERANGE;
		goto out;
	}
	rc = node_alloc(r->tree, size,
			N_PAGED_CHILD | ((flags & COW_RESIZABLE) ? N_RESIZABLE : 0), &c);
	if (rc < 0)
		goto out;
	rc = pmm_window_create(size_pages(max_u64(size, capacity)), &c->home);
	if (rc < 0) {
		node_free(c);
		goto out;
	}
	c->parent = r;
	c->parent_offset = off;
	c->parent_limit = min_u64(min_u64(size, visible), r->size - off);
	c->refs = 1;
	if (snapshot_modified) {
		/* Pages R changed (not Clean) are the child's own from now on:
		 * it must not follow R's later writes to them. */
		uint64_t end = size_pages(c->parent_limit);
		for (uint64_t pg = 0; rc == 0 && pg < end; pg++) {
			uint64_t ppg = pg + size_pages(off);
			if (!(paged_state(r, ppg) & (E_DIRTY | E_AWAIT)))
				continue;
			uint16_t e = pl_get(&r->pages, ppg);
			rc = pl_reserve(&c->pages, pg);
			if (rc == 0 && (e & E_PRESENT))
				rc = pmm_frame_fill(c->home, pg, pmm_slot_addr(r->home, ppg));
			if (rc == 0)
				node_set_entry(c, pg, (e & E_PRESENT) ? E_PRESENT : E_ZERO);
		}
		if (rc < 0) {
			cow_drop_own_pages(c, 0, UINT64_MAX);
			node_free(c);
			goto out;
		}
	}
	LIST_INSERT_HEAD(&r->paged_children, c, paged_link);
	r->refs++;
	VALIDATE(r);
	*out = c;
out:
	tree_unlock(r->tree);
	return rc;
}

bool cow_is_paged_child(struct cow_node *n)
{
	tree_lock(n->tree);
	bool yes = alow_child(n);
	tree_unlock(n->tree);
	return yes;
}

uint64_t alow_own_cost(const struct cow_node *c, uint64_t pg)
{
	return !(pl_get(&c->pages, pg) & (E_PRESENT | E_CACHE));
}

int alow_own(struct cow_node *c, uint64_t pg)
{
	struct cow_node *r = c->parent;
	uint16_t e = pl_get(&c->pages, pg);
	uint64_t ppg = 0;
	int rc;

	if (e & E_CACHE) {
		/* The cache is R's current content: it becomes C's copy. */
		c->cached--;
		node_set_entry(c, pg, E_PRESENT);
		return 0;
	}
	enum parent_view v = (e & E_ZERO) ? PV_ZERO : parent_view(c, pg, &ppg);
	if (v == PV_ABSENT)
		return paged_need(r, COW_WAIT_READ, ppg, 1);
	rc = pl_reserve(&c->pages, pg);
	if (rc < 0)
		return rc;
	if (v == PV_FRAME) {
		rc = pmm_frame_fill(c->home, pg, pmm_slot_addr(r->home, ppg));
		if (rc == 0)
			count(&cow_counters.copies, 1);
	} else {
		rc = pmm_frame_alloc(c->home, pg, 1);
		if (rc == 0)
			count(&cow_counters.zero_fills, 1);
	}
	if (rc < 0) {
		pl_trim(&c->pages, pg);
		return rc;
	}
	node_set_entry(c, pg, E_PRESENT);
	return 0;
}

/* A read fault on a page C shows of R: cache R's content in C's slot. */
static int alow_cache(struct cow_node *c, uint64_t pg)
{
	struct cow_node *r = c->parent;
	uint64_t ppg = 0;
	enum parent_view v = parent_view(c, pg, &ppg);

	if (v == PV_ABSENT)
		return paged_need(r, COW_WAIT_READ, ppg, 1);
	if (pg >= size_pages(c->parent_limit))
		return alow_own(c, pg); /* R never shows through here */
	int rc = pl_reserve(&c->pages, pg);
	if (rc < 0)
		return rc;
	/* Protect first (see the invariant above), then fill. */
	cow_notify_protect(r, ppg, ppg + 1);
	cow_notify_protect(c, pg, pg + 1);
	rc = v == PV_FRAME ? pmm_frame_fill(c->home, pg, pmm_slot_addr(r->home, ppg))
			   : pmm_frame_alloc(c->home, pg, 1);
	if (rc < 0) {
		pl_trim(&c->pages, pg);
		return rc;
	}
	node_set_entry(c, pg, E_CACHE);
	c->cached++;
	return 0;
}

int alow_fault(struct cow_node *c, uint64_t pg, bool write)
{
	uint16_t e = pl_get(&c->pages, pg);

	if (e & E_PRESENT)
		return 0;
	if (write || (e & E_ZERO))
		return alow_own(c, pg);
	if (e & E_CACHE)
		return 0;
	return alow_cache(c, pg);
}

int alow_need_present(struct cow_node *c, uint64_t first, uint64_t end)
{
	struct cow_node *r = c->parent;
	uint64_t lo = UINT64_MAX, hi = 0, ppg = 0;

	end = min_u64(end, size_pages(c->parent_limit));
	for (uint64_t pg = first; pg < end; pg++) {
		if (pl_get(&c->pages, pg) & (E_PRESENT | E_ZERO))
			continue;
		if (parent_view(c, pg, &ppg) == PV_ABSENT) {
			lo = min_u64(lo, ppg);
			hi = ppg + 1;
		}
	}
	return lo == UINT64_MAX ? 0 : paged_need(r, COW_WAIT_READ, lo, hi - lo);
}

int alow_release(struct cow_node *c, uint64_t pg, bool leave_marker)
{
	uint16_t e = pl_get(&c->pages, pg);

	if (leave_marker && (e & E_ZERO))
		return 0;
	if (leave_marker) {
		int rc = pl_reserve(&c->pages, pg);
		if (rc < 0)
			return rc;
	}
	if (e & (E_PRESENT | E_CACHE))
		pmm_frame_free(c->home, pg, 1);
	if (e & E_CACHE)
		c->cached--;
	bool marker = leave_marker && pg < size_pages(c->parent_limit);
	node_set_entry(c, pg, marker ? E_ZERO : 0);
	if (!marker)
		pl_trim(&c->pages, pg); /* a reservation may have left it empty */
	return 0;
}

/* ZERO of whole pages [first, end) of C: every page the root could show
 * gets a zero marker — absent root pages have no entry to be found by. */
int alow_zero_pages(struct cow_node *c, uint64_t first, uint64_t end)
{
	int rc = 0;
	for (uint64_t pg = first; rc == 0 && pg < end; pg++)
		rc = alow_release(c, pg, true);
	return rc;
}

/* Drop C's caches of its pages [first, end). */
static void drop_caches(struct cow_node *c, uint64_t first, uint64_t end)
{
	uint64_t pg;
	uint16_t e;
	PL_FOREACH(&c->pages, first, end, pg, e) {
		if (e & E_CACHE) {
			pmm_frame_free(c->home, pg, 1);
			node_set_entry(c, pg, 0);
			c->cached--;
		}
	}
}

void alow_invalidate(struct cow_node *r, uint64_t first, uint64_t end)
{
	struct cow_node *c;
	LIST_FOREACH(c, &r->paged_children, paged_link) {
		uint64_t off = size_pages(c->parent_offset);
		if (end <= off)
			continue;
		drop_caches(c, first > off ? first - off : 0,
			    min_u64(end - off, size_pages(c->parent_limit)));
	}
}

void alow_parent_shrank(struct cow_node *r, uint64_t size)
{
	struct cow_node *c;
	LIST_FOREACH(c, &r->paged_children, paged_link) {
		uint64_t limit = size > c->parent_offset ? size - c->parent_offset : 0;
		if (limit >= c->parent_limit)
			continue;
		drop_caches(c, size_pages(limit), UINT64_MAX);
		c->parent_limit = limit;
	}
}

void alow_die(struct cow_node *c)
{
	struct cow_node *r = c->parent;
	uint64_t pg;
	uint16_t e;

	PL_FOREACH(&c->pages, 0, UINT64_MAX, pg, e) {
		if (e & (E_PRESENT | E_CACHE))
			pmm_frame_free(c->home, pg, 1);
		node_set_entry(c, pg, 0);
	}
	c->cached = 0;
	LIST_REMOVE(c, paged_link);
	c->parent = NULL;
	node_free(c);
	UVMO_ASSERT(r->refs > 0);
	if (--r->refs == 0)
		node_die(r);
	else
		paged_ref_dropped(r);
}

/* SPDX-License-Identifier: MIT */
/*
 * validate.c — the expensive mode: walk a whole clone tree and check every
 * invariant (ZIRCON-NOTES "Invariants worth a validation walk", plus the
 * placement rules of cow_private.h).  Any violation aborts with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cow/cow_private.h"

struct slot_ref {
	const struct pmm_window *w;
	uint64_t pg;
};

struct walk {
	struct slot_ref *slots;
	size_t nslots, cap;
	const struct pmm_window **windows;
	uint64_t *window_frames;
	size_t nwindows, wcap;
};

#define CHECK(cond, node, ...)                                                 \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "uvmo validation failed: %s (node %llu): ", \
				#cond, (unsigned long long)(node)->id);        \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

static void *grow(void *p, size_t *cap, size_t elem)
{
	size_t ncap = *cap ? *cap * 2 : 256;
	void *np = realloc(p, ncap * elem);
	if (!np) {
		fputs("uvmo validation: out of memory\n", stderr);
		abort();
	}
	*cap = ncap;
	return np;
}

static size_t window_index(struct walk *wk, const struct pmm_window *w)
{
	for (size_t i = 0; i < wk->nwindows; i++)
		if (wk->windows[i] == w)
			return i;
	if (wk->nwindows == wk->wcap) {
		size_t cap = wk->wcap;
		wk->windows = grow(wk->windows, &cap, sizeof(*wk->windows));
		wk->window_frames = realloc(wk->window_frames, cap * sizeof(uint64_t));
		if (!wk->window_frames)
			abort();
		wk->wcap = cap;
	}
	wk->windows[wk->nwindows] = w;
	wk->window_frames[wk->nwindows] = 0;
	return wk->nwindows++;
}

/* A frame or a zero marker: the bits that may go with it. */
static void check_entry_bits(const struct cow_node *n, uint64_t pg, uint16_t e)
{
	CHECK(!!(e & E_PRESENT) + !!(e & E_ZERO) == 1, n,
	      "entry %#x at %llu is neither a frame nor a marker", e, (unsigned long long)pg);
	CHECK((e & (E_SPLIT_L | E_SPLIT_R)) != (E_SPLIT_L | E_SPLIT_R), n,
	      "both split bits at %llu", (unsigned long long)pg);
	CHECK(!(e & E_CACHE), n, "cache bit with a frame at %llu", (unsigned long long)pg);
	if (!node_hidden(n))
		CHECK(!(e & (E_SPLIT_L | E_SPLIT_R | E_HOME)), n,
		      "hidden-only bits %#x at %llu", e, (unsigned long long)pg);
	if (e & E_ZERO)
		CHECK(!(e & E_HOME), n, "marker with a home bit");
	if (node_paged(n)) {
		CHECK(!(e & E_READ_REQ), n, "asked for, yet here, at %llu",
		      (unsigned long long)pg);
		CHECK((e & (E_DIRTY | E_AWAIT)) != (E_DIRTY | E_AWAIT), n,
		      "Dirty and AwaitingClean at %llu", (unsigned long long)pg);
		CHECK(!((e & E_DIRTY) && (e & E_DIRTY_REQ)), n,
		      "Dirty page asked to be dirtied at %llu", (unsigned long long)pg);
	} else {
		CHECK(!(e & (E_DIRTY | E_AWAIT | E_READ_REQ | E_DIRTY_REQ)), n,
		      "pager bits %#x at %llu of an anonymous VMO", e, (unsigned long long)pg);
	}
}

/* An at-least-on-write child's cache at @pg holds its root's content. */
static void check_cache(const struct cow_node *c, uint64_t pg)
{
	const struct cow_node *r = c->parent;
	CHECK(pg < size_pages(c->parent_limit), c, "cache at %llu past the parent limit",
	      (unsigned long long)pg);
	uint64_t ppg = pg + size_pages(c->parent_offset);
	uint16_t re = pl_get(&r->pages, ppg);
	if (page_absent(r, ppg, re))
		return; /* evicted since: the cache is what it was */
	static const char zeros[PAGE_SIZE];
	const void *want = (re & E_PRESENT) ? pmm_slot_addr(r->home, ppg) : zeros;
	CHECK(memcmp(pmm_slot_addr(c->home, pg), want, PAGE_SIZE) == 0, c,
	      "cache at %llu differs from the root's page", (unsigned long long)pg);
}

static void check_entries(struct walk *wk, const struct cow_node *n)
{
	uint64_t pg, present = 0, split = 0, cached = 0;
	uint16_t e;

	CHECK(pl_consistent(&n->pages), n, "page list chunks miscounted or empty");
	PL_FOREACH(&n->pages, 0, UINT64_MAX, pg, e) {
		CHECK(pg < size_pages(n->size), n, "entry at page %llu past size",
		      (unsigned long long)pg);
		if (e == E_CACHE) {
			CHECK(alow_child(n), n, "cache entry at %llu", (unsigned long long)pg);
			check_cache(n, pg);
			cached++;
		} else if (node_paged(n) && !(e & (E_PRESENT | E_ZERO))) {
			/* An absent page that was asked for. */
			CHECK(e == E_READ_REQ && pg < size_pages(n->source_limit) && n->source,
			      n, "absent entry %#x at %llu", e, (unsigned long long)pg);
			continue;
		} else {
			check_entry_bits(n, pg, e);
		}
		split += !!(e & (E_SPLIT_L | E_SPLIT_R));
		if (!(e & (E_PRESENT | E_CACHE)))
			continue;
		present += !!(e & E_PRESENT);
		const struct pmm_window *w = entry_window(n, e);
		CHECK(w != NULL, n, "frame without a window");
		CHECK(pg < pmm_window_pages(w), n, "slot %llu outside its window",
		      (unsigned long long)pg);
		size_t wi = window_index(wk, w); /* may move window_frames */
		wk->window_frames[wi]++;
		if (wk->nslots == wk->cap)
			wk->slots = grow(wk->slots, &wk->cap, sizeof(*wk->slots));
		wk->slots[wk->nslots++] = (struct slot_ref){ w, pg };
		CHECK(pmm_slot_populated(w, pg) || fill_in_flight(n, pg), n,
		      "frame at %llu not in the pool",
		      (unsigned long long)pg);
	}
	CHECK(split == n->split_entries, n, "split_entries %llu but %llu",
	      (unsigned long long)n->split_entries, (unsigned long long)split);
	CHECK(cached == n->cached, n, "cached %llu but %llu caches",
	      (unsigned long long)n->cached, (unsigned long long)cached);
	CHECK(present == n->committed, n, "committed %llu but %llu frames",
	      (unsigned long long)n->committed, (unsigned long long)present);
}

/* restore.c: while the set of pages changed since the last restore is
 * kept, every entry outside it is still restored or a zero marker. */
static void check_changed_pages(const struct cow_node *n)
{
	size_t len = n->changed.set.len;
	uint64_t *sorted = malloc((len ? len : 1) * sizeof(*sorted));
	if (!sorted)
		abort();
	if (len) { /* memcpy and qsort want a valid pointer even for none */
		memcpy(sorted, n->changed.set.pgs, len * sizeof(*sorted));
		qsort(sorted, len, sizeof(*sorted), u64_cmp);
	}
	uint64_t pg;
	uint16_t e;
	PL_FOREACH(&n->pages, 0, UINT64_MAX, pg, e) {
		if (e & (E_RESTORED | E_ZERO))
			continue;
		CHECK(bsearch(&pg, sorted, len, sizeof(*sorted), u64_cmp) != NULL, n,
		      "page %llu changed since the restore but is not listed",
		      (unsigned long long)pg);
	}
	free(sorted);
}

/* Invariants A1 and A2 of the async tier (tracking.c). */
static void check_async_node(const struct cow_node *n)
{
	CHECK(!node_hidden(n) && !(n->flags & (N_PAGED | N_PAGED_CHILD)), n,
	      "async tracking of a node that cannot have it");
	const struct cow_node *x;
	FOR_EACH_LENDER(x, n) {
		uint64_t pg;
		uint16_t e;
		PL_FOREACH(&x->pages, 0, UINT64_MAX, pg, e)
			CHECK(!(e & E_PRESENT) || (e & E_HOME), n,
			      "async node lends page %llu", (unsigned long long)pg);
	}
	struct page_set seen = { 0 };
	if (collect_pages((struct cow_node *)n, 0, size_pages(n->size), &seen) < 0)
		abort();
	for (size_t i = 0; i < seen.len; i++) {
		struct cow_hit hit;
		if (pl_get(&n->pages, seen.pgs[i]) & (E_PRESENT | E_ZERO))
			continue;
		cow_lookup((struct cow_node *)n, seen.pgs[i], &hit, NULL);
		CHECK(!hit.owner || (hit.e & E_ZERO), n,
		      "async node shows page %llu of an ancestor",
		      (unsigned long long)seen.pgs[i]);
	}
	free(seen.pgs);
}

static void check_shape(const struct cow_node *n)
{
	CHECK(page_aligned(n->size) && page_aligned(n->parent_offset) &&
		      page_aligned(n->parent_limit), n, "unaligned geometry");
	CHECK(n->parent_limit <= n->size, n, "parent_limit past size");
	CHECK(!range_overflows(n->parent_offset, n->parent_limit), n, "offset overflow");
	CHECK(n->home != NULL, n, "no home window");
	if (node_paged(n))
		CHECK(!n->parent && n->source_limit <= n->size && page_aligned(n->source_limit),
		      n, "paged root with a parent or a bad source limit");
	if (!n->parent)
		CHECK(n->parent_limit == 0 && n->parent_offset == 0, n,
		      "a root sees a parent");
	if (node_hidden(n)) {
		CHECK(n->left && n->right, n, "hidden node without two children");
		CHECK(n->left->parent == n && n->right->parent == n, n,
		      "children do not point back");
		CHECK(n->refs == 0, n, "hidden node is held from outside");
		CHECK(n->lender != NULL, n, "hidden node without a lender");
	} else {
		CHECK(!n->left && !n->right, n, "a VMO with tree children");
		CHECK(n->lender == NULL, n, "a VMO borrowing frames");
		CHECK(n->refs > 0, n, "a dead VMO still in the tree");
	}
	CHECK(n->source_refs <= n->refs && (!n->source_refs || node_paged(n)), n,
	      "source references the node does not have");
	if (n->parent)
		CHECK(node_hidden(n->parent) || node_paged(n->parent), n,
		      "parent is neither hidden nor paged");
	CHECK(n->installs_writable == !(n->flags & (N_PAGED | N_PAGED_CHILD)), n,
	      "installs_writable disagrees with the node's kind");
	CHECK(n->direct_fd < 0 || (node_paged(n) && !n->parent), n,
	      "a file to map directly on a node that is not a paged root");
	if (node_async(n))
		check_async_node(n);
	if (n->changed.valid)
		check_changed_pages(n);
}

/* (L1): a hidden node borrowing from a live VMO's window sits in the
 * contiguous chain of lenders directly above that VMO, all at offset 0. */
static void check_lender_chain(const struct cow_node *h, struct cow_node **vmos,
			       size_t nvmos)
{
	for (size_t i = 0; i < nvmos; i++) {
		const struct cow_node *c = vmos[i];
		if (c->home != h->lender)
			continue;
		while (c->parent != h) {
			CHECK(c->parent && c->parent->lender == h->lender, h,
			      "lends from VMO %llu's window outside its chain",
			      (unsigned long long)vmos[i]->id);
			CHECK(c->parent_offset == 0, c, "lender chain at an offset");
			c = c->parent;
		}
		CHECK(c->parent_offset == 0, c, "lender chain at an offset");
		return;
	}
	/* The lender VMO is dead: its window only keeps borrowed frames. */
}

static int slot_cmp(const void *a, const void *b)
{
	const struct slot_ref *x = a, *y = b;
	if (x->w != y->w)
		return (uintptr_t)x->w < (uintptr_t)y->w ? -1 : 1;
	return x->pg < y->pg ? -1 : x->pg > y->pg;
}

void validate_tree_locked(struct cow_node *any)
{
	if (any->dead)
		return; /* a paged root kept for its pager: no tree any more */
	struct walk wk = { 0 };
	struct cow_node *root = any;
	while (root->parent)
		root = root->parent;

	/* Depth-first walk with an explicit stack (trees may be deep). */
	size_t cap = 64, sp = 0, nvmos = 0, vcap = 0, nhidden = 0, hcap = 0;
	struct cow_node **stack = malloc(cap * sizeof(*stack));
	struct cow_node **vmos = NULL, **hidden = NULL;
	if (!stack)
		abort();
	stack[sp++] = root;
	while (sp) {
		struct cow_node *n = stack[--sp];
		check_shape(n);
		check_entries(&wk, n);
		(void)window_index(&wk, n->home);
		if (!node_hidden(n)) {
			if (nvmos == vcap)
				vmos = grow(vmos, &vcap, sizeof(*vmos));
			vmos[nvmos++] = n;
			struct cow_node *c;
			LIST_FOREACH(c, &n->paged_children, paged_link) {
				CHECK(c->parent == n && !node_hidden(c), n, "bad paged child");
				if (sp == cap) {
					cap *= 2;
					stack = realloc(stack, cap * sizeof(*stack));
					if (!stack)
						abort();
				}
				stack[sp++] = c;
			}
			continue;
		}
		if (nhidden == hcap)
			hidden = grow(hidden, &hcap, sizeof(*hidden));
		hidden[nhidden++] = n;
		if (sp + 2 > cap) {
			cap *= 2;
			stack = realloc(stack, cap * sizeof(*stack));
			if (!stack)
				abort();
		}
		stack[sp++] = n->left;
		stack[sp++] = n->right;
	}
	free(stack);
	for (size_t i = 0; i < nhidden; i++)
		check_lender_chain(hidden[i], vmos, nvmos);
	free(vmos);
	free(hidden);

	/* Page back-links: each frame is claimed by exactly one entry, and
	 * every window holds exactly the frames entries say it holds.  Only
	 * windows reachable from live nodes are seen; a dead VMO's window
	 * lives on through its lenders, which are in the tree. */
	if (wk.nslots)
		qsort(wk.slots, wk.nslots, sizeof(*wk.slots), slot_cmp);
	for (size_t i = 1; i < wk.nslots; i++)
		CHECK(slot_cmp(&wk.slots[i - 1], &wk.slots[i]) != 0, root,
		      "two entries claim one frame (slot %llu)",
		      (unsigned long long)wk.slots[i].pg);
	for (size_t i = 0; i < wk.nwindows; i++)
		CHECK(pmm_window_frames(wk.windows[i]) == wk.window_frames[i], root,
		      "window holds %llu frames, entries say %llu",
		      (unsigned long long)pmm_window_frames(wk.windows[i]),
		      (unsigned long long)wk.window_frames[i]);
	free(wk.slots);
	free(wk.windows);
	free(wk.window_frames);
}

void cow_validate(struct cow_node *n)
{
	tree_lock(n->tree);
	validate_tree_locked(n);
	tree_unlock(n->tree);
}

/* SPDX-License-Identifier: MIT */
/*
 * merge.c — when a VMO dies: its frames return to the pool and its hidden
 * parent, left with one child, merges into that survivor.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cow/cow_private.h"

/* Move hidden @h's page @pg (entry @e) to survivor @s at @spg. */
static void move_into_survivor(struct cow_node *h, uint64_t pg, uint16_t e,
			       struct cow_node *s, uint64_t spg)
{
	uint16_t ne = cow_place_frame(entry_window(h, e), pg, s, spg);

	if (node_set_entry(s, spg, ne) < 0) {
		/* Needs a 176-byte chunk; without it content would be lost. */
		fputs("uvmo: out of memory while merging a clone tree\n", stderr);
		abort();
	}
}

/*
 * After a merge narrowed what @child's subtree sees of its parent, pages in
 * the parent's [lo, hi) that nobody sees any more are freed, and so on up
 * the chain (Zircon's release of parent ranges).  The cost follows the
 * entries in the released range, not the size of the tree.
 */
static void release_unseen(struct cow_node *child, uint64_t lo, uint64_t hi)
{
	for (struct cow_node *a = child->parent; a && lo < hi; a = a->parent) {
		uint64_t pg;
		uint16_t e;
		PL_FOREACH(&a->pages, lo, hi, pg, e) {
			if (cow_page_seen_by_others(a, pg, NULL))
				continue;
			if (e & E_PRESENT)
				pmm_frame_free(entry_window(a, e), pg, 1);
			node_set_entry(a, pg, 0);
		}
		if (!a->parent)
			break;
		hi = min_u64(hi, size_pages(a->parent_limit));
		lo += size_pages(a->parent_offset);
		hi += size_pages(a->parent_offset);
	}
}

/*
 * Zircon's merge: pages the survivor can see (inside its window, not split
 * off to its side, not shadowed by its own entry) move into it; the rest
 * nobody can see any more and are freed.  Then the survivor takes the
 * hidden node's place, combining offsets and limits.  Cost: the hidden
 * node's pages; those lent from the survivor's own window move for free.
 */
/*
 * The common case — a snapshot closed while the VMO it was taken of has not
 * written since: the survivor lends every frame of the hidden node, sees
 * all of it and has no page of its own.  It takes the whole list at once.
 */
static bool merge_by_taking_list(struct cow_node *h, struct cow_node *s)
{
	if (node_hidden(s) || s->home != h->lender || s->parent_offset != 0 ||
	    s->parent_limit < h->size || !pl_empty(&s->pages) ||
	    h->split_entries != 0 || pmm_window_frames(h->home) != 0)
		return false;
	pl_take(&s->pages, &h->pages);
	s->committed = h->committed;
	h->committed = 0;
	return true;
}

static void merge_into_survivor(struct cow_node *h, struct cow_node *s, uint64_t d_lo,
				uint64_t d_hi)
{
	uint16_t s_split = split_bit_for(h, s);
	uint64_t s_first = size_pages(s->parent_offset);
	uint64_t s_count = size_pages(s->parent_limit);
	uint64_t pg;
	uint16_t e;

	if (merge_by_taking_list(h, s))
		goto relink;
	PL_FOREACH(&h->pages, 0, UINT64_MAX, pg, e) {
		/* Exact visibility: inside the survivor's window, not split
		 * off to its side, and seen by some node of its subtree (a
		 * hidden survivor's children may see less than it does). */
		bool visible = pg >= s_first && pg - s_first < s_count &&
			       !(e & s_split) && cow_side_sees(s, pg, NULL);
		uint64_t spg = pg - s_first;

		if (visible) {
			if (e & E_ZERO) {
				if (node_set_entry(s, spg, E_ZERO) < 0)
					abort();
			} else {
				move_into_survivor(h, pg, e, s, spg);
			}
		} else if (e & E_PRESENT) {
			pmm_frame_free(entry_window(h, e), pg, 1);
		}
		node_set_entry(h, pg, 0);
	}

relink:;
	uint64_t old_offset = s->parent_offset;
	uint64_t h_lo = size_pages(h->parent_offset);
	uint64_t h_hi = h_lo + size_pages(h->parent_limit);
	s->parent = h->parent;
	s->parent_limit = min_u64(s->parent_limit, h->parent_limit > old_offset
							 ? h->parent_limit - old_offset : 0);
	s->parent_offset = old_offset + h->parent_offset;
	if (!s->parent)
		s->parent_offset = 0;
	if (h->parent) {
		if (h->parent->left == h)
			h->parent->left = s;
		else
			h->parent->right = s;
	}
	h->parent = h->left = h->right = NULL;
	node_free(h);
	restore_drop_changes(s);
	count(&cow_counters.merges, 1);

	if (s->parent) {
		/* The survivor may see less of the grandparent than the hidden
		 * node did: what fell out of view may be nobody's now. */
		uint64_t s_lo = size_pages(s->parent_offset);
		uint64_t s_hi = s_lo + size_pages(s->parent_limit);
		release_unseen(s, h_lo, min_u64(h_hi, s_lo));
		release_unseen(s, max_u64(h_lo, s_hi), h_hi);
		/* And what only the dead one saw: pages the survivor's side
		 * hides with entries of its own (at any depth) lost their last
		 * viewer.  The cost follows the dead one's view. */
		uint64_t d_end = min_u64(d_hi, h_hi - h_lo); /* h is freed */
		if (d_lo < d_end)
			release_unseen(s, h_lo + d_lo, h_lo + d_end);
	}
}

void node_die(struct cow_node *n)
{
	struct cow_node *parent = n->parent;

	UVMO_ASSERT(!node_hidden(n) && n->refs == 0);
	if (node_paged(n)) {
		paged_die(n); /* a root: nothing to merge */
		return;
	}
	if (alow_child(n)) {
		alow_die(n); /* no hidden parent: nothing to merge */
		return;
	}
	if (n->flags & N_DISCARDABLE)
		discard_untrack(n);
	cow_drop_own_pages(n, 0, UINT64_MAX);
	if (parent) {
		struct cow_node *survivor = sibling_of(n);
		uint64_t d_lo = size_pages(n->parent_offset);
		uint64_t d_hi = d_lo + size_pages(n->parent_limit);
		n->parent = NULL;
		merge_into_survivor(parent, survivor, d_lo, d_hi);
		VALIDATE(survivor);
	}
	node_free(n);
}

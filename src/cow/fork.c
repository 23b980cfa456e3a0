/* SPDX-License-Identifier: MIT */
/*
 * fork.c — giving a VMO its own copy of a page (copy-on-write), and
 * releasing its claim on one.  The placement rules (L1)–(L3) of
 * cow_private.h decide where frames go.
 */
#include <errno.h>
#include <string.h>

#include "cow/cow_private.h"

static void copy_frame(struct pmm_window *dst, uint64_t dpg,
		       struct pmm_window *src, uint64_t spg)
{
	memcpy(pmm_slot_addr(dst, dpg), pmm_slot_addr(src, spg), PAGE_SIZE);
}

/*
 * True if some node of @child's subtree, other than @exclude, sees hidden
 * @parent's page @ppg: @child covers the offset and neither it nor any
 * hidden node on the way down shadows it with an entry of its own.
 */
bool cow_side_sees(const struct cow_node *child, uint64_t ppg,
		      const struct cow_node *exclude)
{
	if (child == exclude || !child_covers(child, ppg))
		return false;
	uint64_t cpg = ppg - size_pages(child->parent_offset);
	if (pl_get(&child->pages, cpg) != 0)
		return false;
	if (!node_hidden(child))
		return true;
	return cow_side_sees(child->left, cpg, exclude) ||
	       cow_side_sees(child->right, cpg, exclude);
}

/* True if a node other than @exclude sees the page that hidden @h holds
 * at @pg; a side whose split bit is set has its own copy already. */
bool cow_page_seen_by_others(const struct cow_node *h, uint64_t pg,
			     const struct cow_node *exclude)
{
	uint16_t e = pl_get(&h->pages, pg);
	return (!(e & E_SPLIT_L) && cow_side_sees(h->left, pg, exclude)) ||
	       (!(e & E_SPLIT_R) && cow_side_sees(h->right, pg, exclude));
}

/* The hidden node, if any, whose frame is lent at slot @pg of @n's home.
 * By (L1) only the chain directly above @n can lend from it, at offset pg. */
static struct cow_node *lent_frame_owner(struct cow_node *n, uint64_t pg)
{
	struct cow_node *c = n;
	for (struct cow_node *p = n->parent;
	     p && node_hidden(p) && p->lender == n->home; c = p, p = p->parent) {
		UVMO_ASSERT(c->parent_offset == 0);
		uint16_t e = pl_get(&p->pages, pg);
		if ((e & E_PRESENT) && !(e & E_HOME))
			return p;
	}
	return NULL;
}

void cow_claim_home_slot(struct cow_node *n, uint64_t pg)
{
	struct cow_node *owner = lent_frame_owner(n, pg);
	if (!owner)
		return;
	uint16_t e = pl_get(&owner->pages, pg);
	if (cow_page_seen_by_others(owner, pg, n)) {
		/* Still needed: it moves to its owner's own window. */
		pmm_frame_move(owner->home, pg, n->home, pg);
		node_set_entry(owner, pg, e | E_HOME);
	} else {
		pmm_frame_free(n->home, pg, 1);
		node_set_entry(owner, pg, 0);
	}
}

/* @n alone still needs hidden @owner's page: it takes it over, without a
 * copy if the frame already sits in @n's own slot (lent from its window). */
static void take_over(struct cow_node *owner, uint64_t opg, uint16_t e,
		      struct cow_node *n, uint64_t pg)
{
	struct pmm_window *from = entry_window(owner, e);

	if (from == n->home) {
		UVMO_ASSERT(opg == pg); /* (L1) */
	} else {
		cow_claim_home_slot(n, pg);
		pmm_frame_move(n->home, pg, from, opg);
	}
	node_set_entry(owner, opg, 0);
	node_set_entry(n, pg, E_PRESENT); /* chunk reserved by the caller */
	count(&cow_counters.moves, 1);
}

/* Others still see hidden @owner's page: @n gets a copy of its own. */
static int copy_for(struct cow_node *owner, uint64_t opg, uint16_t e,
		    struct cow_node *n, uint64_t pg)
{
	struct pmm_window *from = entry_window(owner, e);
	int rc;

	if (from == n->home) {
		/* The original sits in the writer's own slot: the writer keeps
		 * it in place and the old content is copied out for the others. */
		UVMO_ASSERT(opg == pg);
		rc = pmm_frame_alloc(owner->home, opg, 1);
		if (rc < 0)
			return rc;
		copy_frame(owner->home, opg, n->home, pg);
		node_set_entry(owner, opg, e | E_HOME);
	} else {
		cow_claim_home_slot(n, pg);
		rc = pmm_frame_alloc(n->home, pg, 1);
		if (rc < 0)
			return rc;
		copy_frame(n->home, pg, from, opg);
	}
	node_set_entry(n, pg, E_PRESENT); /* chunk reserved by the caller */
	count(&cow_counters.copies, 1);
	return 0;
}

/*
 * Copy-on-write of one page.  The content's owner is a hidden ancestor.
 * If nobody else can see its page any more, @n takes it over (Zircon's
 * "uni-accessible" move); otherwise @n gets one copy, straight from the
 * owner — never copies into the hidden nodes in between, so one write costs
 * at most one frame however deep the chain.  Afterwards, if no other node on
 * @n's side of the owner sees the page, that side's split bit records it,
 * so the other side's first write will move the page instead of copying.
 */
int cow_fork_page(struct cow_node *n, uint64_t pg)
{
	struct cow_path path;
	struct cow_hit hit;
	int rc;

	UVMO_ASSERT(!node_hidden(n));
	UVMO_ASSERT(!(pl_get(&n->pages, pg) & E_PRESENT));
	rc = pl_reserve(&n->pages, pg);
	if (rc < 0)
		return rc;
	path_init(&path);
	rc = cow_lookup(n, pg, &hit, &path);
	if (rc < 0)
		goto out;

	if (!hit.owner || (hit.e & E_ZERO)) {
		cow_claim_home_slot(n, pg);
		rc = pmm_frame_alloc(n->home, pg, 1);
		if (rc == 0) {
			node_set_entry(n, pg, E_PRESENT);
			count(&cow_counters.zero_fills, 1);
		}
		goto out;
	}

	struct cow_node *owner = hit.owner;
	struct cow_node *side = path.nodes[path.depth - 2];
	if (!cow_page_seen_by_others(owner, hit.pg, n)) {
		take_over(owner, hit.pg, hit.e, n, pg);
		goto out;
	}
	rc = copy_for(owner, hit.pg, hit.e, n, pg);
	if (rc == 0 && !cow_side_sees(side, hit.pg, n)) {
		uint16_t e = pl_get(&owner->pages, hit.pg);
		node_set_entry(owner, hit.pg, e | split_bit_for(owner, side));
	}
out:
	path_fini(&path);
	return rc;
}

int cow_release_page(struct cow_node *n, uint64_t pg, bool leave_marker)
{
	struct cow_path path;
	struct cow_hit hit;
	bool marker = false;
	uint16_t e = pl_get(&n->pages, pg);
	int rc;

	if (leave_marker && (e & E_ZERO))
		return 0;
	if (leave_marker) {
		rc = pl_reserve(&n->pages, pg);
		if (rc < 0)
			return rc;
	}
	if (e & E_PRESENT)
		pmm_frame_free(n->home, pg, 1);
	node_set_entry(n, pg, 0);

	path_init(&path);
	rc = cow_lookup(n, pg, &hit, &path);
	if (rc < 0) {
		/* Too deep to walk: be safe and hide whatever is above. */
		marker = leave_marker;
		goto out;
	}
	if (hit.owner && (hit.e & E_PRESENT)) {
		struct cow_node *owner = hit.owner;
		struct cow_node *side = path.nodes[path.depth - 2];
		if (!cow_page_seen_by_others(owner, hit.pg, n)) {
			/* Only @n could see it: it goes. */
			pmm_frame_free(entry_window(owner, hit.e), hit.pg, 1);
			node_set_entry(owner, hit.pg, 0);
			if (leave_marker) {
				struct cow_hit older;
				cow_lookup(n, pg, &older, NULL);
				marker = older.owner && (older.e & E_PRESENT);
			}
		} else {
			marker = leave_marker;
			if (!cow_side_sees(side, hit.pg, n)) {
				/* Nobody else on @n's side needs it: record
				 * the split so the other side takes it over
				 * without a copy. */
				node_set_entry(owner, hit.pg,
					       hit.e | split_bit_for(owner, side));
			}
		}
	}
	cow_claim_home_slot(n, pg);
out:
	path_fini(&path);
	if (marker)
		node_set_entry(n, pg, E_ZERO); /* reserved above */
	return 0;
}

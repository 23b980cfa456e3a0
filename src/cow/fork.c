/* SPDX-License-Identifier: MIT */
/*
 * fork.c — giving a VMO its own copy of a page (copy-on-write), and
 * releasing its claim on one.  The placement rules (L1)–(L3) of
 * cow_private.h decide where frames go.
 */
#include <errno.h>
#include <string.h>

#include "cow/cow_private.h"

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
	struct cow_node *p;
	FOR_EACH_LENDER(p, n) {
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

uint16_t cow_place_frame(struct pmm_window *from, uint64_t fpg,
			struct cow_node *to, uint64_t tpg)
{
	if (node_hidden(to)) {
		if (from == to->lender) {
			UVMO_ASSERT(fpg == tpg); /* (L1) */
			return E_PRESENT;
		}
		pmm_frame_move(to->home, tpg, from, fpg);
		return E_PRESENT | E_HOME;
	}
	if (from == to->home) {
		UVMO_ASSERT(fpg == tpg); /* lent from @to: taken in place */
		return E_PRESENT;
	}
	cow_claim_home_slot(to, tpg);
	pmm_frame_move(to->home, tpg, from, fpg);
	return E_PRESENT;
}

/* Hand hidden @cur's page down to @child, which alone needs it now. */
static void move_down(struct cow_node *cur, uint64_t cpg, uint16_t e,
		      struct cow_node *child, uint64_t chpg)
{
	uint16_t ne = cow_place_frame(entry_window(cur, e), cpg, child, chpg);

	node_set_entry(cur, cpg, 0);
	node_set_entry(child, chpg, ne); /* chunk reserved by the caller */
	count(&cow_counters.moves, 1);
}

/* Give @child its own copy of hidden @cur's page; @cur keeps the original
 * for the other side and records that @child's side split off. */
static int copy_down(struct cow_node *cur, uint64_t cpg, uint16_t e,
		     struct cow_node *child, uint64_t chpg)
{
	struct pmm_window *from = entry_window(cur, e);
	uint16_t cur_e = e | split_bit_for(cur, child);
	int rc;

	if (!node_hidden(child) && from == child->home) {
		/* The original sits in the writer's own slot: the writer keeps
		 * it in place and the old content is copied out for the others. */
		UVMO_ASSERT(cpg == chpg);
		rc = pmm_frame_fill(cur->home, cpg, pmm_slot_addr(child->home, chpg));
		if (rc < 0)
			return rc;
		cur_e |= E_HOME;
		node_set_entry(child, chpg, E_PRESENT);
	} else {
		struct pmm_window *to = child->home;
		if (!node_hidden(child))
			cow_claim_home_slot(child, chpg);
		rc = pmm_frame_fill(to, chpg, pmm_slot_addr(from, cpg));
		if (rc < 0)
			return rc;
		node_set_entry(child, chpg,
			       E_PRESENT | (node_hidden(child) ? E_HOME : 0));
	}
	node_set_entry(cur, cpg, cur_e);
	count(&cow_counters.copies, 1);
	return 0;
}

/*
 * Walk from the owner of the content down to @n, level by level (Zircon's
 * order: every intermediate state is a valid tree, so running out of
 * memory part-way leaves the content intact).  At each hidden level the
 * page moves down if the other side cannot see it any more (its split bit
 * is set or its window misses the offset), else it is copied and the split
 * bit of the receiving side is set: a clone never costs more memory than
 * an eager copy would.
 */
int cow_fork_page(struct cow_node *n, uint64_t pg)
{
	struct cow_path path;
	struct cow_hit hit;
	int rc;

	UVMO_ASSERT(!node_hidden(n));
	UVMO_ASSERT(!(pl_get(&n->pages, pg) & E_PRESENT));
	if (alow_child(n))
		return alow_own(n, pg);
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

	for (unsigned i = path.depth - 1; i >= 1; i--) {
		struct cow_node *cur = path.nodes[i];
		struct cow_node *child = path.nodes[i - 1];
		uint64_t cpg = path.pgs[i], chpg = path.pgs[i - 1];
		uint16_t e = pl_get(&cur->pages, cpg);
		struct cow_node *sib = cur->left == child ? cur->right : cur->left;

		rc = pl_reserve(&child->pages, chpg);
		if (rc < 0)
			goto out;
		if ((e & split_bit_for(cur, sib)) || !child_covers(sib, cpg)) {
			move_down(cur, cpg, e, child, chpg);
		} else {
			rc = copy_down(cur, cpg, e, child, chpg);
			if (rc < 0) {
				pl_trim(&child->pages, chpg);
				goto out;
			}
		}
	}
out:
	path_fini(&path);
	if (rc < 0)
		pl_trim(&n->pages, pg);
	return rc;
}

uint64_t cow_fork_cost(struct cow_node *n, uint64_t pg)
{
	struct cow_path path;
	struct cow_hit hit;
	uint64_t frames = 0;

	if (pl_get(&n->pages, pg) & E_PRESENT)
		return 0;
	if (alow_child(n))
		return alow_own_cost(n, pg);
	path_init(&path);
	if (cow_lookup(n, pg, &hit, &path) < 0) {
		frames = path.depth; /* bound: one per level */
	} else if (!hit.owner || (hit.e & E_ZERO)) {
		frames = 1;
	} else {
		/* The same decisions cow_fork_page will take: the owner's page
		 * carries split bits, the copies below it do not. */
		uint16_t e = hit.e;
		for (unsigned i = path.depth - 1; i >= 1; i--) {
			struct cow_node *cur = path.nodes[i];
			struct cow_node *child = path.nodes[i - 1];
			struct cow_node *sib = cur->left == child ? cur->right : cur->left;
			bool uni = (e & split_bit_for(cur, sib)) ||
				   !child_covers(sib, path.pgs[i]);
			frames += !uni;
			e = 0;
		}
	}
	path_fini(&path);
	return frames;
}

int cow_release_page(struct cow_node *n, uint64_t pg, bool leave_marker)
{
	struct cow_path path;
	struct cow_hit hit;
	bool marker = false;
	uint16_t e = pl_get(&n->pages, pg);
	int rc;

	if (alow_child(n))
		return alow_release(n, pg, leave_marker);
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
	else
		pl_trim(&n->pages, pg);
	return 0;
}

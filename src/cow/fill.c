/* SPDX-License-Identifier: MIT */
/*
 * fill.c — zero fills of faults, installed with the tree lock dropped.
 *
 * Installing fresh pages into the faulting mapping (UFFDIO_ZEROPAGE, or a
 * populate) is most of what a fault on a fresh VMO costs.  Under the tree
 * lock, two threads faulting one VMO would take turns for all of it.  So a
 * fault on a VMO with no parent (its missing pages are zero, and no hidden
 * node borrows from its window) claims its run of pages under the lock —
 * charged, marked present, recorded in the tree as a fill in flight —
 * drops the lock to install them, and takes it again to retire the record.
 *
 * While a fill is in flight its slots are holes that entries call frames.
 * Nobody but its own fault may rely on them, so:
 *  - tree_lock(), which every operation except a fault takes, waits until
 *    no fill is in flight; while someone waits, new faults fill with the
 *    lock held, so the wait ends;
 *  - a fault on a page in flight waits until that fill ends (its thread
 *    is woken when the fault returns, and must find the page);
 *  - fault-ahead skips present pages, so fills never overlap;
 *  - reclaim skips trees with fills in flight; validation accepts their
 *    slots as holes.
 * A VMO with no parent is alone in its tree (a snapshot puts a hidden node
 * above it first), so no copy-on-write walk ever meets a fill in flight.
 *
 * Lock order is unchanged: the fill holds no uvmo lock of its own while it
 * installs (the fault handler keeps the address-space lock for reading, so
 * the mapping stays put).
 */
#include <errno.h>

#include "cow/cow_private.h"

void tree_lock_fault(struct cow_tree *t)
{
	pthread_mutex_lock(&t->lock);
}

static struct cow_fill *find_fill(struct cow_tree *t, const struct cow_node *n,
				  uint64_t pg)
{
	for (uint32_t i = 0; i < t->nfills; i++)
		if (t->fills[i].node == n && pg >= t->fills[i].first && pg < t->fills[i].end)
			return &t->fills[i];
	return NULL;
}

bool fill_in_flight(const struct cow_node *n, uint64_t pg)
{
	return find_fill(n->tree, n, pg) != NULL;
}

/* The old way: allocate and install with the lock held. */
static int fill_locked(struct cow_node *n, uint64_t pg, uint64_t end)
{
	if (cow_own_pages_root(n, pg, end) < 0 && end > pg + 1)
		cow_own_pages_root(n, pg, pg + 1); /* the run failed whole */
	return pl_get(&n->pages, pg) & E_PRESENT ? 0 : -ENOMEM;
}

int fill_fault_root(struct cow_node *n, uint64_t pg, uint64_t end)
{
	struct cow_tree *t = n->tree;

	UVMO_ASSERT(!n->parent && !node_hidden(n));
	if (pl_get(&n->pages, pg) & E_PRESENT) {
		while (fill_in_flight(n, pg))
			pthread_cond_wait(&t->fill_ended, &t->lock);
		return 0;
	}
	uint64_t run_end = pg + 1;
	while (run_end < end && !(pl_get(&n->pages, run_end) & E_PRESENT))
		run_end++;
	if (t->drain_waiters || t->nfills == MAX_FILLS)
		return fill_locked(n, pg, run_end);

	/* Claim the run: at the pool limit, the faulting page alone. */
	int rc = pmm_frame_charge(n->home, run_end - pg);
	if (rc < 0 && run_end > pg + 1) {
		run_end = pg + 1;
		rc = pmm_frame_charge(n->home, 1);
	}
	if (rc < 0)
		return rc;
	uint64_t claimed = pg;
	while (claimed < run_end && node_set_entry(n, claimed, E_PRESENT) == 0)
		claimed++;
	if (claimed < run_end)
		pmm_frame_free(n->home, claimed, run_end - claimed); /* holes: uncharges */
	if (claimed == pg)
		return -ENOMEM;
	run_end = claimed;
	t->fills[t->nfills++] = (struct cow_fill){ n, pg, run_end };

	tree_unlock(t);
	rc = pmm_frame_populate(n->home, pg, run_end - pg);
	tree_lock_fault(t);

	struct cow_fill *f = find_fill(t, n, pg);
	UVMO_ASSERT(f != NULL);
	*f = t->fills[--t->nfills];
	pthread_cond_broadcast(&t->fill_ended);
	if (rc < 0) {
		/* The host is out of memory: give the whole run back. */
		for (uint64_t p = pg; p < run_end; p++)
			node_set_entry(n, p, 0);
		pmm_frame_free(n->home, pg, run_end - pg);
		return rc;
	}
	count(&cow_counters.zero_fills, run_end - pg);
	return 0;
}

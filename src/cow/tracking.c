/* SPDX-License-Identifier: MIT */
/*
 * tracking.c — the async dirty-tracking tier: which VMOs are on it, moving
 * them on and off, and learning their writes.
 *
 * On the sync tier a write through a mapping to a page that must be
 * noticed (a page another node borrows, a restored page) faults into uvmo.
 * On the async tier the VMO's mappings are registered with a userfaultfd
 * opened with UFFD_FEATURE_WP_ASYNC: such a write costs a kernel fault
 * that only clears the page's write protection, and PAGEMAP_SCAN later
 * reports (and protects again) the pages written.  A write the kernel lets
 * through cannot copy anything out first, so an async VMO must never have
 * a frame another node needs in its window.  Invariants of an async node N
 * (checked by validate.c):
 *
 *  (A1) no hidden node lends a frame in N's window (no borrowed frames);
 *  (A2) every page of N that has no entry of its own reads zero: N shows
 *       no ancestor content through a hole.
 *
 * Together they make a hole in N's window harmless even when the kernel
 * fills it behind uvmo's back: moving a mapping from one userfaultfd to
 * the other unregisters it for a moment, and an access then is served by
 * the kernel — a hole gets a zero page, which is exactly what N shows
 * there.  Such "stray" frames are adopted as N's own afterwards, and the
 * writes made in that moment are unknown, so N's E_RESTORED marks go
 * (the next restore compares N's pages byte by byte once).
 *
 * When.  A restore that finds the VMO already restored to the same
 * snapshot has met a reset loop (the fuzzing use): it moves the VMO to the
 * async tier, paying once to give the VMO its own copy of every page it
 * shares with its ancestors (A1, A2).  A snapshot of the VMO (which makes
 * its frames borrowed again) and fork() (whose child must copy frames
 * nobody writes meanwhile, which needs write faults) move it back.
 * Unmapping one of its mappings or moving its window loses the writes
 * made through the old mapping that were not scanned yet: the marks go.
 *
 * Everything here runs with the tree lock held.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cow/cow_private.h"

static _Atomic bool async_available;

void cow_set_async_tracking(bool available)
{
	atomic_store(&async_available, available);
}

void tracking_lost(struct cow_node *n)
{
	restore_forget(n, 0, size_pages(n->size));
}

static void forget_written(void *arg, uint64_t first, uint64_t end)
{
	struct cow_node *n = arg;
	restore_forget(n, first, min_u64(end, size_pages(n->size)));
}

void tracking_harvest(struct cow_node *n)
{
	struct cow_mapping *m;

	if (!node_async(n))
		return;
	LIST_FOREACH(m, &n->mappings, link) {
		if (m->ops->scan_written(m, forget_written, n) < 0) {
			tracking_lost(n);
			return;
		}
	}
}

/* Frames in holes of @n's window that no entry accounts for (see the
 * top of the file) become @n's own pages. */
static void adopt_strays(struct cow_node *n)
{
	uint64_t end = min_u64(size_pages(n->size), pmm_window_pages(n->home));
	uint64_t from = 0, first, last;

	while (pmm_window_data_run(n->home, from, end, &first, &last)) {
		for (uint64_t pg = first; pg < last; pg++) {
			if (pl_get(&n->pages, pg) & E_PRESENT)
				continue;
			pmm_frame_adopt(n->home, pg);
			if (pl_reserve(&n->pages, pg) < 0) {
				/* No memory to record it: the page reads
				 * zero again, like N's content there. */
				pmm_frame_free(n->home, pg, 1);
				continue;
			}
			node_set_entry(n, pg, E_PRESENT);
		}
		from = last;
	}
}

/* Pages @n shows from an ancestor (it has no entry there, and the content
 * found is not zero): A2 wants them to be @n's own. */
static int inherited_pages(struct cow_node *n, struct page_set *out)
{
	struct page_set all = { 0 };
	int rc = collect_pages(n, 0, size_pages(n->size), &all);
	for (size_t i = 0; rc == 0 && i < all.len; i++) {
		struct cow_hit hit;
		uint64_t pg = all.pgs[i];
		if (pl_get(&n->pages, pg) & (E_PRESENT | E_ZERO))
			continue;
		cow_lookup(n, pg, &hit, NULL);
		if (hit.owner && !(hit.e & E_ZERO))
			rc = page_set_add(out, pg);
	}
	free(all.pgs);
	return rc;
}

/* Make @n own every page it shows from an ancestor (A2), then send the
 * frames still lent from its window home (A1).  All or nothing as to
 * frames: -ENOMEM before anything changed. */
static int own_shared_pages(struct cow_node *n)
{
	struct page_set set = { 0 };
	int rc = inherited_pages(n, &set);
	uint64_t need = 0;

	for (size_t i = 0; rc == 0 && i < set.len; i++)
		need += cow_fork_cost(n, set.pgs[i]); /* duplicates: reserved twice */
	if (rc == 0)
		rc = pmm_reserve(need);
	for (size_t i = 0; rc == 0 && i < set.len; i++) {
		/* collect_pages lists a page once per node that has it. */
		if (!(pl_get(&n->pages, set.pgs[i]) & E_PRESENT))
			rc = cow_fork_page(n, set.pgs[i]);
	}
	pmm_unreserve();
	free(set.pgs);
	if (rc < 0)
		return rc; /* pages owned so far stay owned: harmless */

	/* What is still lent is invisible to @n (a zero marker, or past its
	 * limits): claiming moves it to its owner's window, or frees it. */
	set = (struct page_set){ 0 };
	struct cow_node *x;
	FOR_EACH_LENDER(x, n) {
		uint64_t pg;
		uint16_t e;
		PL_FOREACH(&x->pages, 0, UINT64_MAX, pg, e) {
			if ((e & E_PRESENT) && !(e & E_HOME) && page_set_add(&set, pg) < 0) {
				free(set.pgs);
				return -ENOMEM;
			}
		}
	}
	for (size_t i = 0; i < set.len; i++)
		cow_claim_home_slot(n, set.pgs[i]);
	free(set.pgs);
	return 0;
}

/* Move every mapping of @n to the userfaultfd of tier @async; on a
 * failure, those moved go back.  0 or the error. */
static int move_mappings(struct cow_node *n, bool async)
{
	struct cow_mapping *m, *done;
	int rc = 0;

	LIST_FOREACH(m, &n->mappings, link) {
		rc = m->ops->set_tracking(m, async);
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		LIST_FOREACH(done, &n->mappings, link) {
			if (done == m)
				break;
			done->ops->set_tracking(done, !async);
		}
	}
	return rc;
}

void tracking_try_enter_async(struct cow_node *n)
{
	if (!atomic_load(&async_available) || node_async(n) || node_hidden(n) ||
	    (n->flags & (N_PAGED | N_PAGED_CHILD | N_DISCARDABLE)) ||
	    LIST_EMPTY(&n->mappings) || n->async_refused)
		return;
	if (own_shared_pages(n) < 0) {
		/* No room for the copies: the VMO stays sync, and its later
		 * restores to this snapshot do not try again (each try looks
		 * at every page it shares). */
		n->async_refused = true;
		return;
	}
	/* A1 and A2 hold from here, so frames the kernel puts into holes
	 * while the mappings move are the VMO's own zero pages. */
	int rc = move_mappings(n, true);
	adopt_strays(n);
	tracking_lost(n);
	if (rc < 0)
		return;
	n->flags |= N_ASYNC;
	n->async_window = pmm_window_file_offset(n->home);
	count(&cow_counters.async_nodes, 1);
}

void tracking_leave_async(struct cow_node *n)
{
	if (!node_async(n))
		return;
	/* A mapping that cannot move back is taken away by the mapping
	 * layer (its accesses fault), never left writable untracked. */
	struct cow_mapping *m;
	LIST_FOREACH(m, &n->mappings, link)
		m->ops->set_tracking(m, false);
	n->flags &= ~N_ASYNC;
	atomic_fetch_sub(&cow_counters.async_nodes, 1);
	adopt_strays(n);
	tracking_lost(n);
}

void cow_tracking_leave_async(struct cow_node *n)
{
	tree_lock(n->tree);
	tracking_leave_async(n);
	VALIDATE(n);
	tree_unlock(n->tree);
}

/* SPDX-License-Identifier: MIT */
/*
 * discard.c — discardable VMOs: lock counts, and discarding unlocked ones
 * (least recently unlocked first) when the pool runs short.
 *
 * Lock order: a tree lock, then lru_lock.  Reclaim runs inside a frame
 * allocation, i.e. with some tree lock held, and takes lru_lock; so it may
 * only *try* the lock of the tree it wants to discard from.
 */
#include <errno.h>

#include "cow/cow_private.h"

static pthread_mutex_t lru_lock = PTHREAD_MUTEX_INITIALIZER;
static TAILQ_HEAD(, cow_node) lru = TAILQ_HEAD_INITIALIZER(lru);

static void lru_add(struct cow_node *n)
{
	pthread_mutex_lock(&lru_lock);
	if (!n->on_lru) {
		TAILQ_INSERT_TAIL(&lru, n, lru);
		n->on_lru = true;
	}
	pthread_mutex_unlock(&lru_lock);
}

static void lru_remove(struct cow_node *n)
{
	pthread_mutex_lock(&lru_lock);
	if (n->on_lru) {
		TAILQ_REMOVE(&lru, n, lru);
		n->on_lru = false;
	}
	pthread_mutex_unlock(&lru_lock);
}

void discard_track(struct cow_node *n)
{
	lru_add(n); /* created unlocked */
}

void discard_untrack(struct cow_node *n)
{
	lru_remove(n);
}

void discard_node(struct cow_node *n)
{
	UVMO_ASSERT(!n->parent && n->lock_count == 0);
	cow_drop_own_pages(n, 0, UINT64_MAX);
	n->discarded = true;
	count(&cow_counters.discards, 1);
}

uint64_t discard_reclaim(uint64_t pages)
{
	uint64_t freed = 0;
	struct cow_node *n, *next;

	pthread_mutex_lock(&lru_lock);
	TAILQ_FOREACH_SAFE(n, &lru, lru, next) {
		if (freed >= pages)
			break;
		if (pthread_mutex_trylock(&n->tree->lock) != 0)
			continue; /* busy, or the caller's own tree */
		/* A tree with fault fills in flight is busy too (fill.c). */
		if (n->tree->nfills == 0 && n->lock_count == 0 && !n->discarded) {
			freed += n->committed;
			discard_node(n);
			TAILQ_REMOVE(&lru, n, lru);
			n->on_lru = false;
		}
		pthread_mutex_unlock(&n->tree->lock);
	}
	pthread_mutex_unlock(&lru_lock);
	return freed;
}

int cow_lock(struct cow_node *n, bool try_only)
{
	int rc = 0;

	tree_lock(n->tree);
	if (!(n->flags & N_DISCARDABLE)) {
		rc = -ENOTSUP;
	} else if (n->discarded && try_only) {
		rc = -EAGAIN;
	} else {
		if (n->discarded) {
			n->discarded = false; /* content is now all zero */
			rc = 1;
		}
		if (n->lock_count++ == 0)
			lru_remove(n);
	}
	tree_unlock(n->tree);
	return rc;
}

int cow_unlock(struct cow_node *n)
{
	int rc = 0;

	tree_lock(n->tree);
	if (!(n->flags & N_DISCARDABLE))
		rc = -ENOTSUP;
	else if (n->lock_count == 0)
		rc = -EBUSY;
	else if (--n->lock_count == 0)
		lru_add(n);
	tree_unlock(n->tree);
	return rc;
}

void cow_init(void)
{
	/* Event counters restart with the pool; node counts are live state. */
	atomic_store(&cow_counters.copies, 0);
	atomic_store(&cow_counters.moves, 0);
	atomic_store(&cow_counters.zero_fills, 0);
	atomic_store(&cow_counters.merges, 0);
	atomic_store(&cow_counters.discards, 0);
	pmm_set_reclaim_hook(discard_reclaim);
}

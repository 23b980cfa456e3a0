/* SPDX-License-Identifier: MIT */
/*
 * node.c — node and tree life cycle, references, entry bookkeeping.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "cow/cow_private.h"

struct cow_counters cow_counters;
static _Atomic uint64_t next_id = 1;

void tree_lock(struct cow_tree *t)
{
	pthread_mutex_lock(&t->lock);
	if (t->nfills) {
		/* Counted, so that new faults stop dropping the lock and the
		 * wait ends (fill.c). */
		t->drain_waiters++;
		while (t->nfills)
			pthread_cond_wait(&t->fill_ended, &t->lock);
		t->drain_waiters--;
	}
}

void tree_unlock(struct cow_tree *t)
{
	pthread_mutex_unlock(&t->lock);
}

static struct cow_tree *tree_new(void)
{
	struct cow_tree *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->fill_ended, NULL);
	return t;
}

void tree_free(struct cow_tree *t)
{
	UVMO_ASSERT(t->nfills == 0 && t->drain_waiters == 0);
	pthread_cond_destroy(&t->fill_ended);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int node_alloc(struct cow_tree *tree, uint64_t size, uint32_t flags,
	       struct cow_node **out)
{
	struct cow_node *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->tree = tree;
	n->size = size;
	n->flags = flags;
	n->installs_writable = !(flags & (N_PAGED | N_PAGED_CHILD));
	n->direct_fd = -1;
	n->id = atomic_fetch_add(&next_id, 1);
	pl_init(&n->pages);
	tree->nodes++;
	count(&cow_counters.nodes, 1);
	if (flags & N_HIDDEN)
		count(&cow_counters.hidden_nodes, 1);
	pl_metadata_account((int64_t)sizeof(*n));
	*out = n;
	return 0;
}

/* The node holds no entry and no frame any more; drop its windows and, if
 * it was the tree's last node, the tree.  The caller unlocks the tree
 * before this frees it, so it passes ownership of the unlock here. */
void node_free(struct cow_node *n)
{
	UVMO_ASSERT(pl_empty(&n->pages) && n->committed == 0 && n->split_entries == 0);
	restore_drop_changes(n);
	if (n->home)
		pmm_window_unref(n->home);
	if (n->lender)
		pmm_window_unref(n->lender);
	if (n->direct_fd >= 0)
		close(n->direct_fd);
	atomic_fetch_sub(&cow_counters.nodes, 1);
	if (node_hidden(n))
		atomic_fetch_sub(&cow_counters.hidden_nodes, 1);
	if (node_async(n))
		atomic_fetch_sub(&cow_counters.async_nodes, 1);
	pl_metadata_account(-(int64_t)sizeof(*n));
	n->tree->nodes--;
	free(n);
}

int node_set_entry(struct cow_node *n, uint64_t pg, uint16_t e)
{
	uint16_t old = pl_get(&n->pages, pg);
	int rc = pl_set(&n->pages, pg, e);
	if (rc < 0)
		return rc;
	if (old & E_PRESENT)
		n->committed--;
	if (e & E_PRESENT)
		n->committed++;
	if (old & (E_SPLIT_L | E_SPLIT_R))
		n->split_entries--;
	if (e & (E_SPLIT_L | E_SPLIT_R))
		n->split_entries++;
	if (n->changed.valid)
		restore_note_change(n, pg);
	return 0;
}

int cow_create(uint64_t size, uint64_t capacity, uint32_t flags,
	       struct cow_node **out)
{
	struct cow_tree *tree = tree_new();
	struct cow_node *n;
	uint32_t nflags = 0;
	int rc;

	if (!tree)
		return -ENOMEM;
	if (flags & COW_RESIZABLE)
		nflags |= N_RESIZABLE;
	if (flags & COW_DISCARDABLE)
		nflags |= N_DISCARDABLE;
	rc = node_alloc(tree, size, nflags, &n);
	if (rc < 0)
		goto fail_tree;
	rc = pmm_window_create(size_pages(max_u64(size, capacity)), &n->home);
	if (rc < 0)
		goto fail_node;
	n->parent_limit = 0;
	n->refs = 1;
	if (flags & COW_DISCARDABLE)
		discard_track(n);
	*out = n;
	return 0;

fail_node:
	node_free(n);
fail_tree:
	tree_free(tree);
	return rc;
}

void cow_node_ref(struct cow_node *n)
{
	tree_lock(n->tree);
	n->refs++;
	tree_unlock(n->tree);
}

void cow_node_unref(struct cow_node *n)
{
	struct cow_tree *tree = n->tree;
	bool last_node;

	tree_lock(tree);
	UVMO_ASSERT(n->refs > 0);
	if (--n->refs) {
		if (node_paged(n))
			paged_ref_dropped(n);
		tree_unlock(tree);
		return;
	}
	node_die(n);
	last_node = tree->nodes == 0;
	tree_unlock(tree);
	if (last_node)
		tree_free(tree);
}

uint64_t cow_id(const struct cow_node *n)
{
	return n->id; /* immutable */
}

uint64_t cow_size(struct cow_node *n)
{
	tree_lock(n->tree);
	uint64_t size = n->size;
	tree_unlock(n->tree);
	return size;
}

bool cow_is_resizable(const struct cow_node *n)
{
	return n->flags & N_RESIZABLE; /* immutable */
}

bool cow_is_discardable(const struct cow_node *n)
{
	return n->flags & N_DISCARDABLE; /* immutable */
}

void cow_get_stats(struct cow_stats *out)
{
	out->nodes = atomic_load(&cow_counters.nodes);
	out->hidden_nodes = atomic_load(&cow_counters.hidden_nodes);
	out->async_nodes = atomic_load(&cow_counters.async_nodes);
	out->copies = atomic_load(&cow_counters.copies);
	out->moves = atomic_load(&cow_counters.moves);
	out->zero_fills = atomic_load(&cow_counters.zero_fills);
	out->merges = atomic_load(&cow_counters.merges);
	out->discards = atomic_load(&cow_counters.discards);
	out->metadata_bytes = pl_metadata_bytes();
}

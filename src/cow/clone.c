/* SPDX-License-Identifier: MIT */
/*
 * clone.c — snapshots: inserting a hidden node above the original.
 */
#include <errno.h>

#include "cow/cow_private.h"

static void replace_child(struct cow_node *parent, struct cow_node *old,
			  struct cow_node *new)
{
	if (!parent)
		return;
	if (parent->left == old)
		parent->left = new;
	else
		parent->right = new;
}

/*
 * O(1) and touches no page: the hidden node takes the original's page list
 * and borrows its frames where they lie (they stay in the original's window,
 * which becomes the hidden node's lender); the original keeps its identity
 * and window with an empty list, and sees everything through the hidden
 * node until it writes.
 */
int cow_snapshot(struct cow_node *n, uint64_t off, uint64_t size,
		 uint64_t visible, uint64_t capacity, uint32_t flags,
		 struct cow_node **out)
{
	struct cow_node *h = NULL, *child = NULL;
	uint32_t cflags = (flags & COW_RESIZABLE) ? N_RESIZABLE : 0;
	int rc;

	tree_lock(n->tree);
	if (off > n->size) {
		rc = -ERANGE;
		goto fail;
	}
	rc = node_alloc(n->tree, n->size, N_HIDDEN, &h);
	if (rc < 0)
		goto fail;
	rc = pmm_window_create(size_pages(n->size), &h->home);
	if (rc < 0)
		goto fail;
	rc = node_alloc(n->tree, size, cflags, &child);
	if (rc < 0)
		goto fail;
	rc = pmm_window_create(size_pages(max_u64(size, capacity)), &child->home);
	if (rc < 0)
		goto fail;

	/* Nothing can fail from here on.  Write access goes first: a write
	 * through a mapping that lands before this is part of the snapshot;
	 * one after it faults, and waits for this tree lock. */
	if (node_async(n))
		tracking_leave_async(n); /* re-registers and protects every mapping */
	else
		cow_notify_snapshot(n);
	h->parent = n->parent;
	h->parent_offset = n->parent_offset;
	h->parent_limit = n->parent_limit;
	replace_child(n->parent, n, h);
	pl_take(&h->pages, &n->pages);
	n->restored_from = 0; /* its E_RESTORED entries went to h */
	restore_drop_changes(n);
	h->committed = n->committed;
	n->committed = 0;
	h->lender = n->home;
	pmm_window_ref(n->home);
	h->left = n;
	h->right = child;

	n->parent = h;
	n->parent_offset = 0;
	n->parent_limit = n->size;

	child->parent = h;
	child->parent_offset = off;
	child->parent_limit = min_u64(min_u64(size, visible), n->size - off);
	child->refs = 1;

	VALIDATE(n);
	tree_unlock(n->tree);
	*out = child;
	return 0;

fail:
	if (child)
		node_free(child);
	if (h)
		node_free(h);
	tree_unlock(n->tree);
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * mapping.c — what cow does for the mapping layer: keeping mappings on
 * their node, resolving faults, and telling mappings when the window or
 * the size changes.
 */
#include <errno.h>

#include "cow/cow_private.h"

/* True if a hidden node borrows frames from @n's window (L1: the chain
 * directly above it), so a mapping must not write them in place. */
static bool has_borrowed_frames(const struct cow_node *n)
{
	return n->parent && n->parent->lender == n->home;
}

/* True if a mapping of @n must start write-protected: borrowed frames, or
 * a paged root whose Clean pages must fault on their first write. */
static bool install_protected(const struct cow_node *n)
{
	return has_borrowed_frames(n) || node_paged(n) || alow_child(n) ||
	       n->restored_from; /* E_RESTORED pages must fault on write */
}

/* True if a mapping of @n may write page @pg in place: @n owns it, and no
 * reason of install_protected applies to it (its frame is @n's own, so
 * borrowed frames are out; paged roots and at-least-on-write children
 * fault one page at a time). */
static bool writable_in_place(const struct cow_node *n, uint64_t pg)
{
	uint16_t e = pl_get(&n->pages, pg);
	return (e & E_PRESENT) && !(e & (E_RESTORED | E_CACHE));
}

int cow_mapping_attach(struct cow_node *n, struct cow_mapping *m, uint64_t bytes)
{
	int rc = 0;

	tree_lock(n->tree);
	uint64_t old_offset = pmm_window_file_offset(n->home);
	if (size_pages(page_round_up(bytes)) > pmm_window_pages(n->home))
		rc = pmm_window_grow(n->home, size_pages(page_round_up(bytes)));
	if (rc == 0 && pmm_window_file_offset(n->home) != old_offset)
		cow_notify_window(n, n->size, n->size);
	if (rc == 0)
		rc = m->ops->install(m, pmm_window_file_offset(n->home),
				     install_protected(n), node_async(n));
	if (rc == 0) {
		LIST_INSERT_HEAD(&n->mappings, m, link);
		n->refs++; /* a mapping keeps its VMO alive */
	}
	tree_unlock(n->tree);
	return rc;
}

int cow_mapping_reinstall(struct cow_node *n, struct cow_mapping *m)
{
	tree_lock(n->tree);
	int rc = m->ops->install(m, pmm_window_file_offset(n->home),
				 install_protected(n), node_async(n));
	tree_unlock(n->tree);
	return rc;
}

void cow_mapping_attach_split(struct cow_node *n, struct cow_mapping *m)
{
	tree_lock(n->tree);
	LIST_INSERT_HEAD(&n->mappings, m, link);
	n->refs++;
	tree_unlock(n->tree);
}

void cow_mapping_update(struct cow_node *n, void (*fn)(void *arg), void *arg)
{
	tree_lock(n->tree);
	fn(arg);
	tree_unlock(n->tree);
}

void cow_mapping_detach(struct cow_node *n, struct cow_mapping *m)
{
	tree_lock(n->tree);
	LIST_REMOVE(m, link);
	/* Writes made through it and not scanned yet cannot be any more. */
	if (node_async(n))
		tracking_lost(n);
	tree_unlock(n->tree);
	cow_node_unref(n);
}

void cow_notify_window(struct cow_node *n, uint64_t old_size, uint64_t new_size)
{
	struct cow_mapping *m;
	uint64_t offset = pmm_window_file_offset(n->home);

	LIST_FOREACH(m, &n->mappings, link)
		m->ops->window_changed(m, offset, old_size, new_size);
	if (node_async(n) && offset != n->async_window) {
		/* The mappings were made anew: the old ones took their
		 * unscanned writes with them. */
		tracking_lost(n);
		n->async_window = offset;
	}
}

void cow_notify_snapshot(struct cow_node *n)
{
	cow_notify_protect(n, 0, UINT64_MAX);
}

void cow_notify_protect(struct cow_node *n, uint64_t first, uint64_t end)
{
	struct cow_mapping *m;
	LIST_FOREACH(m, &n->mappings, link)
		m->ops->write_protect(m, first, end);
}

bool cow_fault_installs_writable(const struct cow_node *n)
{
	return n->installs_writable;
}

int cow_fault(struct cow_node *n, uint64_t pg, uint64_t ahead, bool write,
	      void (*resolved)(void *arg, uint64_t pages), void *arg)
{
	int rc = 0;
	uint64_t end = pg + 1;

	/* Not tree_lock: other faults' fills may stay in flight (fill.c). */
	tree_lock_fault(n->tree);
	if (n->discarded)
		rc = -ENOENT;
	else if (pg >= size_pages(n->size))
		rc = -ERANGE;
	else if (node_paged(n)) {
		rc = paged_fault(n, pg, ahead, write);
		ahead = 0; /* present pages are mapped by the kernel */
	} else if (alow_child(n)) {
		rc = alow_fault(n, pg, write);
		ahead = 0;
	} else if (!n->parent) {
		/* Zero pages: the page and its fault-ahead as one run,
		 * installed with the tree lock dropped (fill.c). */
		rc = fill_fault_root(n, pg, min_u64(pg + 1 + ahead, size_pages(n->size)));
	} else if (!(pl_get(&n->pages, pg) & E_PRESENT))
		rc = cow_fork_page(n, pg);
	if (rc == 0 && ahead) {
		/* Fault-ahead: best effort, never past the end; a VMO with no
		 * parent gets its zero pages in one allocation. */
		end = min_u64(pg + 1 + ahead, size_pages(n->size));
		if (n->parent)
			cow_own_pages(n, pg + 1, end);
		else
			cow_own_pages_root(n, pg + 1, end);
	}
	if (rc == 0 && write)
		restore_forget(n, pg, pg + 1);
	pmm_flush_fills(); /* copies into the mapping, batched by pmm */
	if (rc == 0) {
		VALIDATE(n);
		/* Fault-ahead may stop early (pool limit): report only the
		 * run of pages @n really owns, and none that must stay
		 * write-protected (install_protected: restored pages). */
		uint64_t owned = 1;
		while (pg + owned < end && writable_in_place(n, pg + owned))
			owned++;
		if (resolved)
			resolved(arg, owned);
	}
	tree_unlock(n->tree);
	return rc;
}

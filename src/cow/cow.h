/* SPDX-License-Identifier: MIT */
/*
 * cow — VMOs as nodes of copy-on-write clone trees (the logical model).
 *
 * Contract with the layers above:
 *  - A struct cow_node * handed out here is a non-hidden node (a VMO) with
 *    one reference held by the caller.  cow_node_unref drops it; when the
 *    last holder goes the node dies, its frames return to the pool and its
 *    hidden parent merges into the surviving sibling.
 *  - Every function takes the node's tree lock itself; callers hold no uvmo
 *    lock.  Byte ranges are checked here against the size under that lock
 *    (the size can change concurrently); callers check alignment, NULLs and
 *    overflow.
 *  - Offsets and lengths are bytes.  Errors are negative errnos as in
 *    include/uvmo/uvmo.h.
 *  - Nothing here maps memory: the logical model is testable on its own.
 */
#ifndef UVMO_COW_H
#define UVMO_COW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "base.h"

struct cow_node;

#define COW_RESIZABLE   (1u << 0)
#define COW_DISCARDABLE (1u << 1)

/* Installs the reclaim hook in pmm; call once after pmm_init. */
void cow_init(void);

/* @capacity: window pages to reserve (>= size). */
int cow_create(uint64_t size, uint64_t capacity, uint32_t flags,
	       struct cow_node **out);
void cow_node_ref(struct cow_node *n);
void cow_node_unref(struct cow_node *n);

uint64_t cow_id(const struct cow_node *n);
uint64_t cow_size(struct cow_node *n);
bool cow_is_resizable(const struct cow_node *n);
bool cow_is_discardable(const struct cow_node *n);

int cow_read(struct cow_node *n, void *buf, uint64_t off, size_t len);
int cow_write(struct cow_node *n, const void *buf, uint64_t off, size_t len);
int cow_commit(struct cow_node *n, uint64_t off, uint64_t len);
/* Any alignment; partial pages are zeroed in place. */
int cow_zero(struct cow_node *n, uint64_t off, uint64_t len);
/* Checks the range only (hint ops for anonymous VMOs). */
int cow_check_range(struct cow_node *n, uint64_t off, uint64_t len);
int cow_set_size(struct cow_node *n, uint64_t size);

/* Snapshot [off, off + size) of @n into a new node (see uvmo.h); the child
 * sees @n only in its first @visible bytes (a snapshot of a slice must not
 * see past the slice), zeros after.  -ERANGE if @off is past @n's end. */
int cow_snapshot(struct cow_node *n, uint64_t off, uint64_t size,
		 uint64_t visible, uint64_t capacity, uint32_t flags,
		 struct cow_node **out);

/* Discardable VMOs: 0 or 1 (was discarded) / -EAGAIN / -EBUSY. */
int cow_lock(struct cow_node *n, bool try_only);
int cow_unlock(struct cow_node *n);

struct cow_info {
	uint64_t size;
	uint64_t committed_bytes;
	uint64_t attributed_bytes;
	uint32_t lock_count;
	bool discarded;
};
/* Figures for the window [off, off + len) of @n (a slice passes its own). */
void cow_get_info(struct cow_node *n, uint64_t off, uint64_t len,
		  struct cow_info *info);

struct cow_stats {
	uint64_t nodes, hidden_nodes;
	uint64_t copies, moves, zero_fills, merges, discards;
	uint64_t metadata_bytes;
};
void cow_get_stats(struct cow_stats *out);

/* ---- for the mapping layer (uffd) ---- */

/*
 * A mapping of a node, kept on the node so that cow can keep it coherent.
 * The callbacks run with the tree lock held: they may make system calls on
 * the mapping but must not call into cow.
 */
struct cow_mapping;
struct cow_mapping_ops {
	/* Map the window (at pool file offset @file_offset) into place;
	 * @write_protect: the node has borrowed frames in its window, which
	 * the mapping must not write in place.  0 or a negative errno. */
	int (*install)(struct cow_mapping *m, uint64_t file_offset, bool write_protect);
	/* A snapshot was taken: remove write access from every page. */
	void (*write_protect)(struct cow_mapping *m);
	/* The node's window moved to @file_offset (remap there), or its size
	 * changed from @old_size to @new_size (pages past the old end may have
	 * been refused and must be retried). */
	void (*window_changed)(struct cow_mapping *m, uint64_t file_offset,
			       uint64_t old_size, uint64_t new_size);
};
struct cow_mapping {
	const struct cow_mapping_ops *ops;
	LIST_ENTRY(cow_mapping) link;
};

/* Make sure @n's window covers @bytes (a mapping must never reach into
 * another window), install @m through its ops and attach it, all under the
 * tree lock, so no snapshot or resize can slip in between.  The mapping
 * holds a reference on @n.  -ENOMEM if the window cannot grow, or the
 * install's error. */
int cow_mapping_attach(struct cow_node *n, struct cow_mapping *m, uint64_t bytes);
/* Install @m again (after fork(), on the child's own pool). */
int cow_mapping_reinstall(struct cow_node *n, struct cow_mapping *m);
/* Attach a piece split off an attached mapping (no install needed). */
void cow_mapping_attach_split(struct cow_node *n, struct cow_mapping *m);
/* Run @fn(@arg) under @n's tree lock: how the mapping layer changes what
 * its callbacks read (ranges, permissions) without racing them. */
void cow_mapping_update(struct cow_node *n, void (*fn)(void *arg), void *arg);
void cow_mapping_detach(struct cow_node *n, struct cow_mapping *m);
/* A fault on page @pg of @n: make @n own it (copy-on-write or zero fill),
 * and, as far as the pool allows, the @ahead pages after it (fault-ahead).
 * On success @resolved(@arg) runs before the tree lock is dropped, so that
 * e.g. lifting a write protection cannot race a new snapshot.  0, or
 * -ERANGE (past the end), -ENOMEM (pool exhausted), -ENOENT (discarded). */
int cow_fault(struct cow_node *n, uint64_t pg, uint64_t ahead,
	      void (*resolved)(void *arg), void *arg);
/* Tell cow which buffers may be uvmo mappings: those are never touched
 * with a tree lock held (they are bounced). */
void cow_set_managed_memory(bool (*managed)(const void *p, size_t len));

/* Walk and check every invariant of @n's tree; abort on violation.  Always
 * available (tests call it directly); -Dvalidation=true also runs it after
 * every mutating operation. */
void cow_validate(struct cow_node *n);

#endif

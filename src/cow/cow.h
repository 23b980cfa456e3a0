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

/* Walk and check every invariant of @n's tree; abort on violation.  Always
 * available (tests call it directly); -Dvalidation=true also runs it after
 * every mutating operation. */
void cow_validate(struct cow_node *n);

#endif

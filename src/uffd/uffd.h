/* SPDX-License-Identifier: MIT */
/*
 * uffd — address regions (VMARs), mappings and the userfaultfd fault
 * engine.  Sits on cow (which decides what every page must contain) and
 * pmm (whose memfd the mappings map).
 *
 * THE MAPPING MODEL (DESIGN.md §3)
 *
 * A mapping of a VMO is one MAP_SHARED VMA of the pool memfd over the
 * VMO's window, registered with userfaultfd in MISSING and WP modes.  By
 * cow's placement rules a window slot holds either the VMO's own frame or
 * a frame a hidden ancestor borrows from it, whose bytes are the VMO's
 * current content; anything else is a hole.  So:
 *  - pages the VMO owns, and pages it still shares with its snapshots, are
 *    mapped by the kernel at kernel speed, with no userfaultfd round trip;
 *  - a hole faults MISSING: cow gives the VMO its own frame there (copying
 *    the content from an ancestor, or a zero page), and the thread retries;
 *  - a snapshot write-protects every mapping of the VMO (one
 *    UFFDIO_WRITEPROTECT per mapping); the first write to a shared page
 *    faults WP: cow copies it on write, and the page is unprotected;
 *  - decommit, zero, shrink and restore punch window slots, which removes
 *    the pages from every mapping at once;
 *  - a fault that cannot be served (past the VMO's end, pool exhausted,
 *    discarded VMO) poisons the page (UFFDIO_POISON): that thread gets
 *    SIGBUS.  Poisons are cleared once they may succeed again.
 *
 * LOCKING
 *
 * One reader-writer lock guards every VMAR and mapping (the address-space
 * lock).  VMAR calls take it for writing; fault handlers for reading while
 * they look a mapping up and resolve the fault, so a mapping cannot vanish
 * under a handler.  Order: address-space lock → tree lock.  Code holding a
 * tree lock never touches memory that may be a uvmo mapping (cow bounces
 * such buffers), or a handler could wait on the lock its faulting thread
 * holds.
 */
#ifndef UVMO_UFFD_H
#define UVMO_UFFD_H

#include <stdint.h>

#include "base.h"
#include "cow/cow.h"

/* Dirty-tracking tiers (see "Dirty tracking" in docs/design.md). */
#define UVMO_TRACKING_AUTO  0 /* async where the kernel allows, else sync */
#define UVMO_TRACKING_SYNC  1
#define UVMO_TRACKING_ASYNC 2

struct uffd_config {
	uint64_t root_size; /* 0: default */
	uint32_t threads;   /* 0: one per CPU, pinned */
	uint32_t tracking;  /* UVMO_TRACKING_* */
	uint32_t rest_ms;   /* uvmo_config.handler_rest_ms */
};

/* Reserve the root region and start the fault handlers.  -ENOMEM if no
 * address space can be reserved; -ENOTSUP if userfaultfd is unavailable
 * or lacks shmem write-protection. */
int uffd_init(const struct uffd_config *cfg);
void uffd_fini(void);

/*
 * Calls that may touch a VMO hold the address-space lock for reading
 * (fault handlers do too; VMAR changes and fork() take it for writing), so
 * that fork() never finds a clone tree half-changed.
 */
void uffd_enter(void);
void uffd_leave(void);

/* fork() handlers, called by the API layer's pthread_atfork handlers in
 * that order around its own locks. */
void uffd_fork_prepare(void);
void uffd_fork_parent(void);
void uffd_fork_child(void);

struct vmar;

/* What a mapping maps: a node, the node offset where the VMO handle's
 * offset 0 lies (a slice's start), and how far the handle reaches. */
struct map_target {
	struct cow_node *node;
	uint64_t base;   /* node offset of the handle's offset 0 */
	uint64_t limit;  /* handle size for slices (fixed); 0: the node's size */
	bool writable;   /* the handle may write */
};

struct vmar *vmar_root(void);
void vmar_get(struct vmar *v);
void vmar_put(struct vmar *v);
uint64_t vmar_start(const struct vmar *v);

int vmar_allocate(struct vmar *parent, uint32_t options, uint64_t offset,
		  uint64_t size, struct vmar **child);
int vmar_map(struct vmar *v, uint32_t options, uint64_t vmar_offset,
	     const struct map_target *t, uint64_t vmo_offset, uint64_t len,
	     uint64_t *addr);
int vmar_unmap(struct vmar *v, uint64_t addr, uint64_t len);
int vmar_protect(struct vmar *v, uint32_t perms, uint64_t addr, uint64_t len);
int vmar_op_range(struct vmar *v, uint32_t op, uint64_t addr, uint64_t len);
int vmar_destroy(struct vmar *v);

struct uffd_stats {
	uint64_t missing_faults, wp_faults, sigbus_faults, dirty_scans;
	uint64_t direct_file_mappings;
	uint64_t dirty_scan_ns;
	uint64_t handler_rests, handler_recalls, handlers_waiting;
	bool async_tracking; /* the async tier is available */
};
void uffd_get_stats(struct uffd_stats *out);

#endif

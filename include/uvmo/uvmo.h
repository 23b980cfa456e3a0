/* SPDX-License-Identifier: MIT */
/*
 * uvmo — user-space virtual memory objects.
 *
 * uvmo gives an ordinary Linux process the memory objects of a microkernel:
 * VMOs (virtual memory objects) with a copy-on-write clone hierarchy, built
 * over one memfd frame pool.  The semantics follow Fuchsia Zircon's
 * zx_vmo_* system calls; docs/api.md lists every deviation.
 *
 * Conventions (the liburing convention):
 *  - Every call returns 0 (or a non-negative count) on success and a
 *    negative errno on failure.  Nothing reports through the global errno.
 *  - Bad input (unaligned, overflowing, out of range, wrong type, closed
 *    handle, NULL) returns an error and changes nothing.
 *  - Objects are opaque handles.  A closed handle is detected: calls on it
 *    return -EBADF (handles carry a generation number, so a stale handle is
 *    never confused with a new object).
 *  - Every call is thread-safe.  Calls on VMOs of one clone tree serialise
 *    on that tree's lock; calls on unrelated trees run in parallel.
 *  - The first call of any function initialises uvmo with defaults (see
 *    uvmo_init); uvmo_init is only needed to choose other settings.
 *
 * Errors used throughout (from Zircon's status codes):
 *   -EINVAL  invalid argument (NULL, unknown option bits, unaligned, zero size)
 *   -ERANGE  range outside the object, or offset + length overflows
 *   -ENOMEM  the frame pool limit (or host memory) is exhausted
 *   -EBUSY   the object is in a state that forbids the call
 *   -ENOTSUP the object does not support the call (e.g. resize of a VMO
 *            created without UVMO_VMO_RESIZABLE)
 *   -EACCES  the handle lacks the right (e.g. write through UVMO_CHILD_NO_WRITE)
 *   -EAGAIN  the call cannot succeed now (e.g. TRY_LOCK of a discarded VMO)
 *   -ENOENT  the content is gone (a discarded VMO not locked again)
 *   -EBADF   the handle was closed
 */
#ifndef UVMO_UVMO_H
#define UVMO_UVMO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Size of a uvmo page: the unit of commit, copy-on-write and attribution. */
#define UVMO_PAGE_SIZE 4096u

/* ------------------------------------------------------------------------ */
/* Runtime                                                                   */
/* ------------------------------------------------------------------------ */

/** Run-time settings.  Zero in any field means "the default". */
struct uvmo_config {
	/** Most bytes the frame pool may hold; beyond it allocations fail with
	 *  -ENOMEM.  Default: the environment variable UVMO_POOL_LIMIT (bytes,
	 *  with an optional K, M, G or T suffix), else unlimited. */
	uint64_t pool_limit;
	/** Bytes of pool file offsets (and of the private physmap address
	 *  range) reserved for VMO windows.  Costs no memory.  Default 64 TiB. */
	uint64_t pool_span;
	/** Capacity reserved up front for the window of a resizable VMO; a
	 *  VMO that grows past it moves to a larger window.  Default 1 GiB. */
	uint64_t resizable_window;
	/** NUMA node for frames: numa_node - 1 is the node (so that zero means
	 *  the default), i.e. 1 places frames on node 0.  Default (0): the
	 *  environment variable UVMO_NUMA_NODE if set, else local allocation. */
	int numa_node;
	/** Handler threads serving page faults; 0 (default): one per CPU,
	 *  each pinned to its CPU. */
	uint32_t fault_threads;
	/** Bytes of address space reserved at start-up for the root VMAR
	 *  (costs no memory).  Default 4 TiB, shrunk until it fits. */
	uint64_t root_vmar_size;
	/** How long a fault handler thread that serves too few faults steps
	 *  aside, in ms (see "Handler threads" in docs/design.md): 0
	 *  (default) adapts, from 10 ms doubling up to 160 ms while it keeps
	 *  finding nothing to do; UVMO_HANDLERS_NEVER_REST keeps every
	 *  handler waiting.  A resting handler still looks every 10 ms for
	 *  faults left unread, and comes back if it finds one. */
	uint32_t handler_rest_ms;
	uint32_t reserved[3];
};

/** uvmo_config.handler_rest_ms: every handler always waits for faults. */
#define UVMO_HANDLERS_NEVER_REST UINT32_MAX

/**
 * uvmo_init - initialise uvmo with explicit settings.
 * @cfg: settings, or NULL for the defaults.
 *
 * Optional: the first call of any other function initialises defaults.
 * Errors: -EBUSY if uvmo is already initialised (call uvmo_shutdown first);
 * -EINVAL for an unusable setting (span too small or not page-aligned, NUMA
 * node that does not exist, UVMO_DIRTY_TRACKING other than "sync", "async"
 * or "auto" — empty counts as unset); -ENOTSUP for UVMO_DIRTY_TRACKING=async on a kernel without
 * UFFD_FEATURE_WP_ASYNC and PAGEMAP_SCAN; -ENOMEM if the pool cannot be
 * created.
 * Thread-safety: safe, but racing with other first calls is pointless.
 */
int uvmo_init(const struct uvmo_config *cfg);

/**
 * uvmo_shutdown - close every handle and release the frame pool.
 *
 * Every handle becomes invalid (-EBADF).  A later call re-initialises.
 * UVMO_FILE_WRITEBACK file VMOs are written back first (their last close;
 * see uvmo_file_vmo_open), so this waits for that I/O.
 * Thread-safety: no other thread may be inside a uvmo call.
 */
void uvmo_shutdown(void);

/** Global counters (all since uvmo_init). */
struct uvmo_stats {
	uint64_t pool_limit;           /**< bytes; 0 = unlimited */
	uint64_t committed_bytes;      /**< frames held by all VMOs, bytes */
	uint64_t peak_committed_bytes; /**< high-water mark of committed_bytes */
	uint64_t host_bytes;           /**< what the kernel reports the pool memfd holds */
	uint64_t vmos;                 /**< live VMOs (handles not yet closed) */
	uint64_t nodes;                /**< live copy-on-write nodes, hidden ones included */
	uint64_t hidden_nodes;         /**< live hidden nodes */
	uint64_t windows;              /**< live pool windows */
	uint64_t cow_copies;           /**< pages copied on write */
	uint64_t cow_moves;            /**< pages moved down without a copy */
	uint64_t zero_fills;           /**< fresh zero pages handed out */
	uint64_t merges;               /**< hidden nodes merged into a survivor */
	uint64_t discards;             /**< discardable VMOs discarded */
	uint64_t metadata_bytes;       /**< heap bytes of page lists and nodes */
	uint64_t missing_faults;       /**< mapping faults on pages not yet in the window */
	uint64_t wp_faults;            /**< write faults on write-protected (shared) pages */
	uint64_t sigbus_faults;        /**< faults answered with SIGBUS */
	uint64_t vmars;                /**< live VMAR handles, the root's included */
	/** Dirty-tracking tier of this process: UVMO_DIRTY_TRACKING_ASYNC
	 *  (UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN, chosen when the kernel has
	 *  them) or UVMO_DIRTY_TRACKING_SYNC (write-protect faults; forced by
	 *  the environment variable UVMO_DIRTY_TRACKING=sync). */
	uint64_t dirty_tracking;
	uint64_t async_tracked_vmos;   /**< VMOs whose mapped writes the kernel tracks now */
	uint64_t dirty_scans;          /**< PAGEMAP_SCAN passes over mappings */
	uint64_t direct_file_mappings; /**< live mappings of a file itself (READONLY file VMOs) */
	uint64_t dirty_scan_ns;        /**< time spent in PAGEMAP_SCAN (the kernel's scan and re-protection), ns */
	uint64_t handler_rests;        /**< times a fault handler thread stepped aside (served too few faults) */
	uint64_t handler_recalls;      /**< rests ended early: another thread faulted, one moved to the CPU, or a fault was left unread */
	uint64_t handlers_waiting;     /**< handler threads waiting for faults now (the others rest) */
};

#define UVMO_DIRTY_TRACKING_SYNC  1 /**< see uvmo_stats.dirty_tracking */
#define UVMO_DIRTY_TRACKING_ASYNC 2

/**
 * uvmo_get_stats - read the global counters.
 * Errors: -EINVAL if @out is NULL.  Thread-safety: safe; the figures are a
 * consistent snapshot of each counter but not of all counters together.
 */
int uvmo_get_stats(struct uvmo_stats *out);

/* ------------------------------------------------------------------------ */
/* VMOs                                                                      */
/* ------------------------------------------------------------------------ */

/** A handle to a VMO.  Opaque. */
typedef struct uvmo_vmo uvmo_vmo_t;

/* uvmo_vmo_create options */
#define UVMO_VMO_RESIZABLE   (1u << 0) /**< uvmo_vmo_set_size allowed */
#define UVMO_VMO_DISCARDABLE (1u << 1) /**< may be discarded while unlocked */

/** Largest size of a VMO, in bytes (1 TiB). */
#define UVMO_VMO_MAX_SIZE (1ull << 40)

/**
 * uvmo_vmo_create - create an anonymous, zero-filled VMO.
 * @size:    bytes; a non-zero multiple of UVMO_PAGE_SIZE (zero is allowed
 *           only with UVMO_VMO_RESIZABLE).
 * @options: UVMO_VMO_RESIZABLE or UVMO_VMO_DISCARDABLE (not both).
 * @out:     receives the handle.
 *
 * No frame is allocated until a page is written or committed.  A
 * discardable VMO starts unlocked.
 * Errors: -EINVAL (NULL @out, unknown or conflicting options, unaligned or
 * zero size); -ERANGE (size above UVMO_VMO_MAX_SIZE); -ENOMEM.
 * Thread-safety: safe.
 */
int uvmo_vmo_create(uint64_t size, uint32_t options, uvmo_vmo_t **out);

/**
 * uvmo_vmo_close - drop the handle.
 *
 * The content lives on while clones still need it (or, later, while it is
 * mapped); frames nobody can see any more return to the pool at once.
 * A UVMO_FILE_WRITEBACK file VMO whose last handle, mapping and child are
 * gone first writes its changes back to the file, on uvmo's own thread,
 * after this returns (see uvmo_file_vmo_open).
 * NULL and already-closed handles are ignored.  Thread-safety: safe; calls
 * racing on the same handle either complete or return -EBADF.
 */
void uvmo_vmo_close(uvmo_vmo_t *vmo);

/**
 * uvmo_vmo_read - copy bytes out of a VMO.
 * @buf: destination; may be NULL only when @len is 0.
 *
 * Pages never written read as zero and cost nothing.  All or nothing.
 * Errors: -EINVAL (NULL), -ERANGE (past the end or overflowing), -ENOENT
 * (discarded), -EBADF.  Thread-safety: safe.
 */
int uvmo_vmo_read(uvmo_vmo_t *vmo, void *buf, uint64_t offset, size_t len);

/**
 * uvmo_vmo_write - copy bytes into a VMO.
 *
 * Writing a page shared with a clone copies it first (copy-on-write); a
 * page nobody else can see any more is taken over without a copy.
 * All or nothing: if the pool runs out, nothing is written.
 * Errors: -EINVAL, -ERANGE, -EACCES (UVMO_CHILD_NO_WRITE handle), -ENOMEM,
 * -ENOENT (discarded), -EBADF.  Thread-safety: safe.
 */
int uvmo_vmo_write(uvmo_vmo_t *vmo, const void *buf, uint64_t offset, size_t len);

/**
 * uvmo_vmo_get_size - read the size in bytes.
 * Errors: -EINVAL (NULL), -EBADF.  Thread-safety: safe.
 */
int uvmo_vmo_get_size(uvmo_vmo_t *vmo, uint64_t *size);

/**
 * uvmo_vmo_set_size - resize a resizable VMO.
 * @size: new size; a multiple of UVMO_PAGE_SIZE, at most UVMO_VMO_MAX_SIZE.
 *
 * Shrinking frees the pages cut off; growing reveals zeros — never older
 * content, even in a clone whose parent still holds data there.
 * Errors: -EINVAL (unaligned), -ERANGE (too large), -ENOTSUP (not created
 * resizable, or a slice), -EACCES (no write right), -ENOMEM, -EBADF.
 * Thread-safety: safe.
 */
int uvmo_vmo_set_size(uvmo_vmo_t *vmo, uint64_t size);

/* uvmo_vmo_op_range operations */
#define UVMO_OP_COMMIT      1u /**< give every page in range its own frame */
#define UVMO_OP_DECOMMIT    2u /**< free the range's frames; it reads zero after */
#define UVMO_OP_ZERO        3u /**< make the range read zero (any alignment) */
#define UVMO_OP_LOCK        4u /**< discardable: lock; returns 1 if it had been discarded */
#define UVMO_OP_TRY_LOCK    5u /**< discardable: lock unless discarded (-EAGAIN) */
#define UVMO_OP_UNLOCK      6u /**< discardable: unlock; at count 0 it may be discarded */
#define UVMO_OP_DONT_NEED   7u /**< hint: range not needed soon */
#define UVMO_OP_ALWAYS_NEED 8u /**< hint: keep the range resident */

/**
 * uvmo_vmo_op_range - apply an operation to a byte range.
 *
 * COMMIT acts like a write of every page without changing its bytes: after
 * it, the range is backed by frames this VMO owns.  DECOMMIT and ZERO leave
 * the range reading zero and give frames back; DECOMMIT needs page-aligned
 * ranges, ZERO takes any range (partial pages are zeroed in place).  On a
 * clone, DECOMMIT behaves like ZERO (Zircon refuses it).
 * LOCK, TRY_LOCK and UNLOCK take the whole VMO (offset 0, len = size) of a
 * UVMO_VMO_DISCARDABLE VMO; while the lock count is zero the VMO may be
 * discarded when the pool runs short, after which its content reads as an
 * error (-ENOENT) until LOCK, which returns 1 and leaves it zero-filled.
 * DONT_NEED and ALWAYS_NEED are hints; for anonymous VMOs they only check
 * the range.
 * Returns 0, or 1 from LOCK when the VMO had been discarded.
 * Errors: -EINVAL (unknown op, unaligned DECOMMIT), -ERANGE (range past
 * the end or overflowing; for LOCK/UNLOCK not the whole VMO), -EACCES
 * (COMMIT, DECOMMIT, ZERO need the write right), -ENOTSUP (LOCK ops on a
 * VMO that is not discardable), -EBUSY (UNLOCK at count 0), -EAGAIN
 * (TRY_LOCK of a discarded VMO), -ENOMEM (COMMIT: pages committed before the
 * failure stay committed), -EBADF.  Thread-safety: safe.
 */
int uvmo_vmo_op_range(uvmo_vmo_t *vmo, uint32_t op, uint64_t offset, uint64_t len);

/* uvmo_vmo_create_child options: exactly one type ... */
#define UVMO_CHILD_SNAPSHOT                (1u << 0)
#define UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE (1u << 1)
#define UVMO_CHILD_SNAPSHOT_MODIFIED       (1u << 2)
#define UVMO_CHILD_SLICE                   (1u << 3)
/* ... plus any of these modifiers */
#define UVMO_CHILD_RESIZABLE               (1u << 8)
#define UVMO_CHILD_NO_WRITE                (1u << 9)

/**
 * uvmo_vmo_create_child - create a clone of a range of @parent.
 * @offset: page-aligned start in @parent.
 * @size:   page-aligned size; a snapshot may extend past the parent's end
 *          (that tail reads zero); a slice must lie inside the parent.
 *
 * SNAPSHOT: the child sees the parent exactly as it was at this moment;
 * afterwards writes on either side are invisible to the other.  Costs no
 * frame and no per-page work; clones of clones nest to any depth.
 * SNAPSHOT_AT_LEAST_ON_WRITE: the child's copy of a page is taken no
 * earlier than now and no later than its first write of the page.  For
 * anonymous parents uvmo gives the stronger SNAPSHOT guarantee (as Zircon
 * does).  For a pager-backed parent the child shows the parent's current
 * content — later writes and supplies too — of every page it has not
 * written itself.
 * SNAPSHOT_MODIFIED: of a pager-backed parent, pages the parent modified
 * (not Clean) are snapshotted now, the rest follow at-least-on-write.  Of
 * an anonymous parent: SNAPSHOT.
 * A plain SNAPSHOT of a pager-backed VMO is refused (-ENOTSUP, as in
 * Zircon), and so is any clone but a slice of an at-least-on-write child of
 * a pager-backed VMO (uvmo keeps those one level deep).
 * SLICE: a window onto the parent with no copy: writes through either are
 * seen by both.  Snapshotting a slice snapshots that window of its parent.
 * RESIZABLE: the child may be resized (not with SLICE).
 * NO_WRITE: the child's handle cannot write (-EACCES).  A slice of a
 * NO_WRITE handle is NO_WRITE too.
 * Errors: -EINVAL (NULL, unknown bits, not exactly one type, RESIZABLE with
 * SLICE, unaligned or zero size), -ERANGE (overflow, offset past the parent,
 * a slice past the parent's end, size above the maximum), -ENOTSUP
 * (a slice of a resizable VMO; any child of a discardable VMO; the
 * pager-backed cases above), -ENOMEM, -EBADF.  Thread-safety: safe.
 */
int uvmo_vmo_create_child(uvmo_vmo_t *parent, uint32_t options, uint64_t offset,
			  uint64_t size, uvmo_vmo_t **out);

/* uvmo_vmo_info.flags */
#define UVMO_INFO_RESIZABLE   (1u << 0)
#define UVMO_INFO_DISCARDABLE (1u << 1)
#define UVMO_INFO_SLICE       (1u << 2)
#define UVMO_INFO_SNAPSHOT    (1u << 3) /**< created as a copy-on-write child */
#define UVMO_INFO_NO_WRITE    (1u << 4)
#define UVMO_INFO_DISCARDED   (1u << 5) /**< discarded and not locked since */

struct uvmo_vmo_info {
	uint64_t id;               /**< unique, never reused */
	uint64_t parent_id;        /**< the VMO it was created from, 0 for none */
	uint64_t size;             /**< bytes */
	uint64_t committed_bytes;  /**< frames this VMO owns (a slice: its window of the parent's) */
	uint64_t attributed_bytes; /**< committed + hidden-ancestor pages only it can still see */
	uint32_t num_children;     /**< live VMOs created from this one */
	uint32_t flags;            /**< UVMO_INFO_* */
	uint32_t lock_count;       /**< discardable: current lock count */
	uint32_t reserved[7];
};

/**
 * uvmo_vmo_get_info - describe a VMO.
 * Errors: -EINVAL (NULL), -EBADF.  Thread-safety: safe.
 */
int uvmo_vmo_get_info(uvmo_vmo_t *vmo, struct uvmo_vmo_info *info);

/* ------------------------------------------------------------------------ */
/* VMARs and mappings                                                        */
/* ------------------------------------------------------------------------ */

/** A handle to a VMAR (virtual memory address region).  Opaque. */
typedef struct uvmo_vmar uvmo_vmar_t;

/* uvmo_vmar_map / _protect permissions */
#define UVMO_PERM_READ    (1u << 0)
#define UVMO_PERM_WRITE   (1u << 1)
#define UVMO_PERM_EXECUTE (1u << 2)
/* placement */
#define UVMO_VMAR_SPECIFIC           (1u << 3) /**< at exactly vmar_offset */
#define UVMO_VMAR_SPECIFIC_OVERWRITE (1u << 4) /**< at vmar_offset, replacing mappings there */
/* uvmo_vmar_map only */
#define UVMO_VMAR_MAP_RANGE    (1u << 5) /**< populate now: every page of the range */
#define UVMO_VMAR_ALLOW_FAULTS (1u << 6) /**< the mapping may extend past the VMO's end */
/* uvmo_vmar_allocate only: what the new region may hold */
#define UVMO_VMAR_CAN_MAP_READ     (1u << 8)
#define UVMO_VMAR_CAN_MAP_WRITE    (1u << 9)
#define UVMO_VMAR_CAN_MAP_EXECUTE  (1u << 10)
#define UVMO_VMAR_CAN_MAP_SPECIFIC (1u << 11)

/** uvmo_vmar_op_range / uvmo_vmo_op_range: populate without writing. */
#define UVMO_OP_MAP_RANGE 9u

/**
 * uvmo_vmar_root - the root VMAR.
 *
 * A region of address space reserved at initialisation (see
 * uvmo_config.root_vmar_size), so uvmo mappings never collide with the
 * rest of the process.  It may hold anything (all CAN_MAP_* rights) and is
 * never destroyed; closing it does nothing.  NULL only if initialisation
 * failed.  Thread-safety: safe.
 */
uvmo_vmar_t *uvmo_vmar_root(void);

/**
 * uvmo_vmar_allocate - carve a sub-region out of @parent.
 * @options: CAN_MAP_* rights (within the parent's), optionally
 *           UVMO_VMAR_SPECIFIC to place it at @offset.
 * @offset:  page-aligned offset in @parent (only with SPECIFIC).
 * @size:    page-aligned, non-zero.
 * @child:   receives the handle; @addr (may be NULL) its start address.
 * Errors: -EINVAL (NULL, bad bits, unaligned or zero size), -EACCES (rights
 * beyond the parent's; SPECIFIC without the parent's CAN_MAP_SPECIFIC),
 * -ENOMEM (no room; SPECIFIC range not free), -EBADF (closed or destroyed).
 */
int uvmo_vmar_allocate(uvmo_vmar_t *parent, uint32_t options, uint64_t offset,
		       uint64_t size, uvmo_vmar_t **child, void **addr);

/**
 * uvmo_vmar_map - map [vmo_offset, vmo_offset + len) of @vmo into @vmar.
 * @options: UVMO_PERM_* (at least READ when WRITE or EXECUTE), placement
 *           (SPECIFIC, SPECIFIC_OVERWRITE), MAP_RANGE, ALLOW_FAULTS.
 * @addr:    receives the address.
 *
 * Accesses behave like ordinary memory with the VMO's copy-on-write
 * semantics, system calls included; all mappings of a VMO (and its
 * slices) and uvmo_vmo_read/_write agree byte for byte.  A mapping keeps
 * its VMO alive after uvmo_vmo_close.  An access past the VMO's end raises
 * SIGBUS; a write to a mapping without UVMO_PERM_WRITE raises SIGSEGV.
 * Errors: -EINVAL (NULL, bad bits, unaligned, zero length), -EACCES (the
 * VMAR's CAN_MAP_* or the VMO handle's rights do not allow it), -ERANGE
 * (range past the VMO's end without ALLOW_FAULTS), -ENOMEM (no room, or
 * MAP_RANGE could not commit), -EBADF.
 */
int uvmo_vmar_map(uvmo_vmar_t *vmar, uint32_t options, uint64_t vmar_offset,
		  uvmo_vmo_t *vmo, uint64_t vmo_offset, uint64_t len, void **addr);

/**
 * uvmo_vmar_unmap - remove every mapping in [addr, addr + len).
 *
 * Partly covered mappings are split; sub-VMARs inside the range are
 * destroyed.  All or nothing.  Errors: -EINVAL (unaligned, zero, outside
 * @vmar, or the range cuts a sub-VMAR in part), -EBADF.
 */
int uvmo_vmar_unmap(uvmo_vmar_t *vmar, void *addr, uint64_t len);

/**
 * uvmo_vmar_protect - change the permissions of [addr, addr + len).
 *
 * The range must be fully covered by mappings; partly covered mappings
 * are split.  All or nothing.  Errors: -EINVAL, -EACCES (beyond the VMAR's
 * or a VMO handle's rights), -ENOMEM (a hole in the range), -EBADF.
 */
int uvmo_vmar_protect(uvmo_vmar_t *vmar, uint32_t options, void *addr, uint64_t len);

/**
 * uvmo_vmar_op_range - apply a VMO operation to the mapped range.
 * @op: UVMO_OP_COMMIT, _DECOMMIT, _MAP_RANGE, _DONT_NEED, _ALWAYS_NEED.
 * Errors: as uvmo_vmo_op_range; -ENOMEM if the range has holes.
 */
int uvmo_vmar_op_range(uvmo_vmar_t *vmar, uint32_t op, void *addr, uint64_t len);

/**
 * uvmo_vmar_destroy - unmap everything in @vmar and its sub-regions; the
 * handle then refuses every call (-EBADF) until closed.  The root cannot be
 * destroyed (-EACCES).
 */
int uvmo_vmar_destroy(uvmo_vmar_t *vmar);

/** uvmo_vmar_close - drop the handle (does not unmap).  NULL is ignored. */
void uvmo_vmar_close(uvmo_vmar_t *vmar);

/* ------------------------------------------------------------------------ */
/* Pager (modelled on Zircon's zx_pager_*)                                   */
/* ------------------------------------------------------------------------ */

/** A user pager: the outside source of content of the VMOs it creates. */
typedef struct uvmo_pager uvmo_pager_t;

/* uvmo_pager_create_vmo options (UVMO_VMO_RESIZABLE also applies) */
#define UVMO_VMO_TRAP_DIRTY (1u << 2) /**< first write to a clean page asks the pager (DIRTY) */

/**
 * uvmo_pager_create - create a pager.
 * @options: must be 0.
 * Errors: -EINVAL (NULL @out, unknown options), -ENOMEM, -EMFILE.
 * Thread-safety: safe.
 */
int uvmo_pager_create(uint32_t options, uvmo_pager_t **out);

/**
 * uvmo_pager_create_vmo - create a VMO whose content the pager supplies.
 * @options: UVMO_VMO_RESIZABLE, UVMO_VMO_TRAP_DIRTY.
 * @key:     any value; it comes back in every request about this VMO.
 * @size:    bytes, a multiple of UVMO_PAGE_SIZE (zero only if resizable).
 *
 * A page that is not present (never supplied, or evicted) becomes a READ
 * request; the thread that needs it (a fault, or a call such as
 * uvmo_vmo_read) waits until the pager supplies the page or fails it.
 * Supplied pages start Clean; a write makes them Dirty — at once, or, with
 * UVMO_VMO_TRAP_DIRTY, once the pager acknowledges a DIRTY request.
 * Growing the VMO adds pages that read zero and are Dirty (they must be
 * written back).  The VMO is served through this handle: requests carry it
 * in `vmo`, and the pager calls below accept it even after it has been
 * closed, for as long as the VMO lives (mappings and other handles keep it
 * alive).  When the VMO dies, or is detached, a COMPLETE request follows.
 * Children: SLICE; SNAPSHOT_AT_LEAST_ON_WRITE and SNAPSHOT_MODIFIED (see
 * uvmo_vmo_create_child); a plain SNAPSHOT is refused (-ENOTSUP), as in
 * Zircon.
 * Errors: -EINVAL (NULL, unknown options, unaligned or zero size),
 * -ERANGE (size above UVMO_VMO_MAX_SIZE), -EBUSY (the pager is being
 * destroyed), -ENOMEM, -EBADF (a destroyed pager).  Thread-safety: safe.
 */
int uvmo_pager_create_vmo(uvmo_pager_t *pager, uint32_t options, uint64_t key,
			  uint64_t size, uvmo_vmo_t **out);

/**
 * uvmo_pager_fd - a descriptor that polls readable while requests are
 * pending (poll, epoll, io_uring IORING_OP_POLL_ADD).  Owned by the pager:
 * do not read or close it.  Returns the descriptor, or -EBADF.
 */
int uvmo_pager_fd(uvmo_pager_t *pager);

/* struct uvmo_page_request.type */
#define UVMO_PAGER_READ     1u /**< supply [offset, offset + length) */
#define UVMO_PAGER_DIRTY    2u /**< acknowledge (UVMO_PAGER_OP_DIRTY) before these pages may be written */
#define UVMO_PAGER_COMPLETE 3u /**< the VMO is gone or detached: no more requests about it */

struct uvmo_page_request {
	uint32_t type;      /**< UVMO_PAGER_READ, _DIRTY or _COMPLETE */
	uint32_t reserved;
	uint64_t key;       /**< as given to uvmo_pager_create_vmo */
	uvmo_vmo_t *vmo;    /**< the handle uvmo_pager_create_vmo returned */
	uint64_t offset;    /**< bytes, page-aligned (0 for COMPLETE) */
	uint64_t length;    /**< bytes, page-aligned (0 for COMPLETE) */
};

/**
 * uvmo_pager_get_requests - take pending requests.
 * @max:        capacity of @reqs.
 * @timeout_ms: wait up to this long for the first request; 0 does not
 *              wait, -1 waits for ever.
 *
 * Adjacent READ requests of one VMO are coalesced into one.  A request is
 * handed out once; a READ stays outstanding (threads keep waiting) until
 * the range is supplied or failed.
 * Returns the number of requests stored (0 on timeout).
 * Errors: -EINVAL (NULL @reqs with @max > 0), -EBUSY (the pager was
 * destroyed while the call waited), -EBADF (a destroyed pager's handle, as
 * any closed handle).  Thread-safety: safe; concurrent callers get
 * disjoint requests.
 */
int uvmo_pager_get_requests(uvmo_pager_t *pager, struct uvmo_page_request *reqs,
			    size_t max, int timeout_ms);

/**
 * uvmo_pager_supply_pages - provide content for [offset, offset + len).
 * @data: len bytes; NULL supplies zeros.
 *
 * Pages already present keep their content (never overwritten; the call
 * still succeeds).  Each page appears atomically — no thread sees it
 * half-filled — and every thread waiting for it wakes.
 * Errors: -EINVAL (NULL, unaligned), -ERANGE (past the end), -ENOMEM (pool
 * exhausted: pages supplied before stay), -ENOENT (@vmo is not this pager's
 * or is detached), -EBADF.  Thread-safety: safe.
 */
int uvmo_pager_supply_pages(uvmo_pager_t *pager, uvmo_vmo_t *vmo, uint64_t offset,
			    uint64_t len, const void *data);

/* uvmo_pager_op_range operations */
#define UVMO_PAGER_OP_FAIL                 1u /**< fail waiters with errno @data */
#define UVMO_PAGER_OP_DIRTY                2u /**< acknowledge DIRTY: pages become Dirty */
#define UVMO_PAGER_OP_WRITEBACK_BEGIN      3u /**< Dirty -> AwaitingClean */
#define UVMO_PAGER_OP_WRITEBACK_BEGIN_ZERO 4u /**< same, for a range written back as zeros */
#define UVMO_PAGER_OP_WRITEBACK_END        5u /**< AwaitingClean -> Clean */
#define UVMO_PAGER_OP_EVICT                6u /**< (uvmo) drop Clean pages; returns how many */

/**
 * uvmo_pager_op_range - act on a range of a pager-backed VMO.
 *
 * FAIL: every thread waiting for a page of the range is failed — a fault
 * gets SIGBUS, a call returns -@data — and later accesses ask again.
 * @data must be one of EIO, EINVAL, ENOMEM, ENOSPC, EBUSY, EACCES, ENOENT
 * (else -EINVAL).
 * DIRTY: acknowledges DIRTY requests: Clean pages of the range become
 * Dirty and their writers proceed.  Pages not present are skipped.
 * WRITEBACK_BEGIN(_ZERO): Dirty pages become AwaitingClean and lose write
 * access, so that a write during writeback makes them Dirty again.
 * WRITEBACK_END: AwaitingClean pages become Clean.
 * EVICT: Clean pages of the range are dropped (a later access asks again);
 * Dirty and AwaitingClean pages are kept.  Returns the pages evicted.
 * Errors: -EINVAL (NULL, unknown op, unaligned, bad errno for FAIL), -ERANGE
 * (past the end), -ENOENT (@vmo not this pager's, or detached), -EBADF.
 * Thread-safety: safe.
 */
int uvmo_pager_op_range(uvmo_pager_t *pager, uint32_t op, uvmo_vmo_t *vmo,
			uint64_t offset, uint64_t len, uint64_t data);

/** A run of pages (see uvmo_pager_query_dirty_ranges and uvmo_vmo_diff). */
struct uvmo_dirty_range {
	uint64_t offset;  /**< bytes */
	uint64_t length;  /**< bytes */
	uint64_t options; /**< UVMO_DIRTY_RANGE_IS_ZERO */
};
#define UVMO_DIRTY_RANGE_IS_ZERO (1u << 0) /**< the run reads zero (write back zeros) */

/**
 * uvmo_pager_query_dirty_ranges - list the runs of pages in
 * [offset, offset + len) that are not Clean (Dirty or AwaitingClean), in
 * order, adjacent pages of the same kind merged.
 * @out, @max: where to store up to @max runs.
 * @actual:    runs stored (may be NULL).
 * @avail:     runs that exist in the range in all (may be NULL); call
 *             again from the end of the last run stored to resume.
 * Errors: -EINVAL (NULL @out with @max > 0, unaligned), -ERANGE, -ENOENT,
 * -EBADF.  Thread-safety: safe.
 */
int uvmo_pager_query_dirty_ranges(uvmo_pager_t *pager, uvmo_vmo_t *vmo,
				  uint64_t offset, uint64_t len,
				  struct uvmo_dirty_range *out, size_t max,
				  size_t *actual, size_t *avail);

/* uvmo_pager_query_vmo_stats options */
#define UVMO_PAGER_RESET_VMO_STATS (1u << 0)

struct uvmo_pager_vmo_stats {
	uint32_t modified; /**< 1 if written (or resized) since the last reset */
	uint32_t reserved[3];
};

/**
 * uvmo_pager_query_vmo_stats - was the VMO modified since the last reset?
 * @options: UVMO_PAGER_RESET_VMO_STATS clears the flag after reading it.
 * Errors: -EINVAL, -ENOENT, -EBADF.  Thread-safety: safe.
 */
int uvmo_pager_query_vmo_stats(uvmo_pager_t *pager, uvmo_vmo_t *vmo,
			       uint32_t options, struct uvmo_pager_vmo_stats *out);

/**
 * uvmo_pager_detach_vmo - end the pager's service of @vmo.
 *
 * Threads waiting for pages fail (SIGBUS, or -EBUSY for calls) and so do
 * later accesses to pages not present; pages present stay readable.
 * Dirty pages not yet written back are reported on stderr.  A COMPLETE
 * request follows.
 * Errors: -EINVAL, -ENOENT (not this pager's, or already detached), -EBADF.
 * Thread-safety: safe.
 */
int uvmo_pager_detach_vmo(uvmo_pager_t *pager, uvmo_vmo_t *vmo);

/**
 * uvmo_pager_destroy - detach every VMO and close the pager's handle (later
 * calls with it return -EBADF; calls waiting in it return -EBUSY).  Pending
 * requests are dropped; the descriptor closes.  NULL is ignored.
 * Thread-safety: no other thread may use @pager during or after the call.
 */
void uvmo_pager_destroy(uvmo_pager_t *pager);

/* ------------------------------------------------------------------------ */
/* io_uring file pager                                                       */
/* ------------------------------------------------------------------------ */

/* uvmo_file_vmo_open options */
#define UVMO_FILE_READONLY  (1u << 0) /**< the VMO handle cannot write (-EACCES) */
#define UVMO_FILE_WRITEBACK (1u << 1) /**< uvmo_file_vmo_sync and the last close write changes to the file */
#define UVMO_FILE_PAGED     (1u << 2) /**< READONLY: mappings go through the pager too (see uvmo_file_vmo_open) */

/**
 * uvmo_file_vmo_open - a VMO showing the content of the file @fd.
 *
 * The VMO is as large as the file, rounded up to whole pages (the tail
 * past the end of the file reads zero).  Pages are read lazily, on first
 * access, by uvmo's pager thread with io_uring (batched, with read-ahead
 * that grows while access is sequential).  uvmo duplicates @fd; the caller
 * keeps its own.  Without UVMO_FILE_WRITEBACK, writes stay in memory and
 * are never written to the file.  With it, uvmo_file_vmo_sync writes them,
 * and so does the last close: once the VMO's last handle, mapping and
 * child are gone (or at uvmo_shutdown), uvmo writes its unsynced changes
 * back (and fsyncs) on its own thread before freeing the content; the
 * duplicated fd is closed after that.  If that writeback fails the changes
 * are lost, which is said on stderr naming the file.  A fork() child never
 * writes the parent's changes back.  A file I/O error reaches a faulting
 * thread as SIGBUS and a call as -EIO.
 *
 * Read-only mappings of a UVMO_FILE_READONLY VMO map the file itself, as
 * mmap(2) of it would (unless UVMO_FILE_PAGED): the kernel serves them from
 * its page cache, with its own read-ahead and fault-around, and no access
 * ever waits for uvmo; they hold no frames of the pool (the memory limit
 * does not apply to them; the page cache is reclaimable).  For that uvmo
 * opens the file a second time, read-only, through /proc/self/fd; where it
 * cannot (no descriptor to spare, no /proc), and for files on hugetlbfs or
 * a noexec mount, the mappings go through the pager instead.  Calls,
 * children and UVMO_FILE_PAGED mappings go through the pager and see the
 * same bytes — while the file does not change underneath: like mmap, a
 * direct mapping shows later writes to the file by anyone else (another
 * process, a write(2) of this one, a WRITEBACK VMO of the same file's sync)
 * at once, where the pager's frames show them once re-read; and a file
 * truncated under it raises SIGBUS past its new end even on pages read
 * before.  uvmo_stats counts such mappings in direct_file_mappings.
 * Errors: -EINVAL (NULL @out, unknown options, both READONLY and WRITEBACK, fd not a
 * regular file, an empty file), -EBADF (bad fd, O_PATH fd), -EACCES (an
 * O_WRONLY fd; WRITEBACK on a fd not opened O_RDWR), -ERANGE (file larger
 * than UVMO_VMO_MAX_SIZE), -ENOMEM, -EMFILE (no descriptor left for uvmo's
 * duplicate).  Thread-safety: safe.
 */
int uvmo_file_vmo_open(int fd, uint32_t options, uvmo_vmo_t **out);

/**
 * uvmo_file_vmo_sync - write every Dirty page back to the file, then fsync.
 *
 * Pages written during the sync stay Dirty for the next one.
 * Errors: -EINVAL (not a file VMO, or opened without UVMO_FILE_WRITEBACK),
 * -EIO (a write or the fsync failed: the pages stay Dirty), -EBADF.
 * Thread-safety: safe.
 */
int uvmo_file_vmo_sync(uvmo_vmo_t *vmo);

/**
 * uvmo_file_vmo_set_memory_limit - bound the frames a file VMO keeps.
 * When more than @high bytes are present, Clean pages are evicted (oldest
 * supplied first) until at most @low remain; Dirty pages stay until
 * synced.  @high = 0 removes the limit.
 * Errors: -EINVAL (not a file VMO, @low > @high, unaligned), -EBADF.
 * Thread-safety: safe.
 */
int uvmo_file_vmo_set_memory_limit(uvmo_vmo_t *vmo, uint64_t high, uint64_t low);

/* ------------------------------------------------------------------------ */
/* Snapshot, restore and diff of live VMOs                                   */
/* ------------------------------------------------------------------------ */

/**
 * uvmo_vmo_snapshot - a read-only snapshot of @vmo as it is now.
 *
 * @vmo may be mapped and in use by other threads: the snapshot costs one
 * write-protect pass over each of its mappings and nothing per page until
 * a page is written (the first write of a page after it is copied on
 * write).  *@snap is a NO_WRITE VMO like a SNAPSHOT child: it can be read,
 * mapped read-only, diffed and restored from, any number of times, and
 * several snapshots of one VMO may live at once.  Closing it gives its
 * memory back.
 * Errors: -EINVAL (NULL), -ENOTSUP (slice, discardable or pager-backed
 * VMO, or an at-least-on-write child of one), -ENOMEM, -EBADF.
 * Thread-safety: safe.
 */
int uvmo_vmo_snapshot(uvmo_vmo_t *vmo, uvmo_vmo_t **snap);

/**
 * uvmo_vmo_restore - make @vmo's content (and size, if @vmo is resizable)
 * that of @snap.
 *
 * @snap must be a snapshot of @vmo (uvmo_vmo_snapshot), taken at any time,
 * or a snapshot of one of those.  The cost is proportional to the pages in
 * which the two differ, not to the size: pages written since are copied
 * back (in place, so every mapping keeps its pages and sees the restored
 * bytes at once) and pages created since are dropped.  Restoring to the
 * same snapshot again costs only the pages written since the last restore.
 * Other threads may keep mappings of @vmo; their writes racing the restore
 * are either restored over or land after it, page by page.
 * Errors: -EINVAL (NULL, or @snap is not a snapshot of @vmo, or sizes
 * differ and @vmo is not resizable), -EACCES (@vmo's handle cannot write),
 * -ENOTSUP (slices), -ENOMEM (nothing changed), -EBADF.
 * Thread-safety: safe.
 */
int uvmo_vmo_restore(uvmo_vmo_t *vmo, uvmo_vmo_t *snap);

/**
 * uvmo_vmo_diff - the page ranges of [offset, offset + len) in which @vmo
 * differs from its snapshot @snap (written since the snapshot or since the
 * last restore to it), in order, adjacent pages merged.
 * Same output convention as uvmo_pager_query_dirty_ranges: up to @max runs
 * stored in @out, *@actual stored, *@avail in all; resume from the end of
 * the last run stored.  Pages are compared byte by byte where the clone
 * tree cannot tell: a page only read through a mapping, or written back
 * with the bytes it had, is not listed.
 * Errors: -EINVAL (NULL @out with @max > 0, unaligned, not a snapshot of
 * @vmo), -ERANGE, -EBADF.  Thread-safety: safe.
 */
int uvmo_vmo_diff(uvmo_vmo_t *vmo, uvmo_vmo_t *snap, uint64_t offset, uint64_t len,
		  struct uvmo_dirty_range *out, size_t max, size_t *actual, size_t *avail);

/**
 * uvmo_vmo_duplicate - a second handle to the same VMO, with the same
 * rights and window.  Each handle is closed on its own.
 * Errors: -EINVAL (NULL), -ENOMEM, -EBADF.  Thread-safety: safe.
 */
int uvmo_vmo_duplicate(uvmo_vmo_t *vmo, uvmo_vmo_t **out);

#ifdef __cplusplus
}
#endif

#endif /* UVMO_UVMO_H */

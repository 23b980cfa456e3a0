/* SPDX-License-Identifier: MIT */
/*
 * uvmo/fuzz.h — resettable memory for fuzzing harnesses.
 *
 * A fuzz target whose state survives from one input to the next (global
 * tables, counters, caches, leaked heap objects) gives answers that depend
 * on every input it ran before, so a crash found after a million inputs
 * often does not reproduce from the one input that "caused" it.  A fork
 * server avoids that by running each input in a fresh child, at the price
 * of a fork() per input (milliseconds for a large process).  This helper
 * avoids it at a price proportional to the pages an input dirtied:
 *
 *   1. place the target's mutable state in fuzz regions — uvmo VMOs mapped
 *      read/write in the root VMAR (uvmo_fuzz_region, uvmo_fuzz_adopt), or
 *      objects from the region-backed bump allocator (uvmo_fuzz_alloc);
 *   2. initialise the target, then uvmo_fuzz_arm(): every region is
 *      snapshotted (uvmo_vmo_snapshot) — this is the pristine state;
 *   3. after each input, uvmo_fuzz_reset(): every region is restored to its
 *      pristine snapshot (uvmo_vmo_restore) in place, at the addresses the
 *      target already holds pointers to.
 *
 * Built only on the public API of uvmo.h.  Conventions are uvmo.h's: calls
 * return 0 (or a count) or a negative errno.  One registry per process:
 * the regions, their snapshots and the allocator are process-wide.
 *
 * What it does not reset: anything outside the regions — the target's own
 * .data/.bss globals, its malloc heap, file descriptors, other threads.
 * Move such state into a region (docs/fuzzing.md shows how).
 */
#ifndef UVMO_FUZZ_H
#define UVMO_FUZZ_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Size of the allocator's region when uvmo_fuzz_heap was not called:
 *  address space only; pages cost memory once touched. */
#define UVMO_FUZZ_HEAP_DEFAULT_SIZE (64u << 20)

/** Alignment of every uvmo_fuzz_alloc result. */
#define UVMO_FUZZ_ALLOC_ALIGN 16u

/**
 * uvmo_fuzz_region - a new fuzz region: a zero-filled VMO of @size bytes
 * (rounded up to whole pages) mapped read/write in uvmo_vmar_root().
 * @addr: receives its address.
 *
 * Pages cost memory only once touched.  Must be called before
 * uvmo_fuzz_arm: a region created during a run would outlive it.
 * Errors: -EINVAL (NULL @addr, zero @size), -ERANGE (@size above
 * UVMO_VMO_MAX_SIZE), -EBUSY (already armed), -ENOMEM (pool, address
 * space or registry exhausted), or any error of uvmo_vmo_create /
 * uvmo_vmar_map.  On error nothing is created.
 * Thread-safety: safe.
 */
int uvmo_fuzz_region(size_t size, void **addr);

/**
 * uvmo_fuzz_adopt - a new fuzz region holding a copy of @len bytes at @src
 * (the rest of its last page reads zero).
 *
 * For state the target has already built in ordinary memory: adopt it,
 * then point the target at *@addr.  @src is left as it is.
 * Errors: as uvmo_fuzz_region; -EINVAL also for NULL @src.
 * Thread-safety: safe.
 */
int uvmo_fuzz_adopt(const void *src, size_t len, void **addr);

/**
 * uvmo_fuzz_heap - create the region uvmo_fuzz_alloc allocates from, with
 * @size bytes (rounded up to whole pages).
 *
 * Optional: the first uvmo_fuzz_alloc creates one of
 * UVMO_FUZZ_HEAP_DEFAULT_SIZE bytes.  Unlike other regions the heap may be
 * created after uvmo_fuzz_arm (it is then snapshotted empty at once).
 * Errors: -EEXIST (the heap exists), else as uvmo_fuzz_region.
 * Thread-safety: safe.
 */
int uvmo_fuzz_heap(size_t size);

/**
 * uvmo_fuzz_alloc - @size bytes of zero-filled memory in the fuzz heap,
 * aligned to UVMO_FUZZ_ALLOC_ALIGN (a bump allocator: no free).
 *
 * Before uvmo_fuzz_arm it allocates the target's long-lived state (part of
 * the pristine snapshot).  After it, allocations belong to the current run:
 * uvmo_fuzz_reset rewinds the allocator to where it stood at arm time and
 * drops their content, so a run's allocations never accumulate.
 * Returns NULL if @size is 0, if the heap is full, or if it could not be
 * created (uvmo_fuzz_heap's errors).
 * Thread-safety: safe (lock-free); not async-signal-safe the first time,
 * when it may create the heap.
 */
void *uvmo_fuzz_alloc(size_t size);

/**
 * uvmo_fuzz_arm - take the pristine snapshot of every region (the heap
 * included, if it exists) and remember where the allocator stands.
 *
 * Call once the target is initialised.  Calling it again replaces the
 * pristine state with the current one.
 * Cost: one uvmo_vmo_snapshot per region (a write-protect pass over its
 * mapping; nothing per page).
 * Errors: -ENOENT (no region), -ENOMEM or another error of
 * uvmo_vmo_snapshot; on error the previous pristine state (if any) is kept.
 * Thread-safety: safe, but the target should be quiescent: a write that
 * races with arm may or may not be part of the pristine state.
 */
int uvmo_fuzz_arm(void);

/**
 * uvmo_fuzz_reset - restore every region to its pristine snapshot and
 * rewind the allocator.
 *
 * Pages the run wrote get their pristine bytes back in place (every
 * pointer into a region stays valid); pages it touched for the first time
 * read zero again.  Cost: that of uvmo_vmo_restore, proportional to the
 * pages written since the last reset, not to the regions' size.
 * Errors: -EBUSY (not armed), or an error of uvmo_vmo_restore (-ENOMEM):
 * the regions before the failing one are restored; call again.
 * Thread-safety: safe, but the target must be quiescent: a write racing
 * the reset may land before or after it.
 */
int uvmo_fuzz_reset(void);

/**
 * uvmo_fuzz_dirty_pages - count the pages, over all regions, that differ
 * from the pristine snapshot (written since arm or the last reset), using
 * uvmo_vmo_diff, which decides what differs (see uvmo.h).
 * @count: receives the count.
 * For statistics (pages a run dirties); a reset does not need it.
 * Errors: -EINVAL (NULL @count), -EBUSY (not armed), an error of
 * uvmo_vmo_diff.  Thread-safety: safe.
 */
int uvmo_fuzz_dirty_pages(size_t *count);

/**
 * uvmo_fuzz_release - unmap and close every region and snapshot; the
 * helper returns to its initial state (not armed, no heap).
 *
 * Every address the helper returned becomes invalid.  Call it before
 * uvmo_shutdown (which invalidates the handles the helper holds).
 * Thread-safety: no thread may use a region during or after the call.
 */
void uvmo_fuzz_release(void);

#ifdef __cplusplus
}
#endif

#endif /* UVMO_FUZZ_H */

/* SPDX-License-Identifier: MIT */
/*
 * The randomised differential test through mappings (DESIGN.md section 7,
 * issue 3 section 4): random VMO operations, clones, and random map /
 * unmap / protect / op_range, with reads and writes going through
 * mappings as well as through calls.  After every operation that reads,
 * the bytes seen through the mapping, the bytes uvmo_vmo_read returns, and
 * the reference model (model.h) must agree.  Accesses that must fault are
 * probed too: a write to a read-only mapping raises SIGSEGV, an access
 * past the end of a VMO raises SIGBUS, and neither changes anything.
 *
 * Several threads may run at once, each on VMO trees of its own (and, with
 * MAPPED_SHARED_BASE, on snapshots of one VMO they all share), mapping
 * into the root VMAR and into sub-VMARs of their own.
 *
 * A single-threaded run is a pure function of (seed, nops, flags); a
 * threaded run replays each thread's operations but not their interleaving.
 */
#ifndef UVMO_TESTS_MAPPED_H
#define UVMO_TESTS_MAPPED_H

#include <stddef.h>
#include <stdint.h>

#define MAPPED_TRACE       (1u << 0) /* print every operation to stderr */
#define MAPPED_SHARED_BASE (1u << 1) /* threads also snapshot one shared VMO */
#define MAPPED_MAP_RANGE   (1u << 2) /* also MAP_RANGE: the map option and the op_range op */
#define MAPPED_SYSCALLS    (1u << 3) /* also read(2) / write(2) through mappings */
#define MAPPED_SUMMARY     (1u << 4) /* print a one-line summary per thread */
#define MAPPED_NO_PAST_END (1u << 5) /* do not probe accesses past a VMO's end */
#define MAPPED_RESTORE     (1u << 6) /* also live snapshots, restores and diffs of each
				       * thread's VMOs; and one VMO mapped once that all
				       * threads write through until a barrier, then one
				       * restores it (or snapshots it anew), then all check */
#define MAPPED_PAGER       (1u << 7) /* some roots are pager-backed VMOs (one pager, served
				       * by a pager thread that supplies model_pager_byte),
				       * with slices and at-least-on-write children that
				       * follow their parent's current content (not with
				       * MAPPED_MAP_RANGE or MAPPED_RESTORE) */

/**
 * mapped_run - run one randomised differential test through mappings.
 * @seed:     seeds every thread's generator (thread t uses seed + t).
 * @nops:     operations per thread.
 * @nthreads: threads running at once (1 runs on the calling thread).
 * @flags:    MAPPED_*.
 * @errbuf:   receives the first divergence: seed, thread, operation index,
 *            the operation, expected vs got, and the thread's last operations.
 *
 * Expects to be the only user of uvmo in the process while it runs: at the
 * end every mapping is gone, every VMO closed, and the pool's committed
 * bytes and live VMOs must be back where they started.
 * Returns 0 if everything agreed, -1 otherwise.
 */
int mapped_run(uint64_t seed, unsigned nops, unsigned nthreads, unsigned flags, char *errbuf,
	       size_t errlen);

#endif /* UVMO_TESTS_MAPPED_H */

/* SPDX-License-Identifier: MIT */
/*
 * The randomised differential test (DESIGN.md section 7): random sequences
 * of VMO operations run against uvmo and against the reference model
 * (model.h); every byte read and every return code must agree.
 *
 * A run is a pure function of (seed, nops, flags): the same triple replays
 * the same operations.  Each generated operation is also recorded as a
 * struct diff_op, so a failing run can be replayed from its record and
 * shrunk to a minimal failing sequence (see soak.c).
 */
#ifndef UVMO_TESTS_DIFFERENTIAL_H
#define UVMO_TESTS_DIFFERENTIAL_H

#include <stddef.h>
#include <stdint.h>

/* diff_run flags */
#define DIFF_SNAPSHOTS_ONLY (1u << 0) /* only snapshot-of-snapshot chains; depth >= 8 asserted */
#define DIFF_CHURN          (1u << 1) /* heavy create / close churn, parents closed first: merges */
#define DIFF_THREADS        (1u << 2) /* two threads, each on its own VMO trees */
#define DIFF_TRACE          (1u << 3) /* print every operation to stderr */
#define DIFF_NO_ERRORS      (1u << 4) /* do not generate deliberately invalid calls */
#define DIFF_SUMMARY        (1u << 5) /* print a one-line summary of the run to stderr */
#define DIFF_SMALL_WINDOW   (1u << 6) /* (re)initialise uvmo with 4-page windows for
					* resizable VMOs, so growing ones move windows */
#define DIFF_POOL_LIMIT     (1u << 7) /* (re)initialise uvmo with a pool limit of
					* DIFF_POOL_LIMIT_BYTES: calls that need frames
					* may fail with -ENOMEM, and must change nothing */

#define DIFF_NO_LEAK_CHECK  (1u << 8) /* skip the "pool holds no more than eager copies
					* of the live VMOs" bound (to hunt other bugs
					* while a known leak is open) */

#define DIFF_RESTORE        (1u << 9) /* also live snapshots (uvmo_vmo_snapshot), restores
					* to random earlier ones, and diffs against them */

#define DIFF_PAGER         (1u << 10) /* some roots are pager-backed VMOs, served by a pager
					* thread of the run that supplies a deterministic
					* pattern; their slices and at-least-on-write children
					* join in (ignored with DIFF_POOL_LIMIT; not meant to
					* be combined with DIFF_RESTORE) */

#define DIFF_PAGER_SLICES_ONLY (1u << 11) /* with DIFF_PAGER: no at-least-on-write
					    * children in pager-backed trees */

#define DIFF_POOL_LIMIT_BYTES (256u * 4096u)

/* Depth (clone generations below a root) every run of DIFF_MIN_OPS_FOR_DEPTH
 * operations or more must reach; DIFF_SNAPSHOTS_ONLY must reach 8. */
#define DIFF_MIN_DEPTH         4u
#define DIFF_MIN_CHAIN_DEPTH   8u
#define DIFF_MIN_OPS_FOR_DEPTH 2000u

/**
 * diff_run - run one randomised differential test.
 * @seed:   seeds the generator; printed in every failure message.
 * @nops:   operations to generate (the final close of every live VMO and
 *          the end-of-run accounting checks come on top).
 * @flags:  DIFF_*.
 * @errbuf: receives a one-paragraph description of the first divergence
 *          (seed, thread, operation index, the operation, expected vs got).
 *
 * Expects to be the only user of uvmo in the process while it runs (it
 * checks global counters: at the end every frame must be back in the pool).
 * With DIFF_SMALL_WINDOW or DIFF_POOL_LIMIT it shuts uvmo down and
 * initialises it afresh with the settings those need.
 * Returns 0 if uvmo and the model agreed throughout, -1 otherwise.
 */
int diff_run(uint64_t seed, unsigned nops, unsigned flags, char *errbuf, size_t errlen);

/* ---- recording, replay, shrinking (single-threaded runs) --------------- */

/* One recorded operation.  VMOs are named by serial numbers that the run
 * hands out (1, 2, ...), never reused, so a recording can be replayed with
 * any subset of its operations: an operation on a VMO that does not exist
 * in the replay is skipped. */
struct diff_op {
	uint8_t kind;     /* enum diff_kind in differential.c */
	uint8_t variant;  /* kind-specific: which call, which error case */
	uint32_t vmo;     /* serial of the VMO operated on (0: none) */
	uint32_t result;  /* serial a create gives its VMO */
	uint32_t options; /* create options, op code */
	uint64_t offset;
	uint64_t len;     /* or size */
	uint64_t data;    /* seed of the bytes written; restore / diff: the
			   * snapshot's serial */
};

struct diff_log {
	struct diff_op *ops;
	size_t count, cap;
	/* If > 0, every operation is also written here (raw struct diff_op)
	 * before it runs, so the recording survives a crash of the process. */
	int fd;
};

/* Like diff_run, but records every executed operation into @log (which the
 * caller frees with diff_log_free).  Single-threaded only. */
int diff_run_logged(uint64_t seed, unsigned nops, unsigned flags, struct diff_log *log,
		    char *errbuf, size_t errlen);

/* Replays @ops in order against uvmo and a fresh model, then closes what is
 * left and checks the end-of-run accounting.  Returns 0 or -1 like diff_run.
 * @flags: only DIFF_TRACE, DIFF_SMALL_WINDOW and DIFF_POOL_LIMIT matter. */
int diff_replay(const struct diff_op *ops, size_t count, unsigned flags, char *errbuf,
		size_t errlen);

/* Writes a one-line description of @op (as the trace prints it). */
void diff_op_format(const struct diff_op *op, char *buf, size_t len);

/* For shrinking: if @op creates a clone, writes to @root an operation that
 * creates a root VMO of the same size in its place and returns 1; else 0. */
int diff_op_to_root(const struct diff_op *op, struct diff_op *root);

void diff_log_free(struct diff_log *log);

#endif /* UVMO_TESTS_DIFFERENTIAL_H */

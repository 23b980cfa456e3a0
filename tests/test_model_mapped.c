/* SPDX-License-Identifier: MIT */
/*
 * The reference-model differential test through mappings (issue 3,
 * section 4): random VMO operations, clones, and map / unmap / protect /
 * op_range, with reads and writes through mappings and calls, checked
 * against the model — on one thread and on several at once.  Every failure
 * names the seed, the thread, the operation and the thread's last
 * operations (see tests/model/mapped.h).
 */
#include <criterion/criterion.h>

#include <uvmo/uvmo.h>

#include "model/mapped.h"

#define OPS 6000u

static void run(uint64_t seed, unsigned nops, unsigned threads, unsigned flags)
{
	static char err[8192];
	int rc = mapped_run(seed, nops, threads, flags, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s", err);
}

Test(model_mapped, one_thread_seed_1, .timeout = 60)
{
	run(1, OPS, 1, 0);
}

Test(model_mapped, one_thread_seed_2, .timeout = 60)
{
	run(2, OPS, 1, 0);
}

Test(model_mapped, one_thread_seed_3_shared_base, .timeout = 60)
{
	run(3, OPS, 1, MAPPED_SHARED_BASE);
}

Test(model_mapped, four_threads_own_trees, .timeout = 60)
{
	run(11, OPS / 2, 4, 0);
}

Test(model_mapped, four_threads_snapshotting_a_shared_base, .timeout = 60)
{
	run(12, OPS / 2, 4, MAPPED_SHARED_BASE);
}

Test(model_mapped, eight_threads_short_runs, .timeout = 60)
{
	run(13, OPS / 4, 8, MAPPED_SHARED_BASE);
}

/* Content only: no probes past a VMO's end (SIGBUS), so that a bug there
 * does not hide everything else from these two. */
Test(model_mapped, one_thread_content_only, .timeout = 60)
{
	run(31, OPS, 1, MAPPED_NO_PAST_END);
}

Test(model_mapped, four_threads_content_only, .timeout = 60)
{
	run(32, OPS / 2, 4, MAPPED_NO_PAST_END | MAPPED_SHARED_BASE);
}

/* The same engine (content only) with the operations that go through the
 * kernel on the mapped memory: read(2) and write(2) into and out of
 * mappings, and MAP_RANGE (which populates by faulting from kernel mode). */
Test(model_mapped, one_thread_with_system_calls, .timeout = 60)
{
	run(21, OPS, 1, MAPPED_SYSCALLS | MAPPED_NO_PAST_END);
}

Test(model_mapped, one_thread_with_map_range, .timeout = 60)
{
	run(22, OPS, 1, MAPPED_MAP_RANGE | MAPPED_NO_PAST_END);
}

Test(model_mapped, four_threads_with_system_calls_and_map_range, .timeout = 60)
{
	run(23, OPS / 2, 4,
	    MAPPED_SYSCALLS | MAPPED_MAP_RANGE | MAPPED_SHARED_BASE | MAPPED_NO_PAST_END);
}

/* The restore runs must also exercise the async dirty-tracking tier where
 * it is the tier in use: the barrier rounds restore one VMO again and
 * again, which moves it there (uvmo.h, uvmo_vmo_restore). */
static void run_restore(uint64_t seed, unsigned nops, unsigned threads, unsigned flags)
{
	run(seed, nops, threads, flags);
	struct uvmo_stats st;
	cr_assert_eq(uvmo_get_stats(&st), 0);
	if (st.dirty_tracking == UVMO_DIRTY_TRACKING_ASYNC)
		cr_expect_gt(st.dirty_scans, 0, "the async tier was never used by the run");
	else
		cr_expect_eq(st.dirty_scans, 0);
}

/* Live snapshots, restores and diffs of each thread's VMOs through their
 * mappings (every mapping of a restored VMO is checked at once); and one
 * VMO mapped once, which all threads write through until a barrier, then
 * thread 0 restores it (or snapshots it anew), then all check their part. */
Test(model_mapped, one_thread_restore, .timeout = 60)
{
	run_restore(41, OPS, 1, MAPPED_RESTORE);
}

Test(model_mapped, one_thread_restore_content_only, .timeout = 60)
{
	run_restore(42, OPS, 1, MAPPED_RESTORE | MAPPED_NO_PAST_END | MAPPED_SYSCALLS | MAPPED_MAP_RANGE);
}

Test(model_mapped, four_threads_restore, .timeout = 60)
{
	run_restore(43, OPS / 2, 4, MAPPED_RESTORE | MAPPED_SHARED_BASE);
}

Test(model_mapped, eight_threads_restore_short_runs, .timeout = 60)
{
	run_restore(44, OPS / 4, 8, MAPPED_RESTORE | MAPPED_NO_PAST_END);
}

/* Pager-backed roots, their slices and at-least-on-write children, mapped,
 * written and read through mappings, calls and system calls. */
Test(model_mapped, one_thread_pager, .timeout = 60)
{
	run(51, OPS, 1, MAPPED_PAGER);
}

Test(model_mapped, one_thread_pager_with_system_calls, .timeout = 60)
{
	run(52, OPS, 1, MAPPED_PAGER | MAPPED_SYSCALLS | MAPPED_NO_PAST_END);
}

Test(model_mapped, four_threads_pager, .timeout = 60)
{
	run(53, OPS / 2, 4, MAPPED_PAGER | MAPPED_SHARED_BASE);
}

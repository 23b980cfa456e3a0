/* SPDX-License-Identifier: MIT */
/*
 * The reference-model suite (DESIGN.md section 7): the model checked on its
 * own, then randomised differential runs of uvmo against it.  Every failure
 * message names the seed, the operation index and the operation; rerun one
 * with `soak --replay SEED NOPS FLAGS --trace` (build/tests/soak).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <uvmo/uvmo.h>

#include "model/differential.h"
#include "model/model.h"

#define PG UVMO_PAGE_SIZE
#define OPS 20000u

static void run(uint64_t seed, unsigned nops, unsigned flags)
{
	char err[2048];
	int rc = diff_run(seed, nops, flags, err, sizeof(err));

	cr_assert_eq(rc, 0, "%s", err);
}

/* ---- the model itself: the semantics it states, checked by hand -------- */

static uint8_t byte_at(const struct model_vmo *m, uint64_t offset)
{
	uint8_t b;

	model_read(m, offset, &b, 1);
	return b;
}

Test(model, model_snapshot_copies_and_zero_fills_the_tail)
{
	struct model_vmo *p = model_create(2 * PG, false);
	uint8_t x = 7, y = 9;

	model_write(p, PG + 5, &x, 1);
	/* Snapshot of the second page, two pages long: its second page lies
	 * past the parent's end and reads zero. */
	struct model_vmo *c = model_snapshot(p, PG, 2 * PG);

	cr_assert_eq(byte_at(c, 5), 7);
	cr_assert_eq(byte_at(c, PG + 5), 0);
	model_write(p, PG + 5, &y, 1);
	cr_assert_eq(byte_at(c, 5), 7, "a snapshot must not see later parent writes");
	model_write(c, 6, &y, 1);
	cr_assert_eq(byte_at(p, PG + 6), 0, "the parent must not see snapshot writes");
	model_close(p);
	cr_assert_eq(byte_at(c, 5), 7, "a snapshot outlives its parent");
	model_close(c);
}

Test(model, model_slices_alias_their_root)
{
	struct model_vmo *r = model_create(4 * PG, false);
	struct model_vmo *s = model_slice(r, PG, 2 * PG);
	struct model_vmo *ss = model_slice(s, PG, PG);
	uint8_t x = 3, y = 4;

	model_write(ss, 10, &x, 1);
	cr_assert_eq(byte_at(r, 2 * PG + 10), 3);
	cr_assert_eq(byte_at(s, PG + 10), 3);
	model_write(r, 2 * PG + 11, &y, 1);
	cr_assert_eq(byte_at(ss, 11), 4);
	model_close(r);
	/* The storage lives while a slice uses it. */
	model_zero(s, PG, PG);
	cr_assert_eq(byte_at(ss, 10), 0);
	model_close(s);
	model_close(ss);
}

Test(model, model_resize_never_reveals_old_bytes)
{
	struct model_vmo *m = model_create(2 * PG, true);
	uint8_t x = 0xff;

	model_write(m, PG + 1, &x, 1);
	model_resize(m, PG);
	model_resize(m, 3 * PG);
	cr_assert_eq(byte_at(m, PG + 1), 0);
	model_close(m);
}

Test(model, model_contract_errors)
{
	struct model_vmo *m = NULL, *c = NULL;
	uint8_t b = 0;

	cr_assert_eq(model_api_create(PG + 1, 0, &m), -EINVAL);
	cr_assert_eq(model_api_create(0, 0, &m), -EINVAL);
	cr_assert_eq(model_api_create(UVMO_VMO_MAX_SIZE + PG, 0, &m), -ERANGE);
	cr_assert_eq(model_api_create(0, UVMO_VMO_RESIZABLE, &m), 0);
	cr_assert_eq(model_api_create_child(m, UVMO_CHILD_SLICE, 0, PG, &c), -ENOTSUP);
	cr_assert_eq(model_api_set_size(m, PG), 0);
	cr_assert_eq(model_api_read(m, &b, PG, 1), -ERANGE);
	cr_assert_eq(model_api_read(m, &b, UINT64_MAX, 2), -ERANGE);
	cr_assert_eq(model_api_op_range(m, UVMO_OP_DECOMMIT, 1, PG - 1), -EINVAL);
	cr_assert_eq(model_api_op_range(m, UVMO_OP_LOCK, 0, PG), -ENOTSUP);
	cr_assert_eq(model_api_create_child(m, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_NO_WRITE, 0,
					    PG, &c), 0);
	cr_assert_eq(model_api_write(c, &b, 0, 1), -EACCES);
	cr_assert_eq(model_api_set_size(c, PG), -ENOTSUP);
	model_close(c);
	model_close(m);
}

Test(model, model_follow_shows_the_parents_current_content_until_written)
{
	struct model_vmo *p = model_pager_create(3 * PG, false, 5);
	struct model_vmo *c = model_follow(p, PG, 3 * PG);
	uint8_t x = 0x11, y = 0x22;

	cr_assert_eq(byte_at(c, 7), model_pager_byte(5, PG + 7));
	cr_assert_eq(byte_at(c, 2 * PG + 7), 0, "past the parent's end reads zero");
	model_write(p, PG + 8, &x, 1);
	cr_assert_eq(byte_at(c, 8), 0x11, "a later parent write shows through");
	model_write(c, 9, &y, 1);
	cr_assert_eq(byte_at(c, 8), 0x11, "the first write copies the parent's current page");
	cr_assert_eq(byte_at(p, PG + 9), model_pager_byte(5, PG + 9),
		     "the parent must not see child writes");
	model_write(p, PG + 8, &y, 1);
	cr_assert_eq(byte_at(c, 8), 0x11, "a written page no longer follows");
	model_write(p, 2 * PG, &x, 1);
	cr_assert_eq(byte_at(c, PG), 0x11, "unwritten pages still follow");
	model_close(p);
	cr_assert_eq(byte_at(c, PG), 0x11, "the closed parent still shows through");
	c->resizable = true;
	model_resize(c, PG);
	model_resize(c, 2 * PG);
	cr_assert_eq(byte_at(c, PG), 0, "growing never reveals the parent again");
	cr_assert_eq(byte_at(c, 9), 0x22);
	model_close(c);
}

Test(model, model_pager_contract)
{
	struct model_vmo *p = NULL, *c = NULL;

	cr_assert_eq(model_api_pager_create(PG + 1, 0, 1, &p), -EINVAL);
	cr_assert_eq(model_api_pager_create(PG, UVMO_VMO_DISCARDABLE, 1, &p), -EINVAL);
	cr_assert_eq(model_api_pager_create(2 * PG, 0, 1, &p), 0);
	cr_assert_eq(model_api_create_child(p, UVMO_CHILD_SNAPSHOT, 0, PG, &c), -ENOTSUP);
	cr_assert_eq(model_api_create_child(p, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, PG, &c), 0);
	cr_assert_eq(model_info_flags(c), UVMO_INFO_SNAPSHOT);
	model_close(c);
	model_close(p);
}

/* ---- differential runs ------------------------------------------------ */

/* The general generator: every operation, every clone type, error cases. */
Test(model, differential_seed_1, .timeout = 300) { run(1, OPS, 0); }
Test(model, differential_seed_2, .timeout = 300) { run(2, OPS, 0); }
Test(model, differential_seed_3, .timeout = 300) { run(3, OPS, 0); }
Test(model, differential_seed_4, .timeout = 300) { run(0x5eed0004u, OPS, 0); }
Test(model, differential_seed_5, .timeout = 300) { run(0xdeadbeefcafeull, OPS, 0); }
Test(model, differential_seed_6, .timeout = 300) { run(20240607, OPS, 0); }

/* Only valid calls: more of the budget goes to content operations. */
Test(model, differential_valid_calls_only, .timeout = 300)
{
	run(77, OPS, DIFF_NO_ERRORS);
}

/* Snapshots of snapshots: chains at least 8 deep (asserted by the run). */
Test(model, snapshot_chains_depth_8, .timeout = 300)
{
	run(8, OPS, DIFF_SNAPSHOTS_ONLY);
}

/* Heavy create/close churn, parents closed before children: hidden-node
 * merges all the time, with the pool checked never to hold more than eager
 * copies of the live VMOs would. */
Test(model, close_merge_churn, .timeout = 300)
{
	run(9, OPS, DIFF_CHURN);
}

/* Pager-backed roots served by a pager thread, with slices and
 * at-least-on-write children that follow their parent's current content. */
Test(model, differential_pager_seed_1, .timeout = 300) { run(41, OPS, DIFF_PAGER); }
Test(model, differential_pager_seed_2, .timeout = 300) { run(0x9a9e2, OPS, DIFF_PAGER); }
Test(model, differential_pager_churn, .timeout = 300) { run(43, OPS, DIFF_PAGER | DIFF_CHURN); }
/* The same without at-least-on-write children: pager roots and slices. */
Test(model, differential_pager_slices_only, .timeout = 300)
{
	run(44, OPS, DIFF_PAGER | DIFF_PAGER_SLICES_ONLY);
}

/* Two threads on disjoint VMO trees at once. */
Test(model, two_threads_disjoint_trees, .timeout = 300)
{
	run(10, OPS, DIFF_THREADS);
}

/* Resizable VMOs start in 4-page windows: growing them moves their frames
 * to a new window, again and again, under clones and reads. */
Test(model, differential_window_moves, .timeout = 300)
{
	run(12, OPS, DIFF_SMALL_WINDOW);
}

Test(model, two_threads_window_moves, .timeout = 300)
{
	run(13, OPS, DIFF_THREADS | DIFF_SMALL_WINDOW);
}

/* A pool limit of DIFF_POOL_LIMIT_BYTES: calls that need frames may fail
 * with -ENOMEM and must then change nothing; the pool never holds more than
 * the limit; unlocked discardable VMOs get discarded under the pressure. */
Test(model, differential_pool_limit, .timeout = 300)
{
	run(14, OPS, DIFF_POOL_LIMIT);
}

Test(model, close_merge_churn_pool_limit, .timeout = 300)
{
	run(15, OPS, DIFF_POOL_LIMIT | DIFF_CHURN);
}

Test(model, two_threads_pool_limit, .timeout = 300)
{
	run(16, OPS, DIFF_THREADS | DIFF_POOL_LIMIT);
}

/* A recording replays to the same result: what the shrinker relies on. */
Test(model, recording_replays, .timeout = 300)
{
	struct diff_log log = { 0 };
	char err[2048];

	cr_assert_eq(diff_run_logged(11, 3000, 0, &log, err, sizeof(err)), 0, "%s", err);
	cr_assert_gt(log.count, 3000u);
	cr_assert_eq(diff_replay(log.ops, log.count, 0, err, sizeof(err)), 0, "%s", err);
	/* A subset replays too: ops on VMOs it never created are skipped. */
	size_t half = log.count / 2;

	cr_assert_eq(diff_replay(log.ops + half, log.count - half, 0, err, sizeof(err)), 0,
		     "%s", err);
	diff_log_free(&log);
}

/* ---- live snapshots, restore and diff (issue 5 section 4) -------------- */

/* Random operations between live snapshots, restores to random earlier
 * snapshots (every byte compared after each), and diffs (every page they
 * leave out must be equal in the model). */
Test(model, restore_seed_1, .timeout = 300) { run(501, OPS, DIFF_RESTORE); }
Test(model, restore_seed_2, .timeout = 300) { run(502, OPS, DIFF_RESTORE); }
Test(model, restore_seed_3, .timeout = 300) { run(0x5eed0503u, OPS, DIFF_RESTORE); }

Test(model, restore_valid_calls_only, .timeout = 300)
{
	run(504, OPS, DIFF_RESTORE | DIFF_NO_ERRORS);
}

/* Restores of resizable VMOs change their size: with 4-page windows they
 * move windows too. */
Test(model, restore_window_moves, .timeout = 300)
{
	run(505, OPS, DIFF_RESTORE | DIFF_SMALL_WINDOW);
}

/* A restore that runs out of frames must change nothing. */
Test(model, restore_pool_limit, .timeout = 300)
{
	run(506, OPS, DIFF_RESTORE | DIFF_POOL_LIMIT);
}

/* VMOs closed before their snapshots, snapshots before their VMOs. */
Test(model, restore_close_merge_churn, .timeout = 300)
{
	run(507, OPS, DIFF_RESTORE | DIFF_CHURN);
}

Test(model, restore_two_threads, .timeout = 300)
{
	run(508, OPS, DIFF_RESTORE | DIFF_THREADS);
}

Test(model, restore_recording_replays, .timeout = 300)
{
	struct diff_log log = { 0 };
	char err[2048];

	cr_assert_eq(diff_run_logged(509, 3000, DIFF_RESTORE, &log, err, sizeof(err)), 0, "%s",
		     err);
	cr_assert_eq(diff_replay(log.ops, log.count, 0, err, sizeof(err)), 0, "%s", err);
	size_t half = log.count / 2;

	cr_assert_eq(diff_replay(log.ops + half, log.count - half, 0, err, sizeof(err)), 0,
		     "%s", err);
	diff_log_free(&log);
}

/* The model's own statement of live snapshots. */
Test(model, model_live_snapshot_restore_and_errors)
{
	struct model_vmo *v = NULL, *s1 = NULL, *s2 = NULL, *o = NULL, *os = NULL;
	uint8_t x = 7, y = 9;

	cr_assert_eq(model_api_create(2 * PG, UVMO_VMO_RESIZABLE, &v), 0);
	model_write(v, 5, &x, 1);
	cr_assert_eq(model_api_snapshot(v, &s1), 0);
	cr_assert(s1->no_write && s1->snapshot && s1->resizable);
	cr_assert_eq(model_api_snapshot(s1, &s2), 0);
	cr_assert(model_is_snapshot_of(s1, v) && model_is_snapshot_of(s2, v) &&
		  model_is_snapshot_of(s2, s1) && !model_is_snapshot_of(v, s1));
	model_write(v, 5, &y, 1);
	model_resize(v, 4 * PG);
	cr_assert_eq(byte_at(s1, 5), 7);
	cr_assert_eq(model_api_restore(v, s2), 0);
	cr_assert_eq(model_size(v), 2 * PG);
	cr_assert_eq(byte_at(v, 5), 7);
	cr_assert_eq(model_api_restore(s1, s2), -EACCES);
	cr_assert_eq(model_api_create(2 * PG, 0, &o), 0);
	cr_assert_eq(model_api_snapshot(o, &os), 0);
	cr_assert_eq(model_api_restore(v, os), -EINVAL);
	cr_assert_eq(model_api_diff(v, os, 0, PG, false, 1), -EINVAL);
	cr_assert_eq(model_api_diff(v, s1, 0, 3 * PG, false, 1), -ERANGE);
	cr_assert_eq(model_api_diff(v, s1, 1, PG, false, 1), -EINVAL);
	cr_assert_eq(model_api_diff(v, s1, 0, PG, true, 1), -EINVAL);
	cr_assert_eq(model_api_diff(v, s1, 0, PG, true, 0), 0);
	model_close(os);
	model_close(o);
	model_close(s2);
	model_close(s1);
	model_close(v);
}

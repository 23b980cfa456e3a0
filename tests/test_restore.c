/* SPDX-License-Identifier: MIT */
/*
 * Snapshot, restore and diff of live VMOs (issue 5, section 4): the
 * contract of uvmo_vmo_snapshot, uvmo_vmo_restore and uvmo_vmo_diff in
 * include/uvmo/uvmo.h.
 *
 *  - a snapshot shows the VMO as it was, whatever is written later through
 *    calls or mappings, and refuses writes;
 *  - restore brings back bytes and size, in place: mappings made before
 *    stay valid and show the restored bytes at once; pages created since
 *    read zero and give their frames back; clones and slices of the VMO
 *    behave as clones and slices;
 *  - restore again and again (the fuzzing use), to several snapshots in any
 *    order, costs the pages written, not the size, and does not grow memory;
 *  - diff lists exactly the pages written, merged into runs, with the
 *    resume convention of uvmo_pager_query_dirty_ranges;
 *  - threads writing through mappings around restores;
 *  - every error case changes nothing.
 */
#include "map_test_util.h"
#include "diff_test_util.h"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORDS (UVMO_PAGE_SIZE / sizeof(uint64_t))

/* ---------------------------------------------------------------------- */
/* helpers                                                                */
/* ---------------------------------------------------------------------- */

static uvmo_vmo_t *take_snapshot(uvmo_vmo_t *v)
{
	uvmo_vmo_t *s = NULL;
	expect_ok(uvmo_vmo_snapshot(v, &s));
	cr_assert_not_null(s, "uvmo_vmo_snapshot succeeded but left *snap NULL");
	return s;
}

/* A VMO of @pages pages holding pattern @seed. */
static uvmo_vmo_t *pattern_vmo(uint64_t pages, uint64_t seed)
{
	uvmo_vmo_t *v = make_vmo(pages * PG, 0);
	write_pattern(v, seed, 0, pages * PG);
	return v;
}

/* Assert that @v reads exactly the @size bytes at @want. */
#define expect_bytes(v, want, size)                                           \
	do {                                                                  \
		uint64_t sz_ = (size);                                        \
		uint64_t got_size_ = size_of(v);                              \
		cr_assert_eq(got_size_, sz_, "%s has size %llu, expected %llu", #v, \
			     (unsigned long long)got_size_, (unsigned long long)sz_); \
		uint8_t *got_ = malloc(sz_ ? sz_ : 1);                        \
		cr_assert_not_null(got_);                                     \
		expect_ok(uvmo_vmo_read((v), got_, 0, sz_));                  \
		const uint8_t *w_ = (const uint8_t *)(want);                  \
		for (uint64_t i_ = 0; i_ < sz_; i_++)                         \
			if (got_[i_] != w_[i_])                               \
				cr_assert_fail("%s byte %llu (page %llu) is 0x%02x, expected 0x%02x", \
					       #v, (unsigned long long)i_,    \
					       (unsigned long long)(i_ / PG), got_[i_], w_[i_]); \
		free(got_);                                                   \
	} while (0)

/* Assert that @len bytes at @p (a mapping) equal @want. */
#define expect_mapped_bytes(p, want, len)                                     \
	do {                                                                  \
		const uint8_t *p_ = (const uint8_t *)(p);                     \
		const uint8_t *w_ = (const uint8_t *)(want);                  \
		uint64_t l_ = (len);                                          \
		for (uint64_t i_ = 0; i_ < l_; i_++)                          \
			if (p_[i_] != w_[i_])                                 \
				cr_assert_fail("mapping %s byte %llu (page %llu) is 0x%02x, expected 0x%02x", \
					       #p, (unsigned long long)i_,    \
					       (unsigned long long)(i_ / PG), p_[i_], w_[i_]); \
	} while (0)

/* Assert that two VMOs have the same size and bytes. */
static void expect_same_content(uvmo_vmo_t *a, uvmo_vmo_t *b)
{
	uint64_t sa = 0, sb = 0;
	uint8_t *ba = read_all(a, &sa);
	uint8_t *bb = read_all(b, &sb);
	cr_assert_eq(sa, sb, "sizes differ: %llu and %llu", (unsigned long long)sa,
		     (unsigned long long)sb);
	for (uint64_t i = 0; i < sa; i++)
		if (ba[i] != bb[i])
			cr_assert_fail("byte %llu (page %llu) differs: 0x%02x and 0x%02x",
				       (unsigned long long)i, (unsigned long long)(i / PG), ba[i],
				       bb[i]);
	free(ba);
	free(bb);
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static uint64_t rnd_below(uint64_t *s, uint64_t n)
{
	return n ? xorshift(s) % n : 0;
}

static size_t diff_count(uvmo_vmo_t *v, uvmo_vmo_t *s)
{
	size_t actual = 99, avail = 99;
	expect_ok(uvmo_vmo_diff(v, s, 0, size_of(v), NULL, 0, &actual, &avail));
	cr_assert_eq(actual, 0, "diff with max 0 stored %zu runs", actual);
	return avail;
}

static void expect_no_diff(uvmo_vmo_t *v, uvmo_vmo_t *s)
{
	static struct runs got;
	diff_collect(v, s, 0, size_of(v), RUNS_CAP, &got);
	if (got.n) {
		char g[1024];
		format_runs(&got, g, sizeof(g));
		cr_assert_fail("diff should be empty, got runs %s", g);
	}
}

/* ======================================================================== */
/* snapshot                                                                 */
/* ======================================================================== */

Test(restore, snapshot_shows_the_vmo_as_it_was)
{
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	write_pattern(v, 1, 0, 10 * PG); /* pages 10..15 never written */
	uvmo_vmo_t *s = take_snapshot(v);
	expect_same_content(v, s);
	cr_assert_eq(size_of(s), 16 * PG);
}

Test(restore, snapshot_does_not_see_later_writes_by_call)
{
	uvmo_vmo_t *v = pattern_vmo(8, 2);
	uint8_t *img = read_all(v, NULL);
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(v, 3, 0, 8 * PG);
	uint8_t b = 0x77;
	expect_ok(uvmo_vmo_write(v, &b, 3 * PG + 5, 1));
	expect_bytes(s, img, 8 * PG);
	free(img);
}

Test(restore, snapshot_does_not_see_later_writes_through_a_mapping)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	uint8_t *m = map_rw(v);
	fill_pattern(m, 6 * PG, 4, 0); /* pages 6, 7 stay untouched */
	uint8_t *img = read_all(v, NULL);
	uvmo_vmo_t *s = take_snapshot(v);
	memset(m, 0xe1, 8 * PG);
	expect_bytes(s, img, 8 * PG);
	expect_mem_val(m, 8 * PG, 0xe1);
	free(img);
}

Test(restore, snapshot_does_not_see_later_zero_decommit_or_commit)
{
	uvmo_vmo_t *v = pattern_vmo(8, 5);
	uint8_t *img = read_all(v, NULL);
	uvmo_vmo_t *s = take_snapshot(v);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 100, 2 * PG));
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 4 * PG, 2 * PG));
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 0, 8 * PG));
	expect_bytes(s, img, 8 * PG);
	free(img);
}

Test(restore, snapshot_does_not_see_a_later_resize)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, UVMO_VMO_RESIZABLE);
	write_pattern(v, 6, 0, 8 * PG);
	uint8_t *img = read_all(v, NULL);
	uvmo_vmo_t *s = take_snapshot(v);
	expect_ok(uvmo_vmo_set_size(v, 2 * PG));
	expect_ok(uvmo_vmo_set_size(v, 12 * PG));
	expect_bytes(s, img, 8 * PG);
	free(img);
}

Test(restore, snapshot_handle_refuses_writes)
{
	uvmo_vmo_t *v = pattern_vmo(4, 7);
	uvmo_vmo_t *s = take_snapshot(v);
	uint8_t *img = read_all(s, NULL);
	uint8_t b = 1;
	expect_rc(-EACCES, uvmo_vmo_write(s, &b, 0, 1));
	expect_rc(-EACCES, uvmo_vmo_write(s, img, 0, 4 * PG));
	expect_rc(-EACCES, uvmo_vmo_op_range(s, UVMO_OP_ZERO, 0, PG));
	expect_rc(-EACCES, uvmo_vmo_op_range(s, UVMO_OP_DECOMMIT, 0, PG));
	expect_rc(-EACCES, uvmo_vmo_op_range(s, UVMO_OP_COMMIT, 0, PG));
	void *addr = NULL;
	expect_rc(-EACCES, uvmo_vmar_map(root_vmar(), PERM_RW, 0, s, 0, 4 * PG, &addr));
	cr_assert(info_of(s).flags & UVMO_INFO_NO_WRITE,
		  "a snapshot's info lacks UVMO_INFO_NO_WRITE (flags 0x%x)", info_of(s).flags);
	expect_bytes(s, img, 4 * PG);
	expect_bytes(v, img, 4 * PG);
	free(img);
}

Test(restore, snapshot_maps_read_only_and_shows_its_bytes)
{
	uvmo_vmo_t *v = pattern_vmo(4, 8);
	uvmo_vmo_t *s = take_snapshot(v);
	uint8_t *ms = map_vmo(root_vmar(), PERM_R, s, 0, 4 * PG);
	write_pattern(v, 9, 0, 4 * PG);
	expect_mem_pattern(ms, 4 * PG, 8, 0);
	expect_write_signal(SIGSEGV, ms + PG + 3);
	expect_mem_pattern(ms, 4 * PG, 8, 0);
	expect_ok(uvmo_vmar_unmap(root_vmar(), ms, 4 * PG));
}

Test(restore, snapshot_outlives_the_vmo)
{
	uvmo_vmo_t *v = pattern_vmo(4, 10);
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(v, 11, 0, 4 * PG);
	uvmo_vmo_close(v);
	uint8_t *got = read_all(s, NULL);
	expect_mem_pattern(got, 4 * PG, 10, 0);
	free(got);
}

Test(restore, snapshot_of_a_snapshot_is_allowed_and_equal)
{
	uvmo_vmo_t *v = pattern_vmo(4, 12);
	uvmo_vmo_t *s1 = take_snapshot(v);
	write_pattern(v, 13, 0, 2 * PG);
	uvmo_vmo_t *s2 = take_snapshot(s1);
	expect_same_content(s1, s2);
	uint8_t *got = read_all(s2, NULL);
	expect_mem_pattern(got, 4 * PG, 12, 0);
	free(got);
}

/* "nothing per page until a page is written": a snapshot of a mapped,
 * fully committed VMO takes no frame and copies nothing; the first write
 * of a page then copies that page. */
Test(restore, snapshot_costs_no_frame_and_no_copy_until_a_write)
{
	const uint64_t pages = 1024;
	uvmo_vmo_t *v = pattern_vmo(pages, 14);
	uint8_t *m = map_rw(v);
	expect_mem_pattern(m, pages * PG, 14, 0); /* every page mapped */
	struct uvmo_stats a = stats_now();
	uvmo_vmo_t *s = take_snapshot(v);
	struct uvmo_stats b = stats_now();
	cr_assert_eq(b.committed_bytes, a.committed_bytes,
		     "a snapshot of a %llu-page VMO took %llu bytes of frames",
		     (unsigned long long)pages,
		     (unsigned long long)(b.committed_bytes - a.committed_bytes));
	cr_assert_eq(b.cow_copies, a.cow_copies, "a snapshot copied %llu pages",
		     (unsigned long long)(b.cow_copies - a.cow_copies));
	cr_assert_eq(b.zero_fills, a.zero_fills);
	m[77 * PG] ^= 1;
	struct uvmo_stats c = stats_now();
	cr_assert_leq(c.committed_bytes, b.committed_bytes + PG,
		      "the first write of one page after a snapshot took %llu bytes",
		      (unsigned long long)(c.committed_bytes - b.committed_bytes));
	cr_assert_leq(c.cow_copies + c.cow_moves, b.cow_copies + b.cow_moves + 1,
		      "the first write of one page after a snapshot copied or moved %llu pages",
		      (unsigned long long)(c.cow_copies + c.cow_moves - b.cow_copies - b.cow_moves));
	uint8_t x = 0;
	expect_ok(uvmo_vmo_read(s, &x, 77 * PG, 1));
	cr_assert_eq(x, pattern_byte(14, 77 * PG));
}

/* A snapshot needs no frame: it works with the pool full; a write that
 * then needs a copy fails with -ENOMEM and changes nothing; the restore
 * after it has nothing to do. */
Test(restore, snapshot_works_with_the_pool_full)
{
	init_with_pool_limit(32 * PG);
	uvmo_vmo_t *v = pattern_vmo(32, 15);
	uvmo_vmo_t *s = take_snapshot(v);
	uint8_t b = 1;
	expect_rc(-ENOMEM, uvmo_vmo_write(v, &b, 5 * PG, 1));
	expect_ok(uvmo_vmo_restore(v, s));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 32 * PG, 15, 0);
	free(got);
	got = read_all(s, NULL);
	expect_mem_pattern(got, 32 * PG, 15, 0);
	free(got);
	cr_assert_leq(stats_now().committed_bytes, 32 * PG);
}

/* Snapshots of a VMO another thread writes (instant_writer, map_test_util.h). */
#define INSTANT_PAGES 32u

Test(restore, snapshot_of_a_vmo_written_by_another_thread_is_one_instant, .timeout = 60)
{
	uvmo_vmo_t *v = make_vmo(INSTANT_PAGES * PG, 0);
	struct instant_writer iw = { .w = (volatile uint64_t *)map_rw(v),
				     .words = INSTANT_PAGES * WORDS };
	atomic_init(&iw.stop, false);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, instant_write, &iw), 0);
	uint64_t *got = malloc(INSTANT_PAGES * PG);
	cr_assert_not_null(got);
	for (int k = 0; k < 40; k++) {
		struct timespec ts = { 0, (long)(k % 7) * 200000 };
		nanosleep(&ts, NULL);
		uvmo_vmo_t *s = take_snapshot(v);
		expect_ok(uvmo_vmo_read(s, got, 0, INSTANT_PAGES * PG));
		uint64_t a = got[0];
		size_t cut, i = instant_break(got, INSTANT_PAGES * WORDS, &cut);
		if (i != INSTANT_PAGES * WORDS) {
			atomic_store(&iw.stop, true);
			pthread_join(t, NULL);
			cr_assert_fail("snapshot %d is not one instant: word 0 holds round %llu, words"
				       " from %zu round %llu, but word %zu (page %zu) holds %llu",
				       k, (unsigned long long)a, cut,
				       (unsigned long long)(cut < INSTANT_PAGES * WORDS ? got[cut] : 0),
				       i, i / WORDS, (unsigned long long)got[i]);
		}
		uvmo_vmo_close(s);
	}
	atomic_store(&iw.stop, true);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_log_info("writer: %llu rounds", (unsigned long long)iw.rounds);
	free(got);
}

/* ======================================================================== */
/* restore: content                                                         */
/* ======================================================================== */

Test(restore, restore_undoes_writes_by_call)
{
	uvmo_vmo_t *v = pattern_vmo(8, 20);
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(v, 21, 2 * PG, 3 * PG);
	uint8_t b = 0x42;
	expect_ok(uvmo_vmo_write(v, &b, 7 * PG + PG - 1, 1));
	expect_ok(uvmo_vmo_restore(v, s));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 20, 0);
	free(got);
}

Test(restore, restore_undoes_writes_through_a_mapping)
{
	uvmo_vmo_t *v = pattern_vmo(8, 22);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	memset(m + PG + 100, 0x33, 3 * PG);
	m[7 * PG] = 1;
	expect_ok(uvmo_vmo_restore(v, s));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 22, 0);
	expect_mem_pattern(m, 8 * PG, 22, 0);
	free(got);
}

Test(restore, restore_undoes_zero_and_decommit)
{
	uvmo_vmo_t *v = pattern_vmo(8, 23);
	uvmo_vmo_t *s = take_snapshot(v);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, PG / 2, PG)); /* parts of pages 0, 1 */
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 3 * PG, 3 * PG));
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 7 * PG, PG));
	expect_ok(uvmo_vmo_restore(v, s));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 23, 0);
	free(got);
}

Test(restore, restore_after_commit_keeps_the_bytes)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	write_pattern(v, 24, 0, 4 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 0, 8 * PG));
	write_pattern(v, 25, 2 * PG, 4 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 4 * PG, 24, 0);
	expect_mem_val(got + 4 * PG, 4 * PG, 0);
	free(got);
}

Test(restore, pages_created_after_the_snapshot_read_zero_after_restore)
{
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	write_pattern(v, 26, 0, 4 * PG); /* pages 4..15: never written */
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(v, 27, 4 * PG, 4 * PG);    /* by call */
	memset(m + 8 * PG, 0x9c, 8 * PG);        /* through the mapping */
	expect_ok(uvmo_vmo_restore(v, s));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 4 * PG, 26, 0);
	expect_mem_val(got + 4 * PG, 12 * PG, 0);
	expect_mem_pattern(m, 4 * PG, 26, 0);
	expect_mem_val(m + 4 * PG, 12 * PG, 0);
	free(got);
}

Test(restore, restore_of_an_untouched_vmo_changes_nothing)
{
	uvmo_vmo_t *v = pattern_vmo(8, 28);
	uvmo_vmo_t *s = take_snapshot(v);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_ok(uvmo_vmo_restore(v, s));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 28, 0);
	free(got);
}

Test(restore, restore_leaves_the_snapshot_unchanged)
{
	uvmo_vmo_t *v = pattern_vmo(8, 29);
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(v, 30, 0, 8 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	/* Writes after the restore must not reach the snapshot either. */
	write_pattern(v, 31, 0, 8 * PG);
	uint8_t *got = read_all(s, NULL);
	expect_mem_pattern(got, 8 * PG, 29, 0);
	free(got);
	expect_ok(uvmo_vmo_restore(v, s));
	got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 29, 0);
	free(got);
}

Test(restore, restored_vmo_stays_writable_and_independent_of_the_snapshot)
{
	uvmo_vmo_t *v = pattern_vmo(4, 32);
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(v, 33, 0, 4 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	fill_page(v, 2, 0xab);
	expect_page(v, 2, 0xab);
	uint8_t *got = read_all(s, NULL);
	expect_mem_pattern(got, 4 * PG, 32, 0);
	free(got);
}

/* ======================================================================== */
/* restore: mappings                                                        */
/* ======================================================================== */

Test(restore, mapping_made_before_the_snapshot_shows_restored_bytes_at_once)
{
	uvmo_vmo_t *v = pattern_vmo(16, 40);
	uint8_t *m = map_rw(v);
	expect_mem_pattern(m, 16 * PG, 40, 0); /* every page faulted in */
	uvmo_vmo_t *s = take_snapshot(v);
	memset(m, 0x5e, 16 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	/* Same pointer, no remap. */
	expect_mem_pattern(m, 16 * PG, 40, 0);
}

Test(restore, writes_through_an_old_mapping_after_restore_reach_the_vmo)
{
	uvmo_vmo_t *v = pattern_vmo(8, 41);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	memset(m, 0x11, 8 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	memset(m + 3 * PG, 0x22, PG);
	expect_page(v, 3, 0x22);
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 3 * PG, 41, 0);
	expect_mem_pattern(got + 4 * PG, 4 * PG, 41, 4 * PG);
	free(got);
	/* ... and not the snapshot; a second restore undoes them. */
	got = read_all(s, NULL);
	expect_mem_pattern(got, 8 * PG, 41, 0);
	free(got);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_mem_pattern(m, 8 * PG, 41, 0);
}

Test(restore, two_mappings_of_the_vmo_agree_after_restore)
{
	uvmo_vmo_t *v = pattern_vmo(8, 42);
	uint8_t *m1 = map_rw(v);
	uint8_t *m2 = map_vmo(root_vmar(), PERM_RW, v, 2 * PG, 6 * PG);
	uint8_t *r = map_vmo(root_vmar(), PERM_R, v, 0, 8 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	memset(m1 + PG, 0x71, 3 * PG);
	memset(m2 + 3 * PG, 0x72, 2 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_mem_pattern(m1, 8 * PG, 42, 0);
	expect_mem_pattern(m2, 6 * PG, 42, 2 * PG);
	expect_mem_pattern(r, 8 * PG, 42, 0);
	m2[0] = 0x99; /* VMO page 2 */
	cr_assert_eq(m1[2 * PG], 0x99);
	cr_assert_eq(r[2 * PG], 0x99);
	expect_vmo_matches(v, 0, m1, 8 * PG);
}

Test(restore, mapping_of_pages_created_since_reads_zero_and_writes_again)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	for (int round = 0; round < 4; round++) {
		memset(m, 0x40 + round, 8 * PG);
		expect_ok(uvmo_vmo_restore(v, s));
		expect_mem_val(m, 8 * PG, 0);
		expect_pages(v, 0, 8, 0);
	}
}

Test(restore, read_only_mapping_of_the_snapshot_is_unchanged_by_restores)
{
	uvmo_vmo_t *v = pattern_vmo(8, 43);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	uint8_t *ms = map_vmo(root_vmar(), PERM_R, s, 0, 8 * PG);
	for (int round = 0; round < 3; round++) {
		memset(m + (uint64_t)round * PG, 0x60 + round, 2 * PG);
		expect_mem_pattern(ms, 8 * PG, 43, 0);
		expect_ok(uvmo_vmo_restore(v, s));
		expect_mem_pattern(ms, 8 * PG, 43, 0);
		expect_mem_pattern(m, 8 * PG, 43, 0);
	}
}

/* ======================================================================== */
/* restore: loops and several snapshots                                     */
/* ======================================================================== */

#define FUZZ_PAGES 64u
#define FUZZ_ITERS 1000u

/* The fuzzing use: write K random pages (by call and through the mapping,
 * whole or partial, sometimes zero or decommit), restore, check every
 * byte, a thousand times. */
Test(restore, restore_to_one_snapshot_a_thousand_times, .timeout = 120)
{
	uvmo_vmo_t *v = make_vmo(FUZZ_PAGES * PG, 0);
	/* Three quarters with content, the rest holes. */
	for (uint64_t p = 0; p < FUZZ_PAGES; p++)
		if (p % 4 != 3)
			write_pattern(v, 50, p * PG, PG);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	uint8_t *got = malloc(FUZZ_PAGES * PG);
	uint8_t *buf = malloc(PG);
	cr_assert(got && buf);
	uint64_t rng = 0x1234567;
	for (unsigned it = 0; it < FUZZ_ITERS; it++) {
		unsigned k = 1 + (unsigned)rnd_below(&rng, 12);
		for (unsigned j = 0; j < k; j++) {
			uint64_t p = rnd_below(&rng, FUZZ_PAGES);
			uint64_t off = rnd_below(&rng, 2) ? 0 : rnd_below(&rng, PG);
			uint64_t len = 1 + rnd_below(&rng, PG - off);
			memset(buf, (int)(1 + rnd_below(&rng, 255)), len);
			switch (rnd_below(&rng, 8)) {
			case 0: case 1: case 2:
				expect_ok(uvmo_vmo_write(v, buf, p * PG + off, len));
				break;
			case 3: case 4: case 5:
				memcpy(m + p * PG + off, buf, len);
				break;
			case 6:
				expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, p * PG + off, len));
				break;
			default:
				expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, p * PG, PG));
				break;
			}
		}
		expect_ok(uvmo_vmo_restore(v, s));
		expect_ok(uvmo_vmo_read(v, got, 0, FUZZ_PAGES * PG));
		if (memcmp(got, img, FUZZ_PAGES * PG) || memcmp(m, img, FUZZ_PAGES * PG)) {
			for (uint64_t i = 0; i < FUZZ_PAGES * PG; i++)
				if (got[i] != img[i] || m[i] != img[i])
					cr_assert_fail("iteration %u (%u writes): byte %llu (page %llu)"
						       " reads 0x%02x by call, 0x%02x mapped; the snapshot"
						       " has 0x%02x",
						       it, k, (unsigned long long)i,
						       (unsigned long long)(i / PG), got[i], m[i], img[i]);
		}
	}
	free(got);
	free(buf);
	free(img);
}

#define MULTI 4

/* Several snapshots of one VMO: restore to any of them, in any order. */
Test(restore, several_snapshots_restore_in_any_order, .timeout = 60)
{
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	uvmo_vmo_t *s[MULTI];
	uint8_t *img[MULTI];
	uint8_t *m = map_rw(v);
	for (int i = 0; i < MULTI; i++) {
		/* Each epoch writes a different part, some through the mapping. */
		write_pattern(v, 60 + (uint64_t)i, (uint64_t)i * 3 * PG, 4 * PG);
		memset(m + (uint64_t)(15 - i) * PG, 0x30 + i, PG);
		s[i] = take_snapshot(v);
		img[i] = read_all(v, NULL);
	}
	for (int i = 0; i < MULTI; i++)
		expect_bytes(s[i], img[i], 16 * PG);
	uint64_t rng = 99;
	for (int k = 0; k < 200; k++) {
		int i = (int)rnd_below(&rng, MULTI);
		if (rnd_below(&rng, 2))
			write_pattern(v, 70 + (uint64_t)k, rnd_below(&rng, 16) * PG, PG);
		else
			memset(m + rnd_below(&rng, 16) * PG, k, 100);
		expect_ok(uvmo_vmo_restore(v, s[i]));
		expect_bytes(v, img[i], 16 * PG);
		expect_mapped_bytes(m, img[i], 16 * PG);
	}
	for (int i = 0; i < MULTI; i++) {
		expect_bytes(s[i], img[i], 16 * PG);
		free(img[i]);
	}
}

Test(restore, restore_to_an_older_snapshot_after_a_newer_one)
{
	uvmo_vmo_t *v = pattern_vmo(8, 80);
	uvmo_vmo_t *old = take_snapshot(v);
	write_pattern(v, 81, 0, 4 * PG);
	uvmo_vmo_t *young = take_snapshot(v);
	write_pattern(v, 82, 2 * PG, 6 * PG);
	expect_ok(uvmo_vmo_restore(v, young));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 4 * PG, 81, 0);
	expect_mem_pattern(got + 4 * PG, 4 * PG, 80, 4 * PG);
	free(got);
	expect_ok(uvmo_vmo_restore(v, old));
	got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 80, 0);
	free(got);
	/* And forward again: the younger snapshot is unharmed. */
	expect_ok(uvmo_vmo_restore(v, young));
	got = read_all(v, NULL);
	expect_mem_pattern(got, 4 * PG, 81, 0);
	expect_mem_pattern(got + 4 * PG, 4 * PG, 80, 4 * PG);
	free(got);
}

Test(restore, closing_a_snapshot_does_not_disturb_the_others)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	uvmo_vmo_t *s[MULTI];
	uint8_t *img[MULTI];
	for (int i = 0; i < MULTI; i++) {
		write_pattern(v, 90 + (uint64_t)i, (uint64_t)i * PG, 3 * PG);
		s[i] = take_snapshot(v);
		img[i] = read_all(v, NULL);
	}
	/* Close the second, restore to the others; then the first; etc. */
	static const int order[MULTI] = { 1, 0, 3, 2 };
	bool closed[MULTI] = { false };
	for (int c = 0; c < MULTI - 1; c++) {
		uvmo_vmo_close(s[order[c]]);
		closed[order[c]] = true;
		for (int i = MULTI - 1; i >= 0; i--) {
			if (closed[i])
				continue;
			write_pattern(v, 99, 0, 8 * PG);
			expect_ok(uvmo_vmo_restore(v, s[i]));
			expect_bytes(v, img[i], 8 * PG);
			expect_bytes(s[i], img[i], 8 * PG);
		}
	}
	for (int i = 0; i < MULTI; i++)
		free(img[i]);
}

/* Appends to a list of failures (so that one test reports every case). */
__attribute__((format(printf, 3, 4))) static void note_failure(char *buf, size_t len,
								const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;
	va_start(ap, fmt);
	if (used < len)
		vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* What the VMO does to itself between the snapshot and the restore. */
enum mutation { MUT_WRITE, MUT_WRITE_MAPPED, MUT_ZERO_ALL, MUT_ZERO_PART, MUT_DECOMMIT, MUTATIONS };

static const char *const mutation_names[MUTATIONS] = {
	"write by call", "write through a mapping", "ZERO of everything", "ZERO of a part",
	"DECOMMIT of a part"
};

static void mutate(uvmo_vmo_t *v, uint8_t *m, uint64_t pages, enum mutation how)
{
	switch (how) {
	case MUT_WRITE:
		write_pattern(v, 999, PG, 2 * PG);
		break;
	case MUT_WRITE_MAPPED:
		memset(m + PG, 0x5d, 2 * PG);
		break;
	case MUT_ZERO_ALL:
		expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 0, pages * PG));
		break;
	case MUT_ZERO_PART:
		expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, PG, 2 * PG));
		break;
	default:
		expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, PG, 2 * PG));
		break;
	}
}

/* The snapshot is closed after the restore: the restored bytes stay (the
 * VMO no longer needs the snapshot; its memory must merge back, not go). */
Test(restore, closing_the_snapshot_after_a_restore_keeps_the_restored_bytes)
{
	char fails[2048] = "";
	for (int how = 0; how < MUTATIONS; how++) {
		uvmo_vmo_t *v = pattern_vmo(4, 110 + (uint64_t)how);
		uint8_t *m = map_rw(v);
		uvmo_vmo_t *s = take_snapshot(v);
		mutate(v, m, 4, (enum mutation)how);
		expect_ok(uvmo_vmo_restore(v, s));
		uvmo_vmo_close(s);
		uint8_t *got = read_all(v, NULL);
		for (uint64_t i = 0; i < 4 * PG; i++) {
			if (got[i] != pattern_byte(110 + (uint64_t)how, i) ||
			    m[i] != pattern_byte(110 + (uint64_t)how, i)) {
				note_failure(fails, sizeof(fails), "after %s, restore, close of the"
					     " snapshot: byte %llu (page %llu) reads 0x%02x by call,"
					     " 0x%02x mapped, expected 0x%02x; ", mutation_names[how],
					     (unsigned long long)i, (unsigned long long)(i / PG), got[i],
					     m[i], pattern_byte(110 + (uint64_t)how, i));
				break;
			}
		}
		free(got);
		expect_ok(uvmo_vmar_unmap(root_vmar(), m, 4 * PG));
		uvmo_vmo_close(v);
	}
	cr_assert(!fails[0], "%s", fails);
}

/* The same with a clone of the restored VMO alive while the snapshot is
 * closed: both keep their bytes. */
Test(restore, closing_the_snapshot_after_a_restore_keeps_clones_of_the_vmo)
{
	char fails[2048] = "";
	for (int how = 0; how < MUTATIONS; how++) {
		uvmo_vmo_t *v = pattern_vmo(4, 120 + (uint64_t)how);
		uint8_t *m = map_rw(v);
		uvmo_vmo_t *s = take_snapshot(v);
		mutate(v, m, 4, (enum mutation)how);
		expect_ok(uvmo_vmo_restore(v, s));
		uvmo_vmo_t *c = snap(v);
		uvmo_vmo_close(s);
		uint8_t *gv = read_all(v, NULL), *gc = read_all(c, NULL);
		for (uint64_t i = 0; i < 4 * PG; i++) {
			if (gv[i] != pattern_byte(120 + (uint64_t)how, i) ||
			    gc[i] != pattern_byte(120 + (uint64_t)how, i)) {
				note_failure(fails, sizeof(fails), "after %s, restore, a clone, close"
					     " of the snapshot: byte %llu (page %llu) reads 0x%02x in the"
					     " VMO, 0x%02x in the clone, expected 0x%02x; ",
					     mutation_names[how], (unsigned long long)i,
					     (unsigned long long)(i / PG), gv[i], gc[i],
					     pattern_byte(120 + (uint64_t)how, i));
				break;
			}
		}
		free(gv);
		free(gc);
		expect_ok(uvmo_vmar_unmap(root_vmar(), m, 4 * PG));
		uvmo_vmo_close(c);
		uvmo_vmo_close(v);
	}
	cr_assert(!fails[0], "%s", fails);
}

/* The VMO dies after a restore (handle closed, mapping gone): its
 * snapshot keeps its bytes. */
Test(restore, closing_the_vmo_after_a_restore_keeps_the_snapshot_bytes)
{
	char fails[2048] = "";
	for (int how = 0; how < MUTATIONS; how++) {
		uvmo_vmo_t *v = pattern_vmo(4, 130 + (uint64_t)how);
		uint8_t *m = map_rw(v);
		uvmo_vmo_t *s = take_snapshot(v);
		mutate(v, m, 4, (enum mutation)how);
		expect_ok(uvmo_vmo_restore(v, s));
		expect_ok(uvmo_vmar_unmap(root_vmar(), m, 4 * PG));
		uvmo_vmo_close(v);
		uint8_t *got = read_all(s, NULL);
		for (uint64_t i = 0; i < 4 * PG; i++) {
			if (got[i] != pattern_byte(130 + (uint64_t)how, i)) {
				note_failure(fails, sizeof(fails), "after %s, restore, close of the VMO:"
					     " the snapshot's byte %llu (page %llu) reads 0x%02x,"
					     " expected 0x%02x; ", mutation_names[how],
					     (unsigned long long)i, (unsigned long long)(i / PG), got[i],
					     pattern_byte(130 + (uint64_t)how, i));
				break;
			}
		}
		free(got);
		uvmo_vmo_close(s);
	}
	cr_assert(!fails[0], "%s", fails);
	cr_assert_eq(stats_now().committed_bytes, 0);
}

/* Found by a DIFF_RESTORE soak run, shrunk: a clone of the VMO rewrites
 * everything, the VMO itself is not written; it is restored (nothing to
 * do), then the snapshot is closed: the VMO, the clone, and snapshots
 * taken after the restore keep their bytes.  (Without the snapshots taken
 * after the restore it is the same.) */
Test(restore, closing_the_snapshot_keeps_the_vmo_whose_clone_wrote_before_the_restore)
{
	char fails[2048] = "";
	for (int chain = 0; chain < 2; chain++) {
		uvmo_vmo_t *v = make_vmo(56 * PG, 0);
		write_pattern(v, 140, 0xfe7, 0x3fa);
		uint8_t *img = read_all(v, NULL);
		uvmo_vmo_t *s1 = take_snapshot(v);
		uvmo_vmo_t *c = snap(v);
		write_pattern(c, 141, 0, 56 * PG);
		expect_ok(uvmo_vmo_restore(v, s1));
		uvmo_vmo_t *later[3] = { NULL, NULL, NULL };
		if (chain) {
			later[0] = take_snapshot(v);
			later[1] = take_snapshot(later[0]);
			later[2] = take_snapshot(later[1]);
		}
		uvmo_vmo_close(s1);
		uvmo_vmo_t *check[4] = { v, later[0], later[1], later[2] };
		static const char *const names[4] = { "the VMO", "a snapshot after the restore",
						      "its snapshot", "a third snapshot" };
		for (int k = 0; k < (chain ? 4 : 1); k++) {
			uint8_t *got = read_all(check[k], NULL);
			long bad = -1;
			for (uint64_t i = 0; i < 56 * PG && bad < 0; i++)
				if (got[i] != img[i])
					bad = (long)i;
			if (bad >= 0)
				note_failure(fails, sizeof(fails), "%s: %s byte %ld reads 0x%02x, expected"
					     " 0x%02x; ", chain ? "with later snapshots" : "alone",
					     names[k], bad, got[bad], img[bad]);
			free(got);
		}
		uint8_t *got = read_all(c, NULL);
		for (uint64_t i = 0; i < 56 * PG; i++)
			if (got[i] != pattern_byte(141, i)) {
				note_failure(fails, sizeof(fails), "the clone's byte %llu changed; ",
					     (unsigned long long)i);
				break;
			}
		free(got);
		free(img);
		for (int k = 2; k >= 0; k--)
			uvmo_vmo_close(later[k]);
		uvmo_vmo_close(c);
		uvmo_vmo_close(v);
	}
	cr_assert(!fails[0], "%s", fails);
}

Test(restore, snapshot_taken_after_a_restore_is_a_snapshot_of_the_restored_bytes)
{
	uvmo_vmo_t *v = pattern_vmo(8, 100);
	uvmo_vmo_t *s1 = take_snapshot(v);
	write_pattern(v, 101, 0, 8 * PG);
	expect_ok(uvmo_vmo_restore(v, s1));
	write_pattern(v, 102, 4 * PG, 2 * PG);
	uvmo_vmo_t *s2 = take_snapshot(v);
	uint8_t *img2 = read_all(v, NULL);
	write_pattern(v, 103, 0, 8 * PG);
	expect_ok(uvmo_vmo_restore(v, s1));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 100, 0);
	free(got);
	expect_ok(uvmo_vmo_restore(v, s2));
	expect_bytes(v, img2, 8 * PG);
	free(img2);
}

Test(restore, restore_to_a_snapshot_of_a_snapshot)
{
	uvmo_vmo_t *v = pattern_vmo(8, 104);
	uvmo_vmo_t *s1 = take_snapshot(v);
	write_pattern(v, 105, 0, 8 * PG);
	uvmo_vmo_t *s2 = take_snapshot(s1);
	expect_ok(uvmo_vmo_restore(v, s2));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 104, 0);
	free(got);
	/* It stays one after the snapshot between is closed. */
	uvmo_vmo_close(s1);
	write_pattern(v, 106, 0, 8 * PG);
	expect_ok(uvmo_vmo_restore(v, s2));
	got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 104, 0);
	free(got);
}

Test(restore, restore_of_a_clone_to_its_own_snapshot)
{
	uvmo_vmo_t *p = pattern_vmo(8, 250);
	uvmo_vmo_t *c = snap(p);
	write_pattern(c, 251, 2 * PG, 2 * PG);
	uint8_t *img = read_all(c, NULL);
	uint8_t *m = map_rw(c);
	uvmo_vmo_t *s = take_snapshot(c);
	memset(m, 0x44, 8 * PG);
	write_pattern(p, 252, 0, 8 * PG); /* the parent moves on too */
	expect_ok(uvmo_vmo_restore(c, s));
	expect_bytes(c, img, 8 * PG);
	expect_mapped_bytes(m, img, 8 * PG);
	uint8_t *got = read_all(p, NULL);
	expect_mem_pattern(got, 8 * PG, 252, 0);
	free(got);
	free(img);
}

/* A second handle (uvmo_vmo_duplicate) is the same VMO: a snapshot taken
 * through one restores through the other, also after the first is closed. */
Test(restore, snapshot_and_restore_through_duplicate_handles)
{
	uvmo_vmo_t *v = pattern_vmo(4, 253);
	uvmo_vmo_t *d = NULL;
	expect_ok(uvmo_vmo_duplicate(v, &d));
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(d, 254, 0, 4 * PG);
	expect_ok(uvmo_vmo_restore(d, s));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 4 * PG, 253, 0);
	free(got);
	uvmo_vmo_t *s2 = take_snapshot(d);
	write_pattern(v, 255, 0, 4 * PG);
	uvmo_vmo_close(v);
	expect_ok(uvmo_vmo_restore(d, s2));
	got = read_all(d, NULL);
	expect_mem_pattern(got, 4 * PG, 253, 0);
	free(got);
	expect_no_diff(d, s2);
}

/* ======================================================================== */
/* restore: size                                                            */
/* ======================================================================== */

Test(restore, restore_shrinks_a_vmo_grown_since)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, UVMO_VMO_RESIZABLE);
	write_pattern(v, 110, 0, 4 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	expect_ok(uvmo_vmo_set_size(v, 10 * PG));
	write_pattern(v, 111, 0, 10 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	cr_assert_eq(size_of(v), 4 * PG);
	cr_assert_eq(info_of(v).size, 4 * PG);
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 4 * PG, 110, 0);
	free(got);
	uint8_t b;
	expect_rc(-ERANGE, uvmo_vmo_read(v, &b, 4 * PG, 1));
	/* Growing again reveals zeros, never the bytes written before. */
	expect_ok(uvmo_vmo_set_size(v, 10 * PG));
	expect_pages(v, 4, 6, 0);
}

Test(restore, restore_grows_a_vmo_shrunk_since)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, UVMO_VMO_RESIZABLE);
	write_pattern(v, 112, 0, 8 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	expect_ok(uvmo_vmo_set_size(v, 2 * PG));
	write_pattern(v, 113, 0, 2 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	cr_assert_eq(size_of(v), 8 * PG);
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 112, 0);
	free(got);
}

Test(restore, restore_to_zero_size_and_back)
{
	uvmo_vmo_t *v = make_vmo(0, UVMO_VMO_RESIZABLE);
	uvmo_vmo_t *s0 = take_snapshot(v);
	expect_ok(uvmo_vmo_set_size(v, 4 * PG));
	write_pattern(v, 114, 0, 4 * PG);
	uvmo_vmo_t *s4 = take_snapshot(v);
	expect_ok(uvmo_vmo_restore(v, s0));
	cr_assert_eq(size_of(v), 0);
	expect_ok(uvmo_vmo_restore(v, s4));
	cr_assert_eq(size_of(v), 4 * PG);
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 4 * PG, 114, 0);
	free(got);
}

/* Nothing but the size differs: no page to restore, no page to diff
 * (found by UBSan in the DIFF_RESTORE runs: an empty candidate list). */
Test(restore, restore_and_diff_of_a_vmo_that_only_changed_size)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, UVMO_VMO_RESIZABLE);
	uvmo_vmo_t *s = take_snapshot(v);
	expect_ok(uvmo_vmo_set_size(v, 8 * PG));
	bool none[8] = { false };
	expect_diff(v, s, none, 4);
	expect_ok(uvmo_vmo_restore(v, s));
	cr_assert_eq(size_of(v), 4 * PG);
	expect_ok(uvmo_vmo_set_size(v, 2 * PG));
	expect_ok(uvmo_vmo_restore(v, s));
	cr_assert_eq(size_of(v), 4 * PG);
	expect_pages(v, 0, 4, 0);
	expect_no_diff(v, s);
}

Test(restore, mapping_of_a_resizable_vmo_follows_the_restored_size, .timeout = 30)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, UVMO_VMO_RESIZABLE);
	write_pattern(v, 115, 0, 4 * PG);
	uint8_t *m = map_vmo(root_vmar(), PERM_RW | UVMO_VMAR_ALLOW_FAULTS, v, 0, 8 * PG);
	uvmo_vmo_t *s4 = take_snapshot(v);
	expect_ok(uvmo_vmo_set_size(v, 8 * PG));
	memset(m + 4 * PG, 0x3c, 4 * PG);
	uvmo_vmo_t *s8 = take_snapshot(v);
	/* Back to 4 pages: the tail raises SIGBUS again. */
	expect_ok(uvmo_vmo_restore(v, s4));
	expect_mem_pattern(m, 4 * PG, 115, 0);
	expect_read_signal(SIGBUS, m + 5 * PG);
	expect_write_signal(SIGBUS, m + 4 * PG);
	/* Forward to 8 pages: the tail shows the bytes written then. */
	expect_ok(uvmo_vmo_restore(v, s8));
	expect_mem_pattern(m, 4 * PG, 115, 0);
	expect_mem_val(m + 4 * PG, 4 * PG, 0x3c);
	m[7 * PG] = 1;
	uint8_t b = 0;
	expect_ok(uvmo_vmo_read(v, &b, 7 * PG, 1));
	cr_assert_eq(b, 1);
}

/* ======================================================================== */
/* restore: clones and slices of the VMO                                    */
/* ======================================================================== */

Test(restore, clones_taken_before_the_snapshot_keep_their_content)
{
	uvmo_vmo_t *v = pattern_vmo(8, 120);
	uvmo_vmo_t *c = snap(v);
	write_pattern(c, 121, 6 * PG, 2 * PG); /* the clone writes too */
	uint8_t *cimg = read_all(c, NULL);
	write_pattern(v, 122, 0, 2 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(v, 123, 0, 8 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_bytes(c, cimg, 8 * PG);
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 2 * PG, 122, 0);
	expect_mem_pattern(got + 2 * PG, 6 * PG, 120, 2 * PG);
	free(got);
	free(cimg);
}

Test(restore, clones_taken_after_the_snapshot_keep_their_content)
{
	uvmo_vmo_t *v = pattern_vmo(8, 124);
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(v, 125, 0, 4 * PG);
	uvmo_vmo_t *c = snap(v); /* sees pages 0..3 of pattern 125 */
	uvmo_vmo_t *c2 = make_child(v, UVMO_CHILD_SNAPSHOT, 2 * PG, 4 * PG);
	uint8_t *cimg = read_all(c, NULL);
	uint8_t *c2img = read_all(c2, NULL);
	write_pattern(v, 126, 0, 8 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_bytes(c, cimg, 8 * PG);
	expect_bytes(c2, c2img, 4 * PG);
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 124, 0);
	free(got);
	/* The clones still write on their own. */
	fill_page(c, 0, 0xc0);
	expect_page(c, 0, 0xc0);
	got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 124, 0);
	free(got);
	free(cimg);
	free(c2img);
}

Test(restore, mapped_clone_keeps_its_content_across_a_restore_of_its_parent)
{
	uvmo_vmo_t *v = pattern_vmo(8, 127);
	uint8_t *mv = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	memset(mv, 0x21, 4 * PG);
	uvmo_vmo_t *c = snap(v);
	uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, 8 * PG);
	expect_mem_val(mc, 4 * PG, 0x21);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_mem_val(mc, 4 * PG, 0x21);
	expect_mem_pattern(mc + 4 * PG, 4 * PG, 127, 4 * PG);
	expect_mem_pattern(mv, 8 * PG, 127, 0);
}

/* Found by the DIFF_RESTORE differential run (seed 507), shrunk: the VMO
 * is not written at all between the snapshot and the restore, but clones
 * were made of it since (one at an offset, with a clone of its own that
 * writes); the restore must leave every byte as it is. */
Test(restore, restore_of_an_unchanged_vmo_with_clones_made_since_keeps_its_bytes)
{
	uvmo_vmo_t *v = make_vmo(2 * PG, 0);
	write_pattern(v, 240, PG + 0xfdf, 0x21);
	uint8_t *img = read_all(v, NULL);
	uvmo_vmo_t *s = take_snapshot(v);
	uvmo_vmo_t *c1 = make_child(v, UVMO_CHILD_SNAPSHOT, PG, PG);
	uvmo_vmo_t *c2 = make_child(c1, UVMO_CHILD_SNAPSHOT, 0, 2 * PG);
	write_pattern(c2, 241, 0xfcb, 0x61a);
	uvmo_vmo_t *c3 = snap(v);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_bytes(v, img, 2 * PG);
	expect_bytes(c3, img, 2 * PG);
	uint8_t *got = read_all(c1, NULL);
	expect_mem_pattern(got + 0xfdf, 0x21, 240, PG + 0xfdf);
	free(got);
	free(img);
}

/* Found by the DIFF_RESTORE differential run (seed 502), shrunk: a clone
 * of part of the VMO (at an offset) writes the pages it shares; the VMO
 * itself is never written; a restore must change nothing.  With and
 * without a second snapshot taken between. */
Test(restore, restore_after_a_clone_at_an_offset_wrote_keeps_the_vmo_bytes)
{
	char fails[2048] = "";
	for (int second = 0; second < 2; second++) {
		uvmo_vmo_t *v = pattern_vmo(11, 242);
		uvmo_vmo_t *s1 = take_snapshot(v);
		uvmo_vmo_t *s2 = second ? take_snapshot(v) : NULL;
		uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT, 9 * PG, 4 * PG);
		write_pattern(c, 243, 0xfd5, 0x11e4);
		expect_ok(uvmo_vmo_restore(v, s1));
		uint8_t *got = read_all(v, NULL);
		for (uint64_t i = 0; i < 11 * PG; i++) {
			if (got[i] != pattern_byte(242, i)) {
				note_failure(fails, sizeof(fails), "%s second snapshot: byte %llu (page"
					     " %llu) reads 0x%02x after the restore, expected 0x%02x; ",
					     second ? "with a" : "without a", (unsigned long long)i,
					     (unsigned long long)(i / PG), got[i], pattern_byte(242, i));
				break;
			}
		}
		free(got);
		got = read_all(c, NULL);
		for (uint64_t i = 0; i < 4 * PG; i++) {
			uint8_t want = i >= 0xfd5 && i < 0xfd5 + 0x11e4 ? pattern_byte(243, i)
				       : i < 2 * PG ? pattern_byte(242, 9 * PG + i) : 0;
			if (got[i] != want) {
				note_failure(fails, sizeof(fails), "%s second snapshot: the clone's byte"
					     " %llu reads 0x%02x, expected 0x%02x; ",
					     second ? "with a" : "without a", (unsigned long long)i,
					     got[i], want);
				break;
			}
		}
		free(got);
		uvmo_vmo_close(c);
		uvmo_vmo_close(s2);
		uvmo_vmo_close(s1);
		uvmo_vmo_close(v);
	}
	cr_assert(!fails[0], "%s", fails);
}

Test(restore, a_slice_of_the_vmo_shows_the_restored_bytes)
{
	uvmo_vmo_t *v = pattern_vmo(8, 128);
	uvmo_vmo_t *sl = make_child(v, UVMO_CHILD_SLICE, 2 * PG, 4 * PG);
	uint8_t *ms = map_vmo(root_vmar(), PERM_RW, sl, 0, 4 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	memset(ms, 0x17, 4 * PG); /* through the slice: the VMO's pages 2..5 */
	expect_page(v, 3, 0x17);
	expect_ok(uvmo_vmo_restore(v, s));
	uint8_t *got = read_all(sl, NULL);
	expect_mem_pattern(got, 4 * PG, 128, 2 * PG);
	free(got);
	expect_mem_pattern(ms, 4 * PG, 128, 2 * PG);
}

Test(restore, a_restored_vmo_can_be_cloned_and_snapshotted_again)
{
	uvmo_vmo_t *v = pattern_vmo(8, 129);
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(v, 130, 0, 8 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	uvmo_vmo_t *c = snap(v);
	uvmo_vmo_t *s2 = take_snapshot(v);
	write_pattern(v, 131, 0, 8 * PG);
	uint8_t *got = read_all(c, NULL);
	expect_mem_pattern(got, 8 * PG, 129, 0);
	free(got);
	expect_ok(uvmo_vmo_restore(v, s2));
	got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 129, 0);
	free(got);
}

/* ======================================================================== */
/* diff                                                                     */
/* ======================================================================== */

Test(restore, diff_is_empty_right_after_the_snapshot)
{
	uvmo_vmo_t *v = pattern_vmo(16, 140);
	uvmo_vmo_t *s = take_snapshot(v);
	expect_no_diff(v, s);
	cr_assert_eq(diff_count(v, s), 0);
}

Test(restore, diff_is_empty_right_after_restore)
{
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	write_pattern(v, 141, 0, 8 * PG);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(v, 142, 2 * PG, 3 * PG);
	memset(m + 10 * PG, 1, 2 * PG);
	cr_assert_gt(diff_count(v, s), 0);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_no_diff(v, s);
}

Test(restore, diff_lists_pages_written_by_call_merged_into_runs)
{
	bool dirty[64] = { false };
	uvmo_vmo_t *v = make_vmo(64 * PG, 0);
	write_pattern(v, 143, 0, 32 * PG); /* half content, half holes */
	uvmo_vmo_t *s = take_snapshot(v);
	uint8_t b = 5;
	/* single pages, a run, a run crossing the content/hole border, a
	 * partial write, the last page */
	static const uint64_t pages[] = { 0, 3, 4, 5, 6, 10, 30, 31, 32, 33, 40, 63 };
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		expect_ok(uvmo_vmo_write(v, &b, pages[i] * PG + 17, 1));
		dirty[pages[i]] = true;
	}
	/* A write spanning two pages in part. */
	uint8_t two[20];
	memset(two, 9, sizeof(two));
	expect_ok(uvmo_vmo_write(v, two, 50 * PG - 10, sizeof(two)));
	dirty[49] = dirty[50] = true;
	expect_diff(v, s, dirty, 64);
}

Test(restore, diff_lists_pages_written_through_a_mapping)
{
	bool dirty[32] = { false };
	uvmo_vmo_t *v = make_vmo(32 * PG, 0);
	write_pattern(v, 144, 0, 16 * PG);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	static const uint64_t pages[] = { 1, 2, 7, 15, 16, 17, 25, 31 };
	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		m[pages[i] * PG + 100] ^= 0xff;
		dirty[pages[i]] = true;
	}
	expect_diff(v, s, dirty, 32);
}

Test(restore, diff_lists_zeroed_and_decommitted_pages)
{
	bool dirty[16] = { false };
	uvmo_vmo_t *v = pattern_vmo(16, 145);
	uvmo_vmo_t *s = take_snapshot(v);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 2 * PG + 10, 20)); /* in part */
	dirty[2] = true;
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 8 * PG, 3 * PG));
	dirty[8] = dirty[9] = dirty[10] = true;
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 14 * PG, 2 * PG));
	dirty[14] = dirty[15] = true;
	expect_diff(v, s, dirty, 16);
}

/* "written back with the bytes it had, is not listed" (uvmo.h). */
Test(restore, diff_does_not_list_a_page_rewritten_with_the_same_bytes)
{
	bool dirty[8] = { false };
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	write_pattern(v, 146, 0, 6 * PG); /* pages 6, 7: holes */
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	uint8_t *page = malloc(PG);
	expect_ok(uvmo_vmo_read(v, page, 5 * PG, PG));
	expect_ok(uvmo_vmo_write(v, page, 5 * PG, PG)); /* by call */
	m[2 * PG + 9] = m[2 * PG + 9];                  /* through the mapping */
	memset(page, 0, PG);
	expect_ok(uvmo_vmo_write(v, page, 6 * PG, PG)); /* zeros into a hole */
	m[7 * PG] = 0;
	fill_page(v, 4, 0x31);                          /* and one real change */
	dirty[4] = true;
	expect_diff(v, s, dirty, 8);
	page[7] ^= 1;                                   /* page 5 changed after all */
	expect_ok(uvmo_vmo_write(v, page, 5 * PG, PG));
	dirty[5] = true;
	expect_diff(v, s, dirty, 8);
	free(page);
}

Test(restore, diff_does_not_list_pages_only_read)
{
	bool dirty[16] = { false };
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	write_pattern(v, 147, 0, 8 * PG);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	uint8_t *got = read_all(v, NULL); /* every page by call */
	volatile uint8_t sink = 0;
	for (uint64_t p = 0; p < 16; p++)
		sink ^= m[p * PG + 7]; /* every page through the mapping */
	(void)sink;
	m[3 * PG] ^= 1;
	dirty[3] = true;
	expect_diff(v, s, dirty, 16);
	free(got);
}

Test(restore, diff_resumes_with_a_small_max)
{
	bool dirty[128] = { false };
	uvmo_vmo_t *v = make_vmo(128 * PG, 0);
	write_pattern(v, 148, 0, 64 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	uint64_t rng = 7;
	for (int i = 0; i < 40; i++) {
		uint64_t p = rnd_below(&rng, 128);
		fill_page(v, p, (uint8_t)(i + 1)); /* never the bytes it had */
		dirty[p] = true;
	}
	static const size_t maxes[] = { 1, 2, 3, 7, RUNS_CAP };
	for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++)
		expect_diff_max(v, s, dirty, 0, 128, maxes[i]);
}

Test(restore, diff_first_call_reports_actual_and_avail)
{
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	uvmo_vmo_t *s = take_snapshot(v);
	fill_page(v, 1, 1);
	fill_page(v, 5, 1);
	fill_page(v, 6, 1);
	fill_page(v, 9, 1);
	struct uvmo_dirty_range out[2];
	memset(out, 0xee, sizeof(out));
	size_t actual = 0, avail = 0;
	expect_ok(uvmo_vmo_diff(v, s, 0, 16 * PG, out, 2, &actual, &avail));
	cr_assert_eq(actual, 2);
	cr_assert_eq(avail, 3);
	cr_assert_eq(out[0].offset, 1 * PG);
	cr_assert_eq(out[0].length, 1 * PG);
	cr_assert_eq(out[1].offset, 5 * PG);
	cr_assert_eq(out[1].length, 2 * PG);
	/* The counters may be NULL. */
	expect_ok(uvmo_vmo_diff(v, s, 0, 16 * PG, out, 2, NULL, NULL));
	cr_assert_eq(out[1].offset, 5 * PG);
	/* max 0: nothing stored, avail still counted. */
	cr_assert_eq(diff_count(v, s), 3);
}

Test(restore, diff_of_a_sub_range_clips_the_runs)
{
	bool dirty[32] = { false };
	uvmo_vmo_t *v = pattern_vmo(32, 149);
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(v, 150, 4 * PG, 8 * PG); /* pages 4..11 */
	write_pattern(v, 151, 20 * PG, 2 * PG); /* pages 20, 21 */
	for (int p = 4; p < 12; p++)
		dirty[p] = true;
	dirty[20] = dirty[21] = true;
	expect_diff_max(v, s, dirty, 6, 3, RUNS_CAP);   /* inside the run */
	expect_diff_max(v, s, dirty, 0, 5, RUNS_CAP);   /* its first page */
	expect_diff_max(v, s, dirty, 11, 10, RUNS_CAP); /* its last, and the next in part */
	expect_diff_max(v, s, dirty, 12, 8, RUNS_CAP);  /* between: nothing */
	expect_diff_max(v, s, dirty, 21, 11, 1);
}

Test(restore, diff_against_an_older_snapshot_covers_everything_since_it)
{
	bool d1[16] = { false }, d2[16] = { false };
	uvmo_vmo_t *v = pattern_vmo(16, 152);
	uvmo_vmo_t *s1 = take_snapshot(v);
	fill_pages(v, 2, 2, 0xa1);
	d1[2] = d1[3] = true;
	uvmo_vmo_t *s2 = take_snapshot(v);
	fill_pages(v, 10, 2, 0xa2);
	d1[10] = d1[11] = d2[10] = d2[11] = true;
	expect_diff(v, s1, d1, 16);
	expect_diff(v, s2, d2, 16);
	/* Restored to s2, the VMO differs from s1 where s2 does, and only
	 * there: pages 10 and 11 were written since s1 but hold its bytes
	 * again ("written back with the bytes it had, is not listed"). */
	expect_ok(uvmo_vmo_restore(v, s2));
	expect_no_diff(v, s2);
	d1[10] = d1[11] = false;
	expect_diff(v, s1, d1, 16);
	/* Restored to s1: no difference from s1; pages 2, 3 differ from s2. */
	expect_ok(uvmo_vmo_restore(v, s1));
	expect_no_diff(v, s1);
	bool d3[16] = { false };
	d3[2] = d3[3] = true;
	expect_diff(v, s2, d3, 16);
}

/* Diff after each fuzz round equals the pages written in it. */
Test(restore, diff_tracks_random_writes_between_restores, .timeout = 60)
{
	uvmo_vmo_t *v = make_vmo(64 * PG, 0);
	write_pattern(v, 153, 0, 40 * PG);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	uint64_t rng = 4242;
	for (int it = 0; it < 100; it++) {
		bool dirty[64] = { false };
		unsigned k = 1 + (unsigned)rnd_below(&rng, 10);
		for (unsigned j = 0; j < k; j++) {
			uint64_t p = rnd_below(&rng, 64);
			if (rnd_below(&rng, 2))
				fill_page(v, p, (uint8_t)(j + 1));
			else
				m[p * PG + rnd_below(&rng, PG)] ^= 0x80;
			dirty[p] = true;
		}
		expect_diff_max(v, s, dirty, 0, 64, 1 + (size_t)rnd_below(&rng, 4));
		expect_ok(uvmo_vmo_restore(v, s));
		expect_no_diff(v, s);
	}
}

/* ======================================================================== */
/* memory and cost                                                          */
/* ======================================================================== */

/* Writes into pages that were holes at the snapshot: the restore drops
 * them, and the pool is back where it was. */
Test(restore, restore_gives_back_the_frames_of_pages_created_since)
{
	uvmo_vmo_t *v = make_vmo(64 * PG, 0);
	write_pattern(v, 160, 0, 16 * PG);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	struct uvmo_stats before = stats_now();
	write_pattern(v, 161, 16 * PG, 16 * PG);
	memset(m + 40 * PG, 0x61, 24 * PG);
	cr_assert_geq(stats_now().committed_bytes, before.committed_bytes + 40 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	struct uvmo_stats after = stats_now();
	cr_assert_eq(after.committed_bytes, before.committed_bytes,
		     "committed_bytes %llu after restore, %llu before the writes",
		     (unsigned long long)after.committed_bytes,
		     (unsigned long long)before.committed_bytes);
	cr_assert_eq(after.host_bytes, after.committed_bytes,
		     "host_bytes %llu, committed_bytes %llu", (unsigned long long)after.host_bytes,
		     (unsigned long long)after.committed_bytes);
}

/* "pages created since are dropped" — also when they hold zeros (a write
 * of zeros into a hole, a mapping write of a zero byte, a page only read
 * through a mapping): the pool is back where it was. */
Test(restore, restore_drops_pages_created_since_that_read_zero)
{
	uvmo_vmo_t *v = make_vmo(64 * PG, 0);
	write_pattern(v, 165, 0, 16 * PG);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	struct uvmo_stats before = stats_now();
	uint64_t vbefore = info_of(v).committed_bytes;
	uint8_t *zeros = calloc(1, 8 * PG);
	expect_ok(uvmo_vmo_write(v, zeros, 20 * PG, 8 * PG)); /* zeros by call */
	for (uint64_t p = 32; p < 40; p++)
		m[p * PG + 5] = 0;                               /* zero bytes, mapped */
	volatile uint8_t sink = 0;
	for (uint64_t p = 48; p < 56; p++)
		sink ^= m[p * PG];                               /* only read */
	(void)sink;
	expect_ok(uvmo_vmo_restore(v, s));
	struct uvmo_stats after = stats_now();
	cr_assert_eq(after.committed_bytes, before.committed_bytes,
		     "after the restore the pool holds %lld bytes more than before the writes",
		     (long long)(after.committed_bytes - before.committed_bytes));
	cr_assert_eq(info_of(v).committed_bytes, vbefore,
		     "after the restore the VMO owns %lld bytes more than before the writes",
		     (long long)(info_of(v).committed_bytes - vbefore));
	free(zeros);
}

/* The same K pages written and restored a thousand times: the memory
 * never grows past what the first period of the loop left.  (The writes
 * alternate between calls and the mapping with period 2; a write fault may
 * copy a neighbour page ahead, which the VMO may keep: the bytes are the
 * snapshot's, so the restore has nothing to do there.) */
#define SAME_PERIOD 2u
Test(restore, restore_loop_on_the_same_pages_keeps_memory_constant, .timeout = 120)
{
	uvmo_vmo_t *v = make_vmo(64 * PG, 0);
	write_pattern(v, 162, 0, 48 * PG);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	static const uint64_t pages[] = { 1, 2, 20, 47, 48, 60 }; /* two were holes */
	uint64_t first = 0, vfirst = 0;
	for (unsigned it = 0; it < FUZZ_ITERS; it++) {
		for (size_t j = 0; j < sizeof(pages) / sizeof(pages[0]); j++) {
			if ((it + j) % 2)
				fill_page(v, pages[j], (uint8_t)it);
			else
				m[pages[j] * PG + it % PG] = (uint8_t)(it | 1);
		}
		expect_ok(uvmo_vmo_restore(v, s));
		struct uvmo_stats st = stats_now();
		uint64_t vc = info_of(v).committed_bytes;
		if (it < SAME_PERIOD) {
			first = st.committed_bytes > first ? st.committed_bytes : first;
			vfirst = vc > vfirst ? vc : vfirst;
			continue;
		}
		cr_assert_leq(st.committed_bytes, first,
			      "iteration %u: committed_bytes %llu, %llu after the first %u restores",
			      it, (unsigned long long)st.committed_bytes, (unsigned long long)first,
			      SAME_PERIOD);
		cr_assert_leq(vc, vfirst,
			      "iteration %u: the VMO's committed_bytes %llu, %llu after the first %u"
			      " restores", it, (unsigned long long)vc, (unsigned long long)vfirst,
			      SAME_PERIOD);
	}
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 48 * PG, 162, 0);
	expect_mem_val(got + 48 * PG, 16 * PG, 0);
	free(got);
}

/* Random pages each round: memory stays bounded by an eager copy of the
 * content the snapshot holds (VMO + snapshot), and the VMO itself never
 * owns more than the pages that have content. */
Test(restore, restore_loop_on_random_pages_keeps_memory_bounded, .timeout = 120)
{
	const uint64_t pages = 64, content = 32;
	uvmo_vmo_t *v = make_vmo(pages * PG, 0);
	for (uint64_t p = 0; p < pages; p += 2)
		write_pattern(v, 163, p * PG, PG); /* even pages: content; odd: holes */
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	uint64_t base = stats_now().committed_bytes;
	uint64_t rng = 31337;
	for (unsigned it = 0; it < FUZZ_ITERS; it++) {
		for (int j = 0; j < 8; j++) {
			uint64_t p = rnd_below(&rng, pages);
			if (j % 2)
				fill_page(v, p, (uint8_t)it);
			else
				m[p * PG] = (uint8_t)(it | 1);
		}
		expect_ok(uvmo_vmo_restore(v, s));
		struct uvmo_stats st = stats_now();
		cr_assert_leq(st.committed_bytes, base + content * PG,
			      "iteration %u: committed_bytes %llu, more than the %llu of two full"
			      " copies of the snapshot's content",
			      it, (unsigned long long)st.committed_bytes,
			      (unsigned long long)(base + content * PG));
		uint64_t vc = info_of(v).committed_bytes;
		cr_assert_leq(vc, content * PG,
			      "iteration %u: the VMO owns %llu bytes, but only %llu pages have content",
			      it, (unsigned long long)vc, (unsigned long long)content);
	}
	uvmo_vmo_close(s);
	cr_assert_leq(stats_now().committed_bytes, content * PG,
		      "with the snapshot closed the pool holds %llu bytes, more than the VMO's %llu"
		      " pages of content",
		      (unsigned long long)stats_now().committed_bytes,
		      (unsigned long long)content);
}

Test(restore, closing_snapshots_gives_their_memory_back)
{
	struct uvmo_stats st0 = stats_now();
	uvmo_vmo_t *v = pattern_vmo(32, 164);
	uvmo_vmo_t *s1 = take_snapshot(v);
	write_pattern(v, 165, 0, 16 * PG);
	uvmo_vmo_t *s2 = take_snapshot(v);
	write_pattern(v, 166, 8 * PG, 16 * PG);
	cr_assert_eq(stats_now().vmos, st0.vmos + 3);
	uvmo_vmo_close(s1);
	uvmo_vmo_close(s2);
	struct uvmo_stats st = stats_now();
	cr_assert_eq(st.vmos, st0.vmos + 1);
	cr_assert_eq(st.committed_bytes, st0.committed_bytes + 32 * PG,
		     "with its snapshots closed a 32-page VMO leaves %llu bytes in the pool",
		     (unsigned long long)(st.committed_bytes - st0.committed_bytes));
	uvmo_vmo_close(v);
	st = stats_now();
	cr_assert_eq(st.committed_bytes, st0.committed_bytes);
	cr_assert_eq(st.vmos, st0.vmos);
}

#define BIG_PAGES (64ull * 1024 * 1024 / UVMO_PAGE_SIZE) /* 64 MiB */
#define COST_K 10u

static uint64_t work_of(const struct uvmo_stats *a, const struct uvmo_stats *b)
{
	return (b->cow_copies - a->cow_copies) + (b->cow_moves - a->cow_moves) +
	       (b->zero_fills - a->zero_fills) + (b->missing_faults - a->missing_faults) +
	       (b->wp_faults - a->wp_faults);
}

static double restore_seconds(uvmo_vmo_t *v, uvmo_vmo_t *s)
{
	double t0 = now_seconds();
	expect_ok(uvmo_vmo_restore(v, s));
	return now_seconds() - t0;
}

/*
 * The cost claim: a restore after K written pages of a 64 MiB VMO does
 * work for about K pages, again and again.  Counted with the global
 * counters (copies, moves, zero fills, faults) and the pool's high-water
 * mark; without the validation build (which walks the whole tree after
 * every call) also timed against a restore after every page was written.
 */
Test(restore, restore_cost_follows_the_pages_written_not_the_size, .timeout = 300)
{
	uvmo_vmo_t *v = make_vmo(BIG_PAGES * PG, 0);
	uint8_t *big = malloc(BIG_PAGES * PG);
	cr_assert_not_null(big);
	fill_pattern(big, BIG_PAGES * PG, 170, 0);
	expect_ok(uvmo_vmo_write(v, big, 0, BIG_PAGES * PG));
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	uint64_t rng = 5;
	double small_best = 1e9;
	for (int round = 0; round < 20; round++) {
		struct uvmo_stats a = stats_now();
		for (unsigned j = 0; j < COST_K; j++) {
			uint64_t p = rnd_below(&rng, BIG_PAGES);
			if (j % 2)
				fill_page(v, p, (uint8_t)(round + 1));
			else
				m[p * PG + 1] ^= 0x55;
		}
		struct uvmo_stats b = stats_now();
		double t = restore_seconds(v, s);
		if (t < small_best)
			small_best = t;
		struct uvmo_stats c = stats_now();
		if (c.async_tracked_vmos > b.async_tracked_vmos) {
			/* The second restore found a reset loop and moved the
			 * VMO to the async tier, copying once every page it
			 * shared with the snapshot (uvmo.h): once only. */
			cr_assert_eq(round, 1, "round %d moved the VMO to the async tier", round);
			cr_assert_leq(c.committed_bytes, b.committed_bytes + BIG_PAGES * PG + 64 * PG);
			continue;
		}
		uint64_t w_write = work_of(&a, &b), w_restore = work_of(&b, &c);
		cr_assert_leq(w_write + w_restore, 8 * COST_K + 64,
			      "round %d: writing %u pages of a %llu-page VMO and restoring it counted"
			      " %llu page operations (%llu writing, %llu restoring)",
			      round, COST_K, (unsigned long long)BIG_PAGES,
			      (unsigned long long)(w_write + w_restore), (unsigned long long)w_write,
			      (unsigned long long)w_restore);
		uint64_t high = b.peak_committed_bytes > b.committed_bytes ? b.peak_committed_bytes
									     : b.committed_bytes;
		cr_assert_leq(c.peak_committed_bytes, high + (COST_K + 64) * PG,
			      "round %d: the restore raised the pool's high-water mark from %llu to"
			      " %llu bytes (it holds %llu)",
			      round, (unsigned long long)high,
			      (unsigned long long)c.peak_committed_bytes,
			      (unsigned long long)c.committed_bytes);
		cr_assert_leq(c.committed_bytes, b.committed_bytes,
			      "round %d: the restore grew the pool from %llu to %llu bytes", round,
			      (unsigned long long)b.committed_bytes,
			      (unsigned long long)c.committed_bytes);
	}
	expect_no_diff(v, s);
	/* A few pages, checked by byte. */
	for (int k = 0; k < 64; k++) {
		uint64_t p = rnd_below(&rng, BIG_PAGES);
		expect_mem_pattern(m + p * PG, PG, 170, p * PG);
	}
#ifndef UVMO_VALIDATE
	/* Timing: every page written, restored; the best of three. */
	double full_best = 1e9;
	for (int round = 0; round < 3; round++) {
		memset(m, round + 1, BIG_PAGES * PG);
		double t = restore_seconds(v, s);
		if (t < full_best)
			full_best = t;
	}
	cr_log_info("restore after %u pages: %.1f us; after all %llu pages: %.1f us", COST_K,
		    small_best * 1e6, (unsigned long long)BIG_PAGES, full_best * 1e6);
	cr_assert_lt(small_best * 20, full_best,
		     "restoring %u written pages took %.1f us, restoring all %llu took %.1f us:"
		     " not proportional to the pages written",
		     COST_K, small_best * 1e6, (unsigned long long)BIG_PAGES, full_best * 1e6);
#else
	(void)small_best;
#endif
	/* Every byte, once. */
	uint8_t *got = malloc(BIG_PAGES * PG);
	cr_assert_not_null(got);
	expect_ok(uvmo_vmo_read(v, got, 0, BIG_PAGES * PG));
	cr_assert(memcmp(got, big, BIG_PAGES * PG) == 0, "the 64 MiB VMO is not restored byte for byte");
	free(got);
	free(big);
}

/* ======================================================================== */
/* threads                                                                  */
/* ======================================================================== */

#define TPAGES 32u
#define NTHREADS 4
#define TROUNDS 60

struct round_arg {
	pthread_barrier_t *bar;
	uint8_t *m;
	const uint8_t *img;
	int index;
};

/* Each round: write random bytes all over the mapping, wait (the main
 * thread restores), then check every byte shows the snapshot. */
static void *round_worker(void *arg)
{
	struct round_arg *a = arg;
	uint64_t rng = 0x9e37 + (uint64_t)a->index * 7919;
	for (int r = 0; r < TROUNDS; r++) {
		unsigned writes = 1 + (unsigned)rnd_below(&rng, 64);
		for (unsigned j = 0; j < writes; j++) {
			uint64_t off = rnd_below(&rng, TPAGES * PG - 64);
			memset(a->m + off, (int)(r + a->index + 1), 1 + rnd_below(&rng, 64));
		}
		pthread_barrier_wait(a->bar); /* writes done */
		pthread_barrier_wait(a->bar); /* restored */
		for (uint64_t i = 0; i < TPAGES * PG; i++) {
			if (a->m[i] != a->img[i]) {
				tcheck(false, "round %d thread %d: byte %llu (page %llu) is 0x%02x after"
				       " the restore, the snapshot has 0x%02x", r, a->index,
				       (unsigned long long)i, (unsigned long long)(i / PG), a->m[i],
				       a->img[i]);
				break;
			}
		}
		pthread_barrier_wait(a->bar); /* checked */
	}
	return NULL;
}

Test(restore, threads_write_until_a_barrier_then_restore_then_all_read, .timeout = 120)
{
	uvmo_vmo_t *v = make_vmo(TPAGES * PG, 0);
	write_pattern(v, 180, 0, TPAGES * PG / 2);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, NTHREADS + 1);
	struct round_arg args[NTHREADS];
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		args[i] = (struct round_arg){ .bar = &bar, .m = m, .img = img, .index = i };
	start_workers(t, NTHREADS, round_worker, args, sizeof(args[0]));
	int bad = -1;
	for (int r = 0; r < TROUNDS; r++) {
		pthread_barrier_wait(&bar);
		int rc = uvmo_vmo_restore(v, s);
		if (rc != 0 && bad < 0)
			bad = rc;
		pthread_barrier_wait(&bar);
		pthread_barrier_wait(&bar);
	}
	join_workers(t, NTHREADS);
	pthread_barrier_destroy(&bar);
	cr_assert_eq(bad, -1, "uvmo_vmo_restore returned %d (%s)", bad, rc_name(bad));
	expect_no_thread_failure();
	expect_bytes(v, img, TPAGES * PG);
	free(img);
}

/* Writers that never stop while restores happen: every word ends up either
 * the snapshot's or one a writer stored (writes land before a restore and
 * are restored over, or land after it), never anything else; no hang; and
 * a quiet restore at the end is exact. */
struct race_arg {
	volatile uint64_t *w;
	atomic_bool *stop;
	int index;
	uint64_t last_seq;
};

#define RACE_MAGIC 0xabcd000000000000ull

static void *race_worker(void *arg)
{
	struct race_arg *a = arg;
	uint64_t rng = 77 + (uint64_t)a->index;
	uint64_t seq = 0;
	while (!atomic_load(a->stop)) {
		seq++;
		/* Threads own the words i with i % NTHREADS == index. */
		uint64_t page = rnd_below(&rng, TPAGES);
		for (size_t i = (size_t)a->index; i < WORDS; i += NTHREADS)
			a->w[page * WORDS + i] = RACE_MAGIC | ((uint64_t)a->index << 40) | seq;
	}
	a->last_seq = seq;
	return NULL;
}

Test(restore, writes_racing_restores_land_before_or_after_them, .timeout = 120)
{
	uvmo_vmo_t *v = make_vmo(TPAGES * PG, 0);
	uint64_t *img = malloc(TPAGES * PG);
	for (size_t i = 0; i < TPAGES * WORDS; i++)
		img[i] = i % 3 ? 0x1111000000000000ull + i : 0; /* some zero words */
	expect_ok(uvmo_vmo_write(v, img, 0, TPAGES * PG / 2));
	memset((uint8_t *)img + TPAGES * PG / 2, 0, TPAGES * PG / 2); /* second half: holes */
	volatile uint64_t *w = (volatile uint64_t *)map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	atomic_bool stop;
	atomic_init(&stop, false);
	struct race_arg args[NTHREADS];
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		args[i] = (struct race_arg){ .w = w, .stop = &stop, .index = i };
	start_workers(t, NTHREADS, race_worker, args, sizeof(args[0]));
	int bad = 0;
	for (int k = 0; k < 300 && !bad; k++) {
		bad = uvmo_vmo_restore(v, s);
		if (k % 16 == 0) {
			struct timespec ts = { 0, 100000 };
			nanosleep(&ts, NULL);
		}
	}
	atomic_store(&stop, true);
	join_workers(t, NTHREADS);
	cr_assert_eq(bad, 0, "uvmo_vmo_restore returned %d (%s)", bad, rc_name(bad));
	for (size_t i = 0; i < TPAGES * WORDS; i++) {
		uint64_t x = w[i];
		if (x == img[i])
			continue;
		int owner = (int)(i % WORDS % NTHREADS);
		uint64_t seq = x & 0xffffffffffull;
		cr_assert((x & 0xffff000000000000ull) == RACE_MAGIC &&
			  (int)((x >> 40) & 0xff) == owner && seq >= 1 && seq <= args[owner].last_seq,
			  "word %zu (page %zu) is %#llx: neither the snapshot's %#llx nor a value"
			  " thread %d wrote", i, i / WORDS, (unsigned long long)x,
			  (unsigned long long)img[i], owner);
	}
	expect_vmo_matches(v, 0, (const uint8_t *)w, TPAGES * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_bytes(v, img, TPAGES * PG);
	/* (Before reading through the mapping: reads are not this test's
	 * business, see diff_does_not_list_pages_only_read.) */
	expect_no_diff(v, s);
	expect_mapped_bytes((const uint8_t *)w, img, TPAGES * PG);
	free(img);
}

/* Readers that never stop while the main thread writes and restores:
 * every word they read is the snapshot's or one the main thread wrote;
 * pages dropped by a restore fault back in as zero, never as SIGBUS. */
struct reader_arg {
	const volatile uint64_t *w;
	const uint64_t *img;
	atomic_bool *stop;
	unsigned long reads;
};

#define READ_TAG 0x5eed000000000000ull

static void *reader(void *arg)
{
	struct reader_arg *a = arg;
	uint64_t rng = (uint64_t)(uintptr_t)a | 1;
	while (!atomic_load(a->stop)) {
		size_t i = (size_t)rnd_below(&rng, TPAGES * WORDS);
		uint64_t x = a->w[i];
		a->reads++;
		tcheck(x == a->img[i] || (x & 0xffff000000000000ull) == READ_TAG,
		       "word %zu (page %zu) read %#llx: neither the snapshot's %#llx nor a value"
		       " written", i, i / WORDS, (unsigned long long)x,
		       (unsigned long long)a->img[i]);
	}
	return NULL;
}

Test(restore, readers_racing_restores_see_old_or_new_bytes, .timeout = 120)
{
	uvmo_vmo_t *v = make_vmo(TPAGES * PG, 0);
	uint64_t *img = calloc(TPAGES * WORDS, sizeof(*img));
	for (size_t i = 0; i < TPAGES * WORDS / 2; i++)
		img[i] = 0x2222000000000000ull + i;
	expect_ok(uvmo_vmo_write(v, img, 0, TPAGES * PG / 2)); /* second half: holes */
	volatile uint64_t *w = (volatile uint64_t *)map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	atomic_bool stop;
	atomic_init(&stop, false);
	struct reader_arg args[NTHREADS];
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		args[i] = (struct reader_arg){ .w = w, .img = img, .stop = &stop };
	start_workers(t, NTHREADS, reader, args, sizeof(args[0]));
	uint64_t rng = 17;
	int bad = 0;
	for (uint64_t k = 1; k <= 500 && !bad && !atomic_load(&thread_failed); k++) {
		unsigned n = 1 + (unsigned)rnd_below(&rng, 8);
		for (unsigned j = 0; j < n; j++) {
			uint64_t p = rnd_below(&rng, TPAGES);
			for (size_t i = 0; i < WORDS; i++)
				w[p * WORDS + i] = READ_TAG | (k << 16) | i;
		}
		bad = uvmo_vmo_restore(v, s);
	}
	atomic_store(&stop, true);
	join_workers(t, NTHREADS);
	cr_assert_eq(bad, 0, "uvmo_vmo_restore returned %d (%s)", bad, rc_name(bad));
	expect_no_thread_failure();
	unsigned long reads = 0;
	for (int i = 0; i < NTHREADS; i++)
		reads += args[i].reads;
	cr_log_info("%lu racing reads", reads);
	expect_mapped_bytes((const uint8_t *)w, img, TPAGES * PG);
	free(img);
}

/* fork(): the child gets the VMO, its snapshot and mapping as they were,
 * and restores on its own; the parent's are untouched, and it restores
 * too.  (The child reports by exit status: 1 + the step that failed.) */
static int child_restores(uvmo_vmo_t *v, uvmo_vmo_t *s, uint8_t *m)
{
	uint8_t *got = malloc(8 * PG);
	if (!got)
		return 1;
	for (uint64_t i = 0; i < 8 * PG; i++)
		if (m[i] != (i < 2 * PG ? 0x6b : pattern_byte(260, i)))
			return 2; /* the parent's writes are not there */
	if (uvmo_vmo_restore(v, s) != 0)
		return 3;
	for (uint64_t i = 0; i < 8 * PG; i++)
		if (m[i] != pattern_byte(260, i))
			return 4;
	memset(m + 4 * PG, 0x7c, 2 * PG);
	if (uvmo_vmo_restore(v, s) != 0 || uvmo_vmo_read(v, got, 0, 8 * PG) != 0)
		return 5;
	for (uint64_t i = 0; i < 8 * PG; i++)
		if (got[i] != pattern_byte(260, i))
			return 6;
	free(got);
	return 0;
}

Test(restore, restore_in_a_forked_child_and_in_the_parent, .timeout = 60)
{
	uvmo_vmo_t *v = pattern_vmo(8, 260);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	memset(m, 0x6b, 2 * PG);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork failed");
	if (pid == 0)
		_exit(child_restores(v, s, m));
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the child failed at step %d (status %#x)", WIFEXITED(status) ?
		  WEXITSTATUS(status) : -1, status);
	expect_mem_val(m, 2 * PG, 0x6b);
	expect_mem_pattern(m + 2 * PG, 6 * PG, 260, 2 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_mem_pattern(m, 8 * PG, 260, 0);
}

/* One thread restores a VMO to its first snapshot again and again; another
 * writes whole pages by call, takes snapshots and closes them.  Calls on
 * one tree serialise, so every snapshot shows, page by page, either the
 * first snapshot's page or one whole page the writer wrote; nothing fails. */
#define CHURN_PAGES 16u

struct churn_arg {
	uvmo_vmo_t *v, *s0;
	const uint8_t *img0;
	atomic_bool *stop;
	unsigned long restores, snapshots;
};

static void *churn_restorer(void *arg)
{
	struct churn_arg *a = arg;
	while (!atomic_load(a->stop)) {
		int rc = uvmo_vmo_restore(a->v, a->s0);
		tcheck(rc == 0, "restore returned %d", rc);
		a->restores++;
	}
	return NULL;
}

/* Every page of @snap is the first snapshot's or one written whole with a
 * tag byte (nonzero, differs from the pattern byte at its start). */
static bool churn_snapshot_ok(uvmo_vmo_t *snap, const uint8_t *img0, uint8_t *buf, char *why,
			      size_t whylen)
{
	int rc = uvmo_vmo_read(snap, buf, 0, CHURN_PAGES * PG);
	if (rc) {
		snprintf(why, whylen, "reading a snapshot returned %d", rc);
		return false;
	}
	for (uint64_t p = 0; p < CHURN_PAGES; p++) {
		const uint8_t *pg = buf + p * PG;
		if (memcmp(pg, img0 + p * PG, PG) == 0)
			continue;
		if (pg[0] >= 0x80 && first_other_byte(pg, PG, pg[0]) < 0)
			continue;
		snprintf(why, whylen, "page %llu of a snapshot is neither the first snapshot's nor"
			 " one whole written page (byte 0 is 0x%02x)", (unsigned long long)p, pg[0]);
		return false;
	}
	return true;
}

Test(restore, snapshots_taken_and_closed_while_another_thread_restores, .timeout = 120)
{
	uvmo_vmo_t *v = make_vmo(CHURN_PAGES * PG, 0);
	uint8_t *img0 = malloc(CHURN_PAGES * PG);
	for (uint64_t i = 0; i < CHURN_PAGES * PG; i++)
		img0[i] = (uint8_t)(pattern_byte(270, i) & 0x7f); /* below the tags */
	expect_ok(uvmo_vmo_write(v, img0, 0, CHURN_PAGES * PG / 2));
	memset(img0 + CHURN_PAGES * PG / 2, 0, CHURN_PAGES * PG / 2); /* holes */
	uvmo_vmo_t *s0 = take_snapshot(v);
	atomic_bool stop;
	atomic_init(&stop, false);
	struct churn_arg a = { .v = v, .s0 = s0, .img0 = img0, .stop = &stop };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, churn_restorer, &a), 0);
	uvmo_vmo_t *kept[3] = { NULL, NULL, NULL };
	uint8_t *buf = malloc(CHURN_PAGES * PG);
	uint8_t page[UVMO_PAGE_SIZE];
	char why[256] = "";
	uint64_t rng = 271;
	bool ok = true;
	for (unsigned k = 0; k < 400 && ok && !atomic_load(&thread_failed); k++) {
		memset(page, 0x80 | (int)(k % 0x7f), PG);
		int rc = uvmo_vmo_write(v, page, rnd_below(&rng, CHURN_PAGES) * PG, PG);
		if (rc) {
			snprintf(why, sizeof(why), "write returned %d", rc);
			ok = false;
			break;
		}
		uvmo_vmo_t *s = NULL;
		rc = uvmo_vmo_snapshot(v, &s);
		if (rc) {
			snprintf(why, sizeof(why), "snapshot returned %d", rc);
			ok = false;
			break;
		}
		ok = churn_snapshot_ok(s, img0, buf, why, sizeof(why));
		unsigned slot = (unsigned)rnd_below(&rng, 3);
		uvmo_vmo_close(kept[slot]);
		kept[slot] = s;
		a.snapshots++;
	}
	atomic_store(&stop, true);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert(ok, "%s", why);
	expect_no_thread_failure();
	for (int i = 0; i < 3; i++)
		if (kept[i])
			cr_assert(churn_snapshot_ok(kept[i], img0, buf, why, sizeof(why)), "%s", why);
	expect_ok(uvmo_vmo_restore(v, s0));
	expect_bytes(v, img0, CHURN_PAGES * PG);
	expect_no_diff(v, s0);
	cr_log_info("%lu restores, %lu snapshots", a.restores, a.snapshots);
	free(buf);
	free(img0);
}

/* Restores of unrelated VMOs from several threads at once. */
struct own_arg {
	int index;
};

static void *own_tree_worker(void *arg)
{
	struct own_arg *a = arg;
	uvmo_vmo_t *v = NULL, *s = NULL;
	if (uvmo_vmo_create(8 * PG, 0, &v) != 0) {
		thread_fail("thread %d: create failed", a->index);
		return NULL;
	}
	uint8_t page[UVMO_PAGE_SIZE];
	for (uint64_t p = 0; p < 8; p++) {
		memset(page, (int)(a->index * 16 + (int)p + 1), PG);
		uvmo_vmo_write(v, page, p * PG, PG);
	}
	tcheck(uvmo_vmo_snapshot(v, &s) == 0, "thread %d: snapshot failed", a->index);
	for (int r = 0; r < 300 && s; r++) {
		memset(page, 0xff, PG);
		uvmo_vmo_write(v, page, (uint64_t)(r % 8) * PG, PG);
		int rc = uvmo_vmo_restore(v, s);
		tcheck(rc == 0, "thread %d round %d: restore returned %d", a->index, r, rc);
		uvmo_vmo_read(v, page, (uint64_t)(r % 8) * PG, PG);
		tcheck(first_other_byte(page, PG, (uint8_t)(a->index * 16 + r % 8 + 1)) < 0,
		       "thread %d round %d: page %d not restored", a->index, r, r % 8);
	}
	uvmo_vmo_close(s);
	uvmo_vmo_close(v);
	return NULL;
}

Test(restore, restores_of_unrelated_vmos_run_in_parallel, .timeout = 60)
{
	struct own_arg args[NTHREADS];
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		args[i].index = i;
	start_workers(t, NTHREADS, own_tree_worker, args, sizeof(args[0]));
	join_workers(t, NTHREADS);
	expect_no_thread_failure();
}

/* ======================================================================== */
/* errors                                                                   */
/* ======================================================================== */

Test(restore, snapshot_with_null_arguments_is_einval)
{
	uvmo_vmo_t *v = pattern_vmo(2, 190);
	uvmo_vmo_t *s = NULL;
	uint64_t vmos = stats_now().vmos;
	expect_rc(-EINVAL, uvmo_vmo_snapshot(NULL, &s));
	cr_assert_null(s);
	expect_rc(-EINVAL, uvmo_vmo_snapshot(v, NULL));
	cr_assert_eq(stats_now().vmos, vmos);
	cr_assert_eq(info_of(v).num_children, 0);
}

Test(restore, snapshot_of_a_slice_is_enotsup)
{
	uvmo_vmo_t *v = pattern_vmo(4, 191);
	uvmo_vmo_t *sl = make_child(v, UVMO_CHILD_SLICE, PG, 2 * PG);
	uvmo_vmo_t *s = NULL;
	uint64_t vmos = stats_now().vmos;
	expect_rc(-ENOTSUP, uvmo_vmo_snapshot(sl, &s));
	cr_assert_eq(stats_now().vmos, vmos);
	/* The slice still writes through to its parent. */
	fill_page(sl, 0, 0x12);
	expect_page(v, 1, 0x12);
}

Test(restore, snapshot_of_a_discardable_vmo_is_enotsup)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, UVMO_VMO_DISCARDABLE);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_LOCK, 0, 4 * PG));
	fill_page(v, 1, 0x13);
	uvmo_vmo_t *s = NULL;
	uint64_t vmos = stats_now().vmos;
	expect_rc(-ENOTSUP, uvmo_vmo_snapshot(v, &s));
	cr_assert_eq(stats_now().vmos, vmos);
	expect_page(v, 1, 0x13);
	cr_assert_eq(info_of(v).lock_count, 1);
}

Test(restore, snapshot_of_a_pager_backed_vmo_or_its_at_least_on_write_child_is_enotsup)
{
	uvmo_pager_t *pager = NULL;
	expect_ok(uvmo_pager_create(0, &pager));
	uvmo_vmo_t *pv = NULL;
	expect_ok(uvmo_pager_create_vmo(pager, 0, 1, 4 * PG, &pv));
	uvmo_vmo_t *alow = make_child(pv, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	uvmo_vmo_t *s = NULL;
	uint64_t vmos = stats_now().vmos;
	expect_rc(-ENOTSUP, uvmo_vmo_snapshot(pv, &s));
	expect_rc(-ENOTSUP, uvmo_vmo_snapshot(alow, &s));
	cr_assert_eq(stats_now().vmos, vmos);
	uvmo_vmo_close(alow);
	uvmo_vmo_close(pv);
	uvmo_pager_destroy(pager);
}

Test(restore, snapshot_of_a_closed_handle_is_ebadf)
{
	uvmo_vmo_t *v = pattern_vmo(2, 192);
	uvmo_vmo_close(v);
	uvmo_vmo_t *s = NULL;
	expect_rc(-EBADF, uvmo_vmo_snapshot(v, &s));
	cr_assert_eq(stats_now().vmos, 0);
}

/* Set-up for the restore error cases: a VMO with a snapshot and writes
 * since; *img receives what the VMO holds now. */
static uvmo_vmo_t *written_since(uint64_t seed, uvmo_vmo_t **s, uint8_t **img)
{
	uvmo_vmo_t *v = pattern_vmo(4, seed);
	*s = take_snapshot(v);
	write_pattern(v, seed + 1, PG, 2 * PG);
	*img = read_all(v, NULL);
	return v;
}

Test(restore, restore_with_null_arguments_is_einval)
{
	uvmo_vmo_t *s;
	uint8_t *img;
	uvmo_vmo_t *v = written_since(193, &s, &img);
	expect_rc(-EINVAL, uvmo_vmo_restore(NULL, s));
	expect_rc(-EINVAL, uvmo_vmo_restore(v, NULL));
	expect_bytes(v, img, 4 * PG);
	free(img);
}

Test(restore, restore_with_a_snapshot_of_another_vmo_is_einval)
{
	uvmo_vmo_t *s;
	uint8_t *img;
	uvmo_vmo_t *v = written_since(194, &s, &img);
	uvmo_vmo_t *other = pattern_vmo(4, 196);
	uvmo_vmo_t *os = take_snapshot(other);
	expect_rc(-EINVAL, uvmo_vmo_restore(v, os));
	expect_bytes(v, img, 4 * PG);
	/* Nor the other way round. */
	expect_rc(-EINVAL, uvmo_vmo_restore(other, s));
	uint8_t *got = read_all(other, NULL);
	expect_mem_pattern(got, 4 * PG, 196, 0);
	free(got);
	free(img);
}

/* A clone's parent is no snapshot of the clone. */
Test(restore, restore_of_a_clone_to_its_parent_is_einval)
{
	uvmo_vmo_t *p = pattern_vmo(4, 230);
	uvmo_vmo_t *c = snap(p);
	write_pattern(c, 231, 0, 2 * PG);
	write_pattern(p, 232, 2 * PG, 2 * PG);
	uint8_t *img = read_all(c, NULL);
	expect_rc(-EINVAL, uvmo_vmo_restore(c, p));
	expect_bytes(c, img, 4 * PG);
	free(img);
}

/* Two clones of one parent are no snapshots of each other. */
Test(restore, restore_to_a_sibling_clone_is_einval)
{
	uvmo_vmo_t *p = pattern_vmo(4, 233);
	uvmo_vmo_t *c1 = snap(p);
	uvmo_vmo_t *c2 = snap(p);
	write_pattern(c1, 234, 0, 2 * PG);
	write_pattern(c2, 235, PG, 2 * PG);
	uint8_t *img = read_all(c1, NULL);
	expect_rc(-EINVAL, uvmo_vmo_restore(c1, c2));
	expect_bytes(c1, img, 4 * PG);
	/* Nor is a live snapshot of the parent one of a clone. */
	uvmo_vmo_t *ps = take_snapshot(p);
	expect_rc(-EINVAL, uvmo_vmo_restore(c1, ps));
	expect_bytes(c1, img, 4 * PG);
	free(img);
}

/* Found by soak runs (shrunk): once the VMO is closed, its clones and
 * snapshots are still no snapshots of each other. */
Test(restore, clones_of_a_closed_vmo_are_no_snapshots_of_each_other)
{
	uvmo_vmo_t *v = pattern_vmo(4, 256);
	uvmo_vmo_t *s1 = take_snapshot(v);
	uvmo_vmo_t *s2 = take_snapshot(v);
	uvmo_vmo_t *c = snap(v);
	write_pattern(c, 257, 0, 2 * PG);
	uint8_t *cimg = read_all(c, NULL);
	struct uvmo_dirty_range out[4];
	size_t actual = 0, avail = 0;
	/* While the VMO lives ... */
	expect_rc(-EINVAL, uvmo_vmo_restore(c, s1));
	expect_rc(-EINVAL, uvmo_vmo_diff(s2, s1, 0, 4 * PG, out, 4, &actual, &avail));
	expect_rc(-EINVAL, uvmo_vmo_diff(c, s1, 0, 4 * PG, out, 4, &actual, &avail));
	/* ... and after it is closed (every case reported). */
	uvmo_vmo_close(v);
	char fails[1024] = "";
	int rc;
	if ((rc = uvmo_vmo_restore(c, s1)) != -EINVAL)
		note_failure(fails, sizeof(fails), "restore(clone, snapshot 1) returned %s; ",
			     rc_name(rc));
	if ((rc = uvmo_vmo_restore(c, s2)) != -EINVAL)
		note_failure(fails, sizeof(fails), "restore(clone, snapshot 2) returned %s; ",
			     rc_name(rc));
	if ((rc = uvmo_vmo_diff(s2, s1, 0, 4 * PG, out, 4, &actual, &avail)) != -EINVAL)
		note_failure(fails, sizeof(fails), "diff(snapshot 2, snapshot 1) returned %s; ",
			     rc_name(rc));
	if ((rc = uvmo_vmo_diff(s1, s2, 0, 4 * PG, out, 4, &actual, &avail)) != -EINVAL)
		note_failure(fails, sizeof(fails), "diff(snapshot 1, snapshot 2) returned %s; ",
			     rc_name(rc));
	if ((rc = uvmo_vmo_diff(c, s1, 0, 4 * PG, out, 4, &actual, &avail)) != -EINVAL)
		note_failure(fails, sizeof(fails), "diff(clone, snapshot 1) returned %s; ",
			     rc_name(rc));
	/* Two snapshots of a VMO closed with no clone left (soak, shrunk). */
	uvmo_vmo_t *w = make_vmo(40 * PG, 0);
	uvmo_vmo_t *t1 = take_snapshot(w);
	uvmo_vmo_t *t2 = take_snapshot(w);
	uvmo_vmo_close(w);
	if ((rc = uvmo_vmo_diff(t2, t1, 0, 40 * PG, out, 4, &actual, &avail)) != -EINVAL)
		note_failure(fails, sizeof(fails), "diff(snapshot 2, snapshot 1) of another VMO"
			     " closed with no clone returned %s; ", rc_name(rc));
	if ((rc = uvmo_vmo_diff(t1, t2, 0, 40 * PG, out, 4, &actual, &avail)) != -EINVAL)
		note_failure(fails, sizeof(fails), "diff(snapshot 1, snapshot 2) of another VMO"
			     " closed with no clone returned %s; ", rc_name(rc));
	cr_assert(!fails[0], "after the VMO is closed (all -EINVAL expected): %s", fails);
	free(cimg);
}

/* An -EINVAL restore changes nothing: not the size of a resizable VMO
 * either, whatever the size of the refused VMO. */
Test(restore, refused_restore_leaves_the_size_of_a_resizable_vmo)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, UVMO_VMO_RESIZABLE);
	write_pattern(v, 236, 0, 4 * PG);
	/* A clone of part of the VMO: no snapshot of it. */
	uvmo_vmo_t *part = make_child(v, UVMO_CHILD_SNAPSHOT, PG, 2 * PG);
	expect_rc(-EINVAL, uvmo_vmo_restore(v, part));
	cr_assert_eq(size_of(v), 4 * PG, "a refused restore resized the VMO to %llu bytes",
		     (unsigned long long)size_of(v));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 4 * PG, 236, 0);
	free(got);
}

/* A snapshot of a SNAPSHOT child made with create_child: whether that
 * child counts as "a snapshot of @vmo" the header leaves open, so either
 * it restores the bytes or it is refused with -EINVAL and nothing changes. */
Test(restore, restore_with_a_snapshot_of_a_create_child_snapshot_restores_or_is_einval)
{
	uvmo_vmo_t *v = pattern_vmo(4, 237);
	uvmo_vmo_t *c = snap(v);
	uvmo_vmo_t *cs = take_snapshot(c);
	write_pattern(v, 238, 0, 4 * PG);
	uint8_t *img = read_all(v, NULL);
	int rc = uvmo_vmo_restore(v, cs);
	cr_assert(rc == 0 || rc == -EINVAL, "restore returned %d (%s)", rc, rc_name(rc));
	if (rc == 0)
		expect_same_content(v, cs);
	else
		expect_bytes(v, img, 4 * PG);
	free(img);
}

Test(restore, restore_with_an_unrelated_vmo_as_snapshot_is_einval)
{
	uvmo_vmo_t *s;
	uint8_t *img;
	uvmo_vmo_t *v = written_since(197, &s, &img);
	uvmo_vmo_t *plain = pattern_vmo(4, 199);
	expect_rc(-EINVAL, uvmo_vmo_restore(v, plain));
	expect_rc(-EINVAL, uvmo_vmo_restore(v, v));
	expect_bytes(v, img, 4 * PG);
	free(img);
}

/* A SNAPSHOT child made with create_child is not named by the contract
 * ("a snapshot of @vmo (uvmo_vmo_snapshot)"): either it is accepted and
 * restores its bytes, or it is refused with -EINVAL and nothing changes. */
Test(restore, restore_with_a_create_child_snapshot_restores_or_is_einval)
{
	uvmo_vmo_t *v = pattern_vmo(4, 200);
	uvmo_vmo_t *c = snap(v);
	write_pattern(v, 201, 0, 4 * PG);
	uint8_t *img = read_all(v, NULL);
	int rc = uvmo_vmo_restore(v, c);
	cr_assert(rc == 0 || rc == -EINVAL, "restore returned %d (%s)", rc, rc_name(rc));
	if (rc == 0)
		expect_same_content(v, c);
	else
		expect_bytes(v, img, 4 * PG);
	free(img);
}

Test(restore, restore_through_a_no_write_handle_is_eacces)
{
	uvmo_vmo_t *p = pattern_vmo(4, 202);
	uvmo_vmo_t *ro = make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_NO_WRITE, 0, 4 * PG);
	uvmo_vmo_t *s = take_snapshot(ro);
	expect_rc(-EACCES, uvmo_vmo_restore(ro, s));
	uint8_t *got = read_all(ro, NULL);
	expect_mem_pattern(got, 4 * PG, 202, 0);
	free(got);
	/* A snapshot handle is NO_WRITE too: it cannot be restored to its own
	 * snapshot. */
	uvmo_vmo_t *v = pattern_vmo(4, 203);
	uvmo_vmo_t *s1 = take_snapshot(v);
	uvmo_vmo_t *s2 = take_snapshot(s1);
	expect_rc(-EACCES, uvmo_vmo_restore(s1, s2));
	got = read_all(s1, NULL);
	expect_mem_pattern(got, 4 * PG, 203, 0);
	free(got);
}

Test(restore, restore_with_a_snapshot_of_another_size_on_a_fixed_size_vmo_is_einval)
{
	uvmo_vmo_t *s;
	uint8_t *img;
	uvmo_vmo_t *v = written_since(204, &s, &img);
	/* A snapshot of the snapshot, twice as large. */
	uvmo_vmo_t *big = NULL;
	int rc = uvmo_vmo_create_child(s, UVMO_CHILD_SNAPSHOT, 0, 8 * PG, &big);
	if (rc != 0)
		cr_skip_test("a SNAPSHOT child of a snapshot could not be made (%s)", rc_name(rc));
	expect_rc(-EINVAL, uvmo_vmo_restore(v, big));
	expect_bytes(v, img, 4 * PG);
	free(img);
}

Test(restore, restore_of_a_slice_is_refused)
{
	uvmo_vmo_t *v = pattern_vmo(4, 205);
	uvmo_vmo_t *s = take_snapshot(v);
	uvmo_vmo_t *sl = make_child(v, UVMO_CHILD_SLICE, 0, 4 * PG);
	write_pattern(v, 206, 0, 4 * PG);
	/* The slice has no snapshot of its own (snapshots of slices are
	 * refused), so this call is wrong in two ways; the header does not
	 * order the checks. */
	int rc = uvmo_vmo_restore(sl, s);
	cr_assert(rc == -ENOTSUP || rc == -EINVAL, "restore of a slice returned %d (%s)", rc,
		  rc_name(rc));
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 4 * PG, 206, 0);
	free(got);
}

Test(restore, restore_with_closed_handles_is_ebadf)
{
	uvmo_vmo_t *s;
	uint8_t *img;
	uvmo_vmo_t *v = written_since(207, &s, &img);
	uvmo_vmo_t *s2 = take_snapshot(v);
	uvmo_vmo_close(s2);
	expect_rc(-EBADF, uvmo_vmo_restore(v, s2));
	expect_bytes(v, img, 4 * PG);
	uvmo_vmo_close(v);
	expect_rc(-EBADF, uvmo_vmo_restore(v, s));
	free(img);
}

Test(restore, restore_that_runs_out_of_pool_frames_changes_nothing)
{
	init_with_pool_limit(64 * PG);
	uvmo_vmo_t *v = make_vmo(16 * PG, UVMO_VMO_RESIZABLE);
	write_pattern(v, 208, 0, 8 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	write_pattern(v, 209, 0, 4 * PG);
	expect_ok(uvmo_vmo_set_size(v, 4 * PG)); /* the restore must bring 4 pages back */
	uint8_t *img = read_all(v, NULL);
	/* Fill the pool to the brim. */
	uvmo_vmo_t *ballast = make_vmo(64 * PG, 0);
	int rc = 0;
	for (uint64_t p = 0; p < 64 && rc == 0; p++)
		rc = uvmo_vmo_op_range(ballast, UVMO_OP_COMMIT, p * PG, PG);
	cr_assert_eq(rc, -ENOMEM, "the pool limit never hit (%s)", rc_name(rc));
	rc = uvmo_vmo_restore(v, s);
	cr_assert(rc == 0 || rc == -ENOMEM, "restore returned %d (%s)", rc, rc_name(rc));
	if (rc == -ENOMEM) {
		expect_bytes(v, img, 4 * PG);
		uvmo_vmo_close(ballast);
		expect_ok(uvmo_vmo_restore(v, s));
	}
	cr_assert_eq(size_of(v), 16 * PG);
	uint8_t *got = read_all(v, NULL);
	expect_mem_pattern(got, 8 * PG, 208, 0);
	expect_mem_val(got + 8 * PG, 8 * PG, 0);
	free(got);
	free(img);
	cr_assert_leq(stats_now().committed_bytes, 64 * PG);
}

Test(restore, diff_argument_errors)
{
	uvmo_vmo_t *v = pattern_vmo(8, 210);
	uvmo_vmo_t *s = take_snapshot(v);
	fill_page(v, 2, 1);
	struct uvmo_dirty_range out[4];
	size_t actual = 0, avail = 0;
	expect_rc(-EINVAL, uvmo_vmo_diff(NULL, s, 0, 8 * PG, out, 4, &actual, &avail));
	expect_rc(-EINVAL, uvmo_vmo_diff(v, NULL, 0, 8 * PG, out, 4, &actual, &avail));
	expect_rc(-EINVAL, uvmo_vmo_diff(v, s, 0, 8 * PG, NULL, 4, &actual, &avail));
	expect_rc(-EINVAL, uvmo_vmo_diff(v, s, 1, PG, out, 4, &actual, &avail));
	expect_rc(-EINVAL, uvmo_vmo_diff(v, s, 0, PG + 1, out, 4, &actual, &avail));
	expect_rc(-ERANGE, uvmo_vmo_diff(v, s, 8 * PG, PG, out, 4, &actual, &avail));
	expect_rc(-ERANGE, uvmo_vmo_diff(v, s, 4 * PG, 8 * PG, out, 4, &actual, &avail));
	expect_rc(-ERANGE, uvmo_vmo_diff(v, s, UINT64_MAX - PG + 1, 2 * PG, out, 4, &actual,
					  &avail));
	uvmo_vmo_t *other = pattern_vmo(8, 211);
	uvmo_vmo_t *os = take_snapshot(other);
	expect_rc(-EINVAL, uvmo_vmo_diff(v, os, 0, 8 * PG, out, 4, &actual, &avail));
	expect_rc(-EINVAL, uvmo_vmo_diff(v, other, 0, 8 * PG, out, 4, &actual, &avail));
	/* Still the right answer afterwards. */
	bool dirty[8] = { false };
	dirty[2] = true;
	expect_diff(v, s, dirty, 8);
}

Test(restore, diff_with_closed_handles_is_ebadf)
{
	uvmo_vmo_t *v = pattern_vmo(4, 212);
	uvmo_vmo_t *s = take_snapshot(v);
	uvmo_vmo_t *s2 = take_snapshot(v);
	struct uvmo_dirty_range out[4];
	size_t actual = 0, avail = 0;
	uvmo_vmo_close(s2);
	expect_rc(-EBADF, uvmo_vmo_diff(v, s2, 0, 4 * PG, out, 4, &actual, &avail));
	uvmo_vmo_close(v);
	expect_rc(-EBADF, uvmo_vmo_diff(v, s, 0, 4 * PG, out, 4, &actual, &avail));
}

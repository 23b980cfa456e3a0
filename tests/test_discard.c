/* SPDX-License-Identifier: MIT */
/*
 * Discardable VMOs: lock counting, discard under pool pressure while
 * unlocked, what a discarded VMO reports, and relocking.
 *
 * Pressure is made the honest way: a small pool limit, then writes to
 * another VMO until the pool needs the discardable VMO's frames.
 */
#include "vmo_test_util.h"

enum { LIMIT = 64, DPAGES = 16 };

static int lock(uvmo_vmo_t *v, uint32_t op)
{
	return uvmo_vmo_op_range(v, op, 0, size_of(v));
}

/* A discardable VMO of @pages pages holding @val, left unlocked. */
static uvmo_vmo_t *discardable(uint64_t pages, uint8_t val)
{
	uvmo_vmo_t *d = make_vmo(pages * PG, UVMO_VMO_DISCARDABLE);
	expect_ok(lock(d, UVMO_OP_LOCK));
	fill_pages(d, 0, pages, val);
	expect_ok(lock(d, UVMO_OP_UNLOCK));
	return d;
}

/* Write pages of a fresh VMO one by one, up to @pages; returns how many
 * succeeded and leaves the first failure's code in *@rc (0 if none). */
static uint64_t pressure(uint64_t pages, int *rc, uvmo_vmo_t **out)
{
	uvmo_vmo_t *o = make_vmo(pages * PG, 0);
	uint8_t buf[UVMO_PAGE_SIZE];
	memset(buf, 0xbb, sizeof(buf));
	uint64_t n;
	*rc = 0;
	for (n = 0; n < pages; n++) {
		*rc = uvmo_vmo_write(o, buf, n * PG, PG);
		if (*rc)
			break;
	}
	if (out)
		*out = o;
	return n;
}

static bool is_discarded(uvmo_vmo_t *v)
{
	return (info_of(v).flags & UVMO_INFO_DISCARDED) != 0;
}

/* Pool of LIMIT pages, an unlocked discardable VMO, then enough pressure
 * that the pool must take its frames. */
static uvmo_vmo_t *discarded_vmo(uvmo_vmo_t **other)
{
	init_with_pool_limit(LIMIT * PG);
	uvmo_vmo_t *d = discardable(DPAGES, 0xd1);
	int rc;
	uint64_t n = pressure(LIMIT, &rc, other);
	cr_assert_eq(n, LIMIT, "pressure stopped after %llu pages with %s",
		     (unsigned long long)n, rc_name(rc));
	cr_assert(is_discarded(d), "the unlocked VMO was not discarded");
	return d;
}

/* ---------------------------------------------------------------------- */
/* locking                                                                */
/* ---------------------------------------------------------------------- */

Test(discard, discardable_vmo_starts_unlocked)
{
	uvmo_vmo_t *d = make_vmo(4 * PG, UVMO_VMO_DISCARDABLE);
	struct uvmo_vmo_info i = info_of(d);
	cr_assert_eq(i.lock_count, 0);
	cr_assert_eq(i.flags, UVMO_INFO_DISCARDABLE, "flags 0x%x", i.flags);
	/* Unlocked is not discarded: it can be used until the pool needs it. */
	fill_page(d, 1, 0x11);
	expect_page(d, 1, 0x11);
	expect_rc(-EBUSY, lock(d, UVMO_OP_UNLOCK));
}

Test(discard, first_lock_returns_zero)
{
	uvmo_vmo_t *d = make_vmo(4 * PG, UVMO_VMO_DISCARDABLE);
	expect_rc(0, lock(d, UVMO_OP_LOCK));
	cr_assert_eq(info_of(d).lock_count, 1);
}

Test(discard, try_lock_of_a_vmo_that_was_never_discarded_succeeds)
{
	uvmo_vmo_t *d = make_vmo(4 * PG, UVMO_VMO_DISCARDABLE);
	expect_rc(0, lock(d, UVMO_OP_TRY_LOCK));
	cr_assert_eq(info_of(d).lock_count, 1);
	expect_ok(lock(d, UVMO_OP_UNLOCK));
	cr_assert_eq(info_of(d).lock_count, 0);
}

Test(discard, nested_locks_are_counted)
{
	uvmo_vmo_t *d = make_vmo(4 * PG, UVMO_VMO_DISCARDABLE);
	expect_rc(0, lock(d, UVMO_OP_LOCK));
	expect_rc(0, lock(d, UVMO_OP_LOCK));
	expect_rc(0, lock(d, UVMO_OP_TRY_LOCK));
	cr_assert_eq(info_of(d).lock_count, 3);
	expect_ok(lock(d, UVMO_OP_UNLOCK));
	cr_assert_eq(info_of(d).lock_count, 2);
	expect_ok(lock(d, UVMO_OP_UNLOCK));
	expect_ok(lock(d, UVMO_OP_UNLOCK));
	cr_assert_eq(info_of(d).lock_count, 0);
	expect_rc(-EBUSY, lock(d, UVMO_OP_UNLOCK));
}

Test(discard, unlocked_vmo_keeps_its_content_without_pressure)
{
	uvmo_vmo_t *d = discardable(4, 0x12);
	expect_pages(d, 0, 4, 0x12);
	expect_rc(0, lock(d, UVMO_OP_LOCK));
	expect_pages(d, 0, 4, 0x12);
	cr_assert_eq(stats_now().discards, 0);
}

/* ---------------------------------------------------------------------- */
/* discard under pressure                                                 */
/* ---------------------------------------------------------------------- */

Test(discard, unlocked_vmo_is_discarded_when_the_pool_needs_its_frames)
{
	init_with_pool_limit(LIMIT * PG);
	uvmo_vmo_t *d = discardable(DPAGES, 0x21);
	uint64_t discards = stats_now().discards;
	int rc;
	uvmo_vmo_t *o;
	uint64_t n = pressure(LIMIT, &rc, &o);
	/* The pool made room instead of failing. */
	cr_assert_eq(n, LIMIT, "pressure stopped after %llu pages with %s",
		     (unsigned long long)n, rc_name(rc));
	struct uvmo_vmo_info i = info_of(d);
	cr_assert(i.flags & UVMO_INFO_DISCARDED, "flags 0x%x", i.flags);
	cr_assert(i.flags & UVMO_INFO_DISCARDABLE, "flags 0x%x", i.flags);
	cr_assert_eq(stats_now().discards, discards + 1);
	expect_pages(o, 0, LIMIT, 0xbb);
}

Test(discard, discard_gives_the_frames_back)
{
	uvmo_vmo_t *o;
	uvmo_vmo_t *d = discarded_vmo(&o);
	cr_assert_eq(info_of(d).committed_bytes, 0);
	cr_assert_eq(info_of(d).attributed_bytes, 0);
	struct uvmo_stats s = stats_now();
	cr_assert_eq(s.committed_bytes, LIMIT * PG);
	cr_assert_eq(info_of(o).committed_bytes, LIMIT * PG);
	cr_assert_leq(s.host_bytes, LIMIT * PG);
}

Test(discard, discarded_vmo_reads_fail_with_enoent)
{
	uvmo_vmo_t *d = discarded_vmo(NULL);
	uint8_t buf[16];
	expect_rc(-ENOENT, uvmo_vmo_read(d, buf, 0, sizeof(buf)));
	expect_rc(-ENOENT, uvmo_vmo_read(d, buf, 5 * PG, sizeof(buf)));
}

Test(discard, discarded_vmo_writes_fail_with_enoent)
{
	uvmo_vmo_t *d = discarded_vmo(NULL);
	uint8_t buf[16] = { 1 };
	expect_rc(-ENOENT, uvmo_vmo_write(d, buf, 0, sizeof(buf)));
	cr_assert(is_discarded(d));
}

Test(discard, discarded_vmo_commit_and_zero_fail_with_enoent)
{
	uvmo_vmo_t *o;
	uvmo_vmo_t *d = discarded_vmo(&o);
	uvmo_vmo_close(o); /* room in the pool: only the discard can refuse */
	expect_rc(-ENOENT, uvmo_vmo_op_range(d, UVMO_OP_COMMIT, 0, DPAGES * PG));
	expect_rc(-ENOENT, uvmo_vmo_op_range(d, UVMO_OP_ZERO, 0, PG));
	cr_assert(is_discarded(d));
	cr_assert_eq(info_of(d).committed_bytes, 0);
}

Test(discard, discarded_vmo_still_reports_its_size_and_info)
{
	uvmo_vmo_t *d = discarded_vmo(NULL);
	cr_assert_eq(size_of(d), DPAGES * PG);
	struct uvmo_vmo_info i = info_of(d);
	cr_assert_eq(i.size, DPAGES * PG);
	cr_assert_eq(i.lock_count, 0);
}

Test(discard, try_lock_of_a_discarded_vmo_is_eagain)
{
	uvmo_vmo_t *d = discarded_vmo(NULL);
	expect_rc(-EAGAIN, lock(d, UVMO_OP_TRY_LOCK));
	/* ... and leaves it discarded and unlocked. */
	cr_assert(is_discarded(d));
	cr_assert_eq(info_of(d).lock_count, 0);
	uint8_t b;
	expect_rc(-ENOENT, uvmo_vmo_read(d, &b, 0, 1));
}

Test(discard, unlock_of_a_discarded_vmo_is_ebusy)
{
	uvmo_vmo_t *d = discarded_vmo(NULL);
	expect_rc(-EBUSY, lock(d, UVMO_OP_UNLOCK));
	cr_assert(is_discarded(d));
}

Test(discard, lock_of_a_discarded_vmo_returns_one_and_the_content_reads_zero)
{
	uvmo_vmo_t *d = discarded_vmo(NULL);
	expect_rc(1, lock(d, UVMO_OP_LOCK));
	struct uvmo_vmo_info i = info_of(d);
	cr_assert_eq(i.lock_count, 1);
	cr_assert_eq(i.flags & UVMO_INFO_DISCARDED, 0, "still flagged discarded");
	expect_pages(d, 0, DPAGES, 0);
	/* The discard is reported once. */
	expect_rc(0, lock(d, UVMO_OP_LOCK));
	cr_assert_eq(info_of(d).lock_count, 2);
}

Test(discard, relocked_vmo_can_be_written_again_when_the_pool_has_room)
{
	uvmo_vmo_t *o;
	uvmo_vmo_t *d = discarded_vmo(&o);
	expect_rc(1, lock(d, UVMO_OP_LOCK));
	uvmo_vmo_close(o);
	fill_pages(d, 0, DPAGES, 0x22);
	expect_pages(d, 0, DPAGES, 0x22);
	cr_assert_eq(info_of(d).committed_bytes, DPAGES * PG);
}

Test(discard, locked_vmo_is_never_discarded)
{
	init_with_pool_limit(LIMIT * PG);
	uvmo_vmo_t *d = discardable(DPAGES, 0x31);
	expect_rc(0, lock(d, UVMO_OP_LOCK));
	int rc;
	uint64_t n = pressure(LIMIT, &rc, NULL);
	/* Allocation fails instead. */
	cr_assert_eq(rc, -ENOMEM, "pressure ended with %s", rc_name(rc));
	cr_assert_eq(n, LIMIT - DPAGES);
	cr_assert_eq(stats_now().discards, 0);
	cr_assert(!is_discarded(d));
	expect_pages(d, 0, DPAGES, 0x31);
	cr_assert_eq(info_of(d).committed_bytes, DPAGES * PG);
}

Test(discard, vmo_locked_twice_and_unlocked_once_is_still_locked)
{
	init_with_pool_limit(LIMIT * PG);
	uvmo_vmo_t *d = discardable(DPAGES, 0x32);
	expect_ok(lock(d, UVMO_OP_LOCK));
	expect_ok(lock(d, UVMO_OP_LOCK));
	expect_ok(lock(d, UVMO_OP_UNLOCK));
	cr_assert_eq(info_of(d).lock_count, 1);
	int rc;
	pressure(LIMIT, &rc, NULL);
	cr_assert_eq(rc, -ENOMEM, "pressure ended with %s", rc_name(rc));
	cr_assert(!is_discarded(d));
	expect_pages(d, 0, DPAGES, 0x32);
}

Test(discard, last_unlock_makes_the_vmo_discardable_again)
{
	init_with_pool_limit(LIMIT * PG);
	uvmo_vmo_t *d = discardable(DPAGES, 0x33);
	expect_ok(lock(d, UVMO_OP_LOCK));
	expect_ok(lock(d, UVMO_OP_LOCK));
	uvmo_vmo_t *o1;
	int rc;
	uint64_t n1 = pressure(LIMIT - DPAGES, &rc, &o1);
	cr_assert_eq(n1, LIMIT - DPAGES);
	expect_ok(lock(d, UVMO_OP_UNLOCK));
	expect_ok(lock(d, UVMO_OP_UNLOCK));
	uint64_t n2 = pressure(DPAGES, &rc, NULL);
	cr_assert_eq(n2, DPAGES, "pressure stopped after %llu pages with %s",
		     (unsigned long long)n2, rc_name(rc));
	cr_assert(is_discarded(d));
	expect_pages(o1, 0, LIMIT - DPAGES, 0xbb);
}

Test(discard, pool_full_of_locked_memory_fails_with_enomem_and_changes_nothing)
{
	init_with_pool_limit(LIMIT * PG);
	uvmo_vmo_t *d = make_vmo(LIMIT * PG, UVMO_VMO_DISCARDABLE);
	expect_ok(lock(d, UVMO_OP_LOCK));
	fill_pages(d, 0, LIMIT, 0x34);
	uvmo_vmo_t *o = make_vmo(PG, 0);
	uint8_t b = 1;
	expect_rc(-ENOMEM, uvmo_vmo_write(o, &b, 0, 1));
	expect_page(o, 0, 0);
	expect_pages(d, 0, LIMIT, 0x34);
}

Test(discard, pressure_discards_only_what_it_needs)
{
	init_with_pool_limit(LIMIT * PG);
	uvmo_vmo_t *d1 = discardable(DPAGES, 0x41);
	uvmo_vmo_t *d2 = discardable(DPAGES, 0x42);
	int rc;
	/* 32 pages are free; 8 more than that only need one VMO's frames. */
	uint64_t n = pressure(LIMIT - 2 * DPAGES + 8, &rc, NULL);
	cr_assert_eq(n, LIMIT - 2 * DPAGES + 8, "pressure failed with %s", rc_name(rc));
	cr_assert_eq(stats_now().discards, 1);
	cr_assert(is_discarded(d1) != is_discarded(d2), "expected exactly one discarded");
	uvmo_vmo_t *kept = is_discarded(d1) ? d2 : d1;
	expect_pages(kept, 0, DPAGES, kept == d1 ? 0x41 : 0x42);
}

Test(discard, every_discard_is_counted)
{
	init_with_pool_limit(LIMIT * PG);
	uvmo_vmo_t *d1 = discardable(DPAGES, 0x43);
	uvmo_vmo_t *d2 = discardable(DPAGES, 0x44);
	int rc;
	uint64_t n = pressure(LIMIT, &rc, NULL);
	cr_assert_eq(n, LIMIT, "pressure failed with %s", rc_name(rc));
	cr_assert(is_discarded(d1) && is_discarded(d2));
	cr_assert_eq(stats_now().discards, 2);
}

Test(discard, vmo_discarded_then_relocked_is_discarded_again_after_unlock)
{
	uvmo_vmo_t *o;
	uvmo_vmo_t *d = discarded_vmo(&o);
	expect_rc(1, lock(d, UVMO_OP_LOCK));
	uvmo_vmo_close(o);
	fill_pages(d, 0, DPAGES, 0x45);
	expect_ok(lock(d, UVMO_OP_UNLOCK));
	int rc;
	uint64_t n = pressure(LIMIT, &rc, NULL);
	cr_assert_eq(n, LIMIT, "pressure failed with %s", rc_name(rc));
	cr_assert(is_discarded(d));
	cr_assert_eq(stats_now().discards, 2);
	expect_rc(1, lock(d, UVMO_OP_LOCK));
}

Test(discard, closing_a_discarded_vmo_is_harmless)
{
	uvmo_vmo_t *o;
	uvmo_vmo_t *d = discarded_vmo(&o);
	uint64_t vmos = stats_now().vmos;
	uvmo_vmo_close(d);
	cr_assert_eq(stats_now().vmos, vmos - 1);
	expect_pages(o, 0, LIMIT, 0xbb);
	cr_assert_eq(stats_now().committed_bytes, LIMIT * PG);
}

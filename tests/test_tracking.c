/* SPDX-License-Identifier: MIT */
/*
 * The two dirty-tracking tiers of writes made through mappings (uvmo.h:
 * uvmo_stats.dirty_tracking, async_tracked_vmos, dirty_scans; the
 * environment variable UVMO_DIRTY_TRACKING in uvmo_init's doc):
 *
 *  - SYNC: a restored page is write-protected and its first write faults
 *    once (uvmo_stats.wp_faults);
 *  - ASYNC: UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN; the kernel resolves the
 *    write-protect faults itself and the restore learns the written pages
 *    from a PAGEMAP_SCAN pass over each mapping (uvmo_stats.dirty_scans).
 *
 * The tier is chosen at initialisation: UVMO_DIRTY_TRACKING=sync forces
 * SYNC, =async forces ASYNC (-ENOTSUP without kernel support), =auto or
 * unset probes (ASYNC where the kernel has it), anything else is -EINVAL.
 * In the ASYNC tier a mapped VMO moves to asynchronous tracking on the
 * second restore to the same snapshot; it goes back to SYNC on a new
 * snapshot of it, on fork(), or when the pool limit leaves no room for
 * the one-time copy.  Whatever the tier, every restore is exact: every
 * byte, read through the mappings and with uvmo_vmo_read, is the
 * snapshot's — after writes through mappings later unmapped, mappings
 * made after the move, slices, several threads, fork, resizes, calls,
 * decommit and zero.
 *
 * tests/meson.build runs this suite twice: as it comes (the tier the
 * kernel allows, ASYNC here) and with UVMO_DIRTY_TRACKING=sync.  Tests of
 * the tier itself expect ASYNC unless that variable forces SYNC (or the
 * kernel lacks the features), and check the SYNC behaviour otherwise;
 * tests of the variable set it themselves (each test runs in a process of
 * its own).
 */
#include "map_test_util.h"
#include "diff_test_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compat/linux_abi.h"

TestSuite(tracking, .timeout = 30);

#define WORDS (UVMO_PAGE_SIZE / sizeof(uint64_t))

/* ---------------------------------------------------------------------- */
/* the tier                                                               */
/* ---------------------------------------------------------------------- */

/* Does the running kernel offer UFFD_FEATURE_WP_ASYNC and PAGEMAP_SCAN?
 * (Probed here, independently of uvmo.) */
static bool kernel_has_async_tracking(void)
{
	static int known = -1;
	if (known >= 0)
		return known;
	known = 0;
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd < 0)
		return known;
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	uint64_t features = ioctl(fd, UFFDIO_API, &api) == 0 ? api.features : 0;
	close(fd);
	if (!(features & UFFD_FEATURE_WP_ASYNC))
		return known;
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return known;
	static char probe_page[4096] __attribute__((aligned(4096)));
	probe_page[0] = 1;
	struct page_region region;
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)probe_page,
		.end = (uintptr_t)probe_page + sizeof(probe_page),
		.vec = (uintptr_t)&region,
		.vec_len = 1,
		.category_mask = PAGE_IS_PRESENT,
		.return_mask = PAGE_IS_PRESENT,
	};
	known = ioctl(pm, PAGEMAP_SCAN, &arg) >= 0;
	close(pm);
	return known;
}

/* Is the asynchronous tier expected in this process?  Yes unless the
 * environment forces SYNC or the kernel lacks the features. */
static bool async_tier(void)
{
	const char *env = getenv("UVMO_DIRTY_TRACKING");
	if (env && strcmp(env, "sync") == 0)
		return false;
	return kernel_has_async_tracking();
}

static const char *tier_name(uint64_t t)
{
	switch (t) {
	case UVMO_DIRTY_TRACKING_SYNC: return "SYNC";
	case UVMO_DIRTY_TRACKING_ASYNC: return "ASYNC";
	default: return "neither SYNC nor ASYNC";
	}
}

#define expect_tier(want)                                                     \
	do {                                                                  \
		uint64_t want_t_ = (want);                                    \
		uint64_t got_t_ = stats_now().dirty_tracking;                 \
		cr_assert_eq(got_t_, want_t_, "dirty_tracking is %llu (%s), expected %llu (%s)", \
			     (unsigned long long)got_t_, tier_name(got_t_),   \
			     (unsigned long long)want_t_, tier_name(want_t_)); \
	} while (0)

/* The tier this process should run in. */
static uint64_t expected_tier(void)
{
	return async_tier() ? UVMO_DIRTY_TRACKING_ASYNC : UVMO_DIRTY_TRACKING_SYNC;
}

/* async_tracked_vmos is @n in the ASYNC tier, 0 in the SYNC one. */
#define expect_async_vmos(n, ...)                                             \
	do {                                                                  \
		uint64_t want_n_ = async_tier() ? (uint64_t)(n) : 0;          \
		uint64_t got_n_ = stats_now().async_tracked_vmos;             \
		cr_assert_eq(got_n_, want_n_, "async_tracked_vmos is %llu, expected %llu (%s tier): %s", \
			     (unsigned long long)got_n_, (unsigned long long)want_n_, \
			     async_tier() ? "ASYNC" : "SYNC", __VA_ARGS__);   \
	} while (0)

/* Start uvmo with UVMO_DIRTY_TRACKING=@setting (NULL: unset). */
static int init_with_env(const char *setting)
{
	if (setting)
		cr_assert_eq(setenv("UVMO_DIRTY_TRACKING", setting, 1), 0);
	else
		cr_assert_eq(unsetenv("UVMO_DIRTY_TRACKING"), 0);
	return uvmo_init(NULL);
}

/* ---------------------------------------------------------------------- */
/* content                                                                */
/* ---------------------------------------------------------------------- */

static uvmo_vmo_t *take_snapshot(uvmo_vmo_t *v)
{
	uvmo_vmo_t *s = NULL;
	expect_ok(uvmo_vmo_snapshot(v, &s));
	cr_assert_not_null(s, "uvmo_vmo_snapshot succeeded but left *snap NULL");
	return s;
}

/* A VMO of @pages pages holding pattern @seed everywhere. */
static uvmo_vmo_t *pattern_vmo(uint64_t pages, uint64_t seed)
{
	uvmo_vmo_t *v = make_vmo(pages * PG, 0);
	write_pattern(v, seed, 0, pages * PG);
	return v;
}

/* A VMO of @pages pages: pattern @seed, except every fourth page (3, 7,
 * ...) which is a hole (never written, reads zero). */
static uvmo_vmo_t *holey_vmo(uint64_t pages, uint64_t seed)
{
	uvmo_vmo_t *v = make_vmo(pages * PG, 0);
	for (uint64_t p = 0; p < pages; p++)
		if (p % 4 != 3)
			write_pattern(v, seed, p * PG, PG);
	return v;
}

/* Index of the first byte where @a and @b differ, or -1. */
static long first_difference(const uint8_t *a, const uint8_t *b, uint64_t len)
{
	if (memcmp(a, b, len) == 0)
		return -1;
	for (uint64_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return (long)i;
	return -1;
}

/* Assert that @v has size @size and reads exactly the bytes at @want. */
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
		long i_ = first_difference(got_, w_, sz_);                    \
		if (i_ >= 0)                                                  \
			cr_assert_fail("uvmo_vmo_read of %s: byte %ld (page %ld) is 0x%02x," \
				       " expected 0x%02x", #v, i_, i_ / (long)PG, got_[i_], w_[i_]); \
		free(got_);                                                   \
	} while (0)

/* Assert that @len bytes at @p (a mapping) equal @want. */
#define expect_mapped_bytes(p, want, len)                                     \
	do {                                                                  \
		const uint8_t *p_ = (const uint8_t *)(p);                     \
		const uint8_t *w_ = (const uint8_t *)(want);                  \
		long i_ = first_difference(p_, w_, (len));                    \
		if (i_ >= 0)                                                  \
			cr_assert_fail("mapping %s: byte %ld (page %ld) is 0x%02x, expected 0x%02x", \
				       #p, i_, i_ / (long)PG, p_[i_], w_[i_]); \
	} while (0)

/* Both ways: uvmo_vmo_read of @v and its mapping @m (of the whole VMO). */
#define expect_exact(v, m, want, size)                                        \
	do {                                                                  \
		expect_bytes(v, want, size);                                  \
		expect_mapped_bytes(m, want, size);                           \
	} while (0)

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

/* Restore @v to @s twice (writing a page through @m, if not NULL, before
 * each): the move to the async tier, which must then show.  Then once
 * more: the first restore after the move may compare every page (the
 * move loses track of what was written meanwhile); from the next one on
 * the VMO is in the loop's steady state, where a restore relies on what
 * the tracking reports. */
static void go_async(uvmo_vmo_t *v, uvmo_vmo_t *s, uint8_t *m)
{
	if (m)
		m[0] ^= 0x5a;
	expect_ok(uvmo_vmo_restore(v, s));
	if (m)
		m[PG + 1] ^= 0xa5;
	expect_ok(uvmo_vmo_restore(v, s));
	expect_async_vmos(1, "after the second restore to the same snapshot");
	if (m)
		m[1] ^= 0x3c;
	expect_ok(uvmo_vmo_restore(v, s));
	expect_async_vmos(1, "after the third restore to the same snapshot");
}

/* ======================================================================== */
/* choosing the tier                                                        */
/* ======================================================================== */

Test(tracking, default_tier_is_async_on_a_kernel_with_wp_async_and_pagemap_scan)
{
	if (!kernel_has_async_tracking())
		cr_skip_test("the kernel lacks UFFD_FEATURE_WP_ASYNC or PAGEMAP_SCAN");
	expect_ok(init_with_env(NULL));
	expect_tier(UVMO_DIRTY_TRACKING_ASYNC);
}

Test(tracking, implicit_initialisation_picks_the_same_default_tier)
{
	cr_assert_eq(unsetenv("UVMO_DIRTY_TRACKING"), 0);
	uvmo_vmo_t *v = make_vmo(PG, 0); /* the first call initialises */
	expect_tier(kernel_has_async_tracking() ? UVMO_DIRTY_TRACKING_ASYNC
						: UVMO_DIRTY_TRACKING_SYNC);
	uvmo_vmo_close(v);
}

Test(tracking, env_auto_probes_the_kernel)
{
	expect_ok(init_with_env("auto"));
	expect_tier(kernel_has_async_tracking() ? UVMO_DIRTY_TRACKING_ASYNC
						: UVMO_DIRTY_TRACKING_SYNC);
}

Test(tracking, env_sync_gives_the_sync_tier)
{
	expect_ok(init_with_env("sync"));
	expect_tier(UVMO_DIRTY_TRACKING_SYNC);
}

Test(tracking, env_sync_keeps_a_restore_loop_out_of_the_async_tier)
{
	expect_ok(init_with_env("sync"));
	uvmo_vmo_t *v = pattern_vmo(16, 1);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	for (int it = 0; it < 6; it++) {
		memset(m + (uint64_t)(it % 4) * PG, 0x40 + it, PG);
		expect_ok(uvmo_vmo_restore(v, s));
		struct uvmo_stats st = stats_now();
		cr_assert_eq(st.async_tracked_vmos, 0,
			     "restore %d with UVMO_DIRTY_TRACKING=sync: async_tracked_vmos is %llu",
			     it + 1, (unsigned long long)st.async_tracked_vmos);
		cr_assert_eq(st.dirty_scans, 0,
			     "restore %d with UVMO_DIRTY_TRACKING=sync: dirty_scans is %llu",
			     it + 1, (unsigned long long)st.dirty_scans);
	}
	expect_exact(v, m, img, 16 * PG);
	free(img);
}

Test(tracking, env_async_gives_the_async_tier_or_enotsup)
{
	int rc = init_with_env("async");
	if (!kernel_has_async_tracking()) {
		cr_assert_eq(rc, -ENOTSUP,
			     "UVMO_DIRTY_TRACKING=async without kernel support: uvmo_init returned"
			     " %d (%s), expected -ENOTSUP", rc, rc_name(rc));
		return;
	}
	cr_assert_eq(rc, 0, "UVMO_DIRTY_TRACKING=async: uvmo_init returned %d (%s)", rc,
		     rc_name(rc));
	expect_tier(UVMO_DIRTY_TRACKING_ASYNC);
}

Test(tracking, env_with_another_value_makes_init_einval_and_changes_nothing)
{
	static const char *const bad[] = { "bogus", "syncx", "asyn", "sync ", "1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = init_with_env(bad[i]);
		cr_assert_eq(rc, -EINVAL,
			     "UVMO_DIRTY_TRACKING=\"%s\": uvmo_init returned %d (%s), expected -EINVAL",
			     bad[i], rc, rc_name(rc));
	}
	/* Nothing was initialised: a good value still initialises (not -EBUSY). */
	expect_ok(init_with_env("sync"));
	expect_tier(UVMO_DIRTY_TRACKING_SYNC);
}

Test(tracking, env_is_read_again_by_each_init)
{
	expect_ok(init_with_env("sync"));
	expect_tier(UVMO_DIRTY_TRACKING_SYNC);
	uvmo_shutdown();
	expect_ok(init_with_env("auto"));
	expect_tier(kernel_has_async_tracking() ? UVMO_DIRTY_TRACKING_ASYNC
						: UVMO_DIRTY_TRACKING_SYNC);
	uvmo_shutdown();
	expect_rc(-EINVAL, init_with_env("bogus"));
	expect_ok(init_with_env("sync"));
	expect_tier(UVMO_DIRTY_TRACKING_SYNC);
}

/* The suite's own tier: what the rest of the suite expects. */
Test(tracking, this_process_runs_in_the_expected_tier)
{
	uvmo_vmo_t *v = make_vmo(PG, 0);
	expect_tier(expected_tier());
	expect_async_vmos(0, "before any restore");
	uvmo_vmo_close(v);
}

/* ======================================================================== */
/* the reset loop                                                           */
/* ======================================================================== */

#define LOOP_PAGES 64u
#define LOOP_ITERS 40u

/* Snapshot once; each iteration writes a few random pages through the
 * mapping (whole or in part, holes of the snapshot too), restores, and
 * checks every byte. */
Test(tracking, reset_loop_keeps_content_exact)
{
	uvmo_vmo_t *v = holey_vmo(LOOP_PAGES, 10);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	uint64_t rng = 12345;
	for (unsigned it = 0; it < LOOP_ITERS; it++) {
		for (int j = 0; j < 6; j++) {
			uint64_t p = rnd_below(&rng, LOOP_PAGES);
			if (j % 3 == 0) {
				memset(m + p * PG, (uint8_t)(0x80 | it), PG);
			} else {
				uint64_t off = rnd_below(&rng, PG - 64);
				memset(m + p * PG + off, (uint8_t)(0x80 | it), 64);
			}
		}
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, LOOP_PAGES * PG);
	}
	free(img);
}

/* Iterations that write many pages (more than an eighth of the VMO: the
 * restore then reads the whole page list) alternate with ones that write
 * a few (it then reads the pages changed since the last restore). */
Test(tracking, reset_loop_alternating_few_and_many_written_pages_stays_exact)
{
	uvmo_vmo_t *v = holey_vmo(LOOP_PAGES, 19);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	uint64_t rng = 777;
	uint8_t buf[256];
	for (unsigned it = 0; it < LOOP_ITERS; it++) {
		int many = it % 3 == 1 ? 24 : it % 5 == 4 ? LOOP_PAGES : 2;
		for (int j = 0; j < many; j++) {
			uint64_t p = many == LOOP_PAGES ? (uint64_t)j : rnd_below(&rng, LOOP_PAGES);
			m[p * PG + rnd_below(&rng, PG)] ^= (uint8_t)(1 + it);
		}
		memset(buf, (uint8_t)it, sizeof(buf));
		expect_ok(uvmo_vmo_write(v, buf, rnd_below(&rng, LOOP_PAGES * PG - sizeof(buf)),
					 sizeof(buf)));
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, LOOP_PAGES * PG);
	}
	expect_async_vmos(1, "after the loop");
	free(img);
}

Test(tracking, vmo_goes_async_on_the_second_restore_to_the_same_snapshot)
{
	uvmo_vmo_t *v = holey_vmo(LOOP_PAGES, 11);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	expect_async_vmos(0, "after the snapshot");
	memset(m + 5 * PG, 0x11, PG);
	expect_async_vmos(0, "after writes, before any restore");
	expect_ok(uvmo_vmo_restore(v, s));
	cr_assert_eq(stats_now().async_tracked_vmos, 0,
		     "async_tracked_vmos is %llu after the first restore (the move is on the second)",
		     (unsigned long long)stats_now().async_tracked_vmos);
	memset(m + 6 * PG, 0x12, PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_async_vmos(1, "after the second restore");
	expect_exact(v, m, img, LOOP_PAGES * PG);
	for (int it = 0; it < 5; it++) {
		memset(m + (uint64_t)(10 + it) * PG, 0x20 + it, PG);
		expect_ok(uvmo_vmo_restore(v, s));
		expect_async_vmos(1, "in the loop after the move");
	}
	expect_exact(v, m, img, LOOP_PAGES * PG);
	free(img);
}

/* Writes to pages a restore in the async tier gave back in place are
 * resolved by the kernel: no write-protect fault reaches uvmo.  In the
 * sync tier each such page costs (at least) one. */
Test(tracking, async_writes_to_restored_pages_cost_no_write_protect_fault)
{
	const uint64_t pages = 32;
	static const uint64_t batch[] = { 1, 2, 3, 8, 9, 17, 30, 31 };
	const size_t nb = sizeof(batch) / sizeof(batch[0]);
	uvmo_vmo_t *v = pattern_vmo(pages, 12);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	expect_mapped_bytes(m, img, pages * PG); /* every page mapped */
	for (unsigned it = 0; it < 6; it++) {
		struct uvmo_stats a = stats_now();
		for (size_t j = 0; j < nb; j++)
			memset(m + batch[j] * PG, (uint8_t)(0x30 + it), PG);
		struct uvmo_stats b = stats_now();
		uint64_t faults = b.wp_faults - a.wp_faults;
		if (it >= 2 && async_tier())
			cr_assert_eq(faults, 0,
				     "iteration %u, async tier: writing %zu restored pages took %llu"
				     " write-protect faults", it, nb, (unsigned long long)faults);
		else if (it >= 1 && !async_tier())
			cr_assert_geq(faults, nb,
				      "iteration %u, sync tier: writing %zu restored pages took only"
				      " %llu write-protect faults", it, nb,
				      (unsigned long long)faults);
		expect_ok(uvmo_vmo_restore(v, s));
		if (it >= 1)
			expect_async_vmos(1, "after the second restore");
		expect_exact(v, m, img, pages * PG);
	}
	free(img);
}

/* In the async tier each restore learns the written pages from a
 * PAGEMAP_SCAN pass over the mapping (counted, and timed in
 * dirty_scan_ns); the sync tier never scans. */
Test(tracking, async_restores_scan_the_mappings)
{
	uvmo_vmo_t *v = pattern_vmo(16, 13);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	for (int it = 0; it < 5; it++) {
		struct uvmo_stats before = stats_now();
		m[(uint64_t)it * PG + 7] ^= 0xff;
		expect_ok(uvmo_vmo_restore(v, s));
		struct uvmo_stats after = stats_now();
		if (async_tier()) {
			cr_assert_gt(after.dirty_scans, before.dirty_scans,
				     "restore %d of an async VMO did not scan its mapping"
				     " (dirty_scans stayed %llu)", it,
				     (unsigned long long)after.dirty_scans);
			cr_assert_gt(after.dirty_scan_ns, before.dirty_scan_ns,
				     "the scan's time was not counted");
		} else {
			cr_assert_eq(after.dirty_scans, 0, "the sync tier counted %llu dirty scans",
				     (unsigned long long)after.dirty_scans);
			cr_assert_eq(after.dirty_scan_ns, 0);
		}
	}
	expect_exact(v, m, img, 16 * PG);
	free(img);
}

/* The same pages written and restored in a loop: once async, memory does
 * not grow from one iteration to the next. */
Test(tracking, async_reset_loop_keeps_memory_constant)
{
	uvmo_vmo_t *v = holey_vmo(LOOP_PAGES, 14);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	static const uint64_t pages[] = { 0, 3, 7, 20, 21, 40, 63 }; /* 3, 7, 63: holes */
	uint64_t first = 0;
	for (unsigned it = 0; it < LOOP_ITERS; it++) {
		for (size_t j = 0; j < sizeof(pages) / sizeof(pages[0]); j++)
			memset(m + pages[j] * PG + (it * 64) % PG, (uint8_t)(it | 1), 64);
		expect_ok(uvmo_vmo_restore(v, s));
		uint64_t c = stats_now().committed_bytes;
		if (it < 4) {
			first = c > first ? c : first;
			continue;
		}
		cr_assert_leq(c, first,
			      "iteration %u: committed_bytes %llu, at most %llu in the first 4",
			      it, (unsigned long long)c, (unsigned long long)first);
	}
	expect_exact(v, m, img, LOOP_PAGES * PG);
	free(img);
}

/* The one-time copy that moves a VMO to the async tier leaves its
 * snapshot alone: writes through the mapping never show in the snapshot,
 * read by call or through a read-only mapping of it. */
Test(tracking, async_writes_never_reach_the_snapshot)
{
	uvmo_vmo_t *v = holey_vmo(32, 15);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	uint8_t *ms = map_vmo(root_vmar(), PERM_R, s, 0, 32 * PG);
	go_async(v, s, m);
	memset(m, 0xee, 32 * PG);
	expect_bytes(s, img, 32 * PG);
	expect_mapped_bytes(ms, img, 32 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	memset(m + 4 * PG, 0xdd, 8 * PG);
	expect_bytes(s, img, 32 * PG);
	expect_mapped_bytes(ms, img, 32 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, 32 * PG);
	free(img);
}

/* async_tracked_vmos counts the VMOs tracked now: one that dies (mapping
 * removed, handle closed) is no longer counted. */
Test(tracking, a_dead_async_vmo_is_no_longer_counted)
{
	uvmo_vmo_t *v = pattern_vmo(8, 16);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	expect_ok(uvmo_vmar_unmap(root_vmar(), m, 8 * PG));
	uvmo_vmo_close(v);
	uvmo_vmo_close(s);
	cr_assert_eq(stats_now().vmos, 0);
	cr_assert_eq(stats_now().async_tracked_vmos, 0,
		     "async_tracked_vmos is %llu with no VMO left",
		     (unsigned long long)stats_now().async_tracked_vmos);
}

Test(tracking, two_async_vmos_are_counted_and_restored_independently)
{
	uvmo_vmo_t *a = pattern_vmo(16, 17), *b = pattern_vmo(16, 18);
	uint8_t *ia = read_all(a, NULL), *ib = read_all(b, NULL);
	uint8_t *ma = map_rw(a), *mb = map_rw(b);
	uvmo_vmo_t *sa = take_snapshot(a), *sb = take_snapshot(b);
	go_async(a, sa, ma);
	expect_ok(uvmo_vmo_restore(b, sb));
	expect_ok(uvmo_vmo_restore(b, sb));
	expect_async_vmos(2, "two VMOs each restored twice");
	memset(ma + 2 * PG, 0x61, 3 * PG);
	memset(mb + 2 * PG, 0x62, 3 * PG);
	uint8_t *wb = read_all(b, NULL);
	expect_ok(uvmo_vmo_restore(a, sa));
	expect_exact(a, ma, ia, 16 * PG);
	expect_exact(b, mb, wb, 16 * PG); /* b keeps its writes */
	expect_ok(uvmo_vmo_restore(b, sb));
	expect_exact(b, mb, ib, 16 * PG);
	expect_exact(a, ma, ia, 16 * PG);
	free(ia);
	free(ib);
	free(wb);
}

/* ======================================================================== */
/* diff                                                                     */
/* ======================================================================== */

Test(tracking, diff_in_async_tier_lists_exactly_the_pages_written_through_the_mapping)
{
	const uint64_t pages = LOOP_PAGES;
	uvmo_vmo_t *v = holey_vmo(pages, 20);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	uint64_t rng = 99;
	for (int round = 0; round < 5; round++) {
		bool dirty[LOOP_PAGES] = { false };
		for (int j = 0; j < 8; j++) {
			uint64_t p = rnd_below(&rng, pages);
			uint64_t pos = p * PG + rnd_below(&rng, PG);
			m[pos] = (uint8_t)~img[pos]; /* differs from the snapshot */
			dirty[p] = true;
		}
		/* a run of three */
		memset(m + 50 * PG, 0xc3, 3 * PG);
		dirty[50] = dirty[51] = dirty[52] = true;
		expect_diff(v, s, dirty, pages);
		expect_ok(uvmo_vmo_restore(v, s));
		bool none[LOOP_PAGES] = { false };
		expect_diff(v, s, none, pages);
	}
	expect_exact(v, m, img, pages * PG);
	free(img);
}

/* A diff must not consume what the kernel tracked: the next diff and the
 * next restore still see every page written. */
Test(tracking, diff_in_async_tier_does_not_lose_writes_for_the_next_restore)
{
	uvmo_vmo_t *v = pattern_vmo(32, 21);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	bool dirty[32] = { false };
	static const uint64_t written[] = { 4, 5, 11, 30 };
	for (size_t j = 0; j < sizeof(written) / sizeof(written[0]); j++) {
		memset(m + written[j] * PG, 0x9d, 100);
		dirty[written[j]] = true;
	}
	expect_diff(v, s, dirty, 32);
	expect_diff(v, s, dirty, 32);
	/* more writes after the diff, to another page and to one listed */
	memset(m + 20 * PG, 0x9e, PG);
	memset(m + 5 * PG + 2000, 0x9f, 100);
	dirty[20] = true;
	expect_diff(v, s, dirty, 32);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, 32 * PG);
	free(img);
}

Test(tracking, diff_in_async_tier_omits_a_page_written_back_with_its_own_bytes)
{
	uvmo_vmo_t *v = pattern_vmo(16, 22);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	bool dirty[16] = { false };
	volatile uint8_t *vm = m;
	vm[3 * PG + 17] = vm[3 * PG + 17];   /* same bytes */
	memcpy(m + 9 * PG, img + 9 * PG, PG); /* same bytes */
	m[12 * PG + 5] ^= 1;
	dirty[12] = true;
	expect_diff(v, s, dirty, 16);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, 16 * PG);
	free(img);
}

/* ======================================================================== */
/* mappings that go away or change                                          */
/* ======================================================================== */

Test(tracking, writes_through_an_unmapped_mapping_are_undone_by_restore)
{
	uvmo_vmo_t *v = holey_vmo(32, 30);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	memset(m + 1 * PG, 0x31, PG);
	memset(m + 7 * PG + 100, 0x32, 200); /* a hole of the snapshot */
	memset(m + 9 * PG, 0x33, 3 * PG);
	expect_ok(uvmo_vmar_unmap(root_vmar(), m, 32 * PG));
	expect_ok(uvmo_vmo_restore(v, s));
	expect_bytes(v, img, 32 * PG);
	/* Mapped again, the VMO shows and tracks as before. */
	m = map_rw(v);
	expect_mapped_bytes(m, img, 32 * PG);
	memset(m + 20 * PG, 0x34, PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_ok(uvmo_vmo_restore(v, s));
	memset(m + 21 * PG, 0x35, PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, 32 * PG);
	free(img);
}

Test(tracking, writes_through_one_of_two_mappings_unmapped_are_undone_by_restore)
{
	uvmo_vmo_t *v = pattern_vmo(32, 31);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m1 = map_rw(v);
	uint8_t *m2 = map_vmo(root_vmar(), PERM_RW, v, 8 * PG, 16 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m1);
	memset(m2 + 2 * PG, 0x36, 2 * PG); /* VMO pages 10, 11 */
	memset(m1 + 30 * PG, 0x37, PG);
	expect_ok(uvmo_vmar_unmap(root_vmar(), m2, 16 * PG));
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m1, img, 32 * PG);
	free(img);
}

Test(tracking, writes_through_a_partly_unmapped_mapping_are_undone_by_restore)
{
	uvmo_vmo_t *v = pattern_vmo(32, 32);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	memset(m + 2 * PG, 0x38, PG);
	memset(m + 20 * PG, 0x39, 4 * PG);
	expect_ok(uvmo_vmar_unmap(root_vmar(), m + 16 * PG, 16 * PG));
	expect_ok(uvmo_vmo_restore(v, s));
	expect_bytes(v, img, 32 * PG);
	expect_mapped_bytes(m, img, 16 * PG);
	/* The half left keeps being tracked. */
	memset(m + 3 * PG, 0x3a, PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_bytes(v, img, 32 * PG);
	expect_mapped_bytes(m, img, 16 * PG);
	free(img);
}

Test(tracking, writes_through_a_destroyed_sub_vmar_are_undone_by_restore)
{
	uvmo_vmo_t *v = pattern_vmo(16, 33);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	uvmo_vmar_t *sub = make_vmar(root_vmar(), CAN_MAP_ALL, 0, 32 * PG, NULL);
	uint8_t *ms = map_vmo(sub, PERM_RW, v, 0, 16 * PG);
	memset(ms + 4 * PG, 0x3b, 4 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, 16 * PG);
	memset(ms + 6 * PG, 0x3c, 4 * PG);
	expect_ok(uvmo_vmar_destroy(sub));
	uvmo_vmar_close(sub);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, 16 * PG);
	free(img);
}

Test(tracking, writes_through_a_mapping_replaced_by_specific_overwrite_are_undone)
{
	uvmo_vmo_t *v = pattern_vmo(16, 34);
	uint8_t *img = read_all(v, NULL);
	uvmo_vmar_t *sub = make_vmar(root_vmar(), CAN_MAP_ALL, 0, 16 * PG, NULL);
	uint8_t *m = map_at(sub, PERM_RW | UVMO_VMAR_SPECIFIC, 0, v, 0, 16 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	memset(m + 3 * PG, 0x3d, 6 * PG);
	uvmo_vmo_t *w = pattern_vmo(16, 35);
	uint8_t *mw = map_at(sub, PERM_RW | UVMO_VMAR_SPECIFIC_OVERWRITE, 0, w, 0, 16 * PG);
	cr_assert_eq(mw, m);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_bytes(v, img, 16 * PG);
	expect_mem_pattern(mw, 16 * PG, 35, 0);
	free(img);
}

Test(tracking, writes_before_a_protect_change_are_undone_by_restore)
{
	uvmo_vmo_t *v = pattern_vmo(16, 36);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	memset(m + 2 * PG, 0x3e, 4 * PG);
	expect_ok(uvmo_vmar_protect(root_vmar(), PERM_R, m + 4 * PG, 8 * PG));
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, 16 * PG);
	expect_ok(uvmo_vmar_protect(root_vmar(), PERM_RW, m + 4 * PG, 8 * PG));
	memset(m + 3 * PG, 0x3f, 6 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, 16 * PG);
	free(img);
}

Test(tracking, second_mapping_made_while_async_has_its_writes_undone)
{
	uvmo_vmo_t *v = holey_vmo(32, 37);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m1 = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m1);
	uint8_t *m2 = map_vmo(root_vmar(), PERM_RW, v, 4 * PG, 20 * PG);
	for (int round = 0; round < 4; round++) {
		memset(m2 + (uint64_t)round * PG, 0x50 + round, 2 * PG); /* VMO pages 4 + round.. */
		memset(m2 + 15 * PG + 9, 0x58 + round, 10);              /* VMO page 19 */
		m1[25 * PG + (uint64_t)round] = 0x77;
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m1, img, 32 * PG);
		expect_mapped_bytes(m2, img + 4 * PG, 20 * PG);
	}
	free(img);
}

/* A mapping populated at once (MAP_RANGE) after the move: its pages are
 * installed without a fault, and writes to them are tracked all the same. */
Test(tracking, map_range_mapping_made_while_async_has_its_writes_undone)
{
	uvmo_vmo_t *v = holey_vmo(32, 38);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m1 = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m1);
	uint8_t *m2 = map_vmo(root_vmar(), PERM_RW | UVMO_VMAR_MAP_RANGE, v, 0, 32 * PG);
	for (int round = 0; round < 3; round++) {
		memset(m2 + 2 * PG, 0x59 + round, 3 * PG);
		memset(m2 + 15 * PG + 3, 0x5c, 3); /* a hole of the snapshot */
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m2, img, 32 * PG);
		expect_mapped_bytes(m1, img, 32 * PG);
	}
	free(img);
}

Test(tracking, read_only_mapping_of_an_async_vmo_shows_the_restored_bytes)
{
	uvmo_vmo_t *v = holey_vmo(16, 39);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uint8_t *r = map_vmo(root_vmar(), PERM_R, v, 0, 16 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	for (int round = 0; round < 3; round++) {
		memset(m + 4 * PG, 0x5d + round, 8 * PG);
		expect_mem_val(r + 4 * PG, 8 * PG, 0x5d + round);
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 16 * PG);
		expect_mapped_bytes(r, img, 16 * PG);
	}
	expect_write_signal(SIGSEGV, r + 5 * PG);
	free(img);
}

/* The kernel writing into the mapping on the process's behalf (read(2)
 * from a pipe) is a write like any other. */
Test(tracking, writes_by_a_system_call_into_the_mapping_are_undone_by_restore)
{
	uvmo_vmo_t *v = holey_vmo(16, 47);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	uint8_t buf[3000];
	for (int round = 0; round < 3; round++) {
		memset(buf, 0x60 + round, sizeof(buf));
		/* pages 5..6 (content) and 7 (a hole) */
		static const uint64_t at[] = { 5 * PG + 2000, 7 * PG + 100 };
		for (size_t j = 0; j < 2; j++) {
			cr_assert_eq(write(fds[1], buf, sizeof(buf)), (ssize_t)sizeof(buf));
			cr_assert_eq(read(fds[0], m + at[j], sizeof(buf)), (ssize_t)sizeof(buf));
			expect_mem_val(m + at[j], sizeof(buf), 0x60 + round);
		}
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 16 * PG);
	}
	close(fds[0]);
	close(fds[1]);
	free(img);
}

/* ======================================================================== */
/* new snapshots and clones of an async VMO                                 */
/* ======================================================================== */

Test(tracking, new_snapshot_of_an_async_vmo_holds_the_writes_made_before_it)
{
	uvmo_vmo_t *v = holey_vmo(32, 40);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	memset(m + 2 * PG, 0x41, 3 * PG);
	memset(m + 7 * PG + 1000, 0x42, 10); /* a hole of the first snapshot */
	uint8_t *img2 = malloc(32 * PG);
	memcpy(img2, m, 32 * PG);
	uvmo_vmo_t *s2 = take_snapshot(v);
	expect_bytes(s2, img2, 32 * PG);
	free(img2);
}

Test(tracking, new_snapshot_of_an_async_vmo_does_not_see_later_mapped_writes)
{
	uvmo_vmo_t *v = holey_vmo(32, 41);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	memset(m + 2 * PG, 0x43, 3 * PG);
	uint8_t *img2 = read_all(v, NULL);
	uvmo_vmo_t *s2 = take_snapshot(v);
	memset(m, 0x44, 32 * PG); /* pages written before it, and the others */
	expect_bytes(s2, img2, 32 * PG);
	uint8_t *ms2 = map_vmo(root_vmar(), PERM_R, s2, 0, 32 * PG);
	expect_mapped_bytes(ms2, img2, 32 * PG);
	free(img2);
}

Test(tracking, new_snapshot_moves_the_vmo_back_to_sync)
{
	uvmo_vmo_t *v = pattern_vmo(16, 42);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	uvmo_vmo_t *s2 = take_snapshot(v);
	cr_assert_eq(stats_now().async_tracked_vmos, 0,
		     "async_tracked_vmos is %llu after a new snapshot of the async VMO",
		     (unsigned long long)stats_now().async_tracked_vmos);
	uvmo_vmo_close(s2);
}

Test(tracking, restore_to_either_snapshot_after_a_new_snapshot_is_exact)
{
	uvmo_vmo_t *v = holey_vmo(32, 43);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	memset(m + 2 * PG, 0x45, 3 * PG);
	memset(m + 11 * PG, 0x46, PG); /* a hole of s */
	uint8_t *img2 = read_all(v, NULL);
	uvmo_vmo_t *s2 = take_snapshot(v);
	for (int round = 0; round < 3; round++) {
		memset(m + (uint64_t)(1 + round) * PG, 0x47 + round, 2 * PG);
		memset(m + 20 * PG, 0x4a, PG);
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 32 * PG);
		memset(m + 3 * PG, 0x4b, 10 * PG);
		expect_ok(uvmo_vmo_restore(v, s2));
		expect_exact(v, m, img2, 32 * PG);
	}
	expect_bytes(s, img, 32 * PG);
	expect_bytes(s2, img2, 32 * PG);
	free(img);
	free(img2);
}

/* A copy-on-write child of an async VMO is a snapshot too: later writes
 * through the VMO's mapping stay out of it. */
Test(tracking, clone_of_an_async_vmo_does_not_see_later_mapped_writes)
{
	uvmo_vmo_t *v = holey_vmo(32, 44);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	memset(m + 5 * PG, 0x4c, 2 * PG);
	uint8_t *img2 = read_all(v, NULL);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT, 0, 32 * PG);
	uvmo_vmo_t *c2 = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 32 * PG);
	memset(m, 0x4d, 32 * PG);
	expect_bytes(c, img2, 32 * PG);
	expect_bytes(c2, img2, 32 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, 32 * PG);
	memset(m + 9 * PG, 0x4e, 2 * PG);
	expect_bytes(c, img2, 32 * PG);
	expect_bytes(c2, img2, 32 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, 32 * PG);
	free(img);
	free(img2);
}

/* Frames of the VMO that clones made before the move still share must
 * not be written by the kernel once writes through the mapping no longer
 * fault: the clones keep their content. */
Test(tracking, clones_made_before_the_move_do_not_see_later_mapped_writes)
{
	uvmo_vmo_t *v = holey_vmo(32, 48);
	uint8_t *m = map_rw(v);
	uint8_t *img0 = read_all(v, NULL);
	uvmo_vmo_t *c0 = make_child(v, UVMO_CHILD_SNAPSHOT, 0, 32 * PG); /* before the snapshot */
	memset(m + 8 * PG, 0x4f, 2 * PG);
	uint8_t *img = read_all(v, NULL);
	uvmo_vmo_t *s = take_snapshot(v);
	uvmo_vmo_t *c1 = make_child(v, UVMO_CHILD_SNAPSHOT, 0, 32 * PG); /* after it */
	uvmo_vmo_t *c2 = make_child(v, UVMO_CHILD_SNAPSHOT, 4 * PG, 16 * PG); /* at an offset */
	go_async(v, s, m);
	memset(m, 0x50, 32 * PG);
	expect_bytes(c0, img0, 32 * PG);
	expect_bytes(c1, img, 32 * PG);
	expect_bytes(c2, img + 4 * PG, 16 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, 32 * PG);
	memset(m + 4 * PG, 0x51, 16 * PG);
	expect_bytes(c0, img0, 32 * PG);
	expect_bytes(c1, img, 32 * PG);
	expect_bytes(c2, img + 4 * PG, 16 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, 32 * PG);
	free(img0);
	free(img);
}

Test(tracking, restore_to_a_snapshot_of_the_snapshot_while_async_is_exact)
{
	uvmo_vmo_t *v = holey_vmo(32, 49);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	uvmo_vmo_t *ss = take_snapshot(s);
	for (int round = 0; round < 3; round++) {
		memset(m + (uint64_t)round * PG, 0x52 + round, 5 * PG);
		expect_ok(uvmo_vmo_restore(v, ss));
		expect_exact(v, m, img, 32 * PG);
		memset(m + 20 * PG, 0x56, 4 * PG);
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 32 * PG);
	}
	expect_bytes(ss, img, 32 * PG);
	free(img);
}

/* A writer that never stops (random pages, holes of the snapshot
 * included) while the VMO moves to the async tier (second restore) and
 * back (a snapshot) again and again: each snapshot keeps its bytes while
 * the writer goes on, and once the writer stops the mapping and
 * uvmo_vmo_read agree and a restore is exact (no write went untracked). */
#define MOVE_PAGES 32u

struct move_writer {
	volatile uint64_t *w;
	atomic_bool stop;
};

static void *move_write(void *arg)
{
	struct move_writer *mw = arg;
	uint64_t rng = 5150, seq = 0;
	while (!atomic_load(&mw->stop)) {
		uint64_t p = rnd_below(&rng, MOVE_PAGES);
		seq++;
		for (size_t i = 0; i < WORDS; i += 8)
			mw->w[p * WORDS + i] = 0x3300000000000000ull | seq;
	}
	return NULL;
}

Test(tracking, writes_racing_moves_between_the_tiers_are_not_lost)
{
	uvmo_vmo_t *v = holey_vmo(MOVE_PAGES, 51);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	struct move_writer mw = { .w = (volatile uint64_t *)m };
	atomic_init(&mw.stop, false);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, move_write, &mw), 0);
	uint8_t *a = malloc(MOVE_PAGES * PG), *b = malloc(MOVE_PAGES * PG);
	cr_assert(a && b);
	char why[256] = "";
	for (int k = 0; k < 20 && !why[0]; k++) {
		int rc = uvmo_vmo_restore(v, s);
		if (rc == 0)
			rc = uvmo_vmo_restore(v, s); /* to the async tier */
		struct uvmo_stats st;
		uvmo_get_stats(&st);
		if (rc == 0 && st.async_tracked_vmos != (async_tier() ? 1u : 0u)) {
			snprintf(why, sizeof(why), "cycle %d: async_tracked_vmos is %llu after the"
				 " second restore", k, (unsigned long long)st.async_tracked_vmos);
			break;
		}
		uvmo_vmo_t *t2 = NULL;
		if (rc == 0)
			rc = uvmo_vmo_snapshot(v, &t2); /* and back */
		if (rc == 0)
			rc = uvmo_vmo_read(t2, a, 0, MOVE_PAGES * PG);
		if (rc) {
			snprintf(why, sizeof(why), "cycle %d: a call returned %d (%s)", k, rc,
				 rc_name(rc));
			break;
		}
		struct timespec ts = { 0, 300000 };
		nanosleep(&ts, NULL);
		rc = uvmo_vmo_read(t2, b, 0, MOVE_PAGES * PG);
		long bad = rc ? 0 : first_difference(a, b, MOVE_PAGES * PG);
		if (rc || bad >= 0)
			snprintf(why, sizeof(why), "cycle %d: the snapshot changed while the VMO was"
				 " written (byte %ld, page %ld; read returned %d)", k, bad,
				 bad / (long)PG, rc);
		uvmo_vmo_close(t2);
	}
	atomic_store(&mw.stop, true);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert(!why[0], "%s", why);
	expect_vmo_matches(v, 0, m, MOVE_PAGES * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, MOVE_PAGES * PG);
	/* once more, quietly: the loop goes on exactly */
	memset(m + 3 * PG, 0x34, 4 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_ok(uvmo_vmo_restore(v, s));
	memset(m + 9 * PG, 0x35, 4 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, MOVE_PAGES * PG);
	free(a);
	free(b);
	free(img);
}

/* A snapshot of an async VMO that another thread writes (rounds of
 * increasing numbers, word by word in address order) shows one instant:
 * round r in a prefix of the words and round r - 1 in the rest. */
#define INSTANT_PAGES 16u

Test(tracking, snapshot_of_an_async_vmo_written_by_another_thread_is_one_instant)
{
	uint64_t *got = malloc(INSTANT_PAGES * PG);
	cr_assert_not_null(got);
	for (int k = 0; k < 8; k++) {
		uvmo_vmo_t *v = make_vmo(INSTANT_PAGES * PG, 0);
		uint8_t *m = map_rw(v);
		uvmo_vmo_t *s0 = take_snapshot(v);
		memset(m, 0, INSTANT_PAGES * PG);
		go_async(v, s0, m);
		struct instant_writer iw = { .w = (volatile uint64_t *)m,
					     .words = INSTANT_PAGES * WORDS };
		atomic_init(&iw.stop, false);
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, instant_write, &iw), 0);
		struct timespec ts = { 0, 200000 + (long)k * 150000 };
		nanosleep(&ts, NULL);
		uvmo_vmo_t *s = NULL;
		int rc = uvmo_vmo_snapshot(v, &s);
		if (rc == 0)
			rc = uvmo_vmo_read(s, got, 0, INSTANT_PAGES * PG);
		atomic_store(&iw.stop, true);
		cr_assert_eq(pthread_join(t, NULL), 0);
		cr_assert_eq(rc, 0, "snapshot or read returned %d (%s)", rc, rc_name(rc));
		uint64_t a = got[0];
		size_t cut, i = instant_break(got, INSTANT_PAGES * WORDS, &cut);
		cr_assert_eq(i, INSTANT_PAGES * WORDS,
			     "snapshot %d is not one instant: word 0 holds round %llu, words from %zu"
			     " round %llu, but word %zu (page %zu) holds %llu (writer: %llu rounds)",
			     k, (unsigned long long)a, cut,
			     (unsigned long long)(cut < INSTANT_PAGES * WORDS ? got[cut] : 0), i,
			     i / WORDS, (unsigned long long)(i < INSTANT_PAGES * WORDS ? got[i] : 0),
			     (unsigned long long)iw.rounds);
		/* ... and it stays that instant while the VMO is written again. */
		uint8_t *img = malloc(INSTANT_PAGES * PG);
		memcpy(img, got, INSTANT_PAGES * PG);
		memset(m, 0xf1, INSTANT_PAGES * PG);
		expect_bytes(s, img, INSTANT_PAGES * PG);
		free(img);
		expect_ok(uvmo_vmar_unmap(root_vmar(), m, INSTANT_PAGES * PG));
		uvmo_vmo_close(s);
		uvmo_vmo_close(s0);
		uvmo_vmo_close(v);
	}
	free(got);
}

Test(tracking, restore_to_an_older_snapshot_while_async_is_exact)
{
	uvmo_vmo_t *v = holey_vmo(32, 45);
	uint8_t *img0 = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s0 = take_snapshot(v);
	memset(m + 4 * PG, 0x51, 4 * PG);
	uint8_t *img1 = read_all(v, NULL);
	uvmo_vmo_t *s1 = take_snapshot(v);
	go_async(v, s1, m);
	memset(m + 6 * PG, 0x52, 4 * PG);
	memset(m + 20 * PG, 0x53, PG);
	expect_ok(uvmo_vmo_restore(v, s0));
	expect_exact(v, m, img0, 32 * PG);
	memset(m + 1 * PG, 0x54, 2 * PG);
	expect_ok(uvmo_vmo_restore(v, s1));
	expect_exact(v, m, img1, 32 * PG);
	free(img0);
	free(img1);
}

Test(tracking, diff_against_an_older_snapshot_while_async_includes_mapped_writes)
{
	uvmo_vmo_t *v = holey_vmo(32, 46);
	uint8_t *img0 = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s0 = take_snapshot(v);
	memset(m + 4 * PG, 0x55, 2 * PG);
	uvmo_vmo_t *s1 = take_snapshot(v);
	go_async(v, s1, m);
	memset(m + 10 * PG, 0x56, PG);
	memset(m + 15 * PG + 5, 0x57, 3); /* a hole of both snapshots */
	bool dirty[32] = { false };
	for (uint64_t p = 0; p < 32; p++)
		dirty[p] = memcmp(m + p * PG, img0 + p * PG, PG) != 0;
	cr_assert(dirty[4] && dirty[5] && dirty[10] && dirty[15]);
	expect_diff(v, s0, dirty, 32);
	free(img0);
}

/* ======================================================================== */
/* threads, fork                                                            */
/* ======================================================================== */

#define TH_PAGES 32u
#define TH_N 4
#define TH_ROUNDS 16
#define TH_TAG 0x7a00000000000000ull

struct th_arg {
	pthread_barrier_t *bar;
	volatile uint64_t *w;
	int index;
};

/* Each round: write words i % TH_N == index of a few random pages, then
 * wait for the restore and the check. */
static void *th_writer(void *arg)
{
	struct th_arg *a = arg;
	uint64_t rng = 1000 + (uint64_t)a->index;
	for (int r = 0; r < TH_ROUNDS; r++) {
		for (int k = 0; k < 6; k++) {
			uint64_t p = rnd_below(&rng, TH_PAGES);
			for (size_t i = (size_t)a->index; i < WORDS; i += TH_N)
				a->w[p * WORDS + i] = TH_TAG | ((uint64_t)r << 16) | i;
		}
		pthread_barrier_wait(a->bar); /* written */
		pthread_barrier_wait(a->bar); /* restored and checked */
	}
	return NULL;
}

Test(tracking, threads_writing_between_async_restores_are_all_undone)
{
	uvmo_vmo_t *v = holey_vmo(TH_PAGES, 50);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, TH_N + 1);
	struct th_arg args[TH_N];
	pthread_t t[TH_N];
	for (int i = 0; i < TH_N; i++)
		args[i] = (struct th_arg){ .bar = &bar, .w = (volatile uint64_t *)m, .index = i };
	start_workers(t, TH_N, th_writer, args, sizeof(args[0]));
	uint8_t *got = malloc(TH_PAGES * PG);
	cr_assert_not_null(got);
	char why[256] = "";
	for (int r = 0; r < TH_ROUNDS; r++) {
		pthread_barrier_wait(&bar);
		int rc = uvmo_vmo_restore(v, s);
		if (!why[0] && rc)
			snprintf(why, sizeof(why), "round %d: restore returned %d (%s)", r, rc,
				 rc_name(rc));
		long bad;
		if (!why[0] && (bad = first_difference(m, img, TH_PAGES * PG)) >= 0)
			snprintf(why, sizeof(why), "round %d: mapping byte %ld (page %ld) is 0x%02x,"
				 " expected 0x%02x", r, bad, bad / (long)PG, m[bad], img[bad]);
		if (!why[0] && (rc = uvmo_vmo_read(v, got, 0, TH_PAGES * PG)) != 0)
			snprintf(why, sizeof(why), "round %d: read returned %d", r, rc);
		if (!why[0] && (bad = first_difference(got, img, TH_PAGES * PG)) >= 0)
			snprintf(why, sizeof(why), "round %d: uvmo_vmo_read byte %ld (page %ld) is"
				 " 0x%02x, expected 0x%02x", r, bad, bad / (long)PG, got[bad],
				 img[bad]);
		struct uvmo_stats st;
		uvmo_get_stats(&st);
		if (!why[0] && r >= 1 && st.async_tracked_vmos != (async_tier() ? 1u : 0u))
			snprintf(why, sizeof(why), "round %d: async_tracked_vmos is %llu", r,
				 (unsigned long long)st.async_tracked_vmos);
		pthread_barrier_wait(&bar);
	}
	join_workers(t, TH_N);
	pthread_barrier_destroy(&bar);
	cr_assert(!why[0], "%s", why);
	free(got);
	free(img);
}

/* The child's side of the fork tests: it exits with 0, or with the step
 * that failed (the parent reports it). */
#define FORK_PAGES 16u

static int child_restores_exactly(uvmo_vmo_t *v, uvmo_vmo_t *s, uint8_t *m, const uint8_t *img,
				  const uint8_t *before)
{
	uint8_t *got = malloc(FORK_PAGES * PG);
	if (!got)
		return 1;
	/* The child sees the bytes written before the fork. */
	if (memcmp(m, before, FORK_PAGES * PG) != 0)
		return 2;
	if (uvmo_vmo_read(v, got, 0, FORK_PAGES * PG) != 0 ||
	    memcmp(got, before, FORK_PAGES * PG) != 0)
		return 3;
	memset(m + 5 * PG, 0x3d, 2 * PG);
	if (uvmo_vmo_restore(v, s) != 0)
		return 4;
	if (memcmp(m, img, FORK_PAGES * PG) != 0)
		return 5;
	if (uvmo_vmo_read(v, got, 0, FORK_PAGES * PG) != 0 || memcmp(got, img, FORK_PAGES * PG) != 0)
		return 6;
	for (int r = 0; r < 3; r++) {
		memset(m + (uint64_t)(8 + r) * PG + 7, 0x4e, 100);
		if (uvmo_vmo_restore(v, s) != 0)
			return 7;
		if (memcmp(m, img, FORK_PAGES * PG) != 0)
			return 8;
		if (uvmo_vmo_read(v, got, 0, FORK_PAGES * PG) != 0 ||
		    memcmp(got, img, FORK_PAGES * PG) != 0)
			return 9;
	}
	free(got);
	return 0;
}

static void expect_child_status(pid_t pid, const char *what)
{
	int status = 0;
	pid_t got;
	while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	cr_assert_eq(got, pid, "waitpid failed");
	cr_assert(!WIFSIGNALED(status), "the child died of signal %d", WTERMSIG(status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed at step %d (%s)",
		  WIFEXITED(status) ? WEXITSTATUS(status) : -1, what);
}

Test(tracking, fork_after_async_writes_restores_exactly_in_child_and_parent)
{
	uvmo_vmo_t *v = holey_vmo(FORK_PAGES, 60);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	memset(m + 2 * PG, 0x6b, 2 * PG);
	memset(m + 7 * PG + 10, 0x6c, 10); /* a hole */
	uint8_t *before = read_all(v, NULL);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork failed");
	if (pid == 0)
		_exit(child_restores_exactly(v, s, m, img, before));
	memset(m + 12 * PG, 0x6d, PG); /* the parent writes too */
	expect_child_status(pid, "see child_restores_exactly");
	/* The child's writes and restores did not touch the parent. */
	expect_mapped_bytes(m, before, 12 * PG);
	expect_mem_val(m + 12 * PG, PG, 0x6d);
	expect_mapped_bytes(m + 13 * PG, before + 13 * PG, 3 * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, FORK_PAGES * PG);
	memset(m + 3 * PG, 0x6e, PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, FORK_PAGES * PG);
	free(before);
	free(img);
}

static int child_checks_no_async_vmo(void)
{
	struct uvmo_stats st;
	if (uvmo_get_stats(&st) != 0)
		return 1;
	return st.async_tracked_vmos == 0 ? 0 : 2;
}

Test(tracking, fork_moves_async_vmos_back_to_sync)
{
	uvmo_vmo_t *v = pattern_vmo(8, 61);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork failed");
	if (pid == 0)
		_exit(child_checks_no_async_vmo());
	uint64_t n = stats_now().async_tracked_vmos;
	expect_child_status(pid, "async_tracked_vmos is not 0 in the child");
	cr_assert_eq(n, 0, "the parent's async_tracked_vmos is %llu after fork",
		     (unsigned long long)n);
}

/* ======================================================================== */
/* slices, resize, pool limit                                               */
/* ======================================================================== */

/* Slices can be mapped (uvmo_vmar_map: "all mappings of a VMO (and its
 * slices) ... agree"); restoring the parent undoes writes through them. */
Test(tracking, writes_through_a_mapped_slice_of_an_async_vmo_are_undone_by_restore)
{
	uvmo_vmo_t *v = holey_vmo(32, 70);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	uvmo_vmo_t *sl = make_child(v, UVMO_CHILD_SLICE, 8 * PG, 16 * PG);
	uint8_t *msl = map_rw(sl);
	for (int round = 0; round < 3; round++) {
		memset(msl + (uint64_t)round * PG, 0x71 + round, 2 * PG); /* VMO pages 8 + round.. */
		memset(msl + 15 * PG + 100, 0x75, 50);                     /* VMO page 23 (hole) */
		cr_assert_eq(m[8 * PG + (uint64_t)round * PG], 0x71 + round);
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 32 * PG);
		expect_exact(sl, msl, img + 8 * PG, 16 * PG);
	}
	free(img);
}

/* A slice mapped before the move: its mapping moves with the VMO. */
Test(tracking, writes_through_a_slice_mapped_before_the_move_are_undone_by_restore)
{
	uvmo_vmo_t *v = holey_vmo(32, 71);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *sl = make_child(v, UVMO_CHILD_SLICE, 4 * PG, 8 * PG);
	uint8_t *msl = map_rw(sl);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	for (int round = 0; round < 3; round++) {
		memset(msl + (uint64_t)round * PG, 0x76 + round, 3 * PG); /* VMO pages 4 + round.. */
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 32 * PG);
		expect_exact(sl, msl, img + 4 * PG, 8 * PG);
	}
	free(img);
}

/* A resizable VMO in the async tier, grown past its window's capacity
 * with writes through its mapping before and after: the window moves (a
 * large VMO made just before sits right after it, so it cannot grow in
 * place) and the mapping is made anew.  Restore gives back the snapshot's
 * size and bytes, writes made through the old mapping included. */
Test(tracking, async_vmo_grown_past_its_window_restores_size_and_bytes)
{
	struct uvmo_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.resizable_window = 8 * PG;
	expect_ok(uvmo_init(&cfg));
	uvmo_vmo_t *v = make_vmo(4 * PG, UVMO_VMO_RESIZABLE);
	write_pattern(v, 80, 0, 4 * PG);
	uint8_t *img = read_all(v, NULL);
	/* The mapping's length makes the window 16 pages. */
	uint8_t *m = map_vmo(root_vmar(), PERM_RW | UVMO_VMAR_ALLOW_FAULTS, v, 0, 16 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	uvmo_vmo_t *blockers[3];
	for (int round = 0; round < 3; round++) {
		blockers[round] = make_vmo(4096 * PG, 0);
		fill_page(blockers[round], 4095, 0xb0 + round);
		memset(m + 1 * PG, 0x81 + round, 2 * PG);
		m[3 * PG + 99] = 0x87;
		expect_ok(uvmo_vmo_set_size(v, (32ull << (2 * round)) * PG));
		expect_mem_val(m + 1 * PG, 2 * PG, 0x81 + round); /* kept across the move */
		memset(m + 5 * PG, 0x85, PG);
		memset(m + 12 * PG + 7, 0x86, 9);
		m[2 * PG] = 0x88;
		fill_page(v, 20, 0x89);
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 4 * PG);
		expect_read_signal(SIGBUS, m + 5 * PG);
		/* and once more without a move: the loop goes on */
		memset(m + 2 * PG, 0x8a, PG);
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 4 * PG);
	}
	for (int round = 0; round < 3; round++)
		expect_page(blockers[round], 4095, 0xb0 + round);
	free(img);
}

Test(tracking, async_vmo_shrunk_and_grown_restores_size_and_bytes)
{
	uvmo_vmo_t *v = make_vmo(16 * PG, UVMO_VMO_RESIZABLE);
	write_pattern(v, 81, 0, 16 * PG);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_vmo(root_vmar(), PERM_RW | UVMO_VMAR_ALLOW_FAULTS, v, 0, 32 * PG);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	for (int round = 0; round < 3; round++) {
		memset(m + 2 * PG, 0x88 + round, PG);
		memset(m + 12 * PG, 0x8b, PG);
		expect_ok(uvmo_vmo_set_size(v, 8 * PG));
		expect_ok(uvmo_vmo_set_size(v, 24 * PG));
		expect_mem_val(m + 12 * PG, PG, 0);
		memset(m + 13 * PG, 0x8c, PG);
		memset(m + 20 * PG, 0x8d, PG);
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 16 * PG);
		expect_read_signal(SIGBUS, m + 20 * PG);
	}
	free(img);
}

#define POOL_VMO_PAGES 64u

static const uint64_t pool_pages_written[] = { 3, 17, 40, 41 };
#define POOL_WRITTEN (sizeof(pool_pages_written) / sizeof(pool_pages_written[0]))

/* The same pages written through the mapping, then restored, @iters
 * times; every byte checked each time; async_tracked_vmos == @want_async
 * from the second restore on. */
static void pool_loop(uvmo_vmo_t *v, uvmo_vmo_t *s, uint8_t *m, const uint8_t *img, int iters,
		      uint64_t want_async)
{
	for (int it = 0; it < iters; it++) {
		for (size_t j = 0; j < POOL_WRITTEN; j++)
			memset(m + pool_pages_written[j] * PG + (uint64_t)it * 16, 0xa0 + it, 64);
		int rc = uvmo_vmo_restore(v, s);
		cr_assert_eq(rc, 0, "restore %d returned %d (%s)", it + 1, rc, rc_name(rc));
		expect_exact(v, m, img, POOL_VMO_PAGES * PG);
		if (it >= 1) {
			uint64_t n = stats_now().async_tracked_vmos;
			cr_assert_eq(n, want_async, "restore %d: async_tracked_vmos is %llu,"
				     " expected %llu", it + 1, (unsigned long long)n,
				     (unsigned long long)want_async);
		}
	}
}

/* Room for the VMO and the copies of the written pages, not for a copy of
 * the whole VMO: the VMO stays sync, and the loop works. */
Test(tracking, pool_without_room_for_the_copy_keeps_the_vmo_sync_and_exact)
{
	init_with_pool_limit((POOL_VMO_PAGES + POOL_WRITTEN + 12) * PG);
	uvmo_vmo_t *v = pattern_vmo(POOL_VMO_PAGES, 90);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	pool_loop(v, s, m, img, 12, 0);
	expect_bytes(s, img, POOL_VMO_PAGES * PG);
	cr_assert_leq(stats_now().committed_bytes, (POOL_VMO_PAGES + POOL_WRITTEN + 12) * PG);
	free(img);
}

/* The same with room to spare: the VMO goes async (the limit test above
 * is therefore about the limit). */
Test(tracking, pool_with_room_for_the_copy_lets_the_vmo_go_async)
{
	init_with_pool_limit(4 * POOL_VMO_PAGES * PG);
	uvmo_vmo_t *v = pattern_vmo(POOL_VMO_PAGES, 91);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	pool_loop(v, s, m, img, 12, async_tier() ? 1 : 0);
	expect_bytes(s, img, POOL_VMO_PAGES * PG);
	free(img);
}

/* ======================================================================== */
/* calls, decommit and zero mixed with mapped writes                        */
/* ======================================================================== */

Test(tracking, call_writes_mixed_with_mapped_writes_are_undone_by_restore)
{
	uvmo_vmo_t *v = holey_vmo(32, 100);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	uint64_t rng = 4242;
	uint8_t buf[300];
	for (int round = 0; round < 10; round++) {
		for (int j = 0; j < 8; j++) {
			uint64_t p = rnd_below(&rng, 32);
			uint64_t off = rnd_below(&rng, PG - sizeof(buf));
			memset(buf, 0xb0 + j, sizeof(buf));
			switch ((j + round) % 4) {
			case 0: /* mapping, then call */
				memset(m + p * PG + off, 0xc0 + j, 100);
				expect_ok(uvmo_vmo_write(v, buf, p * PG + off, sizeof(buf)));
				break;
			case 1: /* call, then mapping */
				expect_ok(uvmo_vmo_write(v, buf, p * PG + off, sizeof(buf)));
				memset(m + p * PG + off + 50, 0xc0 + j, 100);
				break;
			case 2: /* call only, across a page boundary */
				expect_ok(uvmo_vmo_write(v, buf, p * PG + PG - 100,
							 p + 1 < 32 ? sizeof(buf) : 100));
				break;
			default: /* mapping only */
				memset(m + p * PG + off, 0xc0 + j, sizeof(buf));
				break;
			}
		}
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 32 * PG);
	}
	free(img);
}

Test(tracking, decommit_of_async_written_pages_is_undone_by_restore)
{
	uvmo_vmo_t *v = holey_vmo(32, 110);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	for (int round = 0; round < 3; round++) {
		memset(m + 1 * PG, 0xd1 + round, 6 * PG);                     /* pages 1..6 */
		expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 2 * PG, 2 * PG)); /* written */
		expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 12 * PG, 2 * PG)); /* not */
		expect_mem_val(m + 2 * PG, 2 * PG, 0);
		memset(m + 3 * PG + 8, 0xd5, 8); /* write again after the decommit */
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 32 * PG);
	}
	free(img);
}

Test(tracking, zero_of_async_written_pages_is_undone_by_restore)
{
	uvmo_vmo_t *v = holey_vmo(32, 111);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	for (int round = 0; round < 3; round++) {
		memset(m + 4 * PG, 0xd6 + round, 4 * PG);                          /* pages 4..7 */
		expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 4 * PG + 100, PG));   /* parts of 4, 5 */
		expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 6 * PG, 2 * PG));     /* whole 6, 7 */
		expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 20 * PG + 9, 30));    /* not written */
		expect_mem_val(m + 6 * PG, 2 * PG, 0);
		m[6 * PG + 1] = 0xd9; /* write again after the zero */
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 32 * PG);
	}
	free(img);
}

Test(tracking, vmar_decommit_of_async_written_pages_is_undone_by_restore)
{
	uvmo_vmo_t *v = holey_vmo(32, 112);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	go_async(v, s, m);
	for (int round = 0; round < 3; round++) {
		memset(m + 8 * PG, 0xda + round, 4 * PG);
		expect_ok(uvmo_vmar_op_range(root_vmar(), UVMO_OP_DECOMMIT, m + 9 * PG, 2 * PG));
		expect_mem_val(m + 9 * PG, 2 * PG, 0);
		memset(m + 10 * PG, 0xdd, 16); /* write again */
		expect_ok(uvmo_vmo_restore(v, s));
		expect_exact(v, m, img, 32 * PG);
	}
	free(img);
}

/*
 * Regression: faults that race a move between the two userfaultfds are
 * all answered.  The kernel wakes the threads waiting on the old
 * userfaultfd before it unregisters each VMA, so a fault taken under the
 * per-VMA lock in between still lands on the old one; the handler then
 * answers it on the mapping's new userfaultfd and must wake the old one
 * too, or the thread sleeps for good (this test then times out).  Four
 * writers fault on holes and restored pages while the VMO moves back and
 * forth 150 times.
 */
#define HAMMER_THREADS 4

struct hammer {
	volatile uint64_t *w;
	atomic_bool *stop;
	uint64_t seed;
};

static void *hammer_write(void *arg)
{
	struct hammer *h = arg;
	uint64_t rng = h->seed;
	while (!atomic_load(h->stop)) {
		uint64_t p = rnd_below(&rng, MOVE_PAGES);
		h->w[p * WORDS + (rng & (WORDS - 1))] = rng;
	}
	return NULL;
}

Test(tracking, faults_racing_moves_between_the_userfaultfds_are_all_answered, .timeout = 60)
{
	uvmo_vmo_t *v = holey_vmo(MOVE_PAGES, 53);
	uint8_t *img = read_all(v, NULL);
	uint8_t *m = map_rw(v);
	uvmo_vmo_t *s = take_snapshot(v);
	atomic_bool stop;
	atomic_init(&stop, false);
	struct hammer h[HAMMER_THREADS];
	pthread_t t[HAMMER_THREADS];
	for (int i = 0; i < HAMMER_THREADS; i++) {
		h[i] = (struct hammer){ (volatile uint64_t *)m, &stop, 1000u + (uint64_t)i };
		cr_assert_eq(pthread_create(&t[i], NULL, hammer_write, &h[i]), 0);
	}
	int rc = 0;
	for (int k = 0; k < 150 && rc == 0; k++) {
		uvmo_vmo_t *t2 = NULL;
		rc = uvmo_vmo_restore(v, s);
		if (rc == 0)
			rc = uvmo_vmo_restore(v, s); /* to the async tier */
		if (rc == 0)
			rc = uvmo_vmo_snapshot(v, &t2); /* and back */
		if (t2)
			uvmo_vmo_close(t2);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < HAMMER_THREADS; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	cr_assert_eq(rc, 0, "a call returned %d (%s)", rc, rc_name(rc));
	expect_vmo_matches(v, 0, m, MOVE_PAGES * PG);
	expect_ok(uvmo_vmo_restore(v, s));
	expect_exact(v, m, img, MOVE_PAGES * PG);
	free(img);
}

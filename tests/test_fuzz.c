/* SPDX-License-Identifier: MIT */
/*
 * The fuzzing helper (include/uvmo/fuzz.h, issue 5 section 3): regions and
 * the bump allocator are reset to their pristine snapshot after each run,
 * in place; and the persistent loop of tests/fuzz/kv_persistent.c, run
 * in-process on a fixed corpus, never fails with the reset and always
 * leaves the store pristine — while without it the same corpus makes the
 * target misbehave (inputs that pass alone fail after others).
 */
#include "vmo_test_util.h"

#include <inttypes.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <uvmo/fuzz.h>

#include "fuzz/kv_harness.h"

static void fill(void *addr, size_t len, uint8_t seed)
{
	uint8_t *bytes = addr;
	for (size_t i = 0; i < len; i++)
		bytes[i] = (uint8_t)(seed + i * 7 + i / 4096);
}

static void expect_zero(const void *addr, size_t len)
{
	const uint8_t *bytes = addr;
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(bytes[i], 0, "byte %zu is %u, expected 0", i, bytes[i]);
}

static size_t dirty_pages(void)
{
	size_t count = 12345;
	expect_ok(uvmo_fuzz_dirty_pages(&count));
	return count;
}

/* ---------------------------------------------------------------------- */
/* regions                                                                */
/* ---------------------------------------------------------------------- */

Test(fuzz, region_is_zero_filled_and_writable)
{
	uint8_t *region = NULL;
	expect_ok(uvmo_fuzz_region(10 * PG + 1, (void **)&region));
	cr_assert_not_null(region);
	expect_zero(region, 11 * PG); /* rounded up to whole pages */
	fill(region, 11 * PG, 3);
	cr_assert_eq(region[11 * PG - 1], (uint8_t)(3 + (11 * PG - 1) * 7 + 10));
}

Test(fuzz, reset_restores_written_pages_in_place_and_drops_new_ones)
{
	const size_t size = 64 * PG;
	uint8_t *region = NULL;
	expect_ok(uvmo_fuzz_region(size, (void **)&region));
	fill(region, 8 * PG, 1); /* pages 0-7: the initialised state */
	uint8_t *pristine = malloc(size);
	memcpy(pristine, region, size);
	expect_ok(uvmo_fuzz_arm());
	cr_assert_eq(dirty_pages(), 0);

	memset(region + 3 * PG + 100, 0xee, 50); /* an initialised page */
	region[40 * PG] = 0x55;                  /* a page never touched */
	cr_assert_eq(dirty_pages(), 2);

	expect_ok(uvmo_fuzz_reset());
	cr_assert_eq(dirty_pages(), 0);
	cr_assert_eq(memcmp(region, pristine, size), 0, "region differs from pristine after reset");

	/* Again: the same pages, then others. */
	region[3 * PG] ^= 1;
	region[63 * PG + 7] = 9;
	expect_ok(uvmo_fuzz_reset());
	cr_assert_eq(memcmp(region, pristine, size), 0);
	free(pristine);
}

Test(fuzz, many_rounds_of_random_writes_all_reset)
{
	const size_t size = 256 * PG;
	uint8_t *region = NULL;
	expect_ok(uvmo_fuzz_region(size, (void **)&region));
	fill(region, size / 2, 9);
	uint8_t *pristine = malloc(size);
	memcpy(pristine, region, size);
	expect_ok(uvmo_fuzz_arm());

	uint64_t state = 12345;
	for (int round = 0; round < 100; round++) {
		size_t writes = 1 + round % 40;
		for (size_t i = 0; i < writes; i++) {
			state = state * 6364136223846793005ull + 1442695040888963407ull;
			region[(state >> 20) % size] = (uint8_t)(state >> 56) | 1;
		}
		cr_assert_gt(dirty_pages(), 0, "round %d: writes not seen by diff", round);
		expect_ok(uvmo_fuzz_reset());
		cr_assert_eq(memcmp(region, pristine, size), 0, "round %d: not pristine", round);
	}
	free(pristine);
}

/* Random runs (single bytes, spans across pages, reads of untouched pages,
 * whole-page clears), a reset after each, now and then a re-arm: the region
 * always equals a shadow copy of its pristine state.  The seed is printed;
 * FUZZ_TEST_SEED=<seed> replays it. */
Test(fuzz, randomised_runs_always_reset_to_the_shadow_copy)
{
	const size_t pages = 512, size = pages * PG;
	uint8_t *region = NULL;
	expect_ok(uvmo_fuzz_region(size, (void **)&region));
	const char *fixed_seed = getenv("FUZZ_TEST_SEED");
	uint64_t seed = fixed_seed ? strtoull(fixed_seed, NULL, 0) : (uint64_t)time(NULL);
	cr_log_info("seed %" PRIu64 " (replay: FUZZ_TEST_SEED=%" PRIu64 ")", seed, seed);
	uint64_t state = seed | 1;
#define NEXT() (state ^= state << 13, state ^= state >> 7, state ^= state << 17, state)
	for (size_t page = 0; page < pages; page += 1 + NEXT() % 3)
		memset(region + page * PG, (int)(NEXT() | 1), PG);
	uint8_t *shadow = malloc(size);
	memcpy(shadow, region, size);
	expect_ok(uvmo_fuzz_arm());

	for (int round = 0; round < 300; round++) {
		size_t actions = 1 + NEXT() % 20;
		for (size_t a = 0; a < actions; a++) {
			size_t at = NEXT() % size;
			switch (NEXT() % 4) {
			case 0:
				region[at] = (uint8_t)NEXT();
				break;
			case 1: {
				size_t len = 1 + NEXT() % (3 * PG);
				if (at + len > size)
					len = size - at;
				memset(region + at, (int)NEXT(), len);
				break;
			}
			case 2: {
				volatile uint8_t sink = region[at];
				(void)sink;
				break;
			}
			default:
				memset(region + (at / PG) * PG, 0, PG);
			}
		}
		if (NEXT() % 25 == 0) {
			memcpy(shadow, region, size); /* this run's state becomes pristine */
			expect_ok(uvmo_fuzz_arm());
		}
		expect_ok(uvmo_fuzz_reset());
		for (size_t page = 0; page < pages; page++)
			cr_assert_eq(memcmp(region + page * PG, shadow + page * PG, PG), 0,
				     "seed %" PRIu64 ", round %d: page %zu not pristine", seed, round,
				     page);
		cr_assert_eq(dirty_pages(), 0, "seed %" PRIu64 ", round %d", seed, round);
	}
#undef NEXT
	free(shadow);
}

Test(fuzz, dirty_page_count_spans_many_runs)
{
	/* Every other page: 300 separate runs, more than one diff call holds. */
	uint8_t *region = NULL;
	expect_ok(uvmo_fuzz_region(600 * PG, (void **)&region));
	expect_ok(uvmo_fuzz_arm());
	for (size_t page = 0; page < 600; page += 2)
		region[page * PG] = 1;
	cr_assert_eq(dirty_pages(), 300);
	expect_ok(uvmo_fuzz_reset());
	cr_assert_eq(dirty_pages(), 0);
}

Test(fuzz, pages_only_read_or_written_back_unchanged_do_not_count)
{
	uint8_t *region = NULL;
	expect_ok(uvmo_fuzz_region(64 * PG, (void **)&region));
	fill(region, 8 * PG, 5);
	expect_ok(uvmo_fuzz_arm());
	volatile uint8_t sink = region[2 * PG] + region[40 * PG] + region[41 * PG];
	(void)sink;
	region[3 * PG] ^= 0xff;
	region[3 * PG] ^= 0xff; /* back to its pristine byte */
	cr_assert_eq(dirty_pages(), 0);
	region[4 * PG] ^= 1;
	cr_assert_eq(dirty_pages(), 1);
	expect_ok(uvmo_fuzz_reset());
	cr_assert_eq(dirty_pages(), 0);
}

Test(fuzz, writes_by_system_calls_are_reset_too)
{
	uint8_t *region = NULL;
	expect_ok(uvmo_fuzz_region(8 * PG, (void **)&region));
	memset(region, 'x', 8 * PG);
	expect_ok(uvmo_fuzz_arm());
	int pipe_fds[2];
	cr_assert_eq(pipe(pipe_fds), 0);
	for (int run = 0; run < 3; run++) {
		cr_assert_eq(write(pipe_fds[1], "hello", 5), 5);
		/* The kernel writes into a write-protected page of the region. */
		cr_assert_eq(read(pipe_fds[0], region + 5 * PG + 100, 5), 5);
		cr_assert_eq(memcmp(region + 5 * PG + 100, "hello", 5), 0);
		cr_assert_eq(dirty_pages(), 1);
		expect_ok(uvmo_fuzz_reset());
		cr_assert_eq(memcmp(region + 5 * PG + 100, "xxxxx", 5), 0, "run %d", run);
	}
	close(pipe_fds[0]);
	close(pipe_fds[1]);
}

Test(fuzz, several_regions_reset_together)
{
	uint8_t *a = NULL, *b = NULL;
	expect_ok(uvmo_fuzz_region(4 * PG, (void **)&a));
	expect_ok(uvmo_fuzz_region(4 * PG, (void **)&b));
	a[0] = 1;
	b[0] = 2;
	expect_ok(uvmo_fuzz_arm());
	a[0] = 10;
	b[0] = 20;
	cr_assert_eq(dirty_pages(), 2);
	b[PG] = 30; /* a page first touched now */
	cr_assert_eq(dirty_pages(), 3);
	expect_ok(uvmo_fuzz_reset());
	cr_assert_eq(a[0], 1);
	cr_assert_eq(b[0], 2);
	cr_assert_eq(b[PG], 0);
}

Test(fuzz, arm_again_replaces_the_pristine_state)
{
	uint8_t *region = NULL;
	expect_ok(uvmo_fuzz_region(4 * PG, (void **)&region));
	region[0] = 1;
	expect_ok(uvmo_fuzz_arm());
	region[0] = 2;
	expect_ok(uvmo_fuzz_arm());
	region[0] = 3;
	expect_ok(uvmo_fuzz_reset());
	cr_assert_eq(region[0], 2);
}

Test(fuzz, adopt_copies_existing_state)
{
	uint8_t source[5000];
	fill(source, sizeof(source), 77);
	uint8_t *region = NULL;
	expect_ok(uvmo_fuzz_adopt(source, sizeof(source), (void **)&region));
	cr_assert_neq((void *)region, (void *)source);
	cr_assert_eq(memcmp(region, source, sizeof(source)), 0);
	expect_zero(region + sizeof(source), 2 * PG - sizeof(source));
	expect_ok(uvmo_fuzz_arm());
	memset(region, 0, sizeof(source));
	expect_ok(uvmo_fuzz_reset());
	cr_assert_eq(memcmp(region, source, sizeof(source)), 0);
}

/* ---------------------------------------------------------------------- */
/* the bump allocator                                                     */
/* ---------------------------------------------------------------------- */

Test(fuzz, alloc_is_aligned_zeroed_and_disjoint)
{
	uint8_t *previous_end = NULL;
	for (size_t size = 1; size < 3000; size += 97) {
		uint8_t *p = uvmo_fuzz_alloc(size);
		cr_assert_not_null(p);
		cr_assert_eq((uintptr_t)p % UVMO_FUZZ_ALLOC_ALIGN, 0);
		cr_assert(previous_end == NULL || p >= previous_end, "allocations overlap");
		expect_zero(p, size);
		memset(p, 0xab, size);
		previous_end = p + size;
	}
	cr_assert_null(uvmo_fuzz_alloc(0));
}

Test(fuzz, allocations_of_a_run_are_rewound_by_reset)
{
	expect_ok(uvmo_fuzz_heap(16 * PG));
	uint32_t *counter = uvmo_fuzz_alloc(sizeof(*counter)); /* long-lived state */
	*counter = 7;
	expect_ok(uvmo_fuzz_arm());

	uint8_t *first = NULL;
	for (int run = 0; run < 20; run++) {
		(*counter)++;
		uint8_t *object = uvmo_fuzz_alloc(3 * PG); /* one run's objects */
		cr_assert_not_null(object);
		if (run == 0)
			first = object;
		cr_assert_eq(object, first, "run %d: allocator not rewound", run);
		expect_zero(object, 3 * PG);
		memset(object, run + 1, 3 * PG);
		expect_ok(uvmo_fuzz_reset());
		cr_assert_eq(*counter, 7, "run %d: counter not reset", run);
	}
}

Test(fuzz, alloc_fails_cleanly_when_the_heap_is_full)
{
	expect_ok(uvmo_fuzz_heap(4 * PG));
	cr_assert_not_null(uvmo_fuzz_alloc(3 * PG));
	cr_assert_null(uvmo_fuzz_alloc(2 * PG));
	cr_assert_not_null(uvmo_fuzz_alloc(PG)); /* what is left still fits */
	cr_assert_null(uvmo_fuzz_alloc(1));
	cr_assert_null(uvmo_fuzz_alloc(SIZE_MAX));
}

Test(fuzz, heap_created_after_arm_is_reset_too)
{
	uint8_t *region = NULL;
	expect_ok(uvmo_fuzz_region(PG, (void **)&region));
	expect_ok(uvmo_fuzz_arm());
	uint8_t *object = uvmo_fuzz_alloc(100); /* creates the default heap */
	cr_assert_not_null(object);
	memset(object, 1, 100);
	expect_ok(uvmo_fuzz_reset());
	expect_zero(object, 100);
	cr_assert_eq(uvmo_fuzz_alloc(100), object);
}

struct alloc_thread {
	void *pointers[2000];
};

static void *allocate_many(void *arg)
{
	struct alloc_thread *thread = arg;
	for (size_t i = 0; i < 2000; i++) {
		thread->pointers[i] = uvmo_fuzz_alloc(48);
		if (thread->pointers[i])
			memset(thread->pointers[i], 0x5a, 48);
	}
	return NULL;
}

static int compare_pointers(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

Test(fuzz, concurrent_allocations_never_overlap)
{
	expect_ok(uvmo_fuzz_heap(1u << 20));
	static struct alloc_thread threads[2];
	pthread_t ids[2];
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&ids[i], NULL, allocate_many, &threads[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(ids[i], NULL);

	static uintptr_t all[4000];
	for (int i = 0; i < 2; i++)
		for (size_t j = 0; j < 2000; j++) {
			cr_assert_not_null(threads[i].pointers[j]);
			all[i * 2000 + j] = (uintptr_t)threads[i].pointers[j];
		}
	qsort(all, 4000, sizeof(all[0]), compare_pointers);
	for (size_t i = 1; i < 4000; i++)
		cr_assert_geq(all[i] - all[i - 1], 48, "allocations overlap");
}

/* ---------------------------------------------------------------------- */
/* errors and life cycle                                                  */
/* ---------------------------------------------------------------------- */

Test(fuzz, bad_arguments_and_wrong_states_are_refused)
{
	void *addr = NULL;
	size_t count;
	uint8_t byte = 0;

	expect_rc(-EINVAL, uvmo_fuzz_region(0, &addr));
	expect_rc(-EINVAL, uvmo_fuzz_region(PG, NULL));
	expect_rc(-ERANGE, uvmo_fuzz_region((size_t)UVMO_VMO_MAX_SIZE + 1, &addr));
	expect_rc(-EINVAL, uvmo_fuzz_adopt(NULL, PG, &addr));
	expect_rc(-EINVAL, uvmo_fuzz_adopt(&byte, 0, &addr));
	expect_rc(-EINVAL, uvmo_fuzz_heap(0));
	expect_rc(-EINVAL, uvmo_fuzz_dirty_pages(NULL));
	expect_rc(-ENOENT, uvmo_fuzz_arm());
	expect_rc(-EBUSY, uvmo_fuzz_reset());
	expect_rc(-EBUSY, uvmo_fuzz_dirty_pages(&count));

	expect_ok(uvmo_fuzz_heap(PG));
	expect_rc(-EEXIST, uvmo_fuzz_heap(PG));
	expect_ok(uvmo_fuzz_region(PG, &addr));
	expect_ok(uvmo_fuzz_arm());
	expect_rc(-EBUSY, uvmo_fuzz_region(PG, &addr));
	expect_rc(-EBUSY, uvmo_fuzz_adopt(&byte, 1, &addr));
}

Test(fuzz, release_returns_to_the_initial_state)
{
	void *addr = NULL;
	expect_ok(uvmo_fuzz_region(4 * PG, &addr));
	cr_assert_not_null(uvmo_fuzz_alloc(10));
	expect_ok(uvmo_fuzz_arm());
	uvmo_fuzz_release();

	struct uvmo_stats stats;
	expect_ok(uvmo_get_stats(&stats));
	cr_assert_eq(stats.vmos, 0, "%" PRIu64 " VMOs left after release", stats.vmos);
	expect_rc(-EBUSY, uvmo_fuzz_reset());
	expect_ok(uvmo_fuzz_region(4 * PG, &addr));
	expect_ok(uvmo_fuzz_heap(PG)); /* the heap is gone too */
	expect_ok(uvmo_fuzz_arm());
}

/* ---------------------------------------------------------------------- */
/* the persistent loop on the kvstore target                              */
/* ---------------------------------------------------------------------- */

#define CORPUS_SEED   42
#define CORPUS_INPUTS 2000
/* The store's table and every value a corpus input can store (inputs are
 * at most 96 bytes) lie in this prefix of the fuzz heap. */
#define STORE_PREFIX  (16 * PG)

/* The first allocation is the store, at the start of the fuzz heap. */
static const uint8_t *store_memory(void)
{
	return (const uint8_t *)kv_harness_store();
}

Test(fuzz, persistent_loop_with_reset_never_fails_and_stays_pristine)
{
	expect_ok(kv_harness_setup(KV_HARNESS_HEAP_BYTES));
	uint8_t *pristine = malloc(STORE_PREFIX);
	memcpy(pristine, store_memory(), STORE_PREFIX);
	/* That read created the prefix's untouched pages; make them part of
	 * the pristine state, so that only what the inputs do counts below. */
	expect_ok(uvmo_fuzz_arm());
	cr_assert_eq(kv_count(kv_harness_store()), 0);

	uint8_t input[256];
	size_t dirtied = 0;
	for (uint64_t i = 0; i < CORPUS_INPUTS; i++) {
		size_t length = kv_corpus_input(CORPUS_SEED, i, input, sizeof(input));
		struct kv_verdict verdict;
		cr_assert_eq(kv_harness_run(input, length, &verdict), 0,
			     "input %" PRIu64 " failed with the reset: %s", i, verdict.what);
		dirtied += dirty_pages();
		expect_ok(uvmo_fuzz_reset());
		cr_assert_eq(dirty_pages(), 0, "input %" PRIu64 ": pages differ after reset", i);
		cr_assert_eq(memcmp(store_memory(), pristine, STORE_PREFIX), 0,
			     "input %" PRIu64 ": store not pristine after reset", i);
	}
	/* The corpus does write (the checks above are not vacuous), and a
	 * short input dirties a handful of pages, not the heap. */
	cr_assert_gt(dirtied, CORPUS_INPUTS / 2);
	cr_assert_leq(dirtied, 4 * CORPUS_INPUTS, "%zu pages dirtied", dirtied);
	free(pristine);
}

Test(fuzz, without_reset_the_same_corpus_makes_the_target_misbehave)
{
	expect_ok(kv_harness_setup(KV_HARNESS_HEAP_BYTES));
	uint8_t input[256];
	size_t failures = 0, reproducible = 0;
	for (uint64_t i = 0; i < CORPUS_INPUTS; i++) {
		size_t length = kv_corpus_input(CORPUS_SEED, i, input, sizeof(input));
		struct kv_verdict verdict;
		if (kv_harness_run(input, length, &verdict) == 0)
			continue;
		failures++;
		/* Alone, on a pristine store, the same input passes. */
		expect_ok(uvmo_fuzz_reset());
		struct kv_verdict alone;
		reproducible += kv_harness_run(input, length, &alone) != 0;
	}
	cr_assert_gt(failures, CORPUS_INPUTS / 10, "only %zu of %d inputs failed", failures,
		     CORPUS_INPUTS);
	cr_assert_eq(reproducible, 0, "%zu failures reproduce alone: a real bug", reproducible);
}

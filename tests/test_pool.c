/* SPDX-License-Identifier: MIT */
/*
 * The frame pool (src/pmm) on its own: windows, frames, the limit, and what
 * the kernel reports for the memfd.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include <numaif.h>

#include "pmm/pmm.h"

/* Windows a test leaves alive stay reachable from here, so that the leak
 * checker of the sanitizer build does not report them. */
static struct pmm_window *kept[256];
static unsigned nkept;

static struct pmm_window *hold(struct pmm_window *w)
{
	if (nkept < 256)
		kept[nkept++] = w;
	return w;
}

static uint64_t reclaimed_request;
static uint64_t fake_reclaim(uint64_t pages)
{
	reclaimed_request += pages;
	return 0;
}

static void pool_up(uint64_t limit_bytes)
{
	struct pmm_config cfg = { .limit_bytes = limit_bytes,
				  .span_bytes = 1ull << 36, .numa_node = -1 };
	cr_assert_eq(pmm_init(&cfg), 0);
}

static uint64_t host_bytes(void)
{
	struct pmm_stats st;
	pmm_get_stats(&st);
	return st.host_bytes;
}

Test(pool, init_rejects_bad_span)
{
	struct pmm_config cfg = { .span_bytes = 12345, .numa_node = -1 };
	cr_assert_eq(pmm_init(&cfg), -EINVAL);
	cfg.span_bytes = 1ull << 50;
	cr_assert_eq(pmm_init(&cfg), -EINVAL);
	cr_assert(!pmm_ready());
}

Test(pool, init_rejects_missing_numa_node)
{
	struct pmm_config cfg = { .span_bytes = 1ull << 36, .numa_node = 4000 };
	cr_assert_eq(pmm_init(&cfg), -EINVAL);
	cr_assert(!pmm_ready());
}

Test(pool, second_init_is_busy)
{
	pool_up(0);
	struct pmm_config cfg = { .span_bytes = 1ull << 36, .numa_node = -1 };
	cr_assert_eq(pmm_init(&cfg), -EBUSY);
}

Test(pool, frames_are_zero_filled_and_counted_by_the_kernel)
{
	struct pmm_window *w;
	pool_up(0);
	cr_assert_eq(pmm_window_create(16, &w), 0);
	hold(w);
	cr_assert_eq(pmm_frame_alloc(w, 3, 4), 0);
	for (uint64_t pg = 3; pg < 7; pg++) {
		const unsigned char *p = pmm_slot_addr(w, pg);
		for (size_t i = 0; i < PAGE_SIZE; i++)
			cr_assert_eq(p[i], 0);
		cr_assert(pmm_slot_populated(w, pg));
	}
	cr_assert(!pmm_slot_populated(w, 2));
	cr_assert_eq(pmm_window_frames(w), 4);
	cr_assert_eq(pmm_frames_charged(), 4);
	cr_assert_eq(host_bytes(), 4 * PAGE_SIZE);
}

Test(pool, freed_frames_go_back_to_the_host)
{
	struct pmm_window *w;
	pool_up(0);
	cr_assert_eq(pmm_window_create(8, &w), 0);
	hold(w);
	cr_assert_eq(pmm_frame_alloc(w, 0, 8), 0);
	memset(pmm_slot_addr(w, 0), 0xab, 8 * PAGE_SIZE);
	pmm_frame_free(w, 2, 3);
	cr_assert_eq(pmm_frames_charged(), 5);
	cr_assert_eq(host_bytes(), 5 * PAGE_SIZE);
	cr_assert(!pmm_slot_populated(w, 3));
	pmm_frame_free(w, 0, 2);
	pmm_frame_free(w, 5, 3);
	cr_assert_eq(host_bytes(), 0);
	pmm_window_unref(w);
}

Test(pool, limit_fails_allocation_with_enomem_and_changes_nothing)
{
	struct pmm_window *w;
	pool_up(4 * PAGE_SIZE);
	pmm_set_reclaim_hook(fake_reclaim);
	cr_assert_eq(pmm_window_create(16, &w), 0);
	hold(w);
	cr_assert_eq(pmm_frame_alloc(w, 0, 3), 0);
	cr_assert_eq(pmm_frame_alloc(w, 3, 2), -ENOMEM);
	cr_assert_eq(reclaimed_request, 1, "reclaim asked for the shortfall");
	cr_assert_eq(pmm_frames_charged(), 3);
	cr_assert_eq(pmm_window_frames(w), 3);
	cr_assert_eq(host_bytes(), 3 * PAGE_SIZE);
	cr_assert_eq(pmm_frame_alloc(w, 3, 1), 0);
	pmm_frame_free(w, 0, 1);
	cr_assert_eq(pmm_frame_alloc(w, 4, 1), 0, "freeing makes room again");
}

Test(pool, frame_move_carries_bytes_and_leaves_a_hole)
{
	struct pmm_window *a, *b;
	pool_up(0);
	cr_assert_eq(pmm_window_create(4, &a), 0);
	hold(a);
	cr_assert_eq(pmm_window_create(4, &b), 0);
	hold(b);
	cr_assert_eq(pmm_frame_alloc(a, 1, 1), 0);
	memset(pmm_slot_addr(a, 1), 0x5a, PAGE_SIZE);
	pmm_frame_move(b, 2, a, 1);
	cr_assert(!pmm_slot_populated(a, 1));
	cr_assert_eq(((unsigned char *)pmm_slot_addr(b, 2))[100], 0x5a);
	cr_assert_eq(pmm_window_frames(a), 0);
	cr_assert_eq(pmm_window_frames(b), 1);
	cr_assert_eq(pmm_frames_charged(), 1);
	cr_assert_eq(host_bytes(), PAGE_SIZE);
}

Test(pool, windows_do_not_overlap)
{
	struct pmm_window *w[32];
	pool_up(0);
	for (int i = 0; i < 32; i++) {
		cr_assert_eq(pmm_window_create((uint64_t)(i % 5) + 1, &w[i]), 0);
		hold(w[i]);
	}
	for (int i = 0; i < 32; i++)
		for (int j = i + 1; j < 32; j++) {
			uint64_t a0 = pmm_window_file_offset(w[i]);
			uint64_t a1 = a0 + pmm_window_pages(w[i]) * PAGE_SIZE;
			uint64_t b0 = pmm_window_file_offset(w[j]);
			uint64_t b1 = b0 + pmm_window_pages(w[j]) * PAGE_SIZE;
			cr_assert(a1 <= b0 || b1 <= a0, "windows %d and %d overlap", i, j);
		}
}

Test(pool, window_grow_keeps_frames_and_content)
{
	struct pmm_window *w, *blocker;
	pool_up(0);
	cr_assert_eq(pmm_window_create(4, &w), 0);
	hold(w);
	cr_assert_eq(pmm_window_create(4, &blocker), 0);
	hold(blocker); /* forces a move */
	cr_assert_eq(pmm_frame_alloc(w, 0, 1), 0);
	cr_assert_eq(pmm_frame_alloc(w, 3, 1), 0);
	memset(pmm_slot_addr(w, 0), 0x11, PAGE_SIZE);
	memset(pmm_slot_addr(w, 3), 0x33, PAGE_SIZE);
	uint64_t before = pmm_window_file_offset(w);
	cr_assert_eq(pmm_window_grow(w, 4096), 0);
	cr_assert_neq(pmm_window_file_offset(w), before, "the window had to move");
	cr_assert_eq(pmm_window_pages(w), 4096);
	cr_assert_eq(((unsigned char *)pmm_slot_addr(w, 0))[7], 0x11);
	cr_assert_eq(((unsigned char *)pmm_slot_addr(w, 3))[7], 0x33);
	cr_assert(!pmm_slot_populated(w, 1));
	cr_assert_eq(host_bytes(), 2 * PAGE_SIZE, "old copies were punched");
}

Test(pool, span_exhaustion_is_enomem)
{
	struct pmm_window *w;
	pool_up(0);
	cr_assert_eq(pmm_window_create((1ull << 36) / PAGE_SIZE, &w), 0);
	hold(w);
	struct pmm_window *x;
	cr_assert_eq(pmm_window_create(1, &x), -ENOMEM);
	pmm_window_unref(w);
	cr_assert_eq(pmm_window_create(1, &x), 0, "a released range is reused");
	hold(x);
}

Test(pool, many_create_release_cycles_do_not_fragment)
{
	static struct pmm_window *keep[64]; /* static: reachable for the leak checker */
	pool_up(0);
	/* Interleave long-lived and short-lived windows of varied sizes; if
	 * freed ranges did not coalesce, the span (16 Mi pages) would run out
	 * long before 100,000 cycles of up to 4096 pages each. */
	for (int i = 0; i < 64; i++)
		cr_assert_eq(pmm_window_create(64, &keep[i]), 0);
	for (int cycle = 0; cycle < 100000; cycle++) {
		struct pmm_window *w;
		uint64_t pages = 1 + (uint64_t)(cycle * 7919) % 4096;
		cr_assert_eq(pmm_window_create(pages, &w), 0, "cycle %d", cycle);
		if (cycle % 1000 == 0) {
			int k = (cycle / 1000) % 64;
			pmm_window_unref(keep[k]);
			cr_assert_eq(pmm_window_create(64, &keep[k]), 0);
		}
		pmm_window_unref(w);
	}
	struct pmm_stats st;
	pmm_get_stats(&st);
	cr_assert_eq(st.windows, 64);
}

static int policy_of(void *addr, unsigned long *mask)
{
	int mode = -1;
	*mask = 0;
	cr_assert_eq(get_mempolicy(&mode, mask, sizeof(*mask) * 8, addr, MPOL_F_ADDR), 0);
	return mode;
}

Test(pool, frames_follow_the_chosen_numa_node)
{
	struct pmm_window *w;
	struct pmm_config cfg = { .span_bytes = 1ull << 36, .numa_node = 0 };
	unsigned long mask;
	cr_assert_eq(pmm_init(&cfg), 0);
	cr_assert_eq(pmm_window_create(4, &w), 0);
	hold(w);
	cr_assert_eq(pmm_frame_alloc(w, 0, 1), 0);
	cr_assert_eq(policy_of(pmm_slot_addr(w, 0), &mask), MPOL_BIND);
	cr_assert_eq(mask, 1ul, "bound to node 0 only");
}

Test(pool, frames_default_to_local_allocation)
{
	struct pmm_window *w;
	unsigned long mask;
	pool_up(0);
	cr_assert_eq(pmm_window_create(4, &w), 0);
	hold(w);
	cr_assert_eq(pmm_frame_alloc(w, 0, 1), 0);
	int mode = policy_of(pmm_slot_addr(w, 0), &mask);
	cr_assert(mode == MPOL_LOCAL || (mode == MPOL_PREFERRED && mask == 0),
		  "local allocation policy, got mode %d mask %#lx", mode, mask);
}

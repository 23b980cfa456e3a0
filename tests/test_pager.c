/* SPDX-License-Identifier: MIT */
/*
 * The pager protocol (issue 4, section 3): READ requests on first access
 * (calls and mappings), coalescing, the pollable descriptor, supply
 * semantics, FAIL, the dirty states and writeback, TRAP_DIRTY, eviction,
 * detach and pager death, COMPLETE, clones of pager-backed VMOs, every
 * error of the contract in uvmo.h, and uvmo_vmo_duplicate.
 *
 * Most tests play the pager in the test thread (take_request, then supply
 * or fail) while the access that waits runs in its own thread (struct
 * access, pager_test_util.h); tests that need a pager running in the
 * background use the automatic test pager (struct test_pager).  Every test
 * that waits has a criterion timeout, and every wait for a thread is
 * bounded, so a hang fails the test instead of blocking the run.
 */
#include "pager_test_util.h"

#include <sched.h>
#include <sys/mman.h>

#define KEY 0x5eed0001ull
#define WAIT_MS 5000 /* bound on any wait that should end promptly */

/* ---------------------------------------------------------------------- */
/* READ on first access                                                   */
/* ---------------------------------------------------------------------- */

Test(pager, vmo_read_of_an_absent_page_waits_for_the_supply, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 8 * PG);
	struct access a;
	start_vmo_read(&a, v, 3 * PG + 100, 200);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 3 * PG, PG);
	cr_assert_leq(r.offset + r.length, 8 * PG, "request past the end of the VMO");
	expect_access_waiting(&a, 50);
	supply_pattern(p, v, r.offset, r.length, 7);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, 200, 7, 3 * PG + 100);
	access_free(&a);
	/* Present now: no second request. */
	expect_vmo_pattern(v, 3 * PG, PG, 7);
	expect_no_request(p, 0);
}

Test(pager, mapped_read_of_an_absent_page_waits_for_the_supply, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY + 1, 8 * PG);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 8 * PG);
	struct access a;
	start_map_read(&a, m, 5 * PG + 10, 100);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY + 1, v, 5 * PG, PG);
	cr_assert_leq(r.offset + r.length, 8 * PG, "request past the end of the VMO");
	expect_access_waiting(&a, 50);
	supply_pattern(p, v, r.offset, r.length, 8);
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, 0, "the mapped read raised %s", sig_name(a.sig));
	expect_mem_pattern(a.buf, 100, 8, 5 * PG + 10);
	access_free(&a);
	/* The whole page is there, in the mapping and through calls. */
	expect_mem_pattern(m + 5 * PG, PG, 8, 5 * PG);
	expect_vmo_pattern(v, 5 * PG, PG, 8);
	expect_no_request(p, 0);
}

Test(pager, read_spanning_present_and_absent_pages_asks_only_for_the_absent_ones, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 8 * PG);
	supply_pattern(p, v, 0, 2 * PG, 1);
	supply_pattern(p, v, 3 * PG, PG, 1);
	struct access a;
	start_vmo_read(&a, v, 0, 4 * PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 2 * PG, PG);
	/* Present pages are never asked for again. */
	cr_assert(r.offset == 2 * PG && r.length == PG,
		  "request [%llu, +%llu) is not exactly the absent page 2",
		  (unsigned long long)r.offset, (unsigned long long)r.length);
	supply_pattern(p, v, r.offset, r.length, 1);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, 4 * PG, 1, 0);
	access_free(&a);
	expect_no_request(p, 0);
}

/* ---------------------------------------------------------------------- */
/* coalescing                                                             */
/* ---------------------------------------------------------------------- */

Test(pager, one_read_of_contiguous_absent_pages_asks_in_fewer_requests_than_pages, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 16 * PG);
	struct access a;
	start_vmo_read(&a, v, 2 * PG, 8 * PG);
	int requests = 0;
	double deadline = now_seconds() + WAIT_MS / 1000.0;
	while (!atomic_load(&a.done)) {
		cr_assert(now_seconds() < deadline, "the read is still waiting after %d requests",
			  requests);
		struct uvmo_page_request r[16];
		int n = uvmo_pager_get_requests(p, r, 16, 20);
		cr_assert_geq(n, 0);
		for (int i = 0; i < n; i++) {
			cr_assert_eq(r[i].type, UVMO_PAGER_READ);
			supply_pattern(p, v, r[i].offset, r[i].length, 3);
		}
		requests += n;
	}
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, 8 * PG, 3, 2 * PG);
	access_free(&a);
	cr_assert_lt(requests, 8, "reading 8 absent pages in one call took %d READ requests",
		     requests);
}

Test(pager, adjacent_pending_reads_are_coalesced_into_one_request, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 16 * PG);
	struct access a, b;
	start_vmo_read(&a, v, 4 * PG, PG);
	start_vmo_read(&b, v, 5 * PG, PG);
	usleep(300 * 1000); /* both wait before anything is taken */
	struct uvmo_page_request r[8];
	int n = take_all_requests(p, r, 8, 100);
	cr_assert_eq(n, 1, "two pending READs of adjacent pages came as %d requests", n);
	expect_request_covers(r[0], UVMO_PAGER_READ, KEY, v, 4 * PG, 2 * PG);
	supply_pattern(p, v, r[0].offset, r[0].length, 4);
	expect_access_done(&a, WAIT_MS);
	expect_access_done(&b, WAIT_MS);
	expect_rc(0, a.rc);
	expect_rc(0, b.rc);
	expect_mem_pattern(a.buf, PG, 4, 4 * PG);
	expect_mem_pattern(b.buf, PG, 4, 5 * PG);
	access_free(&a);
	access_free(&b);
}

#define SAME_PAGE_THREADS 12

Test(pager, many_threads_waiting_for_one_page_make_one_request_and_all_wake, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 8 * PG);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 8 * PG);
	struct access a[SAME_PAGE_THREADS];
	for (int i = 0; i < SAME_PAGE_THREADS; i++) {
		if (i % 2)
			start_map_read(&a[i], m, 3 * PG + (uint64_t)i * 8, 8);
		else
			start_vmo_read(&a[i], v, 3 * PG + (uint64_t)i * 8, 8);
	}
	usleep(200 * 1000);
	struct uvmo_page_request r[32];
	int n = take_all_requests(p, r, 32, 200);
	cr_assert_eq(n, 1, "%d threads waiting for page 3 produced %d requests", SAME_PAGE_THREADS,
		     n);
	expect_request_covers(r[0], UVMO_PAGER_READ, KEY, v, 3 * PG, PG);
	for (int i = 0; i < SAME_PAGE_THREADS; i++)
		cr_assert(!atomic_load(&a[i].done), "thread %d finished before the supply", i);
	supply_pattern(p, v, r[0].offset, r[0].length, 5);
	for (int i = 0; i < SAME_PAGE_THREADS; i++) {
		expect_access_done(&a[i], WAIT_MS);
		if (i % 2)
			cr_assert_eq(a[i].sig, 0, "thread %d raised %s", i, sig_name(a[i].sig));
		else
			expect_rc(0, a[i].rc);
		expect_mem_pattern(a[i].buf, 8, 5, 3 * PG + (uint64_t)i * 8);
		access_free(&a[i]);
	}
	expect_no_request(p, 100);
}

/* ---------------------------------------------------------------------- */
/* the descriptor and get_requests                                        */
/* ---------------------------------------------------------------------- */

Test(pager, fd_polls_readable_exactly_while_requests_are_pending, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	cr_assert(!pager_fd_readable(p, 0), "readable with nothing pending");
	struct access a;
	start_vmo_read(&a, v, PG, PG);
	cr_assert(pager_fd_readable(p, WAIT_MS), "not readable while a READ is pending");
	cr_assert(pager_fd_readable(p, 0), "no longer readable before the request was taken (must be level-triggered)");
	struct uvmo_page_request r = take_request(p, 0);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, PG, PG);
	cr_assert(!pager_fd_readable(p, 0), "still readable after the request was taken");
	supply_pattern(p, v, r.offset, r.length, 1);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	access_free(&a);
	cr_assert(!pager_fd_readable(p, 0), "readable after the supply");
	/* COMPLETE is a request too. */
	uvmo_vmo_close(v);
	cr_assert(pager_fd_readable(p, WAIT_MS), "not readable while COMPLETE is pending");
	r = take_request(p, 0);
	cr_assert_eq(r.type, UVMO_PAGER_COMPLETE);
	cr_assert(!pager_fd_readable(p, 0), "readable after COMPLETE was taken");
}

Test(pager, fd_is_stable_and_valid, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	int fd = uvmo_pager_fd(p);
	cr_assert_geq(fd, 0, "uvmo_pager_fd returned %d", fd);
	cr_assert_eq(uvmo_pager_fd(p), fd, "the descriptor changed between calls");
	uvmo_pager_t *q = make_pager();
	cr_assert_neq(uvmo_pager_fd(q), fd, "two pagers share a descriptor");
}

Test(pager, get_requests_with_timeout_zero_returns_at_once_when_nothing_is_pending, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	(void)make_pager_vmo(p, 0, KEY, 4 * PG);
	struct uvmo_page_request r[4];
	double t0 = now_seconds();
	expect_rc(0, uvmo_pager_get_requests(p, r, 4, 0));
	double dt = now_seconds() - t0;
	cr_assert_lt(dt, 0.1, "timeout 0 took %.3f s", dt);
}

Test(pager, get_requests_waits_for_its_timeout_when_nothing_arrives, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	(void)make_pager_vmo(p, 0, KEY, 4 * PG);
	struct uvmo_page_request r[4];
	double t0 = now_seconds();
	expect_rc(0, uvmo_pager_get_requests(p, r, 4, 300));
	double dt = now_seconds() - t0;
	cr_assert_geq(dt, 0.28, "timeout 300 ms returned after %.3f s", dt);
	cr_assert_lt(dt, 3.0, "timeout 300 ms returned after %.3f s", dt);
}

Test(pager, get_requests_wakes_as_soon_as_a_request_arrives, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	struct access a;
	start_vmo_read(&a, v, 2 * PG, PG);
	struct uvmo_page_request r;
	double t0 = now_seconds();
	int n = uvmo_pager_get_requests(p, &r, 1, -1);
	double dt = now_seconds() - t0;
	cr_assert_eq(n, 1, "get_requests(-1) returned %d (%s)", n, rc_name(n));
	cr_assert_lt(dt, 3.0, "get_requests(-1) took %.3f s", dt);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 2 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 1);
	expect_access_done(&a, WAIT_MS);
	access_free(&a);
}

Test(pager, get_requests_hands_out_each_request_once, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 16 * PG);
	struct access a, b;
	start_vmo_read(&a, v, 2 * PG, PG);
	start_vmo_read(&b, v, 9 * PG, PG);
	struct uvmo_page_request r[8];
	int n = take_requests_covering(p, r, 0, 8, 2 * PG, PG, WAIT_MS);
	n = take_requests_covering(p, r, n, 8, 9 * PG, PG, WAIT_MS);
	cr_assert_eq(n, 2, "two non-adjacent READs came as %d requests", n);
	/* Still outstanding (not supplied), but handed out: not again. */
	expect_no_request(p, 200);
	for (int i = 0; i < n; i++)
		supply_pattern(p, v, r[i].offset, r[i].length, 2);
	expect_access_done(&a, WAIT_MS);
	expect_access_done(&b, WAIT_MS);
	expect_rc(0, a.rc);
	expect_rc(0, b.rc);
	access_free(&a);
	access_free(&b);
}

/* ---------------------------------------------------------------------- */
/* supply                                                                 */
/* ---------------------------------------------------------------------- */

Test(pager, supply_never_overwrites_bytes_written_since, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	supply_pattern(p, v, 0, 4 * PG, 1);
	write_val(v, PG + 100, 200, 0xaa);
	supply_pattern(p, v, 0, 4 * PG, 2);
	uint8_t *buf = read_all(v, NULL);
	expect_mem_pattern(buf, PG + 100, 1, 0);
	expect_mem_val(buf + PG + 100, 200, 0xaa);
	expect_mem_pattern(buf + PG + 300, 3 * PG - 300, 1, PG + 300);
	free(buf);
	expect_no_request(p, 0);
}

Test(pager, supply_of_a_partly_present_range_fills_only_the_holes, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 6 * PG);
	supply_pattern(p, v, PG, PG, 1);
	supply_pattern(p, v, 3 * PG, PG, 1);
	supply_pattern(p, v, 0, 6 * PG, 2);
	expect_vmo_pattern(v, 0, PG, 2);
	expect_vmo_pattern(v, PG, PG, 1);
	expect_vmo_pattern(v, 2 * PG, PG, 2);
	expect_vmo_pattern(v, 3 * PG, PG, 1);
	expect_vmo_pattern(v, 4 * PG, 2 * PG, 2);
	expect_clean(p, v, 0, 6 * PG);
	expect_no_request(p, 0);
}

Test(pager, supply_of_null_data_gives_zero_pages, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	supply_pattern(p, v, 2 * PG, PG, 1);
	expect_ok(uvmo_pager_supply_pages(p, v, 0, 4 * PG, NULL));
	expect_vmo_val(v, 0, 2 * PG, 0);
	expect_vmo_pattern(v, 2 * PG, PG, 1);
	expect_vmo_val(v, 3 * PG, PG, 0);
	expect_clean(p, v, 0, 4 * PG);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 4 * PG);
	expect_mem_val(m, 2 * PG, 0);
	expect_no_request(p, 0);
}

Test(pager, supply_of_a_larger_range_wakes_a_waiter_inside_it, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 16 * PG);
	struct access a;
	start_vmo_read(&a, v, 5 * PG, PG);
	(void)take_request(p, WAIT_MS);
	supply_pattern(p, v, 0, 16 * PG, 6);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, PG, 6, 5 * PG);
	access_free(&a);
}

Test(pager, supply_in_pieces_wakes_the_waiter_only_when_all_its_pages_are_there, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 8 * PG);
	struct access a;
	start_vmo_read(&a, v, 2 * PG, 3 * PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 2 * PG, PG);
	supply_pattern(p, v, 2 * PG, PG, 9);
	supply_pattern(p, v, 4 * PG, PG, 9);
	/* Page 3 is still missing: the reader waits (perhaps asking again). */
	usleep(100 * 1000);
	cr_assert(!atomic_load(&a.done), "the read finished with page 3 absent (rc %d)", a.rc);
	supply_pattern(p, v, 3 * PG, PG, 9);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, 3 * PG, 9, 2 * PG);
	access_free(&a);
}

/* ---------------------------------------------------------------------- */
/* prefetch                                                               */
/* ---------------------------------------------------------------------- */

Test(pager, prefetched_pages_are_read_without_a_request, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 8 * PG);
	supply_pattern(p, v, 0, 8 * PG, 3);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 8 * PG);
	/* In threads, so that a wrong request fails the test instead of
	 * blocking it. */
	struct access a, b;
	start_vmo_read(&a, v, 0, 8 * PG);
	start_map_read(&b, m, 0, 8 * PG);
	expect_access_done(&a, WAIT_MS);
	expect_access_done(&b, WAIT_MS);
	expect_rc(0, a.rc);
	cr_assert_eq(b.sig, 0);
	expect_mem_pattern(a.buf, 8 * PG, 3, 0);
	expect_mem_pattern(b.buf, 8 * PG, 3, 0);
	access_free(&a);
	access_free(&b);
	expect_no_request(p, 100);
	expect_clean(p, v, 0, 8 * PG);
}

Test(pager, prefetch_while_a_request_is_outstanding_answers_it, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 8 * PG);
	uint8_t *m = map_rw(v);
	struct access a;
	start_map_read(&a, m, 6 * PG, PG);
	usleep(100 * 1000);
	/* Supply before even taking the request. */
	supply_pattern(p, v, 0, 8 * PG, 4);
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, 0);
	expect_mem_pattern(a.buf, PG, 4, 6 * PG);
	access_free(&a);
	/* A READ handed out now would be stale but harmless; a supply of it
	 * must still succeed and change nothing. */
	struct uvmo_page_request r[4];
	int n = take_all_requests(p, r, 4, 50);
	for (int i = 0; i < n; i++)
		supply_pattern(p, v, r[i].offset, r[i].length, 5);
	expect_mem_pattern(m, 8 * PG, 4, 0);
}

/* ---------------------------------------------------------------------- */
/* FAIL                                                                   */
/* ---------------------------------------------------------------------- */

Test(pager, fail_makes_a_waiting_call_return_the_errno_and_a_retry_asks_again, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	struct access a;
	start_vmo_read(&a, v, 2 * PG, PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 2 * PG, PG);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_FAIL, v, r.offset, r.length, EIO));
	expect_access_done(&a, WAIT_MS);
	expect_rc(-EIO, a.rc);
	access_free(&a);
	/* Transient: the next access asks again. */
	start_vmo_read(&a, v, 2 * PG, PG);
	r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 2 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 2);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, PG, 2, 2 * PG);
	access_free(&a);
}

Test(pager, fail_reaches_a_call_with_each_supported_errno, .timeout = 20)
{
	static const int errs[] = { EIO, EINVAL, ENOMEM, ENOSPC, EBUSY, EACCES, ENOENT };
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		struct access a;
		start_vmo_read(&a, v, PG, PG);
		struct uvmo_page_request r = take_request(p, WAIT_MS);
		expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_FAIL, v, r.offset, r.length,
					      (uint64_t)errs[i]));
		expect_access_done(&a, WAIT_MS);
		cr_assert_eq(a.rc, -errs[i], "FAIL with errno %d: the call returned %d", errs[i],
			     a.rc);
		access_free(&a);
	}
}

Test(pager, fail_makes_a_mapped_access_raise_sigbus_and_a_retry_asks_again, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	uint8_t *m = map_rw(v);
	struct access a;
	start_map_read(&a, m, 3 * PG + 5, 1);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 3 * PG, PG);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_FAIL, v, r.offset, r.length, EIO));
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, SIGBUS, "a failed mapped read gave %s", sig_name(a.sig));
	access_free(&a);
	/* A write fault on the same page asks again too. */
	start_map_write(&a, m, 3 * PG + 5, 1, 0x77);
	r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 3 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 3);
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, 0, "the retried write raised %s", sig_name(a.sig));
	access_free(&a);
	cr_assert_eq(m[3 * PG + 5], 0x77);
	expect_mem_pattern(m + 3 * PG, 5, 3, 3 * PG);
	expect_mem_pattern(m + 3 * PG + 6, PG - 6, 3, 3 * PG + 6);
}

Test(pager, fail_with_an_unsupported_errno_is_einval_and_the_waiter_keeps_waiting, .timeout = 20)
{
	static const uint64_t bad[] = { 0, EPERM, EAGAIN, 100000, (uint64_t)-EIO, 1ull << 32 | EIO };
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	struct access a;
	start_vmo_read(&a, v, PG, PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = uvmo_pager_op_range(p, UVMO_PAGER_OP_FAIL, v, r.offset, r.length, bad[i]);
		cr_assert_eq(rc, -EINVAL, "FAIL with errno %llu returned %d (%s), expected -EINVAL",
			     (unsigned long long)bad[i], rc, rc_name(rc));
	}
	expect_access_waiting(&a, 100);
	supply_pattern(p, v, r.offset, r.length, 1);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	access_free(&a);
}

Test(pager, fail_of_present_pages_changes_nothing, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	supply_pattern(p, v, 0, 4 * PG, 1);
	write_val(v, PG, PG, 0x31);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_FAIL, v, 0, 4 * PG, EIO));
	expect_vmo_pattern(v, 0, PG, 1);
	expect_vmo_val(v, PG, PG, 0x31);
	expect_vmo_pattern(v, 2 * PG, 2 * PG, 1);
	expect_runs(p, v, "after FAIL of present pages", { 1, 1, 0 });
	expect_no_request(p, 50);
}

Test(pager, fail_fails_only_waiters_inside_its_range, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 16 * PG);
	struct access a, b;
	start_vmo_read(&a, v, 2 * PG, PG);
	start_vmo_read(&b, v, 10 * PG, PG);
	struct uvmo_page_request r[8];
	int n = take_requests_covering(p, r, 0, 8, 2 * PG, PG, WAIT_MS);
	(void)take_requests_covering(p, r, n, 8, 10 * PG, PG, WAIT_MS);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_FAIL, v, 2 * PG, PG, EIO));
	expect_access_done(&a, WAIT_MS);
	expect_rc(-EIO, a.rc);
	expect_access_waiting(&b, 100);
	supply_pattern(p, v, 10 * PG, PG, 1);
	expect_access_done(&b, WAIT_MS);
	expect_rc(0, b.rc);
	access_free(&a);
	access_free(&b);
}

/* ---------------------------------------------------------------------- */
/* dirty states and writeback                                             */
/* ---------------------------------------------------------------------- */

static uvmo_vmo_t *supplied_vmo(uvmo_pager_t *p, uint32_t options, uint64_t pages, uint64_t seed)
{
	uvmo_vmo_t *v = make_pager_vmo(p, options, KEY, pages * PG);
	supply_pattern(p, v, 0, pages * PG, seed);
	return v;
}

static void writeback(uvmo_pager_t *p, uvmo_vmo_t *v, uint32_t begin_op, uint64_t off,
		      uint64_t len)
{
	expect_ok(uvmo_pager_op_range(p, begin_op, v, off, len, 0));
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_END, v, off, len, 0));
}

Test(pager, supplied_pages_are_clean, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	expect_clean(p, v, 0, 8 * PG);
	/* Reading (by call and mapping) keeps them clean. */
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 8 * PG);
	expect_mem_pattern(m, 8 * PG, 1, 0);
	expect_vmo_pattern(v, 0, 8 * PG, 1);
	expect_clean(p, v, 0, 8 * PG);
}

Test(pager, a_vmo_write_makes_its_pages_dirty, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	write_val(v, 2 * PG + 17, 3, 0x42);
	expect_runs(p, v, "after a 3-byte write to page 2", { 2, 1, 0 });
	expect_vmo_pattern(v, 2 * PG, 17, 1);
	expect_vmo_val(v, 2 * PG + 17, 3, 0x42);
}

Test(pager, a_mapped_write_makes_its_page_dirty_and_a_mapped_read_does_not, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	uint8_t *m = map_rw(v);
	expect_mem_pattern(m, 8 * PG, 1, 0); /* read faults map the pages */
	expect_clean(p, v, 0, 8 * PG);
	m[5 * PG + 3] = 0x99;
	expect_runs(p, v, "after a mapped write to page 5", { 5, 1, 0 });
	m[6 * PG] = 0x98;
	expect_runs(p, v, "after mapped writes to pages 5 and 6", { 5, 2, 0 });
}

Test(pager, writeback_begin_then_end_makes_dirty_pages_clean, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	write_val(v, PG, 2 * PG, 0x10);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_BEGIN, v, 0, 8 * PG, 0));
	/* AwaitingClean is not Clean: still reported. */
	expect_runs(p, v, "after BEGIN", { 1, 2, 0 });
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_END, v, 0, 8 * PG, 0));
	expect_clean(p, v, 0, 8 * PG);
	expect_vmo_val(v, PG, 2 * PG, 0x10);
}

Test(pager, a_vmo_write_between_begin_and_end_keeps_the_page_dirty, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	write_val(v, PG, 2 * PG, 0x10);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_BEGIN, v, 0, 8 * PG, 0));
	write_val(v, 2 * PG + 8, 8, 0x11);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_END, v, 0, 8 * PG, 0));
	expect_runs(p, v, "after END with page 2 written during writeback", { 2, 1, 0 });
}

Test(pager, a_mapped_write_between_begin_and_end_keeps_the_page_dirty, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	uint8_t *m = map_rw(v);
	/* The mapping has write access to page 1 before writeback starts. */
	m[PG] = 1;
	m[3 * PG] = 1;
	expect_runs(p, v, "after mapped writes", { 1, 1, 0 }, { 3, 1, 0 });
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_BEGIN, v, 0, 8 * PG, 0));
	m[PG + 1] = 2; /* must not slip past the dirty tracking */
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_END, v, 0, 8 * PG, 0));
	expect_runs(p, v, "after END with page 1 written through the mapping during writeback",
		    { 1, 1, 0 });
	/* And the next round makes it clean, after which a write is seen again. */
	writeback(p, v, UVMO_PAGER_OP_WRITEBACK_BEGIN, 0, 8 * PG);
	expect_clean(p, v, 0, 8 * PG);
	m[3 * PG + 1] = 3;
	expect_runs(p, v, "after a mapped write following a full writeback", { 3, 1, 0 });
}

Test(pager, writeback_end_without_begin_leaves_dirty_pages_dirty, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 4, 1);
	write_val(v, 0, PG, 0x20);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_END, v, 0, 4 * PG, 0));
	expect_runs(p, v, "after END without BEGIN", { 0, 1, 0 });
}

Test(pager, writeback_of_a_sub_range_cleans_only_that_range, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	write_val(v, 0, 8 * PG, 0x21);
	writeback(p, v, UVMO_PAGER_OP_WRITEBACK_BEGIN, 2 * PG, 3 * PG);
	expect_runs(p, v, "after writeback of pages 2-4", { 0, 2, 0 }, { 5, 3, 0 });
	/* END of a range begun only in part cleans only the begun part. */
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_BEGIN, v, 0, PG, 0));
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_END, v, 0, 8 * PG, 0));
	expect_runs(p, v, "after BEGIN of page 0 and END of all", { 1, 1, 0 }, { 5, 3, 0 });
}

Test(pager, query_merges_adjacent_dirty_pages_into_runs, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 12, 1);
	write_val(v, PG, 3 * PG, 1);
	write_val(v, 5 * PG, PG, 2);
	write_val(v, 7 * PG + 100, PG, 3); /* pages 7 and 8, partially */
	expect_runs(p, v, "runs", { 1, 3, 0 }, { 5, 1, 0 }, { 7, 2, 0 });
}

Test(pager, query_with_a_small_max_reports_actual_and_avail_and_resumes, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 12, 1);
	write_val(v, PG, 3 * PG, 1);
	write_val(v, 5 * PG, PG, 2);
	write_val(v, 7 * PG, 2 * PG, 3);
	static const uint64_t want[3][2] = { { 1, 3 }, { 5, 1 }, { 7, 2 } };
	uint64_t off = 0;
	for (int i = 0; i < 3; i++) {
		struct uvmo_dirty_range r[2];
		memset(r, 0xa5, sizeof(r));
		size_t actual = 99, avail = 99;
		expect_ok(uvmo_pager_query_dirty_ranges(p, v, off, 12 * PG - off, r, 1, &actual,
							&avail));
		cr_assert_eq(actual, 1, "query %d from page %llu stored %zu runs with max 1", i,
			     (unsigned long long)(off / PG), actual);
		cr_assert_eq(avail, (size_t)(3 - i), "query %d from page %llu: avail %zu, expected %d",
			     i, (unsigned long long)(off / PG), avail, 3 - i);
		cr_assert(r[0].offset == want[i][0] * PG && r[0].length == want[i][1] * PG,
			  "query %d: run [%llu, +%llu), expected page %llu +%llu", i,
			  (unsigned long long)r[0].offset, (unsigned long long)r[0].length,
			  (unsigned long long)want[i][0], (unsigned long long)want[i][1]);
		cr_assert_eq(r[1].offset, 0xa5a5a5a5a5a5a5a5ull, "query wrote past max");
		off = r[0].offset + r[0].length;
	}
	size_t actual = 99, avail = 99;
	expect_ok(uvmo_pager_query_dirty_ranges(p, v, off, 12 * PG - off, NULL, 0, &actual, &avail));
	cr_assert_eq(actual, 0);
	cr_assert_eq(avail, 0, "after the last run, %zu more reported", avail);
	/* max 0 with NULL out counts the runs. */
	expect_ok(uvmo_pager_query_dirty_ranges(p, v, 0, 12 * PG, NULL, 0, &actual, &avail));
	cr_assert_eq(actual, 0);
	cr_assert_eq(avail, 3);
	/* NULL actual and avail are allowed. */
	struct uvmo_dirty_range r[4];
	expect_ok(uvmo_pager_query_dirty_ranges(p, v, 0, 12 * PG, r, 4, NULL, NULL));
	cr_assert_eq(r[2].offset, 7 * PG);
}

Test(pager, query_of_a_sub_range_clips_the_runs_to_it, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 12, 1);
	write_val(v, PG, 6 * PG, 1);
	struct uvmo_dirty_range r[MAX_RUNS];
	size_t n = dirty_runs(p, v, 3 * PG, 2 * PG, r);
	cr_assert_eq(n, 1);
	cr_assert(r[0].offset == 3 * PG && r[0].length == 2 * PG,
		  "run [%llu, +%llu), expected [%llu, +%llu)", (unsigned long long)r[0].offset,
		  (unsigned long long)r[0].length, (unsigned long long)(3 * PG),
		  (unsigned long long)(2 * PG));
	n = dirty_runs(p, v, 8 * PG, 4 * PG, r);
	cr_assert_eq(n, 0);
}

Test(pager, growing_a_resizable_pager_vmo_reports_the_new_pages_as_a_zero_run, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_RESIZABLE, 4, 1);
	expect_ok(uvmo_vmo_set_size(v, 8 * PG));
	expect_runs(p, v, "after growing 4 -> 8 pages", { 4, 4, UVMO_DIRTY_RANGE_IS_ZERO });
	/* The new pages read zero without asking the pager. */
	struct access a;
	start_vmo_read(&a, v, 4 * PG, 4 * PG);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_val(a.buf, 4 * PG, 0);
	access_free(&a);
	expect_no_request(p, 50);
	expect_vmo_pattern(v, 0, 4 * PG, 1);
	/* Written back as zeros, they become clean. */
	writeback(p, v, UVMO_PAGER_OP_WRITEBACK_BEGIN_ZERO, 4 * PG, 4 * PG);
	expect_clean(p, v, 0, 8 * PG);
	expect_vmo_val(v, 4 * PG, 4 * PG, 0);
}

Test(pager, a_write_into_a_zero_run_splits_it, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_RESIZABLE, 4, 1);
	expect_ok(uvmo_vmo_set_size(v, 8 * PG));
	write_val(v, 5 * PG + 10, 1, 0x5f);
	expect_runs(p, v, "after writing page 5 of a zero run",
		    { 4, 1, UVMO_DIRTY_RANGE_IS_ZERO }, { 5, 1, 0 },
		    { 6, 2, UVMO_DIRTY_RANGE_IS_ZERO });
}

Test(pager, a_write_between_begin_zero_and_end_keeps_the_page_dirty, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_RESIZABLE, 4, 1);
	expect_ok(uvmo_vmo_set_size(v, 8 * PG));
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_BEGIN_ZERO, v, 4 * PG, 4 * PG, 0));
	write_val(v, 6 * PG, 8, 0x66);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_END, v, 4 * PG, 4 * PG, 0));
	expect_runs(p, v, "after END with page 6 written during writeback", { 6, 1, 0 });
	expect_vmo_val(v, 6 * PG, 8, 0x66);
}

Test(pager, op_zero_of_supplied_pages_makes_them_read_zero_and_dirty, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 2 * PG, 2 * PG));
	expect_vmo_val(v, 2 * PG, 2 * PG, 0);
	expect_vmo_pattern(v, 0, 2 * PG, 1);
	expect_vmo_pattern(v, 4 * PG, 4 * PG, 1);
	struct uvmo_dirty_range r[MAX_RUNS];
	size_t n = dirty_runs(p, v, 0, 8 * PG, r);
	/* Exactly pages 2 and 3 are not Clean, in one run or two. */
	uint64_t covered = 0;
	for (size_t i = 0; i < n; i++) {
		cr_assert(r[i].offset >= 2 * PG && r[i].offset + r[i].length <= 4 * PG,
			  "run [%llu, +%llu) outside the zeroed pages", (unsigned long long)r[i].offset,
			  (unsigned long long)r[i].length);
		covered += r[i].length;
	}
	cr_assert_eq(covered, 2 * PG, "the zeroed pages are reported as %llu dirty bytes",
		     (unsigned long long)covered);
	expect_no_request(p, 0);
}

Test(pager, op_zero_of_supplied_pages_is_reported_as_a_zero_run, .timeout = 20)
{
	/* uvmo.h: IS_ZERO marks runs that read zero; the brief expects OP_ZERO
	 * to produce one (Zircon reports zeroed ranges as zero intervals). */
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 2 * PG, 2 * PG));
	expect_runs(p, v, "after ZERO of pages 2-3", { 2, 2, UVMO_DIRTY_RANGE_IS_ZERO });
}

/* Found by the DIFF_PAGER differential run (seeds 41 and 0x9a9e2, shrunk
 * to: pager VMO of 3 pages, grow to 41, ZERO pages 29-39).  Smallest form:
 * nothing supplied, grow 1 -> 2 pages, ZERO page 1; the validation build
 * aborted in pl_consistent ("page list chunks miscounted or empty"). */
Test(pager, zero_in_the_grown_tail_of_an_unsupplied_pager_vmo_keeps_it_consistent, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, UVMO_VMO_RESIZABLE, KEY, PG); /* nothing supplied */
	expect_ok(uvmo_vmo_set_size(v, 2 * PG));
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, PG, PG));
	expect_vmo_val(v, PG, PG, 0);
	struct uvmo_dirty_range r[MAX_RUNS];
	size_t n = dirty_runs(p, v, 0, 2 * PG, r);
	cr_assert(n == 1 && r[0].offset == PG && r[0].length == PG,
		  "%zu runs, first [%llu, +%llu): expected page 1 alone", n,
		  n ? (unsigned long long)r[0].offset : 0ull, n ? (unsigned long long)r[0].length : 0ull);
	supply_pattern(p, v, 0, PG, 1);
	expect_vmo_pattern(v, 0, PG, 1);
	expect_no_request(p, 0);
}

Test(pager, zero_of_part_of_a_large_grown_tail_keeps_the_vmo_consistent, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, UVMO_VMO_RESIZABLE, KEY, 3 * PG);
	expect_ok(uvmo_vmo_set_size(v, 41 * PG));
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 29 * PG, 11 * PG));
	supply_pattern(p, v, 0, 3 * PG, 1);
	expect_vmo_pattern(v, 0, 3 * PG, 1);
	expect_vmo_val(v, 3 * PG, 38 * PG, 0);
	struct uvmo_dirty_range r[MAX_RUNS];
	size_t n = dirty_runs(p, v, 0, 41 * PG, r);
	uint64_t covered = 0;
	for (size_t i = 0; i < n; i++) {
		cr_assert_geq(r[i].offset, 3 * PG, "run [%llu, +%llu) covers supplied pages",
			      (unsigned long long)r[i].offset, (unsigned long long)r[i].length);
		covered += r[i].length;
	}
	cr_assert_eq(covered, 38 * PG, "the grown pages are reported as %llu dirty bytes",
		     (unsigned long long)covered);
	expect_no_request(p, 0);
}

Test(pager, runs_reported_as_zero_read_zero, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_RESIZABLE, 8, 1);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, PG, PG));
	write_val(v, 3 * PG, PG, 0);    /* zero bytes written: may or may not be flagged */
	write_val(v, 4 * PG, PG, 0x44); /* not zero: must not be flagged */
	expect_ok(uvmo_vmo_set_size(v, 12 * PG));
	write_val(v, 9 * PG, 4, 0x45);
	struct uvmo_dirty_range r[MAX_RUNS];
	size_t n = dirty_runs(p, v, 0, 12 * PG, r);
	cr_assert_gt(n, 0);
	for (size_t i = 0; i < n; i++) {
		if (!(r[i].options & UVMO_DIRTY_RANGE_IS_ZERO))
			continue;
		cr_assert_eq(r[i].options, UVMO_DIRTY_RANGE_IS_ZERO, "unknown option bits");
		uint8_t *buf = malloc(r[i].length);
		expect_ok(uvmo_vmo_read(v, buf, r[i].offset, r[i].length));
		long bad = first_other_byte(buf, r[i].length, 0);
		cr_assert(bad < 0, "run [%llu, +%llu) is flagged IS_ZERO but byte %ld is 0x%02x",
			  (unsigned long long)r[i].offset, (unsigned long long)r[i].length, bad,
			  bad < 0 ? 0 : buf[bad]);
		free(buf);
	}
}

/* ---------------------------------------------------------------------- */
/* TRAP_DIRTY                                                             */
/* ---------------------------------------------------------------------- */

Test(pager, trap_dirty_vmo_write_waits_for_the_dirty_acknowledgement, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_TRAP_DIRTY, 4, 1);
	struct access a;
	start_vmo_write(&a, v, PG + 10, 100, 0xee);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_DIRTY, KEY, v, PG, PG);
	cr_assert(r.offset == PG && r.length == PG, "DIRTY [%llu, +%llu) for a write to page 1",
		  (unsigned long long)r.offset, (unsigned long long)r.length);
	expect_access_waiting(&a, 50);
	/* Nothing written, nothing dirty yet. */
	expect_vmo_pattern(v, PG, PG, 1);
	expect_clean(p, v, 0, 4 * PG);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_DIRTY, v, r.offset, r.length, 0));
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	access_free(&a);
	expect_vmo_val(v, PG + 10, 100, 0xee);
	expect_runs(p, v, "after the acknowledged write", { 1, 1, 0 });
	/* Dirty now: a second write does not ask. */
	start_vmo_write(&a, v, PG + 500, 10, 0xef);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	access_free(&a);
	expect_no_request(p, 50);
}

Test(pager, trap_dirty_mapped_write_waits_for_the_dirty_acknowledgement, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_TRAP_DIRTY, 4, 1);
	uint8_t *m = map_rw(v);
	expect_mem_pattern(m, 4 * PG, 1, 0); /* mapped reads: no DIRTY */
	expect_no_request(p, 50);
	struct access a;
	start_map_write(&a, m, 2 * PG + 7, 1, 0xdd);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_DIRTY, KEY, v, 2 * PG, PG);
	expect_access_waiting(&a, 50);
	cr_assert_eq(m[2 * PG + 7], pattern_byte(1, 2 * PG + 7), "the write landed before the ack");
	expect_clean(p, v, 0, 4 * PG);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_DIRTY, v, r.offset, r.length, 0));
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, 0, "the acknowledged write raised %s", sig_name(a.sig));
	access_free(&a);
	cr_assert_eq(m[2 * PG + 7], 0xdd);
	expect_runs(p, v, "after the acknowledged mapped write", { 2, 1, 0 });
	m[2 * PG + 8] = 0xdc; /* Dirty: no second trap (this would hang otherwise) */
	expect_no_request(p, 50);
}

Test(pager, without_trap_dirty_a_write_sends_no_dirty_request, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 4, 1);
	uint8_t *m = map_rw(v);
	struct access a, b;
	start_vmo_write(&a, v, 0, 10, 1);
	start_map_write(&b, m, 3 * PG, 10, 2);
	expect_access_done(&a, WAIT_MS);
	expect_access_done(&b, WAIT_MS);
	expect_rc(0, a.rc);
	cr_assert_eq(b.sig, 0);
	access_free(&a);
	access_free(&b);
	expect_no_request(p, 100);
	expect_runs(p, v, "after writes without TRAP_DIRTY", { 0, 1, 0 }, { 3, 1, 0 });
}

Test(pager, trap_dirty_write_of_an_absent_page_asks_read_then_dirty, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, UVMO_VMO_TRAP_DIRTY, KEY, 4 * PG);
	struct access a;
	start_vmo_write(&a, v, 2 * PG + 1, 2, 0x12);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 2 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 1);
	r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_DIRTY, KEY, v, 2 * PG, PG);
	expect_access_waiting(&a, 30);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_DIRTY, v, r.offset, r.length, 0));
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	access_free(&a);
	expect_vmo_pattern(v, 2 * PG, 1, 1);
	expect_vmo_val(v, 2 * PG + 1, 2, 0x12);
	expect_vmo_pattern(v, 2 * PG + 3, PG - 3, 1);
}

Test(pager, trap_dirty_write_spanning_clean_pages_asks_in_fewer_requests_than_pages, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_TRAP_DIRTY, 8, 1);
	struct access a;
	start_vmo_write(&a, v, PG, 4 * PG, 0x13);
	int requests = 0;
	double deadline = now_seconds() + WAIT_MS / 1000.0;
	while (!atomic_load(&a.done)) {
		cr_assert(now_seconds() < deadline, "the write still waits after %d DIRTY requests",
			  requests);
		struct uvmo_page_request r;
		int n = uvmo_pager_get_requests(p, &r, 1, 20);
		if (n == 1) {
			cr_assert_eq(r.type, UVMO_PAGER_DIRTY);
			expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_DIRTY, v, r.offset, r.length, 0));
			requests++;
		}
	}
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	access_free(&a);
	cr_assert_lt(requests, 4, "a write of 4 clean pages took %d DIRTY requests", requests);
	expect_runs(p, v, "after the write", { 1, 4, 0 });
}

Test(pager, fail_of_a_dirty_request_fails_the_writer_and_keeps_the_page_clean, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_TRAP_DIRTY, 4, 1);
	uint8_t *m = map_rw(v);
	struct access a;
	start_vmo_write(&a, v, 0, PG, 0x14);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_DIRTY, KEY, v, 0, PG);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_FAIL, v, r.offset, r.length, EIO));
	expect_access_done(&a, WAIT_MS);
	expect_rc(-EIO, a.rc);
	access_free(&a);
	start_map_write(&a, m, 3 * PG, 1, 0x15);
	r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_DIRTY, KEY, v, 3 * PG, PG);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_FAIL, v, r.offset, r.length, ENOSPC));
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, SIGBUS, "a failed DIRTY gave the mapped writer %s", sig_name(a.sig));
	access_free(&a);
	expect_vmo_pattern(v, 0, 4 * PG, 1);
	expect_clean(p, v, 0, 4 * PG);
}

Test(pager, dirty_ack_of_clean_pages_nobody_writes_makes_them_dirty, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, UVMO_VMO_TRAP_DIRTY, KEY, 8 * PG);
	supply_pattern(p, v, 0, 4 * PG, 1);
	/* Pages 4-7 are absent: skipped. */
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_DIRTY, v, 2 * PG, 6 * PG, 0));
	expect_runs(p, v, "after DIRTY of pages 2-7 (4-7 absent)", { 2, 2, 0 });
	/* Writes to them proceed without a request. */
	struct access a;
	start_vmo_write(&a, v, 3 * PG, 8, 0x16);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	access_free(&a);
	expect_no_request(p, 50);
	/* The absent pages still ask when read. */
	start_vmo_read(&a, v, 5 * PG, PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 5 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 1);
	expect_access_done(&a, WAIT_MS);
	access_free(&a);
}

Test(pager, a_trap_dirty_page_traps_again_after_writeback, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_TRAP_DIRTY, 4, 1);
	uint8_t *m = map_rw(v);
	for (int round = 0; round < 2; round++) {
		struct access a;
		start_map_write(&a, m, PG, 1, (uint8_t)(0x20 + round));
		struct uvmo_page_request r = take_request(p, WAIT_MS);
		expect_request_covers(r, UVMO_PAGER_DIRTY, KEY, v, PG, PG);
		expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_DIRTY, v, r.offset, r.length, 0));
		expect_access_done(&a, WAIT_MS);
		cr_assert_eq(a.sig, 0);
		access_free(&a);
		expect_runs(p, v, "after the write", { 1, 1, 0 });
		writeback(p, v, UVMO_PAGER_OP_WRITEBACK_BEGIN, 0, 4 * PG);
		expect_clean(p, v, 0, 4 * PG);
	}
	cr_assert_eq(m[PG], 0x21);
}

/* ---------------------------------------------------------------------- */
/* writeback racing with mapped writers                                   */
/* ---------------------------------------------------------------------- */

#define WB_PAGES 32
#define WB_WRITERS 2
#define WB_WORD(page, w) ((page) * (PG / 8) + (w))

struct wb_writer {
	volatile uint64_t *map;  /* the mapping, as words */
	int id;                  /* writes word id of each page */
	atomic_bool *stop;
	uint64_t last[WB_PAGES]; /* last value written to each page (0: none) */
	uint64_t writes;
};

static void *wb_writer_thread(void *arg)
{
	struct wb_writer *w = arg;
	uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1);
	while (!atomic_load(w->stop)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t page = x % WB_PAGES;
		uint64_t val = ((uint64_t)(w->id + 1) << 56) | ++w->writes;
		w->map[WB_WORD(page, w->id)] = val;
		w->last[page] = val;
		if (w->writes % 64 == 0)
			sched_yield();
	}
	return NULL;
}

/* One writeback pass as a pager would do it: for every run reported
 * dirty, BEGIN, read the bytes into the backing store, END.  Returns the
 * number of pages written back. */
static uint64_t wb_pass(uvmo_pager_t *p, uvmo_vmo_t *v, uint8_t *store)
{
	uint64_t pages = 0, off = 0;
	while (off < WB_PAGES * PG) {
		struct uvmo_dirty_range r[4];
		size_t actual = 0, avail = 0;
		expect_ok(uvmo_pager_query_dirty_ranges(p, v, off, WB_PAGES * PG - off, r, 4,
							&actual, &avail));
		if (actual == 0)
			break;
		for (size_t i = 0; i < actual; i++) {
			expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_BEGIN, v, r[i].offset,
						      r[i].length, 0));
			expect_ok(uvmo_vmo_read(v, store + r[i].offset, r[i].offset, r[i].length));
			expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_END, v, r[i].offset,
						      r[i].length, 0));
			pages += r[i].length / PG;
		}
		off = r[actual - 1].offset + r[actual - 1].length;
	}
	return pages;
}

static void writeback_race(uvmo_pager_t *p, uvmo_vmo_t *v)
{
	uint8_t *m = map_rw(v);
	/* The backing store: what the pager holds (supplied, then written back). */
	uint8_t *store = malloc(WB_PAGES * PG);
	cr_assert_not_null(store);
	fill_pattern(store, WB_PAGES * PG, 1, 0);

	atomic_bool stop = false;
	struct wb_writer w[WB_WRITERS];
	memset(w, 0, sizeof(w));
	for (int i = 0; i < WB_WRITERS; i++) {
		w[i].map = (volatile uint64_t *)m;
		w[i].id = i;
		w[i].stop = &stop;
	}
	pthread_t t[WB_WRITERS];
	start_workers(t, WB_WRITERS, wb_writer_thread, w, sizeof(w[0]));
	double end = now_seconds() + 0.4;
	unsigned passes = 0;
	uint64_t written_back = 0;
	while (now_seconds() < end) {
		written_back += wb_pass(p, v, store);
		passes++;
	}
	atomic_store(&stop, true);
	join_workers(t, WB_WRITERS);
	written_back += wb_pass(p, v, store);
	cr_assert_gt(passes, 3, "only %u writeback passes ran", passes);
	cr_assert_gt(written_back, 0, "nothing was ever reported dirty");
	cr_assert_gt(w[0].writes + w[1].writes, 0);

	/* All written back: nothing dirty, and the store equals the VMO. */
	expect_clean(p, v, 0, WB_PAGES * PG);
	uint8_t *now = read_all(v, NULL);
	for (uint64_t off = 0; off < WB_PAGES * PG; off++)
		if (now[off] != store[off])
			cr_assert_fail("byte %llu (page %llu) is 0x%02x but 0x%02x was written back: a write was reported clean without being written back",
				       (unsigned long long)off, (unsigned long long)(off / PG), now[off],
				       store[off]);
	/* And the VMO holds every writer's last value (the rest as supplied). */
	const uint64_t *words = (const uint64_t *)now;
	for (uint64_t page = 0; page < WB_PAGES; page++)
		for (int i = 0; i < WB_WRITERS; i++)
			if (w[i].last[page])
				cr_assert_eq(words[WB_WORD(page, i)], w[i].last[page],
					     "page %llu word %d: 0x%llx, last written 0x%llx",
					     (unsigned long long)page, i,
					     (unsigned long long)words[WB_WORD(page, i)],
					     (unsigned long long)w[i].last[page]);
	expect_vmo_matches(v, 0, m, WB_PAGES * PG);
	free(now);
	free(store);
}

Test(pager, writeback_racing_with_mapped_writers_loses_no_write, .timeout = 60)
{
	uvmo_pager_t *p = make_pager();
	writeback_race(p, supplied_vmo(p, 0, WB_PAGES, 1));
}

/* The same with TRAP_DIRTY: a pager thread acknowledges the DIRTY requests
 * (first writes, and writes to pages being written back). */
Test(pager, writeback_racing_with_mapped_writers_of_a_trap_dirty_vmo_loses_no_write, .timeout = 60)
{
	struct test_pager tp;
	tp_start(&tp, 1);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, UVMO_VMO_TRAP_DIRTY, KEY, WB_PAGES * PG);
	supply_pattern(tp.pager, v, 0, WB_PAGES * PG, 1);
	writeback_race(tp.pager, v);
	tp_stop(&tp);
	expect_no_thread_failure();
	cr_assert_gt(atomic_load(&tp.dirties), 0, "no DIRTY request");
}

/* ---------------------------------------------------------------------- */
/* uvmo_pager_query_vmo_stats                                             */
/* ---------------------------------------------------------------------- */

static uint32_t modified(uvmo_pager_t *p, uvmo_vmo_t *v, uint32_t options)
{
	struct uvmo_pager_vmo_stats st;
	memset(&st, 0xa5, sizeof(st));
	expect_ok(uvmo_pager_query_vmo_stats(p, v, options, &st));
	cr_assert(st.modified == 0 || st.modified == 1, "modified is %u", st.modified);
	return st.modified;
}

Test(pager, vmo_stats_modified_is_set_by_writes_and_cleared_by_reset, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, UVMO_VMO_RESIZABLE, KEY, 4 * PG);
	cr_assert_eq(modified(p, v, 0), 0, "a new VMO is modified");
	supply_pattern(p, v, 0, 4 * PG, 1);
	expect_vmo_pattern(v, 0, 4 * PG, 1);
	cr_assert_eq(modified(p, v, 0), 0, "supply or read set modified");
	write_val(v, PG, 1, 1);
	cr_assert_eq(modified(p, v, 0), 1, "a write did not set modified");
	cr_assert_eq(modified(p, v, 0), 1, "reading the flag without RESET cleared it");
	cr_assert_eq(modified(p, v, UVMO_PAGER_RESET_VMO_STATS), 1, "RESET did not report the flag");
	cr_assert_eq(modified(p, v, 0), 0, "RESET did not clear the flag");
	/* Writeback is not a modification. */
	writeback(p, v, UVMO_PAGER_OP_WRITEBACK_BEGIN, 0, 4 * PG);
	cr_assert_eq(modified(p, v, 0), 0, "writeback set modified");
	/* Through a mapping. */
	uint8_t *m = map_rw(v);
	cr_assert_eq(m[2 * PG], pattern_byte(1, 2 * PG));
	cr_assert_eq(modified(p, v, 0), 0, "a mapped read set modified");
	m[2 * PG] = 7;
	cr_assert_eq(modified(p, v, UVMO_PAGER_RESET_VMO_STATS), 1, "a mapped write did not set modified");
	/* A resize is a modification. */
	expect_ok(uvmo_vmo_set_size(v, 8 * PG));
	cr_assert_eq(modified(p, v, UVMO_PAGER_RESET_VMO_STATS), 1, "a resize did not set modified");
	/* A write to a page already dirty still counts after a reset. */
	m[2 * PG + 1] = 8;
	cr_assert_eq(modified(p, v, 0), 1, "a write to a dirty page after RESET did not set modified");
}

/* ---------------------------------------------------------------------- */
/* EVICT                                                                  */
/* ---------------------------------------------------------------------- */

Test(pager, evict_drops_clean_pages_and_keeps_dirty_and_awaiting_clean_ones, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	write_val(v, 2 * PG, PG, 0x22);                   /* Dirty */
	write_val(v, 5 * PG, PG, 0x55);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_BEGIN, v, 5 * PG, PG, 0));
	/* page 5 AwaitingClean */
	int rc = uvmo_pager_op_range(p, UVMO_PAGER_OP_EVICT, v, 0, 8 * PG, 0);
	cr_assert_eq(rc, 6, "EVICT returned %d (%s), expected 6 clean pages", rc, rc_name(rc));
	/* The kept pages read without a request. */
	struct access a;
	start_vmo_read(&a, v, 2 * PG, PG);
	expect_access_done(&a, WAIT_MS);
	expect_mem_val(a.buf, PG, 0x22);
	access_free(&a);
	start_vmo_read(&a, v, 5 * PG, PG);
	expect_access_done(&a, WAIT_MS);
	expect_mem_val(a.buf, PG, 0x55);
	access_free(&a);
	expect_no_request(p, 50);
	expect_runs(p, v, "after EVICT", { 2, 1, 0 }, { 5, 1, 0 });
	/* An evicted page asks again and shows the new supply. */
	start_vmo_read(&a, v, 0, PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 0, PG);
	cr_assert(r.offset + r.length <= 2 * PG, "READ [%llu, +%llu) covers a present page",
		  (unsigned long long)r.offset, (unsigned long long)r.length);
	supply_pattern(p, v, r.offset, r.length, 2);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, PG, 2, 0);
	access_free(&a);
	/* The AwaitingClean page finishes writeback and can then be evicted. */
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_END, v, 5 * PG, PG, 0));
	rc = uvmo_pager_op_range(p, UVMO_PAGER_OP_EVICT, v, 5 * PG, PG, 0);
	cr_assert_eq(rc, 1, "EVICT of a page cleaned by writeback returned %d", rc);
}

Test(pager, evict_removes_the_pages_from_mappings, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 4, 1);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 4 * PG);
	expect_mem_pattern(m, 4 * PG, 1, 0); /* every page mapped */
	int rc = uvmo_pager_op_range(p, UVMO_PAGER_OP_EVICT, v, 0, 4 * PG, 0);
	cr_assert_eq(rc, 4, "EVICT returned %d (%s)", rc, rc_name(rc));
	struct access a;
	start_map_read(&a, m, PG, PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, PG, PG);
	supply_pattern(p, v, r.offset, r.length, 2);
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, 0);
	expect_mem_pattern(a.buf, PG, 2, PG);
	access_free(&a);
}

Test(pager, evict_of_absent_pages_returns_zero, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	expect_rc(0, uvmo_pager_op_range(p, UVMO_PAGER_OP_EVICT, v, 0, 4 * PG, 0));
	supply_pattern(p, v, PG, PG, 1);
	expect_rc(1, uvmo_pager_op_range(p, UVMO_PAGER_OP_EVICT, v, 0, 4 * PG, 0));
	expect_rc(0, uvmo_pager_op_range(p, UVMO_PAGER_OP_EVICT, v, 0, 4 * PG, 0));
}

Test(pager, evicted_memory_goes_back_to_the_pool, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 64, 1);
	uint64_t before = stats_now().committed_bytes;
	expect_rc(64, uvmo_pager_op_range(p, UVMO_PAGER_OP_EVICT, v, 0, 64 * PG, 0));
	uint64_t after = stats_now().committed_bytes;
	cr_assert_leq(after + 64 * PG, before, "committed %llu -> %llu after evicting 64 pages",
		      (unsigned long long)before, (unsigned long long)after);
}

/* ---------------------------------------------------------------------- */
/* detach                                                                 */
/* ---------------------------------------------------------------------- */

Test(pager, detach_fails_waiters_keeps_present_pages_and_sends_complete_once, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY + 9, 16 * PG);
	supply_pattern(p, v, 0, PG, 1);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 16 * PG);
	struct access a, b;
	start_vmo_read(&a, v, 5 * PG, PG);
	start_map_read(&b, m, 9 * PG, PG);
	struct uvmo_page_request r[16];
	int got = take_requests_covering(p, r, 0, 16, 5 * PG, PG, WAIT_MS);
	(void)take_requests_covering(p, r, got, 16, 9 * PG, PG, WAIT_MS);
	expect_ok(uvmo_pager_detach_vmo(p, v));
	expect_access_done(&a, WAIT_MS);
	expect_access_done(&b, WAIT_MS);
	expect_rc(-EBUSY, a.rc);
	cr_assert_eq(b.sig, SIGBUS, "a faulter waiting at detach got %s", sig_name(b.sig));
	access_free(&a);
	access_free(&b);
	/* Later accesses to absent pages fail at once, without a request. */
	start_vmo_read(&a, v, 12 * PG, PG);
	start_map_read(&b, m, 13 * PG, PG);
	expect_access_done(&a, WAIT_MS);
	expect_access_done(&b, WAIT_MS);
	expect_rc(-EBUSY, a.rc);
	cr_assert_eq(b.sig, SIGBUS, "a fault after detach got %s", sig_name(b.sig));
	access_free(&a);
	access_free(&b);
	/* Present pages stay readable. */
	expect_vmo_pattern(v, 0, PG, 1);
	expect_mem_pattern(m, PG, 1, 0);
	/* Exactly one COMPLETE and nothing else. */
	int n = take_all_requests(p, r, 16, 200);
	cr_assert_eq(n, 1, "%d requests after detach, expected one COMPLETE (first: %s)", n,
		     n ? req_type_name(r[0].type) : "-");
	cr_assert_eq(r[0].type, UVMO_PAGER_COMPLETE, "got %s", req_type_name(r[0].type));
	cr_assert_eq(r[0].key, KEY + 9);
	cr_assert_eq(r[0].vmo, v);
	cr_assert_eq(r[0].offset, 0);
	cr_assert_eq(r[0].length, 0);
	/* The pager is done with it. */
	expect_rc(-ENOENT, uvmo_pager_detach_vmo(p, v));
	expect_rc(-ENOENT, uvmo_pager_supply_pages(p, v, PG, PG, NULL));
	uvmo_vmo_close(v);
	expect_no_request(p, 100);
}

/* Run @fn with stderr going to a temporary file; returns what it wrote. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
	FILE *tmp = tmpfile();
	cr_assert_not_null(tmp);
	fflush(stderr);
	int saved = dup(2);
	cr_assert_geq(saved, 0);
	cr_assert_geq(dup2(fileno(tmp), 2), 0);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	long n = (long)lseek(fileno(tmp), 0, SEEK_END);
	cr_assert_geq(n, 0);
	char *out = calloc(1, (size_t)n + 1);
	cr_assert_not_null(out);
	cr_assert_eq(pread(fileno(tmp), out, (size_t)n, 0), n);
	fclose(tmp);
	return out;
}

struct detach_arg {
	uvmo_pager_t *p;
	uvmo_vmo_t *v;
	int rc;
};

static void do_detach(void *arg)
{
	struct detach_arg *d = arg;
	d->rc = uvmo_pager_detach_vmo(d->p, d->v);
}

Test(pager, detach_reports_dirty_pages_not_written_back_on_stderr, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *clean = supplied_vmo(p, 0, 4, 1);
	uvmo_vmo_t *dirty = supplied_vmo(p, 0, 4, 1);
	write_val(dirty, 2 * PG, 1, 0x66);
	struct detach_arg d = { .p = p, .v = clean };
	char *out = capture_stderr(do_detach, &d);
	expect_rc(0, d.rc);
	cr_assert_eq(out[0], 0, "detaching a clean VMO wrote to stderr: %s", out);
	free(out);
	d.v = dirty;
	out = capture_stderr(do_detach, &d);
	expect_rc(0, d.rc);
	cr_assert_neq(out[0], 0, "detaching a VMO with a dirty page reported nothing on stderr");
	free(out);
	/* The data stays readable (present pages). */
	expect_vmo_val(dirty, 2 * PG, 1, 0x66);
}

Test(pager, detach_of_a_vmo_with_waiting_dirty_writers_fails_them, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_TRAP_DIRTY, 4, 1);
	struct access a;
	start_vmo_write(&a, v, PG, 8, 0x33);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	cr_assert_eq(r.type, UVMO_PAGER_DIRTY);
	expect_ok(uvmo_pager_detach_vmo(p, v));
	expect_access_done(&a, WAIT_MS);
	cr_assert_lt(a.rc, 0, "a writer waiting for DIRTY at detach returned %d", a.rc);
	access_free(&a);
	expect_vmo_pattern(v, 0, 4 * PG, 1);
}

Test(pager, detach_does_not_touch_other_vmos_of_the_pager, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	uvmo_vmo_t *w = make_pager_vmo(p, 0, KEY + 1, 4 * PG);
	struct access a;
	start_vmo_read(&a, w, PG, PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY + 1, w, PG, PG);
	expect_ok(uvmo_pager_detach_vmo(p, v));
	expect_access_waiting(&a, 100);
	supply_pattern(p, w, PG, PG, 1);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	access_free(&a);
	r = take_request(p, WAIT_MS);
	cr_assert_eq(r.type, UVMO_PAGER_COMPLETE);
	cr_assert_eq(r.vmo, v);
}

/* ---------------------------------------------------------------------- */
/* the pager goes away                                                    */
/* ---------------------------------------------------------------------- */

Test(pager, destroying_the_pager_fails_waiting_calls_and_faults_instead_of_hanging, .timeout = 20)
{
	struct test_pager tp;
	tp_start(&tp, 1);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, 0, KEY, 16 * PG);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 16 * PG);
	/* The pager thread serves page 0, then goes away. */
	expect_vmo_pattern(v, 0, PG, 1);
	tp_stop(&tp);
	expect_no_thread_failure();
	struct access a, b, c;
	start_vmo_read(&a, v, 3 * PG, PG);
	start_map_read(&b, m, 7 * PG, PG);
	usleep(150 * 1000); /* both wait; their requests are never taken */
	cr_assert(!atomic_load(&a.done) && !atomic_load(&b.done),
		  "an access to an absent page finished with no pager thread");
	uvmo_pager_destroy(tp.pager);
	expect_access_done(&a, WAIT_MS);
	expect_access_done(&b, WAIT_MS);
	expect_rc(-EBUSY, a.rc);
	cr_assert_eq(b.sig, SIGBUS, "a faulter waiting when the pager died got %s", sig_name(b.sig));
	access_free(&a);
	access_free(&b);
	/* Later accesses fail too, and promptly; present pages stay. */
	start_vmo_read(&c, v, 11 * PG, PG);
	expect_access_done(&c, WAIT_MS);
	expect_rc(-EBUSY, c.rc);
	access_free(&c);
	expect_vmo_pattern(v, 0, PG, 1);
	expect_mem_pattern(m, PG, 1, 0);
	uvmo_vmo_close(v);
}

Test(pager, destroying_the_pager_fails_a_request_already_taken, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	struct access a;
	start_vmo_read(&a, v, 2 * PG, PG);
	(void)take_request(p, WAIT_MS);
	uvmo_pager_destroy(p);
	expect_access_done(&a, WAIT_MS);
	expect_rc(-EBUSY, a.rc);
	access_free(&a);
}

Test(pager, destroying_the_pager_fails_a_waiting_trap_dirty_writer, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_TRAP_DIRTY, 4, 1);
	uint8_t *m = map_rw(v);
	struct access a;
	start_map_write(&a, m, PG, 1, 0x40);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	cr_assert_eq(r.type, UVMO_PAGER_DIRTY);
	uvmo_pager_destroy(p);
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, SIGBUS, "a writer waiting for DIRTY when the pager died got %s",
		     sig_name(a.sig));
	access_free(&a);
	expect_mem_pattern(m, 4 * PG, 1, 0);
}

Test(pager, a_slow_pager_is_waited_for, .timeout = 20)
{
	struct test_pager tp;
	tp_start(&tp, 3);
	atomic_store(&tp.delay_us, 200 * 1000);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, 0, KEY, 4 * PG);
	double t0 = now_seconds();
	expect_vmo_pattern(v, PG, PG, 3);
	cr_assert_geq(now_seconds() - t0, 0.19, "the read did not wait for the pager");
	tp_stop(&tp);
	expect_no_thread_failure();
}

Test(pager, shrinking_a_pager_vmo_releases_waiters_in_the_cut_range, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, UVMO_VMO_RESIZABLE, KEY, 8 * PG);
	uint8_t *m = map_vmo(root_vmar(), PERM_R | UVMO_VMAR_ALLOW_FAULTS, v, 0, 8 * PG);
	struct access a, b, c;
	start_vmo_read(&a, v, 6 * PG, PG);
	start_map_read(&b, m, 7 * PG, PG);
	start_vmo_read(&c, v, PG, PG); /* below the cut: keeps waiting */
	struct uvmo_page_request r[16];
	int n = take_requests_covering(p, r, 0, 16, 6 * PG, 2 * PG, WAIT_MS);
	n = take_requests_covering(p, r, n, 16, PG, PG, WAIT_MS);
	expect_ok(uvmo_vmo_set_size(v, 4 * PG));
	expect_access_done(&a, WAIT_MS);
	expect_access_done(&b, WAIT_MS);
	cr_assert_lt(a.rc, 0, "a read of a page cut away while it waited returned %d", a.rc);
	cr_assert_eq(b.sig, SIGBUS, "a fault on a page cut away while it waited gave %s",
		     sig_name(b.sig));
	expect_access_waiting(&c, 100);
	supply_pattern(p, v, PG, PG, 1);
	expect_access_done(&c, WAIT_MS);
	expect_rc(0, c.rc);
	expect_mem_pattern(c.buf, PG, 1, PG);
	access_free(&a);
	access_free(&b);
	access_free(&c);
	/* A supply of the stale request's range is past the end now. */
	expect_rc(-ERANGE, uvmo_pager_supply_pages(p, v, 6 * PG, 2 * PG, NULL));
}

/* ---------------------------------------------------------------------- */
/* COMPLETE when the VMO dies                                             */
/* ---------------------------------------------------------------------- */

Test(pager, closing_the_last_handle_of_an_unmapped_pager_vmo_sends_complete, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, 4242, 4 * PG);
	supply_pattern(p, v, 0, 2 * PG, 1);
	expect_no_request(p, 0);
	uvmo_vmo_close(v);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	cr_assert_eq(r.type, UVMO_PAGER_COMPLETE, "got %s", req_type_name(r.type));
	cr_assert_eq(r.key, 4242);
	cr_assert_eq(r.vmo, v);
	cr_assert_eq(r.offset, 0);
	cr_assert_eq(r.length, 0);
	expect_no_request(p, 100);
}

Test(pager, a_mapped_pager_vmo_sends_complete_only_when_unmapped, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, 77, 4 * PG);
	supply_pattern(p, v, 0, 4 * PG, 1);
	uint8_t *m = map_rw(v);
	uvmo_vmo_close(v);
	expect_no_request(p, 200);
	expect_mem_pattern(m, 4 * PG, 1, 0);
	m[0] = 1;
	expect_ok(uvmo_vmar_unmap(root_vmar(), m, 4 * PG));
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	cr_assert_eq(r.type, UVMO_PAGER_COMPLETE, "got %s", req_type_name(r.type));
	cr_assert_eq(r.key, 77);
	cr_assert_eq(r.vmo, v);
	expect_no_request(p, 100);
}

Test(pager, a_pager_vmo_kept_alive_by_a_slice_sends_complete_when_the_slice_dies, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, 78, 4 * PG);
	supply_pattern(p, v, 0, 4 * PG, 1);
	uvmo_vmo_t *s = make_child(v, UVMO_CHILD_SLICE, PG, 2 * PG);
	uvmo_vmo_close(v);
	expect_no_request(p, 200);
	uint8_t buf[2 * UVMO_PAGE_SIZE];
	expect_ok(uvmo_vmo_read(s, buf, 0, 2 * PG));
	expect_mem_pattern(buf, 2 * PG, 1, PG);
	uvmo_vmo_close(s);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	cr_assert_eq(r.type, UVMO_PAGER_COMPLETE, "got %s", req_type_name(r.type));
	cr_assert_eq(r.key, 78);
	cr_assert_eq(r.vmo, v);
}

Test(pager, each_dead_vmo_sends_its_own_complete, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v[3];
	for (int i = 0; i < 3; i++)
		v[i] = make_pager_vmo(p, 0, 100 + (uint64_t)i, PG);
	for (int i = 0; i < 3; i++)
		uvmo_vmo_close(v[i]);
	struct uvmo_page_request r[8];
	int n = take_all_requests(p, r, 8, 200);
	cr_assert_eq(n, 3, "%d requests for 3 closed VMOs", n);
	bool seen[3] = { false, false, false };
	for (int i = 0; i < n; i++) {
		cr_assert_eq(r[i].type, UVMO_PAGER_COMPLETE);
		cr_assert(r[i].key >= 100 && r[i].key < 103, "COMPLETE key %llu",
			  (unsigned long long)r[i].key);
		int k = (int)(r[i].key - 100);
		cr_assert(!seen[k], "two COMPLETEs for key %d", 100 + k);
		seen[k] = true;
		cr_assert_eq(r[i].vmo, v[k]);
	}
}

/* ---------------------------------------------------------------------- */
/* the create handle after close                                          */
/* ---------------------------------------------------------------------- */

Test(pager, pager_calls_accept_the_closed_create_handle_while_a_mapping_keeps_the_vmo, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, 55, 8 * PG);
	uint8_t *m = map_rw(v);
	uvmo_vmo_close(v);
	/* Ordinary calls refuse the closed handle ... */
	uint8_t x;
	expect_rc(-EBADF, uvmo_vmo_read(v, &x, 0, 1));
	/* ... pager calls take it. */
	supply_pattern(p, v, 0, 4 * PG, 5);
	expect_mem_pattern(m, 4 * PG, 5, 0);
	expect_no_request(p, 50);
	/* Requests still name it. */
	struct access a;
	start_map_read(&a, m, 6 * PG, PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, 55, v, 6 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 5);
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, 0);
	expect_mem_pattern(a.buf, PG, 5, 6 * PG);
	access_free(&a);
	/* Dirty tracking, writeback, stats and eviction work through it. */
	m[PG] = 1;
	expect_runs_sized(p, v, 8 * PG, "after a mapped write", { 1, 1, 0 });
	cr_assert_eq(modified(p, v, UVMO_PAGER_RESET_VMO_STATS), 1);
	writeback(p, v, UVMO_PAGER_OP_WRITEBACK_BEGIN, 0, 8 * PG);
	expect_clean(p, v, 0, 8 * PG);
	int rc = uvmo_pager_op_range(p, UVMO_PAGER_OP_EVICT, v, 2 * PG, PG, 0);
	cr_assert_eq(rc, 1, "EVICT through the closed handle returned %d (%s)", rc, rc_name(rc));
	/* The VMO dies with its mapping: COMPLETE, then the handle is dead. */
	expect_ok(uvmo_vmar_unmap(root_vmar(), m, 8 * PG));
	r = take_request(p, WAIT_MS);
	cr_assert_eq(r.type, UVMO_PAGER_COMPLETE, "got %s", req_type_name(r.type));
	cr_assert_eq(r.vmo, v);
	expect_rc(-EBADF, uvmo_pager_supply_pages(p, v, 0, PG, NULL));
}

/* ---------------------------------------------------------------------- */
/* clones of pager-backed VMOs                                            */
/* ---------------------------------------------------------------------- */

Test(pager, slice_of_a_pager_vmo_shows_its_content_and_asks_for_absent_pages, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 16 * PG);
	supply_pattern(p, v, 0, 4 * PG, 1);
	uvmo_vmo_t *s = make_child(v, UVMO_CHILD_SLICE, 2 * PG, 8 * PG);
	uint8_t buf[2 * UVMO_PAGE_SIZE];
	expect_ok(uvmo_vmo_read(s, buf, 0, 2 * PG));
	expect_mem_pattern(buf, 2 * PG, 1, 2 * PG);
	/* An absent page of the slice is a READ of the parent's page. */
	struct access a;
	start_vmo_read(&a, s, 5 * PG, PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 7 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 1);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, PG, 1, 7 * PG);
	access_free(&a);
	/* Through a mapping of the slice, too. */
	uint8_t *ms = map_rw(s);
	start_map_read(&a, ms, 6 * PG, PG);
	r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 8 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 1);
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, 0);
	expect_mem_pattern(a.buf, PG, 1, 8 * PG);
	access_free(&a);
	/* Writes through the slice are the parent's, and dirty it. */
	ms[0] = 0x61;
	write_val(s, PG, 1, 0x62);
	expect_vmo_val(v, 2 * PG, 1, 0x61);
	expect_vmo_val(v, 3 * PG, 1, 0x62);
	expect_runs(p, v, "after writes through the slice", { 2, 2, 0 });
}

Test(pager, snapshot_of_a_pager_vmo_is_enotsup, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 4, 1);
	uvmo_vmo_t *c = NULL;
	expect_rc(-ENOTSUP, uvmo_vmo_create_child(v, UVMO_CHILD_SNAPSHOT, 0, 4 * PG, &c));
	cr_assert_null(c);
	/* Nor of its slice. */
	uvmo_vmo_t *s = make_child(v, UVMO_CHILD_SLICE, 0, 2 * PG);
	expect_rc(-ENOTSUP, uvmo_vmo_create_child(s, UVMO_CHILD_SNAPSHOT, 0, 2 * PG, &c));
	cr_assert_eq(info_of(v).num_children, 1);
}

Test(pager, at_least_on_write_child_reads_the_parents_current_content, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 8 * PG);
	expect_vmo_pattern(c, 0, 8 * PG, 1);
	/* A later parent write is seen by the child (it has not written). */
	write_val(v, 2 * PG, PG, 0x71);
	expect_vmo_val(c, 2 * PG, PG, 0x71);
	/* Also through a parent mapping. */
	uint8_t *mv = map_rw(v);
	mv[3 * PG + 9] = 0x72;
	expect_vmo_val(c, 3 * PG + 9, 1, 0x72);
}

Test(pager, at_least_on_write_child_mapping_follows_the_parent, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 8 * PG);
	uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, 8 * PG);
	expect_mem_pattern(mc, 8 * PG, 1, 0); /* every page faulted in */
	write_val(v, PG, PG, 0x73);
	expect_mem_val(mc + PG, PG, 0x73);
	uint8_t *mv = map_rw(v);
	mv[4 * PG] = 0x74;
	cr_assert_eq(mc[4 * PG], 0x74, "the child mapping shows 0x%02x after a parent mapped write",
		     mc[4 * PG]);
}

Test(pager, at_least_on_write_child_sees_later_supplies, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 8 * PG);
	supply_pattern(p, v, 0, 2 * PG, 1);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 8 * PG);
	/* Supplied to the parent after the clone, without a request. */
	supply_pattern(p, v, 4 * PG, PG, 2);
	expect_vmo_pattern(c, 4 * PG, PG, 2);
	/* A child read of a page absent in the parent is a READ of the parent. */
	struct access a;
	start_vmo_read(&a, c, 6 * PG, PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 6 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 3);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, PG, 3, 6 * PG);
	access_free(&a);
	/* Through a mapping of the child. */
	uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, 8 * PG);
	start_map_read(&a, mc, 7 * PG, PG);
	r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 7 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 4);
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, 0);
	expect_mem_pattern(a.buf, PG, 4, 7 * PG);
	access_free(&a);
	expect_vmo_pattern(v, 7 * PG, PG, 4);
}

Test(pager, at_least_on_write_child_writes_are_its_own, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 8 * PG);
	write_val(c, PG + 5, 3, 0x81);
	uint8_t *mc = map_rw(c);
	mc[5 * PG] = 0x82;
	/* The parent does not see them and is not dirtied by them. */
	expect_vmo_pattern(v, 0, 8 * PG, 1);
	expect_clean(p, v, 0, 8 * PG);
	cr_assert_eq(modified(p, v, 0), 0, "a child write marked the parent modified");
	/* The child keeps them when the parent writes the same pages later. */
	write_val(v, PG, PG, 0x83);
	mc[5 * PG + 1] = 0x84;
	write_val(v, 5 * PG, PG, 0x85);
	expect_vmo_pattern(c, PG, 5, 1);
	expect_vmo_val(c, PG + 5, 3, 0x81);
	expect_vmo_pattern(c, PG + 8, PG - 8, 1);
	cr_assert_eq(mc[5 * PG], 0x82);
	cr_assert_eq(mc[5 * PG + 1], 0x84);
	cr_assert_eq(mc[5 * PG + 2], pattern_byte(1, 5 * PG + 2));
	/* Pages the child never wrote still follow. */
	write_val(v, 6 * PG, PG, 0x86);
	cr_assert_eq(mc[6 * PG], 0x86);
}

Test(pager, at_least_on_write_child_write_of_an_absent_page_asks_the_parents_pager, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	struct access a;
	start_vmo_write(&a, c, 2 * PG + 10, 1, 0x91);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 2 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 9);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	access_free(&a);
	/* The child's copy is the supplied page with its byte written. */
	expect_vmo_pattern(c, 2 * PG, 10, 9);
	expect_vmo_val(c, 2 * PG + 10, 1, 0x91);
	expect_vmo_pattern(c, 2 * PG + 11, PG - 11, 9);
	expect_vmo_pattern(v, 2 * PG, PG, 9);
	expect_clean(p, v, 0, 4 * PG);
}

/* Found by the DIFF_PAGER differential run (seeds 43 and 0x9a9e2). */
Test(pager, at_least_on_write_child_of_a_slice_reads_zero_past_the_slices_end, .timeout = 20)
{
	struct test_pager tp;
	tp_start(&tp, 31);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, 0, KEY, 10 * PG);
	uvmo_vmo_t *s = make_child(v, UVMO_CHILD_SLICE, 2 * PG, 4 * PG);
	/* Child page 0 is slice page 3 (root page 5); the rest lies past the
	 * slice's end and must read zero, not root pages 6-9. */
	uvmo_vmo_t *c = make_child(s, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 3 * PG, 8 * PG);
	uint8_t buf[UVMO_PAGE_SIZE];
	expect_ok(uvmo_vmo_read(c, buf, 0, PG));
	expect_mem_pattern(buf, PG, 31, 5 * PG);
	expect_vmo_val(c, PG, 7 * PG, 0);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, c, 0, 8 * PG);
	expect_mem_val(m + PG, 7 * PG, 0);
	tp_stop(&tp);
	expect_no_thread_failure();
}

/* Found by the DIFF_PAGER differential run (seed 41).  The pages are absent
 * in the parent (never read) when the child zeroes them. */
Test(pager, zero_of_a_whole_at_least_on_write_child_makes_it_read_zero, .timeout = 20)
{
	struct test_pager tp;
	tp_start(&tp, 32);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, 0, KEY, 44 * PG);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 44 * PG);
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_ZERO, 0, 44 * PG));
	expect_vmo_val(c, 0, 44 * PG, 0);
	/* The parent keeps its content, and later parent writes do not show. */
	expect_vmo_pattern(v, 0, 44 * PG, 32);
	write_val(v, 3 * PG, PG, 0x77);
	expect_vmo_val(c, 3 * PG, PG, 0);
	tp_stop(&tp);
	expect_no_thread_failure();
}

Test(pager, decommit_of_an_at_least_on_write_child_over_absent_parent_pages_reads_zero, .timeout = 20)
{
	struct test_pager tp;
	tp_start(&tp, 34);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, 0, KEY, 4 * PG);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	/* On a clone DECOMMIT behaves as ZERO (docs/api.md). */
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_DECOMMIT, PG, 2 * PG));
	expect_vmo_pattern(c, 0, PG, 34);
	expect_vmo_val(c, PG, 2 * PG, 0);
	expect_vmo_pattern(c, 3 * PG, PG, 34);
	tp_stop(&tp);
	expect_no_thread_failure();
}

/* Found by the DIFF_PAGER soak (seed 12091532296450943975, shrunk): a ZERO
 * of an at-least-on-write child where the parent reads zero anyway must
 * still stick: the child no longer follows those bytes.  (Seen failing: a
 * ZERO of part of a page is dropped entirely when the parent reads zero
 * there — a later parent write shows through, zeroed bytes included; with
 * a parent that reads non-zero the same ZERO works.) */
Test(pager, zero_of_an_at_least_on_write_child_where_the_parent_reads_zero_sticks, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	expect_ok(uvmo_pager_supply_pages(p, v, 0, 4 * PG, NULL)); /* zeros */
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_ZERO, PG, PG));          /* whole page */
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_ZERO, 2 * PG + 100, 50)); /* part of one */
	write_val(v, 0, 4 * PG, 0xea);
	expect_vmo_val(c, 0, PG, 0xea);
	expect_vmo_val(c, PG, PG, 0);
	/* The partly zeroed page became the child's own when it was zeroed:
	 * all of it stays as it was then (zero). */
	expect_vmo_val(c, 2 * PG, PG, 0);
	expect_vmo_val(c, 3 * PG, PG, 0xea);
}

Test(pager, zero_of_an_at_least_on_write_child_of_a_zeroed_root_sticks, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 0, 4 * PG)); /* never supplied */
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_ZERO, PG + 8, PG));
	write_val(v, 0, 4 * PG, 0xeb);
	expect_vmo_val(c, 0, PG, 0xeb);
	expect_vmo_val(c, PG, 2 * PG, 0);
	expect_vmo_val(c, 3 * PG, PG, 0xeb);
	expect_no_request(p, 0);
}

/* Found by the MAPPED_PAGER differential run (seed 120). */
Test(pager, zero_of_part_of_an_at_least_on_write_childs_page_absent_in_the_parent_sticks, .timeout = 20)
{
	struct test_pager tp;
	tp_start(&tp, 35);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, 0, KEY, 4 * PG);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	/* Page 2 is absent in the parent; the child zeroes part of it, so the
	 * child's copy (supplied content, those bytes zero) is taken now. */
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_ZERO, 2 * PG, 100));
	write_val(v, 2 * PG, PG, 0xd8);
	expect_vmo_val(c, 2 * PG, 100, 0);
	expect_vmo_pattern(c, 2 * PG + 100, PG - 100, 35);
	tp_stop(&tp);
	expect_no_thread_failure();
}

Test(pager, zero_of_part_of_an_at_least_on_write_child_makes_that_part_read_zero, .timeout = 20)
{
	struct test_pager tp;
	tp_start(&tp, 33);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, 0, KEY, 8 * PG);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 8 * PG);
	expect_vmo_pattern(c, 0, 8 * PG, 33);
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_ZERO, 2 * PG, 2 * PG));
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_ZERO, 5 * PG + 7, 9));
	expect_vmo_pattern(c, 0, 2 * PG, 33);
	expect_vmo_val(c, 2 * PG, 2 * PG, 0);
	expect_vmo_pattern(c, 4 * PG, PG + 7, 33);
	expect_vmo_val(c, 5 * PG + 7, 9, 0);
	expect_vmo_pattern(c, 5 * PG + 16, 3 * PG - 16, 33);
	tp_stop(&tp);
	expect_no_thread_failure();
}

Test(pager, snapshot_modified_child_snapshots_modified_pages_and_follows_the_others, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 8, 1);
	write_val(v, PG, PG, 0xa1); /* modified before the clone */
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_MODIFIED, 0, 8 * PG);
	expect_vmo_val(c, PG, PG, 0xa1);
	expect_vmo_pattern(c, 0, PG, 1);
	/* The modified page is frozen for the child ... */
	write_val(v, PG, PG, 0xa2);
	expect_vmo_val(c, PG, PG, 0xa1);
	expect_vmo_val(v, PG, PG, 0xa2);
	/* ... the unmodified ones follow the parent. */
	write_val(v, 3 * PG, PG, 0xa3);
	expect_vmo_val(c, 3 * PG, PG, 0xa3);
	/* Through mappings too. */
	uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, 8 * PG);
	uint8_t *mv = map_rw(v);
	mv[PG + 1] = 0xa4;
	mv[4 * PG] = 0xa5;
	cr_assert_eq(mc[PG + 1], 0xa1, "the snapshotted page changed in the child mapping");
	cr_assert_eq(mc[4 * PG], 0xa5, "an unmodified page does not follow in the child mapping");
}

Test(pager, snapshot_modified_child_writes_are_its_own, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 4, 1);
	write_val(v, 0, PG, 0xb1);
	writeback(p, v, UVMO_PAGER_OP_WRITEBACK_BEGIN, 0, 4 * PG);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_MODIFIED, 0, 4 * PG);
	write_val(c, 0, PG, 0xb2);
	write_val(c, 2 * PG, PG, 0xb3);
	expect_vmo_val(v, 0, PG, 0xb1);
	expect_vmo_pattern(v, PG, 3 * PG, 1);
	expect_clean(p, v, 0, 4 * PG);
	expect_vmo_val(c, 0, PG, 0xb2);
	expect_vmo_val(c, 2 * PG, PG, 0xb3);
}

Test(pager, at_least_on_write_child_sees_a_new_supply_after_the_parent_evicts, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 4, 1);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, 4 * PG);
	expect_mem_pattern(mc, 4 * PG, 1, 0); /* the child has seen (and mapped) every page */
	expect_vmo_pattern(c, 0, 4 * PG, 1);
	expect_rc(4, uvmo_pager_op_range(p, UVMO_PAGER_OP_EVICT, v, 0, 4 * PG, 0));
	/* The pager's content changed meanwhile: the child must show it. */
	supply_pattern(p, v, 0, 2 * PG, 2);
	expect_vmo_pattern(c, 0, 2 * PG, 2);
	expect_mem_pattern(mc, 2 * PG, 2, 0);
	/* A child read of an evicted page asks the parent's pager again: the
	 * evicted content is gone.  Through a call (page 3) ... */
	struct access a;
	start_vmo_read(&a, c, 3 * PG, PG);
	struct uvmo_page_request r;
	int n = uvmo_pager_get_requests(p, &r, 1, 1000);
	if (n != 1) {
		expect_access_done(&a, WAIT_MS);
		cr_assert_fail("a child read of evicted page 3 asked nothing and returned %d with %s content",
			       a.rc, a.buf[0] == pattern_byte(1, 3 * PG) ? "the evicted (seed 1)" : "other");
	}
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 3 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 3);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, PG, 3, 3 * PG);
	access_free(&a);
	/* ... and through the child's mapping (page 2). */
	start_map_read(&a, mc, 2 * PG, PG);
	n = uvmo_pager_get_requests(p, &r, 1, 1000);
	if (n != 1) {
		expect_access_done(&a, WAIT_MS);
		cr_assert_fail("a read of evicted page 2 through the child's mapping asked nothing and gave %s, %s content",
			       sig_name(a.sig),
			       a.buf[0] == pattern_byte(1, 2 * PG) ? "the evicted (seed 1)" : "other");
	}
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 2 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 4);
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, 0);
	expect_mem_pattern(a.buf, PG, 4, 2 * PG);
	access_free(&a);
}

Test(pager, at_least_on_write_child_follows_parent_zero_and_shrink, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_RESIZABLE, 8, 1);
	uvmo_vmo_t *c = NULL;
	int rc = uvmo_vmo_create_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 8 * PG, &c);
	if (rc == -ENOTSUP)
		cr_skip_test("at-least-on-write children of a resizable pager VMO are refused");
	expect_ok(rc);
	uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, 8 * PG);
	expect_mem_pattern(mc, 8 * PG, 1, 0);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, PG, PG));
	expect_vmo_val(c, PG, PG, 0);
	expect_mem_val(mc + PG, PG, 0);
	expect_ok(uvmo_vmo_set_size(v, 4 * PG));
	expect_vmo_val(c, 4 * PG, 4 * PG, 0);
	expect_mem_val(mc + 4 * PG, 4 * PG, 0);
	/* Growing the parent again never brings the old pages back. */
	expect_ok(uvmo_vmo_set_size(v, 8 * PG));
	expect_vmo_val(c, 4 * PG, 4 * PG, 0);
	expect_vmo_pattern(c, 2 * PG, 2 * PG, 1);
}

Test(pager, at_least_on_write_child_writes_send_no_dirty_request_to_the_parents_pager, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_TRAP_DIRTY, 4, 1);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	uint8_t *mc = map_rw(c);
	struct access a, b;
	start_vmo_write(&a, c, PG, 8, 0x41);
	start_map_write(&b, mc, 2 * PG, 8, 0x42);
	expect_access_done(&a, WAIT_MS);
	expect_access_done(&b, WAIT_MS);
	expect_rc(0, a.rc);
	cr_assert_eq(b.sig, 0);
	access_free(&a);
	access_free(&b);
	expect_no_request(p, 100);
	expect_clean(p, v, 0, 4 * PG);
}

Test(pager, a_pager_vmo_kept_alive_by_its_at_least_on_write_child_completes_after_it, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, 91, 4 * PG);
	supply_pattern(p, v, 0, 2 * PG, 1);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	uvmo_vmo_close(v);
	expect_no_request(p, 200);
	/* The child still reads through to the pager, with the closed handle
	 * in the request. */
	expect_vmo_pattern(c, 0, 2 * PG, 1);
	struct access a;
	start_vmo_read(&a, c, 3 * PG, PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, 91, v, 3 * PG, PG);
	supply_pattern(p, v, r.offset, r.length, 1);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	access_free(&a);
	uvmo_vmo_close(c);
	r = take_request(p, WAIT_MS);
	cr_assert_eq(r.type, UVMO_PAGER_COMPLETE, "got %s", req_type_name(r.type));
	cr_assert_eq(r.key, 91);
}

Test(pager, clones_of_an_at_least_on_write_child_other_than_slices_are_refused, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 4, 1);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	uvmo_vmo_t *x = NULL;
	expect_rc(-ENOTSUP, uvmo_vmo_create_child(c, UVMO_CHILD_SNAPSHOT, 0, 4 * PG, &x));
	expect_rc(-ENOTSUP, uvmo_vmo_create_child(c, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG, &x));
	expect_rc(-ENOTSUP, uvmo_vmo_create_child(c, UVMO_CHILD_SNAPSHOT_MODIFIED, 0, 4 * PG, &x));
	cr_assert_null(x);
	/* A slice of it is a window on the child. */
	write_val(c, PG, PG, 0x43);
	uvmo_vmo_t *s = make_child(c, UVMO_CHILD_SLICE, PG, 2 * PG);
	expect_vmo_val(s, 0, PG, 0x43);
	write_val(v, 2 * PG, PG, 0x44); /* the child follows, so the slice does */
	expect_vmo_val(s, PG, PG, 0x44);
	write_val(s, PG, 1, 0x45);
	expect_vmo_val(c, 2 * PG, 1, 0x45);
	expect_vmo_val(v, 2 * PG, 1, 0x44);
}

Test(pager, snapshot_modified_follows_pages_written_back_before_the_clone, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 4, 1);
	write_val(v, PG, PG, 0xa1);
	writeback(p, v, UVMO_PAGER_OP_WRITEBACK_BEGIN, 0, 4 * PG); /* Clean again */
	write_val(v, 2 * PG, PG, 0xa2);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_BEGIN, v, 2 * PG, PG, 0));
	/* page 1 Clean (written back), page 2 AwaitingClean (not Clean) */
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_MODIFIED, 0, 4 * PG);
	write_val(v, PG, PG, 0xb1);
	write_val(v, 2 * PG, PG, 0xb2);
	expect_vmo_val(c, PG, PG, 0xb1);  /* Clean at the clone: follows */
	expect_vmo_val(c, 2 * PG, PG, 0xa2); /* not Clean at the clone: snapshotted */
}

Test(pager, closing_a_child_leaves_the_pager_vmo_working, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 4, 1);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	write_val(c, PG, PG, 0xc1);
	uvmo_vmo_close(c);
	expect_no_request(p, 50); /* no COMPLETE for a child */
	expect_vmo_pattern(v, 0, 4 * PG, 1);
	write_val(v, 2 * PG, 1, 0xc2);
	expect_runs(p, v, "after the child died", { 2, 1, 0 });
}

/* ---------------------------------------------------------------------- */
/* errors: each returns the documented code and changes nothing          */
/* ---------------------------------------------------------------------- */

Test(pager, pager_create_rejects_null_and_unknown_options)
{
	uvmo_pager_t *p = NULL;
	expect_rc(-EINVAL, uvmo_pager_create(0, NULL));
	expect_rc(-EINVAL, uvmo_pager_create(1, &p));
	cr_assert_null(p);
	expect_rc(-EINVAL, uvmo_pager_create(1u << 31, &p));
	cr_assert_null(p);
}

Test(pager, pager_create_vmo_rejects_bad_arguments)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = NULL;
	uint64_t vmos = stats_now().vmos;
	expect_rc(-EINVAL, uvmo_pager_create_vmo(NULL, 0, KEY, PG, &v));
	expect_rc(-EINVAL, uvmo_pager_create_vmo(p, 0, KEY, PG, NULL));
	expect_rc(-EINVAL, uvmo_pager_create_vmo(p, 1u << 7, KEY, PG, &v));
	expect_rc(-EINVAL, uvmo_pager_create_vmo(p, UVMO_VMO_DISCARDABLE, KEY, PG, &v));
	expect_rc(-EINVAL, uvmo_pager_create_vmo(p, 0, KEY, PG + 1, &v));
	expect_rc(-EINVAL, uvmo_pager_create_vmo(p, 0, KEY, 0, &v));
	expect_rc(-ERANGE, uvmo_pager_create_vmo(p, 0, KEY, UVMO_VMO_MAX_SIZE + PG, &v));
	cr_assert_null(v);
	cr_assert_eq(stats_now().vmos, vmos, "a failed create left a VMO behind");
	expect_no_request(p, 0);
	/* The limits themselves are fine. */
	expect_ok(uvmo_pager_create_vmo(p, UVMO_VMO_RESIZABLE, KEY, 0, &v));
	uvmo_vmo_close(v);
	expect_ok(uvmo_pager_create_vmo(p, 0, KEY, UVMO_VMO_MAX_SIZE, &v));
	uvmo_vmo_close(v);
}

/* Destroying closes the handle: later calls see a closed handle. */
Test(pager, create_vmo_on_a_destroyed_pager_is_ebadf)
{
	uvmo_pager_t *p = make_pager();
	uvmo_pager_destroy(p);
	uvmo_vmo_t *v = NULL;
	expect_rc(-EBADF, uvmo_pager_create_vmo(p, 0, KEY, PG, &v));
	cr_assert_null(v);
	uvmo_pager_destroy(NULL); /* ignored */
}

Test(pager, get_requests_on_a_destroyed_pager_is_ebadf)
{
	uvmo_pager_t *p = make_pager();
	uvmo_pager_destroy(p);
	struct uvmo_page_request r;
	expect_rc(-EBADF, uvmo_pager_get_requests(p, &r, 1, 0));
}

struct waiting_get {
	uvmo_pager_t *p;
	int rc;
	atomic_bool done;
};

static void *waiting_get_thread(void *arg)
{
	struct waiting_get *w = arg;
	struct uvmo_page_request r;
	w->rc = uvmo_pager_get_requests(w->p, &r, 1, -1);
	atomic_store(&w->done, true);
	return NULL;
}

/* uvmo.h: calls waiting in the pager when it is destroyed return -EBUSY. */
Test(pager, get_requests_waiting_when_the_pager_is_destroyed_returns_ebusy, .timeout = 20)
{
	struct waiting_get w = { .p = make_pager(), .rc = 1 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, waiting_get_thread, &w), 0);
	usleep(100 * 1000);
	cr_assert(!atomic_load(&w.done), "get_requests(-1) returned %d with nothing pending", w.rc);
	uvmo_pager_destroy(w.p);
	double deadline = now_seconds() + WAIT_MS / 1000.0;
	while (!atomic_load(&w.done) && now_seconds() < deadline)
		usleep(1000);
	cr_assert(atomic_load(&w.done), "get_requests still waits after the pager was destroyed");
	cr_assert_eq(pthread_join(t, NULL), 0);
	expect_rc(-EBUSY, w.rc);
}

Test(pager, pager_fd_of_null_fails)
{
	int rc = uvmo_pager_fd(NULL);
	cr_assert(rc == -EBADF || rc == -EINVAL, "uvmo_pager_fd(NULL) returned %d", rc);
}

Test(pager, get_requests_rejects_null_and_keeps_pending_requests, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	struct access a;
	start_vmo_read(&a, v, PG, PG);
	cr_assert(pager_fd_readable(p, WAIT_MS));
	expect_rc(-EINVAL, uvmo_pager_get_requests(p, NULL, 1, 0));
	expect_rc(-EINVAL, uvmo_pager_get_requests(NULL, NULL, 0, 0));
	struct uvmo_page_request r;
	expect_rc(-EINVAL, uvmo_pager_get_requests(NULL, &r, 1, 0));
	/* max 0 takes nothing. */
	expect_rc(0, uvmo_pager_get_requests(p, &r, 0, 0));
	r = take_request(p, 0);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, PG, PG);
	supply_pattern(p, v, r.offset, r.length, 1);
	expect_access_done(&a, WAIT_MS);
	access_free(&a);
}

/* Pages 0-1 supplied with seed 1, page 1 written 0xee (Dirty), pages 2-3
 * absent.  check_untouched asserts exactly that is still the state: the
 * content, the dirty runs, and that pages 2-3 are still absent (a read asks
 * for them; the answer with seed 3 is what it shows). */
static uvmo_vmo_t *error_fixture(uvmo_pager_t *p)
{
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	supply_pattern(p, v, 0, 2 * PG, 1);
	write_val(v, PG, PG, 0xee);
	return v;
}

static void check_untouched(uvmo_pager_t *p, uvmo_vmo_t *v)
{
	expect_vmo_pattern(v, 0, PG, 1);
	expect_vmo_val(v, PG, PG, 0xee);
	expect_runs(p, v, "after the failed calls", { 1, 1, 0 });
	expect_no_request(p, 0);
	struct access a;
	start_vmo_read(&a, v, 2 * PG, 2 * PG);
	struct uvmo_page_request r[8];
	int n = take_requests_covering(p, r, 0, 8, 2 * PG, 2 * PG, WAIT_MS);
	for (int i = 0; i < n; i++)
		supply_pattern(p, v, r[i].offset, r[i].length, 3);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, 2 * PG, 3, 2 * PG);
	access_free(&a);
}

Test(pager, supply_rejects_bad_arguments_and_changes_nothing, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = error_fixture(p);
	uint8_t *data = malloc(8 * PG);
	fill_pattern(data, 8 * PG, 2, 0);
	expect_rc(-EINVAL, uvmo_pager_supply_pages(NULL, v, 2 * PG, PG, data));
	expect_rc(-EINVAL, uvmo_pager_supply_pages(p, NULL, 2 * PG, PG, data));
	expect_rc(-EINVAL, uvmo_pager_supply_pages(p, v, 2 * PG + 1, PG, data));
	expect_rc(-EINVAL, uvmo_pager_supply_pages(p, v, 2 * PG, PG + 1, data));
	expect_rc(-EINVAL, uvmo_pager_supply_pages(p, v, 2 * PG, 100, data));
	expect_rc(-ERANGE, uvmo_pager_supply_pages(p, v, 2 * PG, 3 * PG, data));
	expect_rc(-ERANGE, uvmo_pager_supply_pages(p, v, 4 * PG, PG, data));
	expect_rc(-ERANGE, uvmo_pager_supply_pages(p, v, ~(PG - 1), 2 * PG, data));
	expect_rc(-ERANGE, uvmo_pager_supply_pages(p, v, 2 * PG, ~(PG - 1), data));
	free(data);
	check_untouched(p, v);
}

Test(pager, supply_to_a_vmo_of_another_pager_or_an_anonymous_vmo_is_enoent, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_pager_t *q = make_pager();
	uvmo_vmo_t *v = error_fixture(p);
	uvmo_vmo_t *anon = make_vmo(4 * PG, 0);
	expect_rc(-ENOENT, uvmo_pager_supply_pages(q, v, 2 * PG, 2 * PG, NULL));
	expect_rc(-ENOENT, uvmo_pager_supply_pages(p, anon, 0, PG, NULL));
	write_val(anon, 0, PG, 0x11);
	uint8_t ones[UVMO_PAGE_SIZE];
	memset(ones, 0x22, sizeof(ones));
	expect_rc(-ENOENT, uvmo_pager_supply_pages(p, anon, 0, PG, ones));
	expect_vmo_val(anon, 0, PG, 0x11);
	expect_no_request(q, 0);
	check_untouched(p, v);
}

Test(pager, op_range_rejects_bad_arguments_and_changes_nothing, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = error_fixture(p);
	static const uint32_t ops[] = { UVMO_PAGER_OP_FAIL, UVMO_PAGER_OP_DIRTY,
					UVMO_PAGER_OP_WRITEBACK_BEGIN,
					UVMO_PAGER_OP_WRITEBACK_BEGIN_ZERO,
					UVMO_PAGER_OP_WRITEBACK_END, UVMO_PAGER_OP_EVICT };
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		uint32_t op = ops[i];
		uint64_t d = op == UVMO_PAGER_OP_FAIL ? EIO : 0;
		cr_assert_eq(uvmo_pager_op_range(NULL, op, v, 0, PG, d), -EINVAL, "op %u NULL pager", op);
		cr_assert_eq(uvmo_pager_op_range(p, op, NULL, 0, PG, d), -EINVAL, "op %u NULL vmo", op);
		cr_assert_eq(uvmo_pager_op_range(p, op, v, 1, PG, d), -EINVAL, "op %u unaligned offset", op);
		cr_assert_eq(uvmo_pager_op_range(p, op, v, 0, PG + 8, d), -EINVAL, "op %u unaligned length", op);
		cr_assert_eq(uvmo_pager_op_range(p, op, v, 0, 5 * PG, d), -ERANGE, "op %u past the end", op);
		cr_assert_eq(uvmo_pager_op_range(p, op, v, 4 * PG, PG, d), -ERANGE, "op %u at the end", op);
		cr_assert_eq(uvmo_pager_op_range(p, op, v, ~(PG - 1), 2 * PG, d), -ERANGE,
			     "op %u overflowing", op);
	}
	expect_rc(-EINVAL, uvmo_pager_op_range(p, 0, v, 0, 4 * PG, 0));
	expect_rc(-EINVAL, uvmo_pager_op_range(p, 99, v, 0, 4 * PG, 0));
	expect_rc(-EINVAL, uvmo_pager_op_range(p, UVMO_PAGER_OP_FAIL, v, 0, 4 * PG, 12345));
	/* Page 1 stayed Dirty (not AwaitingClean): END leaves it Dirty. */
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_END, v, 0, 4 * PG, 0));
	check_untouched(p, v);
}

Test(pager, op_range_on_a_vmo_of_another_pager_or_an_anonymous_vmo_is_enoent, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_pager_t *q = make_pager();
	uvmo_vmo_t *v = error_fixture(p);
	uvmo_vmo_t *anon = make_vmo(4 * PG, 0);
	write_val(anon, 0, PG, 0x11);
	for (uint32_t op = UVMO_PAGER_OP_FAIL; op <= UVMO_PAGER_OP_EVICT; op++) {
		uint64_t d = op == UVMO_PAGER_OP_FAIL ? EIO : 0;
		cr_assert_eq(uvmo_pager_op_range(q, op, v, 0, 4 * PG, d), -ENOENT,
			     "op %u with another pager", op);
		cr_assert_eq(uvmo_pager_op_range(p, op, anon, 0, 4 * PG, d), -ENOENT,
			     "op %u on an anonymous VMO", op);
	}
	expect_vmo_val(anon, 0, PG, 0x11);
	expect_ok(uvmo_pager_op_range(p, UVMO_PAGER_OP_WRITEBACK_END, v, 0, 4 * PG, 0));
	check_untouched(p, v);
}

Test(pager, query_dirty_ranges_rejects_bad_arguments, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_pager_t *q = make_pager();
	uvmo_vmo_t *v = error_fixture(p);
	uvmo_vmo_t *anon = make_vmo(4 * PG, 0);
	struct uvmo_dirty_range r[4];
	size_t actual = 77, avail = 77;
	expect_rc(-EINVAL, uvmo_pager_query_dirty_ranges(NULL, v, 0, 4 * PG, r, 4, &actual, &avail));
	expect_rc(-EINVAL, uvmo_pager_query_dirty_ranges(p, NULL, 0, 4 * PG, r, 4, &actual, &avail));
	expect_rc(-EINVAL, uvmo_pager_query_dirty_ranges(p, v, 0, 4 * PG, NULL, 4, &actual, &avail));
	expect_rc(-EINVAL, uvmo_pager_query_dirty_ranges(p, v, 7, 4 * PG - 8, r, 4, &actual, &avail));
	expect_rc(-EINVAL, uvmo_pager_query_dirty_ranges(p, v, 0, PG + 1, r, 4, &actual, &avail));
	expect_rc(-ERANGE, uvmo_pager_query_dirty_ranges(p, v, 0, 5 * PG, r, 4, &actual, &avail));
	expect_rc(-ERANGE, uvmo_pager_query_dirty_ranges(p, v, ~(PG - 1), 2 * PG, r, 4, &actual, &avail));
	expect_rc(-ENOENT, uvmo_pager_query_dirty_ranges(q, v, 0, 4 * PG, r, 4, &actual, &avail));
	expect_rc(-ENOENT, uvmo_pager_query_dirty_ranges(p, anon, 0, 4 * PG, r, 4, &actual, &avail));
	cr_assert(actual == 77 && avail == 77, "a failed query wrote actual/avail");
	check_untouched(p, v);
}

Test(pager, query_vmo_stats_rejects_bad_arguments_and_keeps_the_flag)
{
	uvmo_pager_t *p = make_pager();
	uvmo_pager_t *q = make_pager();
	uvmo_vmo_t *v = error_fixture(p); /* written: modified */
	uvmo_vmo_t *anon = make_vmo(4 * PG, 0);
	struct uvmo_pager_vmo_stats st;
	expect_rc(-EINVAL, uvmo_pager_query_vmo_stats(NULL, v, 0, &st));
	expect_rc(-EINVAL, uvmo_pager_query_vmo_stats(p, NULL, 0, &st));
	expect_rc(-EINVAL, uvmo_pager_query_vmo_stats(p, v, UVMO_PAGER_RESET_VMO_STATS, NULL));
	expect_rc(-EINVAL, uvmo_pager_query_vmo_stats(p, v, UVMO_PAGER_RESET_VMO_STATS | 2u, &st));
	expect_rc(-ENOENT, uvmo_pager_query_vmo_stats(q, v, UVMO_PAGER_RESET_VMO_STATS, &st));
	expect_rc(-ENOENT, uvmo_pager_query_vmo_stats(p, anon, 0, &st));
	cr_assert_eq(modified(p, v, 0), 1, "a failed RESET cleared the modified flag");
}

Test(pager, detach_rejects_bad_arguments, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_pager_t *q = make_pager();
	uvmo_vmo_t *v = error_fixture(p);
	uvmo_vmo_t *anon = make_vmo(4 * PG, 0);
	expect_rc(-EINVAL, uvmo_pager_detach_vmo(NULL, v));
	expect_rc(-EINVAL, uvmo_pager_detach_vmo(p, NULL));
	expect_rc(-ENOENT, uvmo_pager_detach_vmo(q, v));
	expect_rc(-ENOENT, uvmo_pager_detach_vmo(p, anon));
	expect_no_request(q, 0);
	check_untouched(p, v);
}

Test(pager, pager_calls_on_a_closed_handle_of_a_dead_vmo_are_ebadf, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	uvmo_vmo_close(v);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	cr_assert_eq(r.type, UVMO_PAGER_COMPLETE);
	struct uvmo_dirty_range dr[2];
	struct uvmo_pager_vmo_stats st;
	expect_rc(-EBADF, uvmo_pager_supply_pages(p, v, 0, PG, NULL));
	expect_rc(-EBADF, uvmo_pager_op_range(p, UVMO_PAGER_OP_FAIL, v, 0, PG, EIO));
	expect_rc(-EBADF, uvmo_pager_op_range(p, UVMO_PAGER_OP_EVICT, v, 0, PG, 0));
	expect_rc(-EBADF, uvmo_pager_query_dirty_ranges(p, v, 0, PG, dr, 2, NULL, NULL));
	expect_rc(-EBADF, uvmo_pager_query_vmo_stats(p, v, 0, &st));
	expect_rc(-EBADF, uvmo_pager_detach_vmo(p, v));
	/* A closed anonymous handle too. */
	uvmo_vmo_t *anon = make_vmo(PG, 0);
	uvmo_vmo_close(anon);
	expect_rc(-EBADF, uvmo_pager_supply_pages(p, anon, 0, PG, NULL));
	expect_no_request(p, 50);
}

Test(pager, a_closed_vmo_handle_refuses_clone_and_io, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 4, 1);
	uint8_t *m = map_rw(v);
	uvmo_vmo_close(v);
	uvmo_vmo_t *c = NULL;
	expect_rc(-EBADF, uvmo_vmo_create_child(v, UVMO_CHILD_SLICE, 0, PG, &c));
	expect_rc(-EBADF, uvmo_vmo_write(v, m, 0, 1));
	expect_mem_pattern(m, 4 * PG, 1, 0);
}

/* ---------------------------------------------------------------------- */
/* uvmo_vmo_duplicate                                                     */
/* ---------------------------------------------------------------------- */

Test(pager, duplicate_of_an_anonymous_vmo_shares_content_and_outlives_the_original)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	uvmo_vmo_t *d = NULL;
	expect_ok(uvmo_vmo_duplicate(v, &d));
	cr_assert_not_null(d);
	cr_assert_neq(d, v, "the duplicate is the same handle");
	write_val(v, 0, PG, 0xd1);
	expect_vmo_val(d, 0, PG, 0xd1);
	write_val(d, PG, PG, 0xd2);
	expect_vmo_val(v, PG, PG, 0xd2);
	cr_assert_eq(info_of(d).id, info_of(v).id, "the duplicate is another VMO");
	uint8_t *m = map_rw(d);
	m[2 * PG] = 0xd3;
	expect_vmo_val(v, 2 * PG, 1, 0xd3);
	expect_ok(uvmo_vmar_unmap(root_vmar(), m, 4 * PG));
	uvmo_vmo_close(v);
	uint8_t x;
	expect_rc(-EBADF, uvmo_vmo_read(v, &x, 0, 1));
	expect_vmo_val(d, 0, PG, 0xd1);
	expect_vmo_val(d, 2 * PG, 1, 0xd3);
	write_val(d, 3 * PG, PG, 0xd4);
	expect_vmo_val(d, 3 * PG, PG, 0xd4);
	uvmo_vmo_close(d);
	expect_rc(-EBADF, uvmo_vmo_read(d, &x, 0, 1));
}

Test(pager, duplicate_keeps_the_vmos_frames_until_the_last_handle_closes)
{
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	write_val(v, 0, 16 * PG, 1);
	uint64_t base = stats_now().committed_bytes;
	uvmo_vmo_t *d = NULL;
	expect_ok(uvmo_vmo_duplicate(v, &d));
	cr_assert_eq(stats_now().committed_bytes, base, "duplicating copied frames");
	uvmo_vmo_close(v);
	cr_assert_eq(stats_now().committed_bytes, base, "closing one handle freed frames");
	uvmo_vmo_close(d);
	cr_assert_leq(stats_now().committed_bytes + 16 * PG, base,
		      "closing the last handle did not free the frames");
}

Test(pager, duplicate_of_a_pager_vmo_is_served_through_the_create_handle, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, 66, 4 * PG);
	uvmo_vmo_t *d = NULL;
	expect_ok(uvmo_vmo_duplicate(v, &d));
	struct access a;
	start_vmo_read(&a, d, PG, PG);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, 66, v, PG, PG);
	supply_pattern(p, v, r.offset, r.length, 1);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, PG, 1, PG);
	access_free(&a);
	supply_pattern(p, v, 2 * PG, 2 * PG, 1);
	write_val(d, 2 * PG, 1, 0xe1);
	expect_vmo_val(v, 2 * PG, 1, 0xe1);
	expect_runs(p, v, "after a write through the duplicate", { 2, 1, 0 });
	/* The duplicate keeps the VMO alive: no COMPLETE, and the closed
	 * create handle still serves it. */
	uvmo_vmo_close(v);
	expect_no_request(p, 100);
	supply_pattern(p, v, 0, PG, 1);
	expect_vmo_pattern(d, 0, PG, 1);
	expect_vmo_val(d, 2 * PG, 1, 0xe1);
	uvmo_vmo_close(d);
	r = take_request(p, WAIT_MS);
	cr_assert_eq(r.type, UVMO_PAGER_COMPLETE, "got %s", req_type_name(r.type));
	cr_assert_eq(r.key, 66);
	cr_assert_eq(r.vmo, v);
}

Test(pager, duplicate_rejects_null_and_closed_handles)
{
	uvmo_vmo_t *v = make_vmo(PG, 0);
	uvmo_vmo_t *d = NULL;
	expect_rc(-EINVAL, uvmo_vmo_duplicate(NULL, &d));
	expect_rc(-EINVAL, uvmo_vmo_duplicate(v, NULL));
	uvmo_vmo_close(v);
	expect_rc(-EBADF, uvmo_vmo_duplicate(v, &d));
	cr_assert_null(d);
}

Test(pager, duplicate_keeps_the_no_write_right)
{
	uvmo_vmo_t *v = make_vmo(PG, 0);
	uvmo_vmo_t *c = make_child(v, UVMO_CHILD_SLICE | UVMO_CHILD_NO_WRITE, 0, PG);
	uvmo_vmo_t *d = NULL;
	expect_ok(uvmo_vmo_duplicate(c, &d));
	uint8_t x = 1;
	expect_rc(-EACCES, uvmo_vmo_write(d, &x, 0, 1));
}

/* ---------------------------------------------------------------------- */
/* concurrency with a background pager                                    */
/* ---------------------------------------------------------------------- */

#define ST_PAGES 64
#define ST_THREADS 4

struct st_worker {
	uint8_t *map;      /* mapping of the whole VMO */
	uvmo_vmo_t *vmo;
	int id;
	uint64_t seed;     /* the pattern the pager supplies */
	unsigned long accesses;
};

/* Each worker owns the pages p with p % ST_THREADS == id for writing and
 * reads every page: a page it does not own holds either the supplied
 * pattern or its owner's marker bytes at offset 0..7. */
static void *st_worker_thread(void *arg)
{
	struct st_worker *w = arg;
	uint64_t x = 0x2545f4914f6cdd1dull * (uint64_t)(w->id + 1);
	for (int i = 0; i < 3000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t page = x % ST_PAGES;
		uint64_t off = page * PG + 64 + (x >> 32) % (PG - 64);
		uint8_t b;
		if (i % 2 == 0 && page % ST_THREADS == (uint64_t)w->id) {
			w->map[page * PG] = (uint8_t)(0x80 | w->id); /* marker */
		} else if (i % 3 == 0) {
			if (uvmo_vmo_read(w->vmo, &b, off, 1) != 0) {
				thread_fail("worker %d: uvmo_vmo_read failed", w->id);
				return NULL;
			}
			tcheck(b == pattern_byte(w->seed, off),
			       "worker %d: read 0x%02x at %llu, supplied 0x%02x", w->id, b,
			       (unsigned long long)off, pattern_byte(w->seed, off));
		} else {
			b = w->map[off];
			tcheck(b == pattern_byte(w->seed, off),
			       "worker %d: mapped read 0x%02x at %llu, supplied 0x%02x", w->id, b,
			       (unsigned long long)off, pattern_byte(w->seed, off));
		}
		w->accesses++;
	}
	return NULL;
}

Test(pager, threads_faulting_and_reading_while_a_pager_thread_serves_them, .timeout = 60)
{
	struct test_pager tp;
	tp_start(&tp, 11);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, 0, KEY, ST_PAGES * PG);
	uint8_t *m = map_rw(v);
	struct st_worker w[ST_THREADS];
	for (int i = 0; i < ST_THREADS; i++)
		w[i] = (struct st_worker){ .map = m, .vmo = v, .id = i, .seed = 11 };
	pthread_t t[ST_THREADS];
	start_workers(t, ST_THREADS, st_worker_thread, w, sizeof(w[0]));
	join_workers(t, ST_THREADS);
	tp_stop(&tp);
	expect_no_thread_failure();
	/* Every page was asked for at most once: nothing is evicted here. */
	unsigned pages = atomic_load(&tp.read_pages);
	cr_assert_leq(pages, ST_PAGES, "%u pages asked for, the VMO has %d", pages, ST_PAGES);
	cr_assert_eq(tp.errors, 0);
	/* Pages with markers are exactly the dirty ones. */
	uint8_t *buf = read_all(v, NULL);
	struct uvmo_dirty_range r[MAX_RUNS];
	size_t n = dirty_runs(tp.pager, v, 0, ST_PAGES * PG, r);
	for (uint64_t page = 0; page < ST_PAGES; page++) {
		bool marked = buf[page * PG] == (uint8_t)(0x80 | (page % ST_THREADS));
		bool dirty = false;
		for (size_t i = 0; i < n; i++)
			dirty |= r[i].offset <= page * PG && page * PG < r[i].offset + r[i].length;
		cr_assert_eq(marked, dirty, "page %llu: written %d, reported dirty %d",
			     (unsigned long long)page, marked, dirty);
		expect_mem_pattern(buf + page * PG + 1, PG - 1, 11, page * PG + 1);
	}
	free(buf);
}

Test(pager, trap_dirty_writers_served_by_a_pager_thread_all_proceed, .timeout = 60)
{
	struct test_pager tp;
	tp_start(&tp, 12);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, UVMO_VMO_TRAP_DIRTY, KEY, ST_PAGES * PG);
	uint8_t *m = map_rw(v);
	struct st_worker w[ST_THREADS];
	for (int i = 0; i < ST_THREADS; i++)
		w[i] = (struct st_worker){ .map = m, .vmo = v, .id = i, .seed = 12 };
	pthread_t t[ST_THREADS];
	start_workers(t, ST_THREADS, st_worker_thread, w, sizeof(w[0]));
	join_workers(t, ST_THREADS);
	tp_stop(&tp);
	expect_no_thread_failure();
	unsigned dirties = atomic_load(&tp.dirties);
	cr_assert_gt(dirties, 0, "no DIRTY request with TRAP_DIRTY");
	uint8_t *buf = read_all(v, NULL);
	unsigned marked = 0;
	for (uint64_t page = 0; page < ST_PAGES; page++)
		marked += buf[page * PG] == (uint8_t)(0x80 | (page % ST_THREADS));
	cr_assert_leq(dirties, marked, "%u DIRTY requests for %u written pages", dirties, marked);
	free(buf);
}

/* ---------------------------------------------------------------------- */
/* more interplay                                                         */
/* ---------------------------------------------------------------------- */

Test(pager, requests_go_to_the_pager_of_the_vmo, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_pager_t *q = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, 1, 4 * PG);
	uvmo_vmo_t *w = make_pager_vmo(q, 0, 2, 4 * PG);
	struct access a;
	start_vmo_read(&a, w, 2 * PG, PG);
	struct uvmo_page_request r = take_request(q, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, 2, w, 2 * PG, PG);
	expect_no_request(p, 100);
	cr_assert(!pager_fd_readable(p, 0), "the other pager's descriptor became readable");
	supply_pattern(q, w, r.offset, r.length, 2);
	expect_access_done(&a, WAIT_MS);
	access_free(&a);
	(void)v;
}

struct taker {
	uvmo_pager_t *pager;
	atomic_bool *stop;
	struct uvmo_page_request got[256];
	int n;
};

static void *taker_thread(void *arg)
{
	struct taker *t = arg;
	while (!atomic_load(t->stop) && t->n < 256) {
		int rc = uvmo_pager_get_requests(t->pager, t->got + t->n, 1, 10);
		if (rc < 0) {
			thread_fail("get_requests returned %d", rc);
			return NULL;
		}
		for (int i = 0; i < rc; i++)
			if (uvmo_pager_supply_pages(t->pager, t->got[t->n + i].vmo,
						    t->got[t->n + i].offset, t->got[t->n + i].length,
						    NULL) != 0)
				thread_fail("supply failed");
		t->n += rc;
	}
	return NULL;
}

Test(pager, concurrent_get_requests_callers_get_disjoint_requests, .timeout = 30)
{
	uvmo_pager_t *p = make_pager();
	enum { VMOS = 16 };
	uvmo_vmo_t *v[VMOS];
	for (int i = 0; i < VMOS; i++)
		v[i] = make_pager_vmo(p, 0, (uint64_t)i, 4 * PG);
	atomic_bool stop = false;
	struct taker t[2] = { { .pager = p, .stop = &stop }, { .pager = p, .stop = &stop } };
	pthread_t tt[2];
	start_workers(tt, 2, taker_thread, t, sizeof(t[0]));
	/* Non-adjacent pages of many VMOs, from several threads at once. */
	struct access a[VMOS][2];
	for (int i = 0; i < VMOS; i++) {
		start_vmo_read(&a[i][0], v[i], 0, PG);
		start_vmo_read(&a[i][1], v[i], 2 * PG, PG);
	}
	for (int i = 0; i < VMOS; i++)
		for (int j = 0; j < 2; j++) {
			expect_access_done(&a[i][j], WAIT_MS);
			expect_rc(0, a[i][j].rc);
			expect_mem_val(a[i][j].buf, PG, 0);
			access_free(&a[i][j]);
		}
	atomic_store(&stop, true);
	join_workers(tt, 2);
	expect_no_thread_failure();
	/* No page was handed out twice (each was asked for once and supplied
	 * at once, so a duplicate means one request went to both callers). */
	for (int x = 0; x < 2; x++)
		for (int i = 0; i < t[x].n; i++)
			for (int y = 0; y < 2; y++)
				for (int j = 0; j < t[y].n; j++) {
					if (x == y && i == j)
						continue;
					const struct uvmo_page_request *r = &t[x].got[i], *s = &t[y].got[j];
					bool overlap = r->vmo == s->vmo && r->offset < s->offset + s->length &&
						       s->offset < r->offset + r->length;
					cr_assert(!overlap,
						  "key %llu page %llu handed out twice (callers %d and %d)",
						  (unsigned long long)r->key,
						  (unsigned long long)(r->offset / PG), x, y);
				}
	cr_assert_geq(t[0].n + t[1].n, VMOS, "only %d requests for %d VMOs", t[0].n + t[1].n,
		      VMOS);
}

Test(pager, commit_of_a_pager_vmo_asks_for_absent_pages_and_keeps_them_clean, .timeout = 20)
{
	struct test_pager tp;
	tp_start(&tp, 21);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, 0, KEY, 8 * PG);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 2 * PG, 4 * PG));
	tp_stop(&tp);
	expect_no_thread_failure();
	cr_assert_geq(atomic_load(&tp.read_pages), 4, "COMMIT of 4 absent pages asked for %u",
		      atomic_load(&tp.read_pages));
	/* Present now (the pager thread is gone: a request would hang; the
	 * reads run in threads with a bound). */
	struct access a;
	start_vmo_read(&a, v, 2 * PG, 4 * PG);
	expect_access_done(&a, WAIT_MS);
	expect_rc(0, a.rc);
	expect_mem_pattern(a.buf, 4 * PG, 21, 2 * PG);
	access_free(&a);
	expect_clean(tp.pager, v, 0, 8 * PG);
	cr_assert_eq(modified(tp.pager, v, 0), 0, "COMMIT set modified");
}

/* Found by the MAPPED_PAGER differential run (seed 113): the call returned
 * -115 (-EINPROGRESS), an errno outside the contract. */
Test(pager, vmar_op_range_commit_of_a_mapped_pager_vmo_waits_for_the_pager, .timeout = 20)
{
	struct test_pager tp;
	tp_start(&tp, 22);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, 0, KEY, 8 * PG);
	uint8_t *m = map_rw(v);
	expect_ok(uvmo_vmar_op_range(root_vmar(), UVMO_OP_COMMIT, m + 2 * PG, 3 * PG));
	expect_mem_pattern(m + 2 * PG, 3 * PG, 22, 2 * PG);
	tp_stop(&tp);
	expect_no_thread_failure();
	expect_clean(tp.pager, v, 0, 8 * PG);
}

Test(pager, vmar_op_range_map_range_of_a_mapped_pager_vmo_waits_for_the_pager, .timeout = 20)
{
	struct test_pager tp;
	tp_start(&tp, 23);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, 0, KEY, 8 * PG);
	uint8_t *m = map_rw(v);
	expect_ok(uvmo_vmar_op_range(root_vmar(), UVMO_OP_MAP_RANGE, m + 6 * PG, 2 * PG));
	expect_mem_pattern(m + 6 * PG, 2 * PG, 23, 6 * PG);
	tp_stop(&tp);
	expect_no_thread_failure();
	expect_clean(tp.pager, v, 0, 8 * PG);
}

Test(pager, map_range_option_on_a_pager_vmo_waits_for_the_pager, .timeout = 20)
{
	struct test_pager tp;
	tp_start(&tp, 24);
	uvmo_vmo_t *v = make_pager_vmo(tp.pager, 0, KEY, 4 * PG);
	uint8_t *m = map_vmo(root_vmar(), PERM_R | UVMO_VMAR_MAP_RANGE, v, 0, 4 * PG);
	tp_stop(&tp);
	expect_no_thread_failure();
	/* Populated: present without the pager thread. */
	struct access a;
	start_map_read(&a, m, 0, 4 * PG);
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, 0);
	expect_mem_pattern(a.buf, 4 * PG, 24, 0);
	access_free(&a);
}

Test(pager, evicted_page_written_through_a_mapping_asks_again_then_takes_the_write, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, 0, 4, 1);
	uint8_t *m = map_rw(v);
	m[PG] = 0x51; /* writable in the mapping, Dirty */
	writeback(p, v, UVMO_PAGER_OP_WRITEBACK_BEGIN, 0, 4 * PG);
	expect_rc(4, uvmo_pager_op_range(p, UVMO_PAGER_OP_EVICT, v, 0, 4 * PG, 0));
	struct access a;
	start_map_write(&a, m, PG + 1, 1, 0x52);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, PG, PG);
	expect_access_waiting(&a, 30);
	/* The pager supplies what it wrote back. */
	uint8_t page[UVMO_PAGE_SIZE];
	fill_pattern(page, PG, 1, PG);
	page[0] = 0x51;
	expect_ok(uvmo_pager_supply_pages(p, v, PG, PG, page));
	if (r.offset != PG || r.length != PG)
		supply_pattern(p, v, r.offset, r.length, 1);
	expect_access_done(&a, WAIT_MS);
	cr_assert_eq(a.sig, 0);
	access_free(&a);
	cr_assert_eq(m[PG], 0x51);
	cr_assert_eq(m[PG + 1], 0x52);
	expect_runs(p, v, "after the write", { 1, 1, 0 });
}

struct sys_read {
	int fd;
	uint8_t *dst;
	size_t len;
	ssize_t rc;
	int err;
	atomic_bool done;
};

static void *sys_read_thread(void *arg)
{
	struct sys_read *sr = arg;
	sr->rc = read(sr->fd, sr->dst, sr->len);
	sr->err = sr->rc < 0 ? errno : 0;
	atomic_store(&sr->done, true);
	return NULL;
}

Test(pager, read_syscall_into_an_absent_mapped_page_waits_for_the_pager, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = make_pager_vmo(p, 0, KEY, 4 * PG);
	uint8_t *m = map_rw(v);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	uint8_t msg[100];
	memset(msg, 0x6b, sizeof(msg));
	cr_assert_eq(write(fds[1], msg, sizeof(msg)), (ssize_t)sizeof(msg));
	/* read(2) into page 2, never supplied: the kernel's access must wait
	 * for the pager like any other (not fail with EFAULT). */
	struct sys_read sr = { .fd = fds[0], .dst = m + 2 * PG + 10, .len = sizeof(msg) };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, sys_read_thread, &sr), 0);
	struct uvmo_page_request r = take_request(p, WAIT_MS);
	expect_request_covers(r, UVMO_PAGER_READ, KEY, v, 2 * PG, PG);
	usleep(30 * 1000);
	cr_assert(!atomic_load(&sr.done), "read(2) finished before the supply: rc %zd errno %d",
		  sr.rc, sr.err);
	supply_pattern(p, v, r.offset, r.length, 4);
	double deadline = now_seconds() + WAIT_MS / 1000.0;
	while (!atomic_load(&sr.done) && now_seconds() < deadline)
		usleep(1000);
	cr_assert(atomic_load(&sr.done), "read(2) still waits after the supply");
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(sr.rc, (ssize_t)sizeof(msg), "read(2) returned %zd (errno %d)", sr.rc, sr.err);
	expect_mem_pattern(m + 2 * PG, 10, 4, 2 * PG);
	expect_mem_val(m + 2 * PG + 10, sizeof(msg), 0x6b);
	expect_mem_pattern(m + 2 * PG + 110, PG - 110, 4, 2 * PG + 110);
	expect_runs(p, v, "after read(2) wrote the page", { 2, 1, 0 });
	close(fds[0]);
	close(fds[1]);
}

Test(pager, zero_and_resize_set_the_modified_flag, .timeout = 20)
{
	uvmo_pager_t *p = make_pager();
	uvmo_vmo_t *v = supplied_vmo(p, UVMO_VMO_RESIZABLE, 4, 1);
	cr_assert_eq(modified(p, v, UVMO_PAGER_RESET_VMO_STATS), 0);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 10, 20));
	cr_assert_eq(modified(p, v, UVMO_PAGER_RESET_VMO_STATS), 1, "ZERO did not set modified");
	expect_ok(uvmo_vmo_set_size(v, 2 * PG));
	cr_assert_eq(modified(p, v, UVMO_PAGER_RESET_VMO_STATS), 1, "a shrink did not set modified");
}

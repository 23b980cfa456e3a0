/* SPDX-License-Identifier: MIT */
/*
 * diff_test_util.h — checking uvmo_vmo_diff against the pages a test knows
 * it wrote, shared by the restore and tracking suites: collect every run
 * (checking the output convention of uvmo_pager_query_dirty_ranges on the
 * way), build the runs a set of dirty pages should give, compare.
 * Include after vmo_test_util.h (PG, expect_ok).
 */
#ifndef UVMO_TESTS_DIFF_TEST_UTIL_H
#define UVMO_TESTS_DIFF_TEST_UTIL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <criterion/criterion.h>
#include <uvmo/uvmo.h>

#define RUNS_CAP 8192

struct runs {
	size_t n;
	struct uvmo_dirty_range r[RUNS_CAP];
	size_t calls;
};

/*
 * Every run of uvmo_vmo_diff(v, s) in [off, off + len), asked for @max at a
 * time and resumed from the end of the last run stored, as the header says.
 * Checks the convention on the way: actual <= max, actual <= avail, runs
 * page-aligned, non-empty, inside the range, in order, adjacent ones merged,
 * and the first call's avail is the number of runs in all.
 */
static void diff_collect(uvmo_vmo_t *v, uvmo_vmo_t *s, uint64_t off, uint64_t len, size_t max,
			 struct runs *out)
{
	struct uvmo_dirty_range *buf = calloc(max ? max : 1, sizeof(*buf));
	cr_assert_not_null(buf);
	uint64_t end = off + len, cur = off;
	size_t first_avail = 0;
	out->n = 0;
	out->calls = 0;
	for (;;) {
		size_t actual = 12345, avail = 54321;
		cr_assert_lt(out->calls, (size_t)RUNS_CAP + 2, "uvmo_vmo_diff does not converge");
		expect_ok(uvmo_vmo_diff(v, s, cur, end - cur, buf, max, &actual, &avail));
		out->calls++;
		cr_assert_leq(actual, max, "diff stored %zu runs with max %zu", actual, max);
		cr_assert_leq(actual, avail, "diff stored %zu runs but says %zu exist", actual, avail);
		if (out->calls == 1)
			first_avail = avail;
		for (size_t i = 0; i < actual; i++) {
			const struct uvmo_dirty_range *r = &buf[i];
			cr_assert(r->offset % PG == 0 && r->length % PG == 0 && r->length > 0,
				  "diff run [0x%llx, +0x%llx) is not whole pages",
				  (unsigned long long)r->offset, (unsigned long long)r->length);
			cr_assert(r->offset >= cur && r->offset + r->length <= end,
				  "diff run [0x%llx, +0x%llx) lies outside the range asked [0x%llx, 0x%llx)",
				  (unsigned long long)r->offset, (unsigned long long)r->length,
				  (unsigned long long)cur, (unsigned long long)end);
			if (out->n) {
				const struct uvmo_dirty_range *p = &out->r[out->n - 1];
				cr_assert(p->offset + p->length < r->offset,
					  "diff runs [0x%llx, +0x%llx) and [0x%llx, +0x%llx) are out of"
					  " order, overlap or are adjacent (not merged)",
					  (unsigned long long)p->offset, (unsigned long long)p->length,
					  (unsigned long long)r->offset, (unsigned long long)r->length);
			}
			cr_assert_lt(out->n, (size_t)RUNS_CAP);
			out->r[out->n++] = *r;
		}
		if (actual == avail || actual == 0) {
			cr_assert_eq(avail, actual, "diff stored no run but says %zu exist", avail);
			break;
		}
		cur = buf[actual - 1].offset + buf[actual - 1].length;
		if (cur >= end)
			break;
	}
	cr_assert_eq(out->n, first_avail,
		     "the first diff call said %zu runs exist, resuming found %zu", first_avail,
		     out->n);
	free(buf);
}

/* Runs of the pages marked in @dirty[0, pages), clipped to [first, first + n). */
static void runs_of(const bool *dirty, uint64_t first, uint64_t n, struct runs *out)
{
	out->n = 0;
	for (uint64_t p = first; p < first + n;) {
		if (!dirty[p]) {
			p++;
			continue;
		}
		uint64_t q = p;
		while (q < first + n && dirty[q])
			q++;
		cr_assert_lt(out->n, (size_t)RUNS_CAP);
		out->r[out->n++] = (struct uvmo_dirty_range){ .offset = p * PG, .length = (q - p) * PG };
		p = q;
	}
}

static void format_runs(const struct runs *r, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = 0;
	for (size_t i = 0; i < r->n && used + 40 < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s[%llu,%llu)", i ? " " : "",
					 (unsigned long long)(r->r[i].offset / PG),
					 (unsigned long long)((r->r[i].offset + r->r[i].length) / PG));
	if (!r->n)
		snprintf(buf, len, "(none)");
}

/* Assert that diff(v, s) over pages [first, first + n) lists exactly the
 * runs of the pages marked in @dirty (in pages), asked @max at a time. */
static void expect_diff_max(uvmo_vmo_t *v, uvmo_vmo_t *s, const bool *dirty, uint64_t first,
			    uint64_t n, size_t max)
{
	static struct runs got, want;
	diff_collect(v, s, first * PG, n * PG, max, &got);
	runs_of(dirty, first, n, &want);
	bool same = got.n == want.n;
	for (size_t i = 0; same && i < got.n; i++)
		same = got.r[i].offset == want.r[i].offset && got.r[i].length == want.r[i].length;
	if (!same) {
		char g[1024], w[1024];
		format_runs(&got, g, sizeof(g));
		format_runs(&want, w, sizeof(w));
		cr_assert_fail("diff of pages [%llu, %llu) (max %zu): got runs %s, expected %s",
			       (unsigned long long)first, (unsigned long long)(first + n), max, g, w);
	}
}

static void expect_diff(uvmo_vmo_t *v, uvmo_vmo_t *s, const bool *dirty, uint64_t pages)
{
	expect_diff_max(v, s, dirty, 0, pages, RUNS_CAP);
}

#endif

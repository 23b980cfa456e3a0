/* SPDX-License-Identifier: MIT */
/*
 * The memory rules.  Each is checked three ways: the VMO's own
 * info.committed_bytes (and attributed_bytes), the pool's
 * uvmo_get_stats().committed_bytes, and stats.host_bytes, what the kernel
 * says the pool memfd really holds.
 */
#include "vmo_test_util.h"

struct pool {
	uint64_t committed;
	uint64_t host;
};

static struct pool pool_now(void)
{
	struct uvmo_stats s = stats_now();
	return (struct pool){ .committed = s.committed_bytes, .host = s.host_bytes };
}

/* The pool holds exactly @pages more pages than at @base, by uvmo's count
 * and by the kernel's. */
#define expect_pool_delta(base, pages)                                        \
	do {                                                                  \
		struct pool now_ = pool_now();                                \
		int64_t want_ = (int64_t)(pages) * (int64_t)PG;               \
		int64_t dc_ = (int64_t)(now_.committed - (base).committed);   \
		int64_t dh_ = (int64_t)(now_.host - (base).host);             \
		cr_assert_eq(dc_, want_,                                      \
			     "stats.committed_bytes changed by %lld pages, expected %lld", \
			     (long long)(dc_ / (int64_t)PG), (long long)(want_ / (int64_t)PG)); \
		cr_assert_eq(dh_, want_,                                      \
			     "stats.host_bytes changed by %lld bytes (%lld pages), expected %lld pages", \
			     (long long)dh_, (long long)(dh_ / (int64_t)PG),  \
			     (long long)(want_ / (int64_t)PG));               \
	} while (0)

#define expect_committed(v, pages)                                            \
	do {                                                                  \
		struct uvmo_vmo_info i_ = info_of(v);                         \
		cr_assert_eq(i_.committed_bytes, (uint64_t)(pages) * PG,      \
			     "%s: committed_bytes is %llu pages, expected %llu", \
			     #v, (unsigned long long)(i_.committed_bytes / PG), \
			     (unsigned long long)(pages));                    \
		cr_assert_geq(i_.attributed_bytes, i_.committed_bytes,        \
			      "%s: attributed_bytes %llu < committed_bytes %llu", \
			      #v, (unsigned long long)i_.attributed_bytes,    \
			      (unsigned long long)i_.committed_bytes);        \
	} while (0)

#define expect_attributed(v, pages)                                           \
	do {                                                                  \
		struct uvmo_vmo_info i_ = info_of(v);                         \
		cr_assert_eq(i_.attributed_bytes, (uint64_t)(pages) * PG,     \
			     "%s: attributed_bytes is %llu pages, expected %llu", \
			     #v, (unsigned long long)(i_.attributed_bytes / PG), \
			     (unsigned long long)(pages));                    \
	} while (0)

/* A VMO of @n pages, every page written with @val. */
static uvmo_vmo_t *written(uint64_t n, uint8_t val)
{
	uvmo_vmo_t *v = make_vmo(n * PG, 0);
	fill_pages(v, 0, n, val);
	return v;
}

/* ---------------------------------------------------------------------- */
/* what things cost                                                       */
/* ---------------------------------------------------------------------- */

Test(memory, fresh_vmo_costs_nothing)
{
	struct pool base = pool_now();
	uvmo_vmo_t *v = make_vmo(1ull << 30, 0);
	expect_committed(v, 0);
	expect_attributed(v, 0);
	expect_pool_delta(base, 0);
}

Test(memory, reading_unwritten_pages_costs_nothing)
{
	uvmo_vmo_t *v = make_vmo(64 * PG, 0);
	struct pool base = pool_now();
	free(read_all(v, NULL));
	expect_committed(v, 0);
	expect_pool_delta(base, 0);
}

Test(memory, writing_n_pages_costs_n_pages)
{
	uvmo_vmo_t *v = make_vmo(64 * PG, 0);
	struct pool base = pool_now();
	fill_pages(v, 3, 7, 0x11);
	expect_committed(v, 7);
	expect_attributed(v, 7);
	expect_pool_delta(base, 7);

	/* One multi-page call costs the same per page. */
	uint8_t *buf = malloc(5 * PG);
	memset(buf, 0x12, 5 * PG);
	expect_ok(uvmo_vmo_write(v, buf, 20 * PG, 5 * PG));
	free(buf);
	expect_committed(v, 12);
	expect_pool_delta(base, 12);
}

Test(memory, a_small_write_costs_one_page_per_page_touched)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	struct pool base = pool_now();
	uint8_t b[2] = { 1, 2 };
	expect_ok(uvmo_vmo_write(v, b, 100, 1));
	expect_committed(v, 1);
	expect_pool_delta(base, 1);
	expect_ok(uvmo_vmo_write(v, b, 3 * PG - 1, 2));
	expect_committed(v, 3);
	expect_pool_delta(base, 3);
}

Test(memory, rewriting_a_page_costs_nothing_more)
{
	uvmo_vmo_t *v = written(4, 0x13);
	struct pool base = pool_now();
	fill_pages(v, 0, 4, 0x14);
	fill_page(v, 2, 0x15);
	expect_committed(v, 4);
	expect_pool_delta(base, 0);
}

Test(memory, vmos_are_accounted_separately)
{
	struct pool base = pool_now();
	uvmo_vmo_t *a = written(3, 1), *b = written(5, 2);
	expect_committed(a, 3);
	expect_committed(b, 5);
	expect_pool_delta(base, 8);
	uvmo_vmo_close(a);
	expect_committed(b, 5);
	expect_pool_delta(base, 5);
}

Test(memory, closing_a_vmo_returns_its_frames)
{
	struct pool base = pool_now();
	uvmo_vmo_t *v = written(16, 0x16);
	expect_pool_delta(base, 16);
	uvmo_vmo_close(v);
	expect_pool_delta(base, 0);
}

/* ---------------------------------------------------------------------- */
/* snapshots                                                              */
/* ---------------------------------------------------------------------- */

Test(memory, snapshot_costs_no_frames_until_written)
{
	uvmo_vmo_t *p = written(8, 0x21);
	struct pool base = pool_now();
	uvmo_vmo_t *c = snap(p);
	expect_committed(c, 0);
	expect_attributed(c, 0);
	expect_pool_delta(base, 0);
	free(read_all(c, NULL));
	free(read_all(p, NULL));
	expect_committed(c, 0);
	expect_pool_delta(base, 0);
}

Test(memory, chain_of_snapshots_costs_no_frames_until_written)
{
	uvmo_vmo_t *v = written(8, 0x22);
	struct pool base = pool_now();
	for (int i = 0; i < 8; i++) {
		v = snap(v);
		expect_committed(v, 0);
	}
	expect_pool_delta(base, 0);
}

Test(memory, writing_a_shared_page_in_the_snapshot_costs_exactly_one_frame)
{
	uvmo_vmo_t *p = written(8, 0x23);
	uvmo_vmo_t *c = snap(p);
	struct pool base = pool_now();
	uint64_t copies = stats_now().cow_copies;
	fill_page(c, 3, 0x24);
	expect_committed(c, 1);
	expect_pool_delta(base, 1);
	cr_assert_eq(stats_now().cow_copies, copies + 1);
	/* A second write to the same page costs nothing more. */
	fill_page(c, 3, 0x25);
	expect_pool_delta(base, 1);
	cr_assert_eq(stats_now().cow_copies, copies + 1);
}

Test(memory, writing_a_shared_page_in_the_parent_costs_exactly_one_frame)
{
	uvmo_vmo_t *p = written(8, 0x26);
	uvmo_vmo_t *c = snap(p);
	struct pool base = pool_now();
	uint64_t copies = stats_now().cow_copies;
	fill_page(p, 5, 0x27);
	expect_committed(p, 1);
	expect_committed(c, 0);
	expect_pool_delta(base, 1);
	cr_assert_eq(stats_now().cow_copies, copies + 1);
}

Test(memory, a_partial_write_of_a_shared_page_costs_exactly_one_frame)
{
	uvmo_vmo_t *p = written(4, 0x28);
	uvmo_vmo_t *c = snap(p);
	struct pool base = pool_now();
	uint8_t b = 1;
	expect_ok(uvmo_vmo_write(c, &b, 2 * PG + 17, 1));
	expect_committed(c, 1);
	expect_pool_delta(base, 1);
}

Test(memory, last_sharer_takes_the_hidden_page_without_a_copy_parent_first)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	struct pool base = pool_now();
	fill_page(p, 2, 0x31);
	uvmo_vmo_t *c = snap(p);
	expect_pool_delta(base, 1);
	fill_page(p, 2, 0x32);
	expect_pool_delta(base, 2);
	struct uvmo_stats before = stats_now();
	fill_page(c, 2, 0x33);
	expect_pool_delta(base, 2);
	struct uvmo_stats after = stats_now();
	cr_assert_eq(after.cow_moves, before.cow_moves + 1, "cow_moves %llu -> %llu",
		     (unsigned long long)before.cow_moves, (unsigned long long)after.cow_moves);
	cr_assert_eq(after.cow_copies, before.cow_copies, "the last sharer's write copied");
	expect_committed(p, 1);
	expect_committed(c, 1);
	expect_page(p, 2, 0x32);
	expect_page(c, 2, 0x33);
}

Test(memory, last_sharer_takes_the_hidden_page_without_a_copy_child_first)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	struct pool base = pool_now();
	fill_page(p, 1, 0x34);
	uvmo_vmo_t *c = snap(p);
	fill_page(c, 1, 0x35);
	expect_pool_delta(base, 2);
	uint64_t moves = stats_now().cow_moves;
	fill_page(p, 1, 0x36);
	expect_pool_delta(base, 2);
	cr_assert_eq(stats_now().cow_moves, moves + 1);
	expect_page(p, 1, 0x36);
	expect_page(c, 1, 0x35);
}

Test(memory, writing_every_page_on_both_sides_costs_two_copies_not_three)
{
	uvmo_vmo_t *p = written(16, 0x37);
	struct pool base = pool_now();
	uvmo_vmo_t *c = snap(p);
	fill_pages(p, 0, 16, 0x38);
	fill_pages(c, 0, 16, 0x39);
	expect_pool_delta(base, 16);
	expect_committed(p, 16);
	expect_committed(c, 16);
}

Test(memory, taking_over_the_last_shared_page_needs_no_free_frame)
{
	init_with_pool_limit(64 * PG);
	uvmo_vmo_t *p = written(32, 0x3a);
	uvmo_vmo_t *c = snap(p);
	fill_page(p, 0, 0x3b);
	/* Fill the pool to the limit with ballast. */
	uvmo_vmo_t *q = make_vmo(64 * PG, 0);
	uint64_t n = 0;
	while (uvmo_vmo_write(q, &n, n * PG, 1) == 0)
		n++;
	cr_assert_eq(stats_now().committed_bytes, 64 * PG);
	/* No frame is free, but the child is the last sharer of page 0. */
	fill_page(c, 0, 0x3c);
	expect_page(c, 0, 0x3c);
	expect_page(p, 0, 0x3b);
	/* Page 1 is still shared: that one needs a frame. */
	uint8_t b = 0x3d;
	expect_rc(-ENOMEM, uvmo_vmo_write(c, &b, PG, 1));
	expect_page(c, 1, 0x3a);
	expect_page(p, 1, 0x3a);
}

/* ---------------------------------------------------------------------- */
/* closing clones gives memory back                                       */
/* ---------------------------------------------------------------------- */

Test(memory, closing_a_snapshot_frees_its_pages_and_the_hidden_pages_only_it_saw)
{
	uvmo_vmo_t *p = written(4, 0x41);
	struct pool base = pool_now();
	uvmo_vmo_t *c = snap(p);
	fill_page(c, 0, 0x42);
	fill_page(p, 1, 0x43);
	expect_pool_delta(base, 2);
	uvmo_vmo_close(c);
	expect_pool_delta(base, 0);
	expect_committed(p, 4);
	expect_page(p, 0, 0x41);
	expect_page(p, 1, 0x43);
	expect_pages(p, 2, 2, 0x41);
	cr_assert_eq(stats_now().hidden_nodes, 0);
}

Test(memory, closing_the_parent_frees_pages_only_it_saw)
{
	uvmo_vmo_t *p = written(4, 0x44);
	struct pool base = pool_now();
	uvmo_vmo_t *c = snap(p);
	fill_pages(c, 0, 4, 0x45);
	/* The hidden pages are now P's alone: this write moves, not copies. */
	fill_page(p, 0, 0x46);
	expect_pool_delta(base, 4);
	uvmo_vmo_close(p);
	expect_pool_delta(base, 0);
	expect_committed(c, 4);
	expect_pages(c, 0, 4, 0x45);
}

Test(memory, closing_the_parent_hands_its_pages_to_the_surviving_snapshot)
{
	uvmo_vmo_t *p = written(4, 0x47);
	struct pool base = pool_now();
	uvmo_vmo_t *c = snap(p);
	uint64_t merges = stats_now().merges;
	uvmo_vmo_close(p);
	expect_pool_delta(base, 0);
	cr_assert_eq(stats_now().merges, merges + 1);
	cr_assert_eq(stats_now().hidden_nodes, 0);
	expect_committed(c, 4);
	expect_attributed(c, 4);
	/* The survivor owns them now: writing costs nothing new. */
	fill_pages(c, 0, 4, 0x48);
	expect_pool_delta(base, 0);
}

enum { NCLONES = 4 };

static bool next_permutation(int *a, int n)
{
	int i = n - 2;
	while (i >= 0 && a[i] >= a[i + 1])
		i--;
	if (i < 0)
		return false;
	int j = n - 1;
	while (a[j] <= a[i])
		j--;
	int t = a[i];
	a[i] = a[j];
	a[j] = t;
	for (int l = i + 1, r = n - 1; l < r; l++, r--) {
		t = a[l];
		a[l] = a[r];
		a[r] = t;
	}
	return true;
}

/* Clones of @p: A = snap(P), B = snap(A), C = snap(P), S = slice(A);
 * each writes some pages, P writes some too. */
static void build_clones(uvmo_vmo_t *p, uvmo_vmo_t **v)
{
	v[0] = snap(p);
	fill_page(v[0], 0, 0xa0);
	fill_page(p, 1, 0xa1);
	v[1] = snap(v[0]);
	fill_page(v[1], 2, 0xb2);
	fill_page(v[0], 3, 0xa3);
	v[2] = snap(p);
	fill_page(v[2], 4, 0xc4);
	fill_page(p, 5, 0xa5);
	v[3] = make_child(v[0], UVMO_CHILD_SLICE, 6 * PG, 2 * PG);
	fill_page(v[3], 0, 0xd6);
	fill_page(v[1], 7, 0xb7);
}

Test(memory, closing_every_clone_in_any_order_returns_the_pool_to_its_earlier_bytes)
{
	uvmo_vmo_t *p = written(8, 0x50);
	struct pool base = pool_now();
	int order[NCLONES] = { 0, 1, 2, 3 };
	int perms = 0;
	do {
		uvmo_vmo_t *v[NCLONES];
		/* build_clones changed P; give it back its first content. */
		fill_pages(p, 0, 8, 0x50);
		expect_pool_delta(base, 0);
		build_clones(p, v);
		uint8_t *pc = read_all(p, NULL);
		struct pool prev = pool_now();
		for (int n = 0; n < NCLONES; n++) {
			uvmo_vmo_close(v[order[n]]);
			struct pool now = pool_now();
			cr_assert_leq(now.committed, prev.committed,
				      "order %d%d%d%d: closing clone %d grew the pool", order[0],
				      order[1], order[2], order[3], order[n]);
			prev = now;
		}
		expect_pool_delta(base, 0);
		expect_committed(p, 8);
		cr_assert_eq(stats_now().hidden_nodes, 0);
		uint8_t *after = read_all(p, NULL);
		cr_assert_arr_eq(after, pc, 8 * PG, "order %d%d%d%d: parent content changed",
				 order[0], order[1], order[2], order[3]);
		free(after);
		free(pc);
		perms++;
	} while (next_permutation(order, NCLONES));
	cr_assert_eq(perms, 24);
}

Test(memory, closing_a_whole_tree_in_any_order_returns_every_frame)
{
	struct pool base = pool_now();
	uint64_t vmos = stats_now().vmos;
	int order[NCLONES + 1] = { 0, 1, 2, 3, 4 };
	do {
		uvmo_vmo_t *v[NCLONES + 1];
		v[NCLONES] = written(8, 0x51);
		build_clones(v[NCLONES], v);
		for (int n = 0; n <= NCLONES; n++)
			uvmo_vmo_close(v[order[n]]);
		expect_pool_delta(base, 0);
		cr_assert_eq(stats_now().vmos, vmos);
		cr_assert_eq(stats_now().hidden_nodes, 0);
	} while (next_permutation(order, NCLONES + 1));
}

Test(memory, closing_a_deep_chain_returns_every_frame)
{
	struct pool base = pool_now();
	enum { D = 12 };
	uvmo_vmo_t *c[D];
	c[0] = written(D, 0x52);
	for (int i = 1; i < D; i++) {
		c[i] = snap(c[i - 1]);
		fill_page(c[i], (uint64_t)i, (uint8_t)i);
		fill_page(c[i - 1], (uint64_t)i, (uint8_t)(0x80 + i));
	}
	/* Close from the middle outwards. */
	for (int i = D / 2, j = D / 2 + 1; i >= 0 || j < D; i--, j++) {
		if (i >= 0)
			uvmo_vmo_close(c[i]);
		if (j < D)
			uvmo_vmo_close(c[j]);
	}
	expect_pool_delta(base, 0);
	cr_assert_eq(stats_now().nodes, 0);
	cr_assert_eq(stats_now().hidden_nodes, 0);
}

/* ---------------------------------------------------------------------- */
/* decommit / zero / commit / resize                                      */
/* ---------------------------------------------------------------------- */

Test(memory, decommit_of_whole_pages_returns_their_frames)
{
	uvmo_vmo_t *v = written(8, 0x61);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 2 * PG, 3 * PG));
	expect_committed(v, 5);
	expect_pool_delta(base, -3);
}

Test(memory, zero_of_whole_pages_returns_their_frames)
{
	uvmo_vmo_t *v = written(8, 0x62);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 0, 4 * PG));
	expect_committed(v, 4);
	expect_pool_delta(base, -4);
}

Test(memory, zero_of_a_ragged_range_returns_the_whole_pages_inside_it)
{
	uvmo_vmo_t *v = written(8, 0x63);
	struct pool base = pool_now();
	/* Pages 1 and 2 are covered whole; 0 and 3 only in part. */
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, PG / 2, 3 * PG));
	struct pool now = pool_now();
	cr_assert_leq(now.committed, base.committed - 2 * PG);
	cr_assert_leq(now.host, base.host - 2 * PG);
	cr_assert_leq(info_of(v).committed_bytes, 6 * PG);
}

Test(memory, zero_of_part_of_an_unwritten_page_costs_nothing)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, 100, 200));
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, PG - 1, 2));
	expect_committed(v, 0);
	expect_pool_delta(base, 0);
}

Test(memory, decommit_of_unwritten_pages_costs_nothing)
{
	uvmo_vmo_t *v = written(2, 0x64);
	uvmo_vmo_t *w = make_vmo(8 * PG, 0);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_op_range(w, UVMO_OP_DECOMMIT, 0, 8 * PG));
	expect_ok(uvmo_vmo_op_range(w, UVMO_OP_ZERO, 0, 8 * PG));
	expect_committed(w, 0);
	expect_committed(v, 2);
	expect_pool_delta(base, 0);
}

Test(memory, zeroing_shared_pages_in_a_snapshot_costs_no_frames)
{
	uvmo_vmo_t *p = written(8, 0x65);
	uvmo_vmo_t *c = snap(p);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_ZERO, 0, 8 * PG));
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_DECOMMIT, 0, 4 * PG));
	expect_pool_delta(base, 0);
	expect_committed(c, 0);
	expect_pages(c, 0, 8, 0);
	expect_pages(p, 0, 8, 0x65);
}

Test(memory, zeroing_written_pages_in_a_snapshot_returns_their_frames)
{
	uvmo_vmo_t *p = written(4, 0x66);
	uvmo_vmo_t *c = snap(p);
	fill_pages(c, 0, 4, 0x67);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_ZERO, 0, 4 * PG));
	expect_committed(c, 0);
	expect_pool_delta(base, -4);
	expect_pages(p, 0, 4, 0x66);
}

Test(memory, decommit_in_the_parent_of_shared_pages_frees_them_when_the_child_closes)
{
	uvmo_vmo_t *p = written(4, 0x6e);
	struct pool base = pool_now();
	uvmo_vmo_t *c = snap(p);
	expect_ok(uvmo_vmo_op_range(p, UVMO_OP_DECOMMIT, 0, 4 * PG));
	/* The child still sees the pages: nothing can be freed yet. */
	expect_pool_delta(base, 0);
	expect_pages(c, 0, 4, 0x6e);
	expect_pages(p, 0, 4, 0);
	uvmo_vmo_close(c);
	expect_pool_delta(base, -4);
	expect_committed(p, 0);
}

Test(memory, shrinking_a_parent_keeps_pages_a_snapshot_still_sees)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, UVMO_VMO_RESIZABLE);
	fill_pages(p, 0, 8, 0x6f);
	struct pool base = pool_now();
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT, 0, 4 * PG);
	expect_ok(uvmo_vmo_set_size(p, 2 * PG));
	/* Pages 4..7 were seen by nobody but P: gone.  2..3 the child needs. */
	expect_pool_delta(base, -4);
	expect_pages(c, 0, 4, 0x6f);
	uvmo_vmo_close(c);
	expect_pool_delta(base, -6);
	expect_committed(p, 2);
}

Test(memory, many_snapshots_closed_return_the_pool_to_its_earlier_bytes)
{
	enum { N = 40 };
	uvmo_vmo_t *p = written(4, 0x70);
	struct pool base = pool_now();
	uvmo_vmo_t *s[N];
	for (int i = 0; i < N; i++) {
		fill_page(p, (uint64_t)i % 4, (uint8_t)i);
		s[i] = snap(p);
	}
	for (int i = 0; i < N; i += 2)
		uvmo_vmo_close(s[i]);
	for (int i = N - 1; i > 0; i -= 2)
		uvmo_vmo_close(s[i]);
	expect_pool_delta(base, 0);
	expect_committed(p, 4);
	cr_assert_eq(stats_now().hidden_nodes, 0);
}

Test(memory, commit_through_a_slice_commits_the_parent_pages)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	uvmo_vmo_t *sl = make_child(p, UVMO_CHILD_SLICE, 2 * PG, 3 * PG);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_op_range(sl, UVMO_OP_COMMIT, 0, 3 * PG));
	expect_committed(sl, 3);
	expect_committed(p, 3);
	expect_pool_delta(base, 3);
}

Test(memory, writing_the_tail_of_a_snapshot_past_the_parent_costs_one_frame)
{
	uvmo_vmo_t *p = written(2, 0x71);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT, 0, 6 * PG);
	struct pool base = pool_now();
	fill_page(c, 4, 0x72);
	expect_committed(c, 1);
	expect_pool_delta(base, 1);
}

Test(memory, commit_makes_committed_bytes_equal_the_size)
{
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 0, 16 * PG));
	expect_committed(v, 16);
	expect_pool_delta(base, 16);
	expect_pages(v, 0, 16, 0);
}

Test(memory, commit_of_a_partly_written_vmo_adds_only_the_missing_pages)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	fill_pages(v, 2, 3, 0x68);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 0, 8 * PG));
	expect_committed(v, 8);
	expect_pool_delta(base, 5);
	expect_pages(v, 2, 3, 0x68);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 0, 8 * PG));
	expect_pool_delta(base, 5);
}

Test(memory, commit_of_a_sub_range_commits_only_that_range)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 3 * PG, 2 * PG));
	expect_committed(v, 2);
	expect_pool_delta(base, 2);
}

Test(memory, commit_in_a_snapshot_gives_it_its_own_frames)
{
	uvmo_vmo_t *p = written(4, 0x69);
	uvmo_vmo_t *c = snap(p);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_COMMIT, 0, 4 * PG));
	expect_committed(c, 4);
	expect_pool_delta(base, 4);
	expect_pages(c, 0, 4, 0x69);
	/* The child owns its pages now: writing them costs nothing more. */
	fill_pages(c, 0, 4, 0x6a);
	expect_pool_delta(base, 4);
}

Test(memory, shrinking_returns_the_frames_cut_off)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, UVMO_VMO_RESIZABLE);
	fill_pages(v, 0, 8, 0x6b);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_set_size(v, 2 * PG));
	expect_committed(v, 2);
	expect_pool_delta(base, -6);
	expect_ok(uvmo_vmo_set_size(v, 8 * PG));
	expect_committed(v, 2);
	expect_pool_delta(base, -6);
}

Test(memory, shrinking_a_snapshot_frees_hidden_pages_only_it_saw)
{
	uvmo_vmo_t *p = written(8, 0x6c);
	struct pool base = pool_now();
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_RESIZABLE, 0, 8 * PG);
	fill_pages(p, 4, 4, 0x6d);
	expect_pool_delta(base, 4);
	/* Hidden pages 4..7 are seen by the child only; cutting them off frees them. */
	expect_ok(uvmo_vmo_set_size(c, 4 * PG));
	expect_pool_delta(base, 0);
	expect_pages(p, 0, 4, 0x6c);
	expect_pages(p, 4, 4, 0x6d);
	expect_pages(c, 0, 4, 0x6c);
}

static void init_with_small_resizable_window(void)
{
	struct uvmo_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.resizable_window = 16 * PG;
	expect_ok(uvmo_init(&cfg));
}

Test(memory, growing_past_the_resizable_window_moves_frames_without_leaking)
{
	init_with_small_resizable_window();
	uvmo_vmo_t *v = make_vmo(8 * PG, UVMO_VMO_RESIZABLE);
	fill_pages(v, 0, 8, 0x6c);
	struct pool base = pool_now();
	expect_ok(uvmo_vmo_set_size(v, 64 * PG));
	expect_pool_delta(base, 0);
	expect_committed(v, 8);
	expect_pages(v, 0, 8, 0x6c);
	fill_page(v, 63, 0x6d);
	expect_pool_delta(base, 1);
	uvmo_vmo_close(v);
	expect_pool_delta(base, -8);
}

Test(memory, growing_a_snapshotted_vmo_past_its_window_keeps_the_accounting)
{
	init_with_small_resizable_window();
	uvmo_vmo_t *p = make_vmo(8 * PG, UVMO_VMO_RESIZABLE);
	fill_pages(p, 0, 8, 0x6a);
	struct pool base = pool_now();
	uvmo_vmo_t *c = snap(p);
	expect_ok(uvmo_vmo_set_size(p, 64 * PG));
	fill_page(p, 0, 0x6b);
	fill_page(p, 40, 0x6b);
	expect_pool_delta(base, 2);
	expect_pages(c, 0, 8, 0x6a);
	expect_page(p, 0, 0x6b);
	expect_pages(p, 1, 7, 0x6a);
	uvmo_vmo_close(c);
	expect_pool_delta(base, 1);
	expect_committed(p, 9);
}

/* ---------------------------------------------------------------------- */
/* attribution                                                            */
/* ---------------------------------------------------------------------- */

Test(memory, slice_reports_the_parent_frames_in_its_window)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	fill_pages(p, 0, 3, 0x71);
	struct pool base = pool_now();
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, 2 * PG, 4 * PG);
	expect_pool_delta(base, 0);
	expect_committed(s, 1);
	fill_page(s, 3, 0x72);
	expect_committed(s, 2);
	expect_committed(p, 4);
	expect_pool_delta(base, 1);
}

Test(memory, sole_remaining_sharer_is_attributed_hidden_pages_only_it_sees)
{
	uvmo_vmo_t *p = written(4, 0x73);
	uvmo_vmo_t *c = snap(p);
	fill_pages(p, 0, 2, 0x74);
	/* Hidden pages 0 and 1 are seen by the child alone. */
	expect_committed(c, 0);
	expect_attributed(c, 2);
	expect_committed(p, 2);
	expect_attributed(p, 2);
	fill_pages(p, 2, 2, 0x75);
	expect_committed(c, 0);
	expect_attributed(c, 4);
	expect_attributed(p, 4);
}

Test(memory, attributed_bytes_is_never_below_committed_bytes)
{
	uvmo_vmo_t *v[6];
	v[0] = written(8, 0x76);
	v[1] = snap(v[0]);
	v[2] = snap(v[1]);
	v[3] = make_child(v[0], UVMO_CHILD_SNAPSHOT, 2 * PG, 8 * PG);
	v[4] = make_child(v[1], UVMO_CHILD_SLICE, 0, 4 * PG);
	v[5] = make_child(v[2], UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 8 * PG);
	for (int round = 0; round < 8; round++) {
		/* v[4] is a 4-page slice: stay inside every VMO. */
		fill_page(v[round % 6], (uint64_t)round % 4, (uint8_t)round);
		for (int i = 0; i < 6; i++) {
			struct uvmo_vmo_info info = info_of(v[i]);
			cr_assert_geq(info.attributed_bytes, info.committed_bytes,
				      "round %d VMO %d: attributed %llu < committed %llu", round, i,
				      (unsigned long long)info.attributed_bytes,
				      (unsigned long long)info.committed_bytes);
		}
	}
}

Test(memory, committed_bytes_of_live_vmos_add_up_to_the_pool)
{
	/* Without snapshots there are no hidden nodes: every frame is owned
	 * by exactly one visible VMO. */
	struct pool base = pool_now();
	uvmo_vmo_t *a = written(3, 1), *b = make_vmo(16 * PG, 0);
	fill_pages(b, 4, 6, 2);
	expect_ok(uvmo_vmo_op_range(b, UVMO_OP_COMMIT, 12 * PG, 2 * PG));
	uint64_t sum = info_of(a).committed_bytes + info_of(b).committed_bytes;
	cr_assert_eq(sum, pool_now().committed - base.committed);
	expect_pool_delta(base, 11);
}

/* ---------------------------------------------------------------------- */
/* pool limit                                                             */
/* ---------------------------------------------------------------------- */

/* Write one page at a time from page 0 until a write fails; returns the
 * number of pages written.  The failure must be -ENOMEM at the limit. */
static uint64_t fill_until_full(uvmo_vmo_t *v, uint64_t max_pages, uint8_t val)
{
	uint8_t buf[UVMO_PAGE_SIZE];
	memset(buf, val, sizeof(buf));
	uint64_t n;
	for (n = 0; n < max_pages; n++) {
		int rc = uvmo_vmo_write(v, buf, n * PG, PG);
		if (rc == 0)
			continue;
		cr_assert_eq(rc, -ENOMEM, "write of page %llu: %d (%s)", (unsigned long long)n,
			     rc, rc_name(rc));
		break;
	}
	cr_assert_lt(n, max_pages, "the pool limit was never reached");
	struct uvmo_stats s = stats_now();
	cr_assert_eq(s.committed_bytes, s.pool_limit,
		     "-ENOMEM with %llu of %llu bytes committed",
		     (unsigned long long)s.committed_bytes, (unsigned long long)s.pool_limit);
	return n;
}

Test(memory, write_past_the_pool_limit_fails_with_enomem_and_writes_nothing)
{
	init_with_pool_limit(64 * PG);
	uvmo_vmo_t *v = make_vmo(128 * PG, 0);
	uint64_t n = fill_until_full(v, 128, 0x81);
	cr_assert_eq(n, 64, "only %llu pages fit under a 64-page limit", (unsigned long long)n);
	struct pool base = pool_now();
	cr_assert_leq(base.host, 64 * PG);
	expect_page(v, n, 0);
	expect_pages(v, 0, n, 0x81);
	expect_committed(v, n);
	expect_pool_delta(base, 0);
	/* Rewriting a page it already owns needs no frame. */
	fill_page(v, 0, 0x82);
	expect_page(v, 0, 0x82);
}

Test(memory, multi_page_write_crossing_the_pool_limit_writes_nothing)
{
	init_with_pool_limit(64 * PG);
	uvmo_vmo_t *v = make_vmo(128 * PG, 0);
	fill_pages(v, 0, 60, 0x83);
	struct pool base = pool_now();
	uint64_t free_pages = (64 * PG - base.committed) / PG;
	/* Pages 58, 59 exist; then free_pages + 1 new ones are needed. */
	uint64_t len = (2 + free_pages + 1) * PG;
	uint8_t *buf = malloc(len);
	memset(buf, 0x84, len);
	expect_rc(-ENOMEM, uvmo_vmo_write(v, buf, 58 * PG, len));
	free(buf);
	expect_pages(v, 58, 2, 0x83);
	expect_pages(v, 60, 2 + free_pages, 0);
	expect_committed(v, 60);
	expect_pool_delta(base, 0);
}

Test(memory, multi_page_copy_on_write_crossing_the_pool_limit_takes_no_frames)
{
	init_with_pool_limit(64 * PG);
	uvmo_vmo_t *p = written(32, 0x8d);
	uvmo_vmo_t *c = snap(p);
	uvmo_vmo_t *ballast = make_vmo(64 * PG, 0);
	fill_pages(ballast, 0, 28, 0x8e);
	struct pool base = pool_now();
	uint64_t free_pages = (64 * PG - base.committed) / PG;
	/* Copying free_pages + 1 shared pages cannot fit. */
	uint64_t len = (free_pages + 1) * PG;
	uint8_t *buf = malloc(len);
	memset(buf, 0x8f, len);
	expect_rc(-ENOMEM, uvmo_vmo_write(c, buf, 0, len));
	free(buf);
	expect_pages(c, 0, 32, 0x8d);
	expect_pages(p, 0, 32, 0x8d);
	expect_committed(c, 0);
	expect_pool_delta(base, 0);
}

Test(memory, freeing_memory_makes_writes_succeed_again)
{
	init_with_pool_limit(64 * PG);
	uvmo_vmo_t *ballast = make_vmo(8 * PG, 0);
	fill_pages(ballast, 0, 4, 0x85);
	uvmo_vmo_t *v = make_vmo(128 * PG, 0);
	uint64_t n = fill_until_full(v, 128, 0x86);
	uint8_t buf[UVMO_PAGE_SIZE];
	memset(buf, 0x87, sizeof(buf));

	/* Decommit gives one frame back. */
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 0, PG));
	expect_ok(uvmo_vmo_write(v, buf, n * PG, PG));
	expect_rc(-ENOMEM, uvmo_vmo_write(v, buf, (n + 1) * PG, PG));

	/* Closing a VMO gives its frames back. */
	uvmo_vmo_close(ballast);
	for (uint64_t i = 1; i <= 4; i++)
		expect_ok(uvmo_vmo_write(v, buf, (n + i) * PG, PG));
	expect_rc(-ENOMEM, uvmo_vmo_write(v, buf, (n + 5) * PG, PG));
	expect_page(v, n + 4, 0x87);
	expect_page(v, 1, 0x86);
}

Test(memory, copy_on_write_past_the_pool_limit_fails_and_changes_neither_side)
{
	init_with_pool_limit(64 * PG);
	uvmo_vmo_t *p = written(32, 0x88);
	uvmo_vmo_t *c = snap(p);
	uvmo_vmo_t *ballast = make_vmo(64 * PG, 0);
	fill_until_full(ballast, 64, 0x89);
	struct pool base = pool_now();
	uint8_t b = 0x8a;
	expect_rc(-ENOMEM, uvmo_vmo_write(c, &b, 3 * PG, 1));
	expect_rc(-ENOMEM, uvmo_vmo_write(p, &b, 4 * PG, 1));
	expect_pages(p, 0, 32, 0x88);
	expect_pages(c, 0, 32, 0x88);
	expect_committed(c, 0);
	expect_pool_delta(base, 0);
	uvmo_vmo_close(ballast);
	expect_ok(uvmo_vmo_write(c, &b, 3 * PG, 1));
	expect_ok(uvmo_vmo_write(p, &b, 4 * PG, 1));
}

Test(memory, commit_past_the_pool_limit_fails_and_keeps_what_it_committed)
{
	init_with_pool_limit(64 * PG);
	uvmo_vmo_t *v = make_vmo(128 * PG, 0);
	expect_rc(-ENOMEM, uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 0, 128 * PG));
	struct uvmo_stats s = stats_now();
	/* What was committed before the failure stays, and is accounted. */
	cr_assert_leq(s.committed_bytes, 64 * PG);
	cr_assert_leq(s.host_bytes, 64 * PG);
	cr_assert_eq(info_of(v).committed_bytes, s.committed_bytes);
	expect_pages(v, 0, 128, 0);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 0, 128 * PG));
	cr_assert_eq(stats_now().committed_bytes, 0);
}

Test(memory, committed_bytes_never_exceed_the_pool_limit)
{
	init_with_pool_limit(64 * PG);
	uvmo_vmo_t *p = written(40, 0x8b);
	uvmo_vmo_t *c = snap(p);
	uvmo_vmo_t *g = snap(c);
	uint8_t b = 1;
	for (uint64_t i = 0; i < 40; i++) {
		(void)uvmo_vmo_write(c, &b, i * PG, 1);
		(void)uvmo_vmo_write(g, &b, i * PG, 1);
		(void)uvmo_vmo_write(p, &b, i * PG, 1);
	}
	struct uvmo_stats s = stats_now();
	cr_assert_leq(s.peak_committed_bytes, 64 * PG);
	cr_assert_leq(s.committed_bytes, 64 * PG);
	cr_assert_leq(s.host_bytes, 64 * PG);
}

Test(memory, peak_committed_bytes_remembers_the_high_water_mark)
{
	struct uvmo_stats s0 = stats_now();
	uvmo_vmo_t *v = written(10, 0x8c);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 0, 10 * PG));
	struct uvmo_stats s1 = stats_now();
	cr_assert_eq(s1.committed_bytes, s0.committed_bytes);
	cr_assert_geq(s1.peak_committed_bytes, s0.committed_bytes + 10 * PG);
}

/*
 * Found by the differential soak (shrunk): when a clone dies, the ancestor
 * page it saw and its surviving sibling hides with a page of its own (here
 * a zeroed-then-committed page) is nobody's any more and must be freed, not
 * kept by the hidden node.
 */
Test(memory, a_page_only_a_dead_clone_saw_is_freed_when_its_sibling_shadows_it)
{
	uvmo_vmo_t *p = make_vmo(22 * PG, 0);
	uint8_t *buf = malloc(29 * PG);
	memset(buf, 0x5a, 29 * PG);
	expect_ok(uvmo_vmo_write(p, buf, 9 * PG, 13 * PG));
	uvmo_vmo_t *a = make_child(p, UVMO_CHILD_SNAPSHOT, 0, 29 * PG);
	expect_ok(uvmo_vmo_write(a, buf, 0, 29 * PG)); /* a owns all it sees */
	uvmo_vmo_t *slice = make_child(p, UVMO_CHILD_SLICE, 19 * PG, 3 * PG);
	uvmo_vmo_t *b = make_child(slice, UVMO_CHILD_SNAPSHOT, 2 * PG, PG);
	uvmo_vmo_close(slice);
	uvmo_vmo_close(p);
	uvmo_vmo_t *c = make_child(b, UVMO_CHILD_SNAPSHOT, 0, PG);
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_ZERO, 0, PG));
	uvmo_vmo_close(b);
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_COMMIT, 0, PG));
	/* a holds 29 pages, c one: nothing else is anybody's. */
	cr_assert_eq(stats_now().committed_bytes, 30 * PG, "the pool holds %llu pages",
		     (unsigned long long)(stats_now().committed_bytes / PG));
	uvmo_vmo_close(c);
	uvmo_vmo_close(a);
	cr_assert_eq(stats_now().committed_bytes, 0);
	free(buf);
}

/* Found by the differential soak (shrunk, 28 operations): a chain of
 * clones at offsets, slices and closes in an odd order must not leave
 * pages in hidden nodes that no live VMO can see: the pool never holds
 * more than eager copies of the live VMOs would. */
Test(memory, closing_clones_of_a_chain_at_offsets_keeps_no_unseen_pages)
{
	const uint32_t alow = UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE;
	uvmo_vmo_t *a = make_vmo(0x24000, 0);
	expect_ok(uvmo_vmo_op_range(a, UVMO_OP_COMMIT, 0x8000, 0x11000));
	uvmo_vmo_t *b = make_child(a, alow, 0, 0x24000);
	uvmo_vmo_t *c = make_child(b, alow, 0x3000, 0x21000);
	uvmo_vmo_t *d = make_child(c, alow, 0x4000, 0x9b000);
	uvmo_vmo_t *ds = make_child(d, UVMO_CHILD_SLICE, 0, 0x9b000);
	uint8_t *buf = malloc(0x9b000);
	memset(buf, 0x49, 0x9b000);
	expect_ok(uvmo_vmo_write(ds, buf, 0, 0x9b000));
	free(buf);
	uvmo_vmo_close(c);
	uvmo_vmo_close(d);
	uvmo_vmo_t *e = make_child(ds, alow | UVMO_CHILD_RESIZABLE, 0x53000, 0x50000);
	uvmo_vmo_t *f = make_child(e, alow | UVMO_CHILD_RESIZABLE, 0x14000, 0x3c000);
	uvmo_vmo_close(e);
	uvmo_vmo_t *g = make_child(ds, UVMO_CHILD_SLICE, 0x46000, 0xe000);
	uvmo_vmo_t *h = make_child(f, alow, 0, 0x3c000);
	uvmo_vmo_t *i = make_child(h, UVMO_CHILD_SNAPSHOT, 0x6000, 0x36000);
	uvmo_vmo_close(ds);
	uvmo_vmo_t *j = make_child(h, UVMO_CHILD_SNAPSHOT, 0x30000, 0xd000);
	uvmo_vmo_t *js = make_child(j, UVMO_CHILD_SLICE, 0x5000, 0x7000);
	uvmo_vmo_t *k = make_child(js, alow, 0x2000, 0x5000);
	uvmo_vmo_close(js);
	uvmo_vmo_close(h);
	uvmo_vmo_t *l = make_child(g, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_RESIZABLE, 0, 0xe000);
	uvmo_vmo_t *m = make_child(i, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_RESIZABLE, 0x20000, 0x4000);
	uvmo_vmo_close(i);
	uvmo_vmo_close(g);
	uvmo_vmo_close(j);
	uvmo_vmo_close(f);
	/* Live: a, b (0x24000 each), k (0x5000), l (0xe000), m (0x4000). */
	uint64_t eager = 0x24000 + 0x24000 + 0x5000 + 0xe000 + 0x4000;
	cr_assert_leq(stats_now().committed_bytes, eager, "the pool holds %llu bytes, eager copies %llu",
		      (unsigned long long)stats_now().committed_bytes, (unsigned long long)eager);
	uvmo_vmo_close(k);
	uvmo_vmo_close(l);
	uvmo_vmo_close(m);
	uvmo_vmo_close(b);
	uvmo_vmo_close(a);
	cr_assert_eq(stats_now().committed_bytes, 0);
}

/* Page lists of 64 chunks or more (16 MiB of pages) are also indexed in a
 * lookup table (src/cow/pagelist.h): pages spread over a whole 1 TiB VMO,
 * and a dense run, through a snapshot, writes on both sides, decommits and
 * closes.  Validation builds check the table against the tree after every
 * call; the bytes and the pool's accounting are checked here. */
#define SPREAD 150u
Test(memory, large_sparse_page_lists_keep_every_page_through_clones_and_closes)
{
	uint64_t meta = stats_now().metadata_bytes;
	uvmo_vmo_t *v = make_vmo(UVMO_VMO_MAX_SIZE, 0);
	uint64_t step = (UVMO_VMO_MAX_SIZE / SPREAD) & ~(uint64_t)(PG - 1);
	uint8_t b;
	for (uint64_t i = 0; i < SPREAD; i++) {
		b = (uint8_t)(i + 1);
		expect_ok(uvmo_vmo_write(v, &b, i * step + 7, 1));
	}
	for (uint64_t pg = 32; pg < 100 * 64; pg += 32) /* 100 chunks, dense */
		fill_page(v, pg, 0x77);
	uvmo_vmo_t *s = make_child(v, UVMO_CHILD_SNAPSHOT, 0, UVMO_VMO_MAX_SIZE);
	for (uint64_t i = 0; i < SPREAD; i += 2) {
		b = 0xee;
		expect_ok(uvmo_vmo_write(v, &b, i * step + 7, 1));
	}
	for (uint64_t i = 1; i < SPREAD; i += 4)
		expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, i * step, PG));
	for (uint64_t i = 0; i < SPREAD; i++) {
		expect_ok(uvmo_vmo_read(s, &b, i * step + 7, 1));
		cr_assert_eq(b, (uint8_t)(i + 1), "snapshot byte %llu", (unsigned long long)i);
		expect_ok(uvmo_vmo_read(v, &b, i * step + 7, 1));
		uint8_t want = i % 2 == 0 ? 0xee : i % 4 == 1 ? 0 : (uint8_t)(i + 1);
		cr_assert_eq(b, want, "byte %llu", (unsigned long long)i);
	}
	expect_page(s, 96, 0x77);
	uvmo_vmo_close(s); /* the hidden node merges into v */
	for (uint64_t i = 3; i < SPREAD; i += 4) {
		expect_ok(uvmo_vmo_read(v, &b, i * step + 7, 1));
		cr_assert_eq(b, (uint8_t)(i + 1), "byte %llu after the merge", (unsigned long long)i);
	}
	expect_page(v, 6368, 0x77);
	uvmo_vmo_close(v);
	cr_assert_eq(stats_now().committed_bytes, 0);
	cr_assert_eq(stats_now().metadata_bytes, meta, "page-list memory was not all given back");
}

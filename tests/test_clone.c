/* SPDX-License-Identifier: MIT */
/*
 * Clone semantics: SNAPSHOT, SNAPSHOT_AT_LEAST_ON_WRITE (anonymous parents)
 * and SLICE, offsets, tails past the parent, deep chains, and survival of
 * content whatever order the clones are closed in.
 */
#include "vmo_test_util.h"

/* Fill page p of @v with the byte tag + p, pages [0, n). */
static void fill_tagged(uvmo_vmo_t *v, uint64_t n, uint8_t tag)
{
	for (uint64_t p = 0; p < n; p++)
		fill_page(v, p, (uint8_t)(tag + p));
}

/* ---------------------------------------------------------------------- */
/* SNAPSHOT                                                               */
/* ---------------------------------------------------------------------- */

Test(clone, snapshot_sees_the_parent_content_at_creation)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	fill_tagged(p, 4, 0x10);
	uvmo_vmo_t *c = snap(p);
	for (uint64_t i = 0; i < 4; i++)
		expect_page(c, i, 0x10 + i);
}

Test(clone, snapshot_of_a_fresh_vmo_reads_zero)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	uvmo_vmo_t *c = snap(p);
	expect_pages(c, 0, 4, 0);
}

Test(clone, snapshot_is_isolated_from_later_parent_writes)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	fill_tagged(p, 4, 0x10);
	uvmo_vmo_t *c = snap(p);
	fill_pages(p, 0, 4, 0xee);
	uint8_t b = 0x01;
	expect_ok(uvmo_vmo_write(p, &b, 2 * PG + 7, 1));
	for (uint64_t i = 0; i < 4; i++)
		expect_page(c, i, 0x10 + i);
}

Test(clone, parent_is_isolated_from_later_snapshot_writes)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	fill_tagged(p, 4, 0x10);
	uvmo_vmo_t *c = snap(p);
	fill_pages(c, 0, 4, 0xdd);
	for (uint64_t i = 0; i < 4; i++)
		expect_page(p, i, 0x10 + i);
	expect_pages(c, 0, 4, 0xdd);
}

Test(clone, writes_on_both_sides_of_a_snapshot_stay_apart)
{
	uvmo_vmo_t *p = make_vmo(2 * PG, 0);
	fill_pages(p, 0, 2, 0x20);
	uvmo_vmo_t *c = snap(p);
	fill_page(p, 0, 0x21);
	fill_page(c, 0, 0x22);
	fill_page(c, 1, 0x23);
	fill_page(p, 1, 0x24);
	expect_page(p, 0, 0x21);
	expect_page(p, 1, 0x24);
	expect_page(c, 0, 0x22);
	expect_page(c, 1, 0x23);
}

Test(clone, partial_page_write_in_a_snapshot_keeps_the_rest_of_the_shared_page)
{
	uvmo_vmo_t *p = make_vmo(2 * PG, 0);
	fill_pages(p, 0, 2, 0x11);
	uvmo_vmo_t *c = snap(p);
	uint8_t x[10];
	memset(x, 0x77, sizeof(x));
	expect_ok(uvmo_vmo_write(c, x, PG - 6, sizeof(x)));
	uint8_t back[2 * UVMO_PAGE_SIZE];
	expect_ok(uvmo_vmo_read(c, back, 0, sizeof(back)));
	for (size_t i = 0; i < sizeof(back); i++) {
		uint8_t want = (i >= PG - 6 && i < PG + 4) ? 0x77 : 0x11;
		cr_assert_eq(back[i], want, "child byte %zu is 0x%02x", i, back[i]);
	}
	expect_pages(p, 0, 2, 0x11);
}

Test(clone, every_snapshot_of_one_parent_keeps_its_own_moment)
{
	uvmo_vmo_t *p = make_vmo(PG, 0);
	uvmo_vmo_t *s[5];
	for (int i = 0; i < 5; i++) {
		fill_page(p, 0, (uint8_t)(0x30 + i));
		s[i] = snap(p);
	}
	fill_page(p, 0, 0x3f);
	for (int i = 0; i < 5; i++)
		expect_page(s[i], 0, 0x30 + i);
	expect_page(p, 0, 0x3f);
}

Test(clone, clone_of_clone_chain_each_level_sees_exactly_its_moment)
{
	enum { D = 8, NP = D + 1 };
	/* Page NP-1... is a scratch page each level writes after its child
	 * was made; page i is written by level i before and after. */
	uvmo_vmo_t *c[D + 1];
	c[0] = make_vmo((NP + 1) * PG, 0);
	for (int i = 0; i < D; i++) {
		fill_page(c[i], (uint64_t)i, (uint8_t)(i + 1));
		c[i + 1] = snap(c[i]);
		fill_page(c[i], (uint64_t)i, (uint8_t)(0x80 | (i + 1)));
		fill_page(c[i], NP, (uint8_t)(0xa0 + i));
	}
	for (int k = 0; k <= D; k++) {
		for (int j = 0; j < NP; j++) {
			uint8_t want;
			if (j < k)
				want = (uint8_t)(j + 1);
			else if (j == k && k < D)
				want = (uint8_t)(0x80 | (k + 1));
			else
				want = 0;
			expect_page(c[k], (uint64_t)j, want);
		}
		expect_page(c[k], NP, k < D ? 0xa0 + k : 0);
	}
}

Test(clone, deep_chain_survives_closing_the_middle_levels)
{
	enum { D = 10 };
	uvmo_vmo_t *c[D + 1];
	c[0] = make_vmo((D + 1) * PG, 0);
	for (int i = 0; i < D; i++) {
		fill_page(c[i], (uint64_t)i, (uint8_t)(i + 1));
		c[i + 1] = snap(c[i]);
	}
	/* Close every odd level but keep the root and the leaf. */
	for (int i = 1; i < D; i += 2)
		uvmo_vmo_close(c[i]);
	for (int k = 0; k <= D; k += 2) {
		for (int j = 0; j <= D; j++)
			expect_page(c[k], (uint64_t)j, j < k ? j + 1 : (j == k && k < D ? k + 1 : 0));
	}
	for (int i = 0; i < D; i += 2)
		uvmo_vmo_close(c[i]);
	for (int j = 0; j < D; j++)
		expect_page(c[D], (uint64_t)j, j + 1);
	expect_page(c[D], D, 0);
}

Test(clone, snapshot_with_an_offset_sees_the_parent_window)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	fill_tagged(p, 8, 0x40);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT, 2 * PG, 4 * PG);
	cr_assert_eq(size_of(c), 4 * PG);
	for (uint64_t i = 0; i < 4; i++)
		expect_page(c, i, 0x42 + i);
	fill_page(c, 0, 0x4f);
	expect_page(p, 2, 0x42);
	fill_page(p, 3, 0x4e);
	expect_page(c, 1, 0x43);
}

Test(clone, snapshot_past_the_parent_end_reads_zero_in_the_tail)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	fill_tagged(p, 4, 0x50);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT, 2 * PG, 6 * PG);
	cr_assert_eq(size_of(c), 6 * PG);
	expect_page(c, 0, 0x52);
	expect_page(c, 1, 0x53);
	expect_pages(c, 2, 4, 0);
}

Test(clone, snapshot_tail_can_be_written_without_touching_the_parent)
{
	uvmo_vmo_t *p = make_vmo(2 * PG, 0);
	fill_pages(p, 0, 2, 0x51);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT, 0, 4 * PG);
	fill_page(c, 3, 0x5a);
	expect_page(c, 3, 0x5a);
	expect_page(c, 2, 0);
	expect_pages(p, 0, 2, 0x51);
	cr_assert_eq(size_of(p), 2 * PG);
}

Test(clone, snapshot_tail_stays_zero_after_the_parent_grows)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, UVMO_VMO_RESIZABLE);
	fill_tagged(p, 4, 0x50);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT, 2 * PG, 6 * PG);
	expect_ok(uvmo_vmo_set_size(p, 16 * PG));
	fill_pages(p, 4, 12, 0x5f);
	expect_page(c, 0, 0x52);
	expect_page(c, 1, 0x53);
	expect_pages(c, 2, 4, 0);
}

Test(clone, snapshot_keeps_pages_the_parent_later_cuts_off)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, UVMO_VMO_RESIZABLE);
	fill_tagged(p, 8, 0x60);
	uvmo_vmo_t *c = snap(p);
	expect_ok(uvmo_vmo_set_size(p, 2 * PG));
	for (uint64_t i = 0; i < 8; i++)
		expect_page(c, i, 0x60 + i);
	expect_ok(uvmo_vmo_set_size(p, 8 * PG));
	expect_page(p, 1, 0x61);
	expect_pages(p, 2, 6, 0);
	for (uint64_t i = 0; i < 8; i++)
		expect_page(c, i, 0x60 + i);
}

Test(clone, at_least_on_write_behaves_as_snapshot_for_an_anonymous_parent)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	fill_tagged(p, 4, 0x70);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	fill_pages(p, 0, 4, 0x7e);
	for (uint64_t i = 0; i < 4; i++)
		expect_page(c, i, 0x70 + i);
	fill_page(c, 1, 0x7d);
	expect_pages(p, 0, 4, 0x7e);
	expect_page(c, 1, 0x7d);
}

Test(clone, snapshot_modified_behaves_as_snapshot_for_an_anonymous_parent)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	fill_tagged(p, 4, 0x60);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT_MODIFIED, 0, 4 * PG);
	fill_pages(p, 0, 4, 0x6e);
	for (uint64_t i = 0; i < 4; i++)
		expect_page(c, i, 0x60 + i);
	fill_page(c, 2, 0x6d);
	expect_pages(p, 0, 4, 0x6e);
	expect_page(c, 2, 0x6d);
}

Test(clone, at_least_on_write_chain_behaves_as_snapshots)
{
	uvmo_vmo_t *p = make_vmo(PG, 0);
	fill_page(p, 0, 1);
	uvmo_vmo_t *a = make_child(p, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, PG);
	fill_page(a, 0, 2);
	uvmo_vmo_t *b = make_child(a, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, PG);
	fill_page(a, 0, 3);
	uvmo_vmo_t *c = make_child(b, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, PG);
	fill_page(b, 0, 4);
	fill_page(p, 0, 5);
	expect_page(p, 0, 5);
	expect_page(a, 0, 3);
	expect_page(b, 0, 4);
	expect_page(c, 0, 2);
}

/* ---------------------------------------------------------------------- */
/* SLICE                                                                  */
/* ---------------------------------------------------------------------- */

Test(clone, slice_sees_parent_writes)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, 0, 4 * PG);
	fill_tagged(p, 4, 0x80);
	for (uint64_t i = 0; i < 4; i++)
		expect_page(s, i, 0x80 + i);
}

Test(clone, parent_sees_slice_writes)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, 0, 4 * PG);
	fill_tagged(s, 4, 0x88);
	for (uint64_t i = 0; i < 4; i++)
		expect_page(p, i, 0x88 + i);
}

Test(clone, slice_with_an_offset_is_a_window_onto_the_parent)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	fill_tagged(p, 8, 0x90);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, 2 * PG, 3 * PG);
	cr_assert_eq(size_of(s), 3 * PG);
	for (uint64_t i = 0; i < 3; i++)
		expect_page(s, i, 0x92 + i);
	fill_page(s, 0, 0x9e);
	expect_page(p, 2, 0x9e);
	expect_page(p, 1, 0x91);
	fill_page(p, 4, 0x9d);
	expect_page(s, 2, 0x9d);
	uint8_t b;
	expect_rc(-ERANGE, uvmo_vmo_read(s, &b, 3 * PG, 1));
}

Test(clone, slice_sees_content_the_parent_had_before_the_slice)
{
	uvmo_vmo_t *p = make_vmo(2 * PG, 0);
	fill_pages(p, 0, 2, 0x94);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, PG, PG);
	expect_page(s, 0, 0x94);
}

Test(clone, slice_of_a_slice_composes_offsets)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	fill_tagged(p, 8, 0xa0);
	uvmo_vmo_t *s1 = make_child(p, UVMO_CHILD_SLICE, 2 * PG, 5 * PG);
	uvmo_vmo_t *s2 = make_child(s1, UVMO_CHILD_SLICE, PG, 2 * PG);
	expect_page(s2, 0, 0xa3);
	expect_page(s2, 1, 0xa4);
	fill_page(s2, 1, 0xaf);
	expect_page(p, 4, 0xaf);
	expect_page(s1, 2, 0xaf);
}

Test(clone, slice_of_a_snapshot_follows_the_snapshot_not_the_original)
{
	uvmo_vmo_t *p = make_vmo(2 * PG, 0);
	fill_pages(p, 0, 2, 0xb0);
	uvmo_vmo_t *c = snap(p);
	uvmo_vmo_t *s = make_child(c, UVMO_CHILD_SLICE, 0, 2 * PG);
	fill_page(p, 0, 0xb1);
	expect_page(s, 0, 0xb0);
	fill_page(s, 1, 0xb2);
	expect_page(c, 1, 0xb2);
	expect_page(p, 1, 0xb0);
}

Test(clone, snapshot_of_a_slice_sees_the_slice_window_at_that_moment)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	fill_tagged(p, 8, 0xc0);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, 2 * PG, 4 * PG);
	uvmo_vmo_t *c = snap(s);
	cr_assert_eq(size_of(c), 4 * PG);
	for (uint64_t i = 0; i < 4; i++)
		expect_page(c, i, 0xc2 + i);
	/* Later writes through the parent or the slice stay out of it ... */
	fill_page(p, 2, 0xcd);
	fill_page(s, 1, 0xce);
	expect_page(c, 0, 0xc2);
	expect_page(c, 1, 0xc3);
	/* ... and its own writes stay out of both. */
	fill_page(c, 3, 0xcf);
	expect_page(s, 3, 0xc5);
	expect_page(p, 5, 0xc5);
	expect_page(s, 0, 0xcd);
	expect_page(p, 3, 0xce);
}

Test(clone, slice_keeps_following_its_parent_after_the_parent_is_snapshotted)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	fill_pages(p, 0, 4, 0xd0);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, PG, 2 * PG);
	uvmo_vmo_t *c = snap(p);
	fill_page(s, 0, 0xd1);
	expect_page(p, 1, 0xd1);
	expect_page(c, 1, 0xd0);
	fill_page(p, 2, 0xd2);
	expect_page(s, 1, 0xd2);
	expect_page(c, 2, 0xd0);
	fill_page(c, 1, 0xd3);
	expect_page(s, 0, 0xd1);
}

Test(clone, slice_outlives_its_closed_parent)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	fill_tagged(p, 4, 0xd8);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, PG, 2 * PG);
	uvmo_vmo_close(p);
	expect_page(s, 0, 0xd9);
	expect_page(s, 1, 0xda);
	fill_page(s, 1, 0xdf);
	expect_page(s, 1, 0xdf);
}

/* ---------------------------------------------------------------------- */
/* closing                                                                */
/* ---------------------------------------------------------------------- */

Test(clone, closing_the_parent_before_the_child_keeps_the_child_content)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	fill_tagged(p, 4, 0xe0);
	uvmo_vmo_t *c = snap(p);
	fill_page(p, 0, 0xef);
	fill_page(c, 1, 0xee);
	uvmo_vmo_close(p);
	expect_page(c, 0, 0xe0);
	expect_page(c, 1, 0xee);
	expect_page(c, 2, 0xe2);
	expect_page(c, 3, 0xe3);
}

Test(clone, closing_the_child_keeps_the_parent_content)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	fill_tagged(p, 4, 0xe0);
	uvmo_vmo_t *c = snap(p);
	fill_page(p, 0, 0xef);
	fill_page(c, 1, 0xee);
	uvmo_vmo_close(c);
	expect_page(p, 0, 0xef);
	expect_page(p, 1, 0xe1);
	expect_page(p, 2, 0xe2);
	expect_page(p, 3, 0xe3);
}

Test(clone, child_of_a_closed_parent_can_itself_be_cloned)
{
	uvmo_vmo_t *p = make_vmo(2 * PG, 0);
	fill_pages(p, 0, 2, 0xe4);
	uvmo_vmo_t *c = snap(p);
	uvmo_vmo_close(p);
	uvmo_vmo_t *g = snap(c);
	uvmo_vmo_t *s = make_child(c, UVMO_CHILD_SLICE, PG, PG);
	fill_page(c, 0, 0xe5);
	expect_page(g, 0, 0xe4);
	expect_page(s, 0, 0xe4);
	fill_page(s, 0, 0xe6);
	expect_page(c, 1, 0xe6);
	expect_page(g, 1, 0xe4);
}

Test(clone, closed_parent_handle_cannot_create_children)
{
	uvmo_vmo_t *p = make_vmo(PG, 0);
	uvmo_vmo_close(p);
	uvmo_vmo_t *c = NULL;
	expect_rc(-EBADF, uvmo_vmo_create_child(p, UVMO_CHILD_SNAPSHOT, 0, PG, &c));
}

/*
 * A four-VMO tree: a root A, B = snapshot(A), C = snapshot(B),
 * D = snapshot(A), each written after the others exist so every VMO has a
 * unique view.  Page k of the expected content of VMO v is want[v][k].
 */
enum { TREE = 4, TP = 5 };

struct tree {
	uvmo_vmo_t *v[TREE];
	uint8_t want[TREE][TP];
};

static void build_tree(struct tree *t)
{
	t->v[0] = make_vmo(TP * PG, 0);
	for (int k = 0; k < TP; k++)
		fill_page(t->v[0], (uint64_t)k, (uint8_t)(0x10 + k));
	t->v[1] = snap(t->v[0]);
	fill_page(t->v[0], 0, 0x20);
	fill_page(t->v[1], 1, 0x31);
	t->v[2] = snap(t->v[1]);
	fill_page(t->v[1], 2, 0x32);
	fill_page(t->v[2], 3, 0x43);
	t->v[3] = snap(t->v[0]);
	fill_page(t->v[0], 4, 0x24);
	fill_page(t->v[3], 1, 0x51);

	const uint8_t want[TREE][TP] = {
		{ 0x20, 0x11, 0x12, 0x13, 0x24 },
		{ 0x10, 0x31, 0x32, 0x13, 0x14 },
		{ 0x10, 0x31, 0x12, 0x43, 0x14 },
		{ 0x20, 0x51, 0x12, 0x13, 0x14 },
	};
	memcpy(t->want, want, sizeof(want));
}

static void check_survivors(const struct tree *t, const bool *closed, const int *order, int n)
{
	for (int v = 0; v < TREE; v++) {
		if (closed[v])
			continue;
		for (int k = 0; k < TP; k++) {
			uint8_t buf[UVMO_PAGE_SIZE];
			expect_ok(uvmo_vmo_read(t->v[v], buf, (uint64_t)k * PG, PG));
			long bad = first_other_byte(buf, PG, t->want[v][k]);
			cr_assert(bad < 0,
				  "close order %d%d%d%d after %d closes: VMO %d page %d is 0x%02x, expected 0x%02x",
				  order[0], order[1], order[2], order[3], n, v, k,
				  bad < 0 ? 0 : buf[bad], t->want[v][k]);
		}
	}
}

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

Test(clone, closing_a_tree_in_every_order_keeps_the_survivors_content)
{
	int order[TREE] = { 0, 1, 2, 3 };
	int perms = 0;
	do {
		struct tree t;
		bool closed[TREE] = { false };
		build_tree(&t);
		check_survivors(&t, closed, order, 0);
		for (int n = 0; n < TREE; n++) {
			uvmo_vmo_close(t.v[order[n]]);
			closed[order[n]] = true;
			check_survivors(&t, closed, order, n + 1);
		}
		perms++;
	} while (next_permutation(order, TREE));
	cr_assert_eq(perms, 24);
	cr_assert_eq(stats_now().vmos, 0);
	cr_assert_eq(stats_now().committed_bytes, 0);
}

Test(clone, writes_after_partial_closes_stay_isolated)
{
	int order[TREE] = { 0, 1, 2, 3 };
	do {
		struct tree t;
		bool closed[TREE] = { false };
		build_tree(&t);
		/* Close two, then write every page of each survivor. */
		for (int n = 0; n < 2; n++) {
			uvmo_vmo_close(t.v[order[n]]);
			closed[order[n]] = true;
		}
		for (int v = 0; v < TREE; v++) {
			if (closed[v])
				continue;
			uint64_t k = (uint64_t)v % TP;
			fill_page(t.v[v], k, (uint8_t)(0xf0 + v));
			t.want[v][k] = (uint8_t)(0xf0 + v);
		}
		check_survivors(&t, closed, order, 2);
		for (int n = 2; n < TREE; n++)
			uvmo_vmo_close(t.v[order[n]]);
	} while (next_permutation(order, TREE));
}

/* ---------------------------------------------------------------------- */
/* resizable children                                                     */
/* ---------------------------------------------------------------------- */

Test(clone, resizable_child_can_grow_and_the_new_tail_reads_zero)
{
	uvmo_vmo_t *p = make_vmo(2 * PG, 0);
	fill_pages(p, 0, 2, 0x15);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_RESIZABLE, 0, 2 * PG);
	expect_ok(uvmo_vmo_set_size(c, 6 * PG));
	cr_assert_eq(size_of(c), 6 * PG);
	expect_pages(c, 0, 2, 0x15);
	expect_pages(c, 2, 4, 0);
	fill_page(c, 5, 0x16);
	expect_page(c, 5, 0x16);
	cr_assert_eq(size_of(p), 2 * PG);
}

Test(clone, resizable_child_can_shrink)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	fill_pages(p, 0, 4, 0x17);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_RESIZABLE, 0, 4 * PG);
	expect_ok(uvmo_vmo_set_size(c, PG));
	cr_assert_eq(size_of(c), PG);
	expect_page(c, 0, 0x17);
	uint8_t b;
	expect_rc(-ERANGE, uvmo_vmo_read(c, &b, PG, 1));
	expect_pages(p, 0, 4, 0x17);
}

Test(clone, resizable_child_shrink_then_grow_reads_zero_not_the_parent_data)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	fill_pages(p, 0, 8, 0x18);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_RESIZABLE, 0, 8 * PG);
	fill_page(c, 5, 0x19);
	expect_ok(uvmo_vmo_set_size(c, 2 * PG));
	expect_ok(uvmo_vmo_set_size(c, 8 * PG));
	expect_pages(c, 0, 2, 0x18);
	expect_pages(c, 2, 6, 0);
	expect_pages(p, 0, 8, 0x18);
}

Test(clone, growing_a_child_past_its_creation_size_reveals_zeros_not_parent_data)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	fill_tagged(p, 8, 0x1e);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_RESIZABLE, 2 * PG, 2 * PG);
	expect_ok(uvmo_vmo_set_size(c, 6 * PG));
	expect_page(c, 0, 0x20);
	expect_page(c, 1, 0x21);
	/* The parent has data behind pages 2..5 of the child: not visible. */
	expect_pages(c, 2, 4, 0);
}

Test(clone, parent_growing_past_its_resizable_window_keeps_content_and_snapshots)
{
	struct uvmo_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.resizable_window = 16 * PG;
	expect_ok(uvmo_init(&cfg));
	uvmo_vmo_t *p = make_vmo(8 * PG, UVMO_VMO_RESIZABLE);
	fill_tagged(p, 8, 0x50);
	uvmo_vmo_t *c = snap(p);
	uvmo_vmo_t *sc = make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_RESIZABLE, 0, 8 * PG);
	fill_page(p, 1, 0x5f);
	expect_ok(uvmo_vmo_set_size(p, 100 * PG));
	expect_ok(uvmo_vmo_set_size(sc, 100 * PG));
	for (uint64_t i = 0; i < 8; i++) {
		expect_page(p, i, i == 1 ? 0x5f : 0x50 + i);
		expect_page(c, i, 0x50 + i);
		expect_page(sc, i, 0x50 + i);
	}
	expect_pages(p, 8, 92, 0);
	expect_pages(sc, 8, 92, 0);
	fill_page(p, 2, 0x5e);
	fill_page(p, 99, 0x5d);
	fill_page(sc, 3, 0x5c);
	expect_page(c, 2, 0x52);
	expect_page(c, 3, 0x53);
	expect_page(sc, 2, 0x52);
	expect_page(p, 3, 0x53);
	expect_page(p, 99, 0x5d);
	uvmo_vmo_close(p);
	expect_page(c, 1, 0x51);
	expect_page(sc, 3, 0x5c);
}

Test(clone, parent_shrink_then_grow_reads_zero_and_leaves_children_alone)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, UVMO_VMO_RESIZABLE);
	fill_pages(p, 0, 4, 0x1a);
	uvmo_vmo_t *c = snap(p);
	uvmo_vmo_t *g = snap(c);
	expect_ok(uvmo_vmo_set_size(p, PG));
	expect_ok(uvmo_vmo_set_size(p, 4 * PG));
	expect_page(p, 0, 0x1a);
	expect_pages(p, 1, 3, 0);
	expect_pages(c, 0, 4, 0x1a);
	expect_pages(g, 0, 4, 0x1a);
}

/* ---------------------------------------------------------------------- */
/* zero / decommit / commit on clones                                     */
/* ---------------------------------------------------------------------- */

Test(clone, zero_in_a_snapshot_leaves_the_parent_alone)
{
	uvmo_vmo_t *p = make_vmo(3 * PG, 0);
	fill_pages(p, 0, 3, 0x1b);
	uvmo_vmo_t *c = snap(p);
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_ZERO, PG / 2, 2 * PG));
	expect_pages(p, 0, 3, 0x1b);
	uint8_t back[3 * UVMO_PAGE_SIZE];
	expect_ok(uvmo_vmo_read(c, back, 0, sizeof(back)));
	for (size_t i = 0; i < sizeof(back); i++) {
		uint8_t want = (i >= PG / 2 && i < PG / 2 + 2 * PG) ? 0 : 0x1b;
		cr_assert_eq(back[i], want, "child byte %zu", i);
	}
}

Test(clone, zero_in_the_parent_leaves_the_snapshot_alone)
{
	uvmo_vmo_t *p = make_vmo(3 * PG, 0);
	fill_pages(p, 0, 3, 0x1c);
	uvmo_vmo_t *c = snap(p);
	expect_ok(uvmo_vmo_op_range(p, UVMO_OP_ZERO, 0, 3 * PG));
	expect_pages(p, 0, 3, 0);
	expect_pages(c, 0, 3, 0x1c);
}

Test(clone, partial_zero_in_the_parent_leaves_the_snapshot_alone)
{
	uvmo_vmo_t *p = make_vmo(2 * PG, 0);
	fill_pages(p, 0, 2, 0x2b);
	uvmo_vmo_t *c = snap(p);
	expect_ok(uvmo_vmo_op_range(p, UVMO_OP_ZERO, PG - 10, 20));
	expect_pages(c, 0, 2, 0x2b);
	uint8_t back[2 * UVMO_PAGE_SIZE];
	expect_ok(uvmo_vmo_read(p, back, 0, sizeof(back)));
	for (size_t i = 0; i < sizeof(back); i++)
		cr_assert_eq(back[i], (i >= PG - 10 && i < PG + 10) ? 0 : 0x2b, "byte %zu", i);
}

Test(clone, many_snapshots_of_one_parent_survive_closing_in_any_pattern)
{
	enum { N = 40 };
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	uvmo_vmo_t *s[N];
	for (int i = 0; i < N; i++) {
		fill_page(p, (uint64_t)i % 4, (uint8_t)(i + 1));
		s[i] = snap(p);
	}
	/* Close every third, then check everyone left. */
	for (int i = 0; i < N; i += 3)
		uvmo_vmo_close(s[i]);
	for (int i = 0; i < N; i++) {
		if (i % 3 == 0)
			continue;
		/* Page k of snapshot i holds the last write to k at or before i. */
		for (int k = 0; k < 4; k++) {
			int last = i - ((i - k) % 4 + 4) % 4;
			expect_page(s[i], (uint64_t)k, last >= 0 ? last + 1 : 0);
		}
	}
	for (int k = 0; k < 4; k++)
		expect_page(p, (uint64_t)k, N - 4 + k + 1);
}

Test(clone, decommit_in_a_snapshot_behaves_like_zero)
{
	uvmo_vmo_t *p = make_vmo(3 * PG, 0);
	fill_pages(p, 0, 3, 0x1d);
	uvmo_vmo_t *c = snap(p);
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_DECOMMIT, PG, PG));
	expect_page(c, 0, 0x1d);
	expect_page(c, 1, 0);
	expect_page(c, 2, 0x1d);
	expect_pages(p, 0, 3, 0x1d);
}

Test(clone, decommit_in_the_parent_leaves_the_snapshot_alone)
{
	uvmo_vmo_t *p = make_vmo(3 * PG, 0);
	fill_pages(p, 0, 3, 0x1e);
	uvmo_vmo_t *c = snap(p);
	expect_ok(uvmo_vmo_op_range(p, UVMO_OP_DECOMMIT, 0, 3 * PG));
	expect_pages(p, 0, 3, 0);
	expect_pages(c, 0, 3, 0x1e);
}

Test(clone, commit_in_a_snapshot_keeps_its_content_and_isolation)
{
	uvmo_vmo_t *p = make_vmo(3 * PG, 0);
	fill_pages(p, 0, 3, 0x1f);
	uvmo_vmo_t *c = snap(p);
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_COMMIT, 0, 3 * PG));
	expect_pages(c, 0, 3, 0x1f);
	fill_page(p, 0, 0x2f);
	expect_page(c, 0, 0x1f);
	fill_page(c, 1, 0x3f);
	expect_page(p, 1, 0x1f);
}

Test(clone, zero_through_a_slice_is_seen_by_the_parent)
{
	uvmo_vmo_t *p = make_vmo(3 * PG, 0);
	fill_pages(p, 0, 3, 0x2a);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, PG, 2 * PG);
	expect_ok(uvmo_vmo_op_range(s, UVMO_OP_ZERO, 0, PG));
	expect_page(p, 0, 0x2a);
	expect_page(p, 1, 0);
	expect_page(p, 2, 0x2a);
}

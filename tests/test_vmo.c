/* SPDX-License-Identifier: MIT */
/*
 * VMO basics through the public API: create, read, write, size, resize,
 * info, closed handles, initialisation and the UVMO_POOL_LIMIT variable.
 */
#include "vmo_test_util.h"

/* ---------------------------------------------------------------------- */
/* create / read / write                                                  */
/* ---------------------------------------------------------------------- */

Test(vmo, create_reports_the_requested_size)
{
	uvmo_vmo_t *v = make_vmo(5 * PG, 0);
	cr_assert_eq(size_of(v), 5 * PG);
	cr_assert_eq(info_of(v).size, 5 * PG);
}

Test(vmo, fresh_vmo_reads_zero)
{
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	uint64_t size;
	uint8_t *all = read_all(v, &size);
	cr_assert_eq(first_other_byte(all, size, 0), -1);
	free(all);
}

Test(vmo, fresh_large_vmo_reads_zero_anywhere)
{
	uint64_t size = 1ull << 30;
	uvmo_vmo_t *v = make_vmo(size, 0);
	uint64_t offs[] = { 0, PG, size / 2 - 7, size - PG, size - 3 };
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		uint8_t buf[3] = { 1, 1, 1 };
		expect_ok(uvmo_vmo_read(v, buf, offs[i], sizeof(buf)));
		cr_assert(buf[0] == 0 && buf[1] == 0 && buf[2] == 0,
			  "offset %llu not zero", (unsigned long long)offs[i]);
	}
}

Test(vmo, write_then_read_back_within_one_page)
{
	uvmo_vmo_t *v = make_vmo(2 * PG, 0);
	const char msg[] = "hello, uvmo";
	expect_ok(uvmo_vmo_write(v, msg, 123, sizeof(msg)));
	char back[sizeof(msg)];
	expect_ok(uvmo_vmo_read(v, back, 123, sizeof(back)));
	cr_assert_arr_eq(back, msg, sizeof(msg));
}

Test(vmo, write_then_read_back_across_page_boundaries)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	size_t len = 3 * PG + 100;
	uint64_t off = PG - 50;
	uint8_t *src = malloc(len), *back = malloc(8 * PG);
	fill_pattern(src, len, 7, 0);
	expect_ok(uvmo_vmo_write(v, src, off, len));

	expect_ok(uvmo_vmo_read(v, back, off, len));
	cr_assert_arr_eq(back, src, len);

	/* Bytes on either side of the written range stay zero. */
	expect_ok(uvmo_vmo_read(v, back, 0, 8 * PG));
	cr_assert_eq(first_other_byte(back, off, 0), -1);
	cr_assert_eq(first_other_byte(back + off + len, 8 * PG - off - len, 0), -1);
	cr_assert_arr_eq(back + off, src, len);
	free(src);
	free(back);
}

Test(vmo, read_of_a_sub_range_returns_exactly_those_bytes)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	uint8_t *src = malloc(4 * PG);
	fill_pattern(src, 4 * PG, 3, 0);
	expect_ok(uvmo_vmo_write(v, src, 0, 4 * PG));
	uint8_t back[300];
	expect_ok(uvmo_vmo_read(v, back, 2 * PG - 150, sizeof(back)));
	cr_assert_arr_eq(back, src + 2 * PG - 150, sizeof(back));
	free(src);
}

Test(vmo, later_write_overwrites_only_its_own_bytes)
{
	uvmo_vmo_t *v = make_vmo(2 * PG, 0);
	fill_pages(v, 0, 2, 0x11);
	uint8_t x[10];
	memset(x, 0x22, sizeof(x));
	expect_ok(uvmo_vmo_write(v, x, PG - 5, sizeof(x)));
	uint8_t back[2 * UVMO_PAGE_SIZE];
	expect_ok(uvmo_vmo_read(v, back, 0, sizeof(back)));
	for (size_t i = 0; i < sizeof(back); i++) {
		uint8_t want = (i >= PG - 5 && i < PG + 5) ? 0x22 : 0x11;
		cr_assert_eq(back[i], want, "byte %zu", i);
	}
}

Test(vmo, zero_length_read_and_write_succeed_and_change_nothing)
{
	uvmo_vmo_t *v = make_vmo(PG, 0);
	fill_page(v, 0, 0x33);
	expect_ok(uvmo_vmo_read(v, NULL, 10, 0));
	expect_ok(uvmo_vmo_write(v, NULL, 10, 0));
	expect_ok(uvmo_vmo_read(v, NULL, PG, 0));
	expect_ok(uvmo_vmo_write(v, NULL, PG, 0));
	expect_page(v, 0, 0x33);
	cr_assert_eq(info_of(v).committed_bytes, PG);
}

Test(vmo, write_to_the_last_byte_succeeds)
{
	uvmo_vmo_t *v = make_vmo(3 * PG, 0);
	uint8_t b = 0x7e;
	expect_ok(uvmo_vmo_write(v, &b, 3 * PG - 1, 1));
	b = 0;
	expect_ok(uvmo_vmo_read(v, &b, 3 * PG - 1, 1));
	cr_assert_eq(b, 0x7e);
}

/* ---------------------------------------------------------------------- */
/* op_range effects on content                                            */
/* ---------------------------------------------------------------------- */

Test(vmo, zero_of_a_partial_range_zeroes_only_those_bytes)
{
	uvmo_vmo_t *v = make_vmo(3 * PG, 0);
	fill_pages(v, 0, 3, 0x44);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, PG - 10, PG + 20));
	uint8_t back[3 * UVMO_PAGE_SIZE];
	expect_ok(uvmo_vmo_read(v, back, 0, sizeof(back)));
	for (size_t i = 0; i < sizeof(back); i++) {
		uint8_t want = (i >= PG - 10 && i < 2 * PG + 10) ? 0 : 0x44;
		cr_assert_eq(back[i], want, "byte %zu is 0x%02x", i, back[i]);
	}
}

Test(vmo, decommit_makes_the_range_read_zero)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	fill_pages(v, 0, 4, 0x55);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, PG, 2 * PG));
	expect_page(v, 0, 0x55);
	expect_pages(v, 1, 2, 0);
	expect_page(v, 3, 0x55);
}

Test(vmo, commit_keeps_the_content)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	fill_page(v, 1, 0x66);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 0, 4 * PG));
	expect_page(v, 0, 0);
	expect_page(v, 1, 0x66);
	expect_pages(v, 2, 2, 0);
}

Test(vmo, need_hints_change_nothing)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	fill_page(v, 2, 0x67);
	uint64_t before = info_of(v).committed_bytes;
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DONT_NEED, 0, 4 * PG));
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ALWAYS_NEED, PG, 2 * PG));
	expect_page(v, 2, 0x67);
	expect_pages(v, 0, 2, 0);
	cr_assert_eq(info_of(v).committed_bytes, before);
}

/* ---------------------------------------------------------------------- */
/* resize                                                                 */
/* ---------------------------------------------------------------------- */

Test(vmo, resizable_vmo_grow_reveals_zeros)
{
	uvmo_vmo_t *v = make_vmo(2 * PG, UVMO_VMO_RESIZABLE);
	fill_pages(v, 0, 2, 0x71);
	expect_ok(uvmo_vmo_set_size(v, 6 * PG));
	cr_assert_eq(size_of(v), 6 * PG);
	expect_pages(v, 0, 2, 0x71);
	expect_pages(v, 2, 4, 0);
}

Test(vmo, resizable_vmo_shrink_then_grow_shows_zeros_not_old_data)
{
	uvmo_vmo_t *v = make_vmo(6 * PG, UVMO_VMO_RESIZABLE);
	fill_pages(v, 0, 6, 0x72);
	expect_ok(uvmo_vmo_set_size(v, 2 * PG));
	expect_ok(uvmo_vmo_set_size(v, 6 * PG));
	expect_pages(v, 0, 2, 0x72);
	expect_pages(v, 2, 4, 0);
}

Test(vmo, unaligned_tail_is_cut_by_shrink)
{
	/* A byte written just before the old end is gone after shrink+grow. */
	uvmo_vmo_t *v = make_vmo(3 * PG, UVMO_VMO_RESIZABLE);
	uint8_t b = 0x73;
	expect_ok(uvmo_vmo_write(v, &b, 3 * PG - 1, 1));
	expect_ok(uvmo_vmo_set_size(v, PG));
	expect_ok(uvmo_vmo_set_size(v, 3 * PG));
	expect_ok(uvmo_vmo_read(v, &b, 3 * PG - 1, 1));
	cr_assert_eq(b, 0);
}

Test(vmo, shrink_makes_reads_past_the_new_end_out_of_range)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, UVMO_VMO_RESIZABLE);
	expect_ok(uvmo_vmo_set_size(v, PG));
	uint8_t b;
	expect_rc(-ERANGE, uvmo_vmo_read(v, &b, PG, 1));
	expect_rc(-ERANGE, uvmo_vmo_write(v, &b, 2 * PG, 1));
	expect_ok(uvmo_vmo_read(v, &b, PG - 1, 1));
}

Test(vmo, resizable_vmo_of_size_zero_can_grow_and_be_written)
{
	uvmo_vmo_t *v = make_vmo(0, UVMO_VMO_RESIZABLE);
	cr_assert_eq(size_of(v), 0);
	uint8_t b = 1;
	expect_rc(-ERANGE, uvmo_vmo_read(v, &b, 0, 1));
	expect_ok(uvmo_vmo_set_size(v, 3 * PG));
	fill_page(v, 2, 0x74);
	expect_pages(v, 0, 2, 0);
	expect_page(v, 2, 0x74);
}

Test(vmo, resizable_vmo_can_shrink_to_zero)
{
	uvmo_vmo_t *v = make_vmo(2 * PG, UVMO_VMO_RESIZABLE);
	fill_pages(v, 0, 2, 0x75);
	expect_ok(uvmo_vmo_set_size(v, 0));
	cr_assert_eq(size_of(v), 0);
	cr_assert_eq(info_of(v).committed_bytes, 0);
	expect_ok(uvmo_vmo_set_size(v, 2 * PG));
	expect_pages(v, 0, 2, 0);
}

Test(vmo, set_size_to_the_current_size_changes_nothing)
{
	uvmo_vmo_t *v = make_vmo(2 * PG, UVMO_VMO_RESIZABLE);
	fill_pages(v, 0, 2, 0x76);
	expect_ok(uvmo_vmo_set_size(v, 2 * PG));
	cr_assert_eq(size_of(v), 2 * PG);
	expect_pages(v, 0, 2, 0x76);
}

Test(vmo, resizable_vmo_can_grow_far_past_its_first_size)
{
	/* Past the default 1 GiB resizable window: the VMO moves windows. */
	uvmo_vmo_t *v = make_vmo(PG, UVMO_VMO_RESIZABLE);
	fill_page(v, 0, 0x77);
	uint64_t big = (1ull << 30) + 16 * PG;
	expect_ok(uvmo_vmo_set_size(v, big));
	fill_page(v, big / PG - 1, 0x78);
	expect_page(v, 0, 0x77);
	expect_page(v, big / PG - 1, 0x78);
	expect_page(v, big / PG - 2, 0);
	expect_page(v, (1ull << 30) / PG, 0);
}

/* ---------------------------------------------------------------------- */
/* info                                                                   */
/* ---------------------------------------------------------------------- */

Test(vmo, info_of_a_plain_vmo)
{
	uvmo_vmo_t *v = make_vmo(3 * PG, 0);
	struct uvmo_vmo_info i = info_of(v);
	cr_assert_neq(i.id, 0);
	cr_assert_eq(i.parent_id, 0);
	cr_assert_eq(i.size, 3 * PG);
	cr_assert_eq(i.committed_bytes, 0);
	cr_assert_eq(i.attributed_bytes, 0);
	cr_assert_eq(i.num_children, 0);
	cr_assert_eq(i.flags, 0, "flags 0x%x", i.flags);
	cr_assert_eq(i.lock_count, 0);
}

Test(vmo, info_flags_of_a_resizable_vmo)
{
	uvmo_vmo_t *v = make_vmo(PG, UVMO_VMO_RESIZABLE);
	cr_assert_eq(info_of(v).flags, UVMO_INFO_RESIZABLE, "flags 0x%x", info_of(v).flags);
}

Test(vmo, info_flags_of_a_discardable_vmo)
{
	uvmo_vmo_t *v = make_vmo(PG, UVMO_VMO_DISCARDABLE);
	struct uvmo_vmo_info i = info_of(v);
	cr_assert_eq(i.flags, UVMO_INFO_DISCARDABLE, "flags 0x%x", i.flags);
	cr_assert_eq(i.lock_count, 0);
}

Test(vmo, info_size_follows_set_size)
{
	uvmo_vmo_t *v = make_vmo(PG, UVMO_VMO_RESIZABLE);
	expect_ok(uvmo_vmo_set_size(v, 9 * PG));
	cr_assert_eq(info_of(v).size, 9 * PG);
	expect_ok(uvmo_vmo_set_size(v, 4 * PG));
	cr_assert_eq(info_of(v).size, 4 * PG);
}

Test(vmo, info_ids_are_unique_and_never_reused)
{
	enum { N = 32 };
	uint64_t ids[2 * N];
	uvmo_vmo_t *v[N];
	for (int i = 0; i < N; i++) {
		v[i] = make_vmo(PG, 0);
		ids[i] = info_of(v[i]).id;
	}
	for (int i = 0; i < N; i++)
		uvmo_vmo_close(v[i]);
	for (int i = 0; i < N; i++) {
		v[i] = make_vmo(PG, 0);
		ids[N + i] = info_of(v[i]).id;
	}
	for (int i = 0; i < 2 * N; i++) {
		cr_assert_neq(ids[i], 0);
		for (int j = 0; j < i; j++)
			cr_assert_neq(ids[i], ids[j], "id %llu given twice",
				      (unsigned long long)ids[i]);
	}
}

Test(vmo, children_have_their_own_ids_and_name_their_parent)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	uvmo_vmo_t *s = snap(p);
	uvmo_vmo_t *sl = make_child(p, UVMO_CHILD_SLICE, PG, PG);
	uvmo_vmo_t *gs = snap(s);
	struct uvmo_vmo_info ip = info_of(p), is = info_of(s), isl = info_of(sl),
			     igs = info_of(gs);
	cr_assert_eq(ip.parent_id, 0);
	cr_assert_eq(is.parent_id, ip.id);
	cr_assert_eq(isl.parent_id, ip.id);
	cr_assert_eq(igs.parent_id, is.id);
	cr_assert(ip.id != is.id && ip.id != isl.id && is.id != isl.id &&
		  igs.id != ip.id && igs.id != is.id && igs.id != isl.id);
}

Test(vmo, snapshotting_a_vmo_keeps_its_id_and_size)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	fill_page(p, 0, 1);
	struct uvmo_vmo_info before = info_of(p);
	uvmo_vmo_t *c = snap(p);
	struct uvmo_vmo_info after = info_of(p);
	cr_assert_eq(after.id, before.id);
	cr_assert_eq(after.parent_id, 0);
	cr_assert_eq(after.size, before.size);
	cr_assert_eq(after.flags, before.flags);
	uvmo_vmo_close(c);
	cr_assert_eq(info_of(p).id, before.id);
}

Test(vmo, info_flags_of_children)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	uvmo_vmo_t *s = snap(p);
	uvmo_vmo_t *a = make_child(p, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
	uvmo_vmo_t *sl = make_child(p, UVMO_CHILD_SLICE, 0, 2 * PG);
	uvmo_vmo_t *r = make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_RESIZABLE, 0, 4 * PG);
	uvmo_vmo_t *nw = make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_NO_WRITE, 0, 4 * PG);
	uvmo_vmo_t *slnw = make_child(p, UVMO_CHILD_SLICE | UVMO_CHILD_NO_WRITE, 0, PG);

	cr_assert_eq(info_of(s).flags, UVMO_INFO_SNAPSHOT, "0x%x", info_of(s).flags);
	cr_assert_eq(info_of(a).flags, UVMO_INFO_SNAPSHOT, "0x%x", info_of(a).flags);
	cr_assert_eq(info_of(sl).flags, UVMO_INFO_SLICE, "0x%x", info_of(sl).flags);
	cr_assert_eq(info_of(r).flags, UVMO_INFO_SNAPSHOT | UVMO_INFO_RESIZABLE,
		     "0x%x", info_of(r).flags);
	cr_assert_eq(info_of(nw).flags, UVMO_INFO_SNAPSHOT | UVMO_INFO_NO_WRITE,
		     "0x%x", info_of(nw).flags);
	cr_assert_eq(info_of(slnw).flags, UVMO_INFO_SLICE | UVMO_INFO_NO_WRITE,
		     "0x%x", info_of(slnw).flags);
	cr_assert_eq(info_of(p).flags, 0, "parent flags 0x%x", info_of(p).flags);
}

Test(vmo, child_info_reports_the_child_size)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SNAPSHOT, 2 * PG, 10 * PG);
	uvmo_vmo_t *sl = make_child(p, UVMO_CHILD_SLICE, 3 * PG, 2 * PG);
	cr_assert_eq(info_of(s).size, 10 * PG);
	cr_assert_eq(size_of(s), 10 * PG);
	cr_assert_eq(info_of(sl).size, 2 * PG);
	cr_assert_eq(size_of(sl), 2 * PG);
}

Test(vmo, num_children_counts_live_children)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	cr_assert_eq(info_of(p).num_children, 0);
	uvmo_vmo_t *a = snap(p);
	cr_assert_eq(info_of(p).num_children, 1);
	uvmo_vmo_t *b = snap(p);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SLICE, 0, PG);
	uvmo_vmo_t *d = make_child(p, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, PG);
	cr_assert_eq(info_of(p).num_children, 4);
	(void)a, (void)b, (void)c, (void)d;
}

Test(vmo, num_children_drops_when_a_child_closes)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	uvmo_vmo_t *a = snap(p);
	uvmo_vmo_t *b = make_child(p, UVMO_CHILD_SLICE, 0, PG);
	uvmo_vmo_t *c = snap(p);
	cr_assert_eq(info_of(p).num_children, 3);
	uvmo_vmo_close(b);
	cr_assert_eq(info_of(p).num_children, 2);
	uvmo_vmo_close(a);
	cr_assert_eq(info_of(p).num_children, 1);
	uvmo_vmo_close(c);
	cr_assert_eq(info_of(p).num_children, 0);
}

Test(vmo, num_children_does_not_count_grandchildren)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	uvmo_vmo_t *c = snap(p);
	uvmo_vmo_t *g1 = snap(c);
	uvmo_vmo_t *g2 = make_child(c, UVMO_CHILD_SLICE, 0, PG);
	cr_assert_eq(info_of(p).num_children, 1);
	cr_assert_eq(info_of(c).num_children, 2);
	cr_assert_eq(info_of(g1).num_children, 0);
	(void)g2;
}

Test(vmo, num_children_of_a_parent_survives_its_own_snapshot)
{
	/* The original keeps its identity, children included. */
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	uvmo_vmo_t *a = snap(p);
	uvmo_vmo_t *b = snap(a);
	cr_assert_eq(info_of(a).num_children, 1);
	uvmo_vmo_t *c = snap(a);
	cr_assert_eq(info_of(a).num_children, 2);
	uvmo_vmo_close(b);
	cr_assert_eq(info_of(a).num_children, 1);
	(void)c;
}

Test(vmo, closing_a_parent_leaves_the_child_working_and_its_info_intact)
{
	uvmo_vmo_t *p = make_vmo(2 * PG, 0);
	uint64_t pid = info_of(p).id;
	uvmo_vmo_t *c = snap(p);
	uvmo_vmo_close(p);
	struct uvmo_vmo_info i = info_of(c);
	cr_assert_eq(i.parent_id, pid);
	cr_assert_eq(i.size, 2 * PG);
}

/* ---------------------------------------------------------------------- */
/* handles                                                                */
/* ---------------------------------------------------------------------- */

Test(vmo, closed_handle_returns_ebadf_from_every_call)
{
	uvmo_vmo_t *v = make_vmo(2 * PG, UVMO_VMO_RESIZABLE);
	fill_page(v, 0, 0x81);
	uvmo_vmo_close(v);

	uint8_t buf[16] = { 0 };
	uint64_t size = 0;
	struct uvmo_vmo_info info;
	uvmo_vmo_t *child = NULL;
	expect_rc(-EBADF, uvmo_vmo_read(v, buf, 0, sizeof(buf)));
	expect_rc(-EBADF, uvmo_vmo_write(v, buf, 0, sizeof(buf)));
	expect_rc(-EBADF, uvmo_vmo_get_size(v, &size));
	expect_rc(-EBADF, uvmo_vmo_set_size(v, 4 * PG));
	expect_rc(-EBADF, uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 0, PG));
	expect_rc(-EBADF, uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 0, PG));
	expect_rc(-EBADF, uvmo_vmo_op_range(v, UVMO_OP_ZERO, 0, PG));
	expect_rc(-EBADF, uvmo_vmo_create_child(v, UVMO_CHILD_SNAPSHOT, 0, PG, &child));
	expect_rc(-EBADF, uvmo_vmo_create_child(v, UVMO_CHILD_SLICE, 0, PG, &child));
	expect_rc(-EBADF, uvmo_vmo_get_info(v, &info));
}

Test(vmo, closed_discardable_handle_returns_ebadf_from_lock_ops)
{
	uvmo_vmo_t *v = make_vmo(PG, UVMO_VMO_DISCARDABLE);
	uvmo_vmo_close(v);
	expect_rc(-EBADF, uvmo_vmo_op_range(v, UVMO_OP_LOCK, 0, PG));
	expect_rc(-EBADF, uvmo_vmo_op_range(v, UVMO_OP_TRY_LOCK, 0, PG));
	expect_rc(-EBADF, uvmo_vmo_op_range(v, UVMO_OP_UNLOCK, 0, PG));
}

Test(vmo, closing_twice_or_closing_null_is_harmless)
{
	uvmo_vmo_t *v = make_vmo(PG, 0);
	uvmo_vmo_t *w = make_vmo(PG, 0);
	fill_page(w, 0, 0x82);
	uvmo_vmo_close(v);
	uvmo_vmo_close(v);
	uvmo_vmo_close(NULL);
	expect_page(w, 0, 0x82);
	cr_assert_eq(stats_now().vmos, 1);
}

Test(vmo, stale_handle_stays_invalid_after_new_vmos_are_created)
{
	uvmo_vmo_t *v = make_vmo(PG, 0);
	uvmo_vmo_close(v);
	uvmo_vmo_t *others[16];
	for (int i = 0; i < 16; i++) {
		others[i] = make_vmo(PG, 0);
		fill_page(others[i], 0, (uint8_t)(0x90 + i));
	}
	uint8_t b = 0x5a;
	expect_rc(-EBADF, uvmo_vmo_write(v, &b, 0, 1));
	expect_rc(-EBADF, uvmo_vmo_read(v, &b, 0, 1));
	for (int i = 0; i < 16; i++)
		expect_page(others[i], 0, 0x90 + i);
}

Test(vmo, closing_a_child_handle_leaves_the_parent_usable)
{
	uvmo_vmo_t *p = make_vmo(PG, 0);
	fill_page(p, 0, 0x83);
	uvmo_vmo_t *c = snap(p);
	uvmo_vmo_close(c);
	expect_page(p, 0, 0x83);
	fill_page(p, 0, 0x84);
	expect_page(p, 0, 0x84);
}

Test(vmo, stats_count_live_vmos)
{
	uint64_t base = stats_now().vmos;
	uvmo_vmo_t *a = make_vmo(PG, 0);
	uvmo_vmo_t *b = make_vmo(PG, 0);
	uvmo_vmo_t *c = snap(a);
	cr_assert_eq(stats_now().vmos, base + 3);
	uvmo_vmo_close(a);
	cr_assert_eq(stats_now().vmos, base + 2);
	uvmo_vmo_close(b);
	uvmo_vmo_close(c);
	cr_assert_eq(stats_now().vmos, base);
}

/* ---------------------------------------------------------------------- */
/* runtime                                                                */
/* ---------------------------------------------------------------------- */

Test(vmo, init_twice_returns_ebusy)
{
	unsetenv("UVMO_POOL_LIMIT");
	expect_ok(uvmo_init(NULL));
	expect_rc(-EBUSY, uvmo_init(NULL));
	struct uvmo_config cfg = { .pool_limit = 1 << 20 };
	expect_rc(-EBUSY, uvmo_init(&cfg));
	/* The failed call changed nothing. */
	cr_assert_eq(stats_now().pool_limit, 0);
}

Test(vmo, init_after_implicit_initialisation_returns_ebusy)
{
	uvmo_vmo_t *v = make_vmo(PG, 0);
	expect_rc(-EBUSY, uvmo_init(NULL));
	fill_page(v, 0, 0x85);
	expect_page(v, 0, 0x85);
}

Test(vmo, init_applies_the_configured_pool_limit)
{
	init_with_pool_limit(256 * PG);
	cr_assert_eq(stats_now().pool_limit, 256 * PG);
}

Test(vmo, shutdown_invalidates_handles_and_allows_a_new_init)
{
	uvmo_vmo_t *v = make_vmo(PG, 0);
	fill_page(v, 0, 0x86);
	uvmo_shutdown();
	/* Any call would re-initialise with defaults, so init comes first. */
	init_with_pool_limit(32 * PG);
	uint8_t b;
	cr_assert_eq(stats_now().pool_limit, 32 * PG);
	cr_assert_eq(stats_now().vmos, 0);
	cr_assert_eq(stats_now().committed_bytes, 0);
	uvmo_vmo_t *w = make_vmo(PG, 0);
	expect_page(w, 0, 0);
	expect_rc(-EBADF, uvmo_vmo_read(v, &b, 0, 1));
}

Test(vmo, default_pool_is_unlimited_without_the_environment_variable)
{
	unsetenv("UVMO_POOL_LIMIT");
	cr_assert_eq(stats_now().pool_limit, 0);
}

static void check_env_limit(const char *value, uint64_t want)
{
	cr_assert_eq(setenv("UVMO_POOL_LIMIT", value, 1), 0);
	uint64_t got = stats_now().pool_limit;
	cr_assert_eq(got, want, "UVMO_POOL_LIMIT=%s gave %llu, expected %llu", value,
		     (unsigned long long)got, (unsigned long long)want);
}

Test(vmo, pool_limit_env_in_plain_bytes)
{
	check_env_limit("1048576", 1048576);
}

Test(vmo, pool_limit_env_with_k_suffix)
{
	check_env_limit("64K", 64ull << 10);
}

Test(vmo, pool_limit_env_with_m_suffix)
{
	check_env_limit("16M", 16ull << 20);
}

Test(vmo, pool_limit_env_with_g_suffix)
{
	check_env_limit("2G", 2ull << 30);
}

Test(vmo, pool_limit_env_with_t_suffix)
{
	check_env_limit("1T", 1ull << 40);
}

Test(vmo, pool_limit_env_is_read_by_an_explicit_init_without_a_limit)
{
	cr_assert_eq(setenv("UVMO_POOL_LIMIT", "8M", 1), 0);
	expect_ok(uvmo_init(NULL));
	cr_assert_eq(stats_now().pool_limit, 8ull << 20);
}

Test(vmo, configured_pool_limit_overrides_the_environment)
{
	cr_assert_eq(setenv("UVMO_POOL_LIMIT", "8M", 1), 0);
	init_with_pool_limit(64 * PG);
	cr_assert_eq(stats_now().pool_limit, 64 * PG);
}

Test(vmo, pool_limit_from_the_environment_is_enforced)
{
	cr_assert_eq(setenv("UVMO_POOL_LIMIT", "64K", 1), 0);
	uvmo_vmo_t *v = make_vmo(32 * PG, 0);
	uint8_t buf[UVMO_PAGE_SIZE];
	memset(buf, 0x88, sizeof(buf));
	uint64_t p;
	int rc = 0;
	for (p = 0; p < 32; p++) {
		rc = uvmo_vmo_write(v, buf, p * PG, PG);
		if (rc != 0)
			break;
	}
	cr_assert_eq(rc, -ENOMEM, "write of page %llu: %s", (unsigned long long)p, rc_name(rc));
	cr_assert_eq(stats_now().committed_bytes, 64ull << 10,
		     "refused with %llu bytes committed",
		     (unsigned long long)stats_now().committed_bytes);
	expect_page(v, p, 0);
	expect_pages(v, 0, p, 0x88);
}

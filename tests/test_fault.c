/* SPDX-License-Identifier: MIT */
/*
 * Accesses through mappings (issue 3, sections 2 and 3): they behave like
 * memory with the copy-on-write semantics of the clone hierarchy, agree
 * byte for byte with uvmo_vmo_read/_write and with every other mapping,
 * work from system calls, raise SIGBUS past the end and SIGSEGV on a
 * read-only write, survive concurrent faults and concurrent snapshot,
 * decommit and unmap, and end in SIGBUS (not a hang) when the pool runs out.
 */
#include "map_test_util.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#define WORDS (UVMO_PAGE_SIZE / sizeof(uint64_t))

static uvmo_vmo_t *pattern_vmo(uint64_t pages, uint64_t seed)
{
	uvmo_vmo_t *v = make_vmo(pages * PG, 0);
	write_pattern(v, seed, 0, pages * PG);
	return v;
}

/* Self-describing page content: every word is (seq << 20) | page. */
static inline uint64_t tag(uint64_t page, uint64_t seq)
{
	return (seq << 20) | page;
}

static void fill_words(volatile uint64_t *w, uint64_t page, uint64_t seq)
{
	for (size_t i = 0; i < WORDS; i++)
		w[i] = tag(page, seq);
}

/* ---------------------------------------------------------------------- */
/* memory semantics                                                       */
/* ---------------------------------------------------------------------- */

Test(fault, fresh_mapping_reads_zero)
{
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	uint8_t *m = map_rw(v);
	expect_mem_val(m, 16 * PG, 0);
	uint8_t *r = map_vmo(root_vmar(), PERM_R, v, 0, 16 * PG);
	expect_mem_val(r, 16 * PG, 0);
}

Test(fault, writes_through_a_mapping_are_seen_by_vmo_read)
{
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	uint8_t *m = map_rw(v);
	fill_pattern(m, 16 * PG, 1, 0);
	uint8_t *buf = read_all(v, NULL);
	expect_mem_pattern(buf, 16 * PG, 1, 0);
	free(buf);
	/* Single bytes in the middle of pages, too. */
	m[5 * PG + 77] = 0x42;
	uint8_t x;
	expect_ok(uvmo_vmo_read(v, &x, 5 * PG + 77, 1));
	cr_assert_eq(x, 0x42);
}

Test(fault, vmo_write_is_seen_through_a_mapping)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	uint8_t *m = map_rw(v);
	/* Pages never touched through the mapping ... */
	write_pattern(v, 2, 0, 8 * PG);
	expect_mem_pattern(m, 8 * PG, 2, 0);
	/* ... and pages already faulted in, at once. */
	write_pattern(v, 3, PG + 100, 3 * PG);
	expect_mem_pattern(m + PG + 100, 3 * PG, 3, PG + 100);
	expect_mem_pattern(m, PG + 100, 2, 0);
}

Test(fault, mapping_at_an_offset_shows_the_right_pages)
{
	uvmo_vmo_t *v = pattern_vmo(16, 4);
	uint8_t *m = map_vmo(root_vmar(), PERM_RW, v, 5 * PG, 7 * PG);
	expect_mem_pattern(m, 7 * PG, 4, 5 * PG);
	m[0] = 0xab;
	uint8_t x;
	expect_ok(uvmo_vmo_read(v, &x, 5 * PG, 1));
	cr_assert_eq(x, 0xab);
}

Test(fault, two_mappings_of_one_vmo_are_coherent)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	uint8_t *a = map_rw(v);
	uint8_t *b = map_rw(v);
	cr_assert_neq(a, b);
	fill_pattern(a, 4 * PG, 5, 0);
	expect_mem_pattern(b, 4 * PG, 5, 0);
	fill_pattern(b + 2 * PG, 6 * PG, 6, 2 * PG);
	expect_mem_pattern(a + 2 * PG, 6 * PG, 6, 2 * PG);
	expect_mem_pattern(a, 2 * PG, 5, 0);
	expect_vmo_matches(v, 0, a, 8 * PG);
	/* A third mapping at an offset, made after the writes. */
	uint8_t *c = map_vmo(root_vmar(), PERM_R, v, 3 * PG, 2 * PG);
	expect_mem_pattern(c, 2 * PG, 6, 3 * PG);
	a[3 * PG + 1] = 0x11;
	cr_assert_eq(c[1], 0x11);
}

Test(fault, slice_mapping_is_coherent_with_its_parent)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, 2 * PG, 4 * PG);
	uint8_t *mp = map_rw(p);
	uint8_t *ms = map_rw(s);
	fill_pattern(mp, 8 * PG, 7, 0);
	expect_mem_pattern(ms, 4 * PG, 7, 2 * PG);
	memset(ms + PG, 0x3d, PG);
	expect_mem_val(mp + 3 * PG, PG, 0x3d);
	expect_vmo_matches(p, 0, mp, 8 * PG);
	expect_vmo_matches(s, 0, ms, 4 * PG);
	/* uvmo_vmo_write on the slice reaches the parent's mapping. */
	fill_page(s, 3, 0x4e);
	expect_mem_val(mp + 5 * PG, PG, 0x4e);
}

Test(fault, slice_of_a_slice_mapping_is_coherent)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, 2 * PG, 4 * PG);
	uvmo_vmo_t *ss = make_child(s, UVMO_CHILD_SLICE, PG, 2 * PG);
	uint8_t *mp = map_rw(p), *ms = map_rw(s), *mss = map_rw(ss);
	mss[10] = 1;
	cr_assert_eq(ms[PG + 10], 1);
	cr_assert_eq(mp[3 * PG + 10], 1);
	mp[4 * PG + 20] = 2;
	cr_assert_eq(mss[PG + 20], 2);
}

Test(fault, snapshot_keeps_old_bytes_while_the_parent_writes_through_its_mapping)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	uint8_t *mp = map_rw(p);
	/* Pages 0..5 faulted writable through the mapping, 6..7 never touched. */
	fill_pattern(mp, 6 * PG, 8, 0);
	uvmo_vmo_t *c = snap(p);
	fill_pattern(mp, 8 * PG, 9, 0);
	uint8_t *buf = read_all(c, NULL);
	expect_mem_pattern(buf, 6 * PG, 8, 0);
	expect_mem_val(buf + 6 * PG, 2 * PG, 0);
	free(buf);
	uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, 8 * PG);
	expect_mem_pattern(mc, 6 * PG, 8, 0);
	expect_mem_val(mc + 6 * PG, 2 * PG, 0);
	expect_mem_pattern(mp, 8 * PG, 9, 0);
	buf = read_all(p, NULL);
	expect_mem_pattern(buf, 8 * PG, 9, 0);
	free(buf);
}

Test(fault, snapshot_of_a_mapped_vmo_with_a_mapped_snapshot_keeps_both_apart)
{
	uvmo_vmo_t *p = pattern_vmo(4, 10);
	uint8_t *mp = map_rw(p);
	expect_mem_pattern(mp, 4 * PG, 10, 0);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_rw(c);
	expect_mem_pattern(mc, 4 * PG, 10, 0);
	/* Interleaved writes on both sides, each faulting copy-on-write. */
	for (uint64_t pg = 0; pg < 4; pg++) {
		mp[pg * PG] = (uint8_t)(0x10 + pg);
		mc[pg * PG + 1] = (uint8_t)(0x20 + pg);
	}
	for (uint64_t pg = 0; pg < 4; pg++) {
		cr_assert_eq(mp[pg * PG], 0x10 + pg);
		cr_assert_eq(mp[pg * PG + 1], pattern_byte(10, pg * PG + 1));
		cr_assert_eq(mc[pg * PG], pattern_byte(10, pg * PG));
		cr_assert_eq(mc[pg * PG + 1], 0x20 + pg);
	}
	expect_vmo_matches(p, 0, mp, 4 * PG);
	expect_vmo_matches(c, 0, mc, 4 * PG);
}

Test(fault, writes_through_a_snapshot_mapping_are_invisible_to_the_parent)
{
	uvmo_vmo_t *p = pattern_vmo(8, 11);
	uint8_t *mp = map_vmo(root_vmar(), PERM_R, p, 0, 8 * PG);
	expect_mem_pattern(mp, 8 * PG, 11, 0);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_rw(c);
	fill_pattern(mc + 2 * PG, 4 * PG, 12, 0);
	expect_mem_pattern(mp, 8 * PG, 11, 0);
	uint8_t *buf = read_all(p, NULL);
	expect_mem_pattern(buf, 8 * PG, 11, 0);
	free(buf);
	buf = read_all(c, NULL);
	expect_mem_pattern(buf, 2 * PG, 11, 0);
	expect_mem_pattern(buf + 2 * PG, 4 * PG, 12, 0);
	expect_mem_pattern(buf + 6 * PG, 2 * PG, 11, 6 * PG);
	free(buf);
}

Test(fault, vmo_write_to_a_parent_after_snapshot_does_not_reach_the_snapshot_mapping)
{
	uvmo_vmo_t *p = pattern_vmo(4, 13);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, 4 * PG);
	expect_mem_pattern(mc, 2 * PG, 13, 0); /* half faulted before */
	write_pattern(p, 14, 0, 4 * PG);
	expect_mem_pattern(mc, 4 * PG, 13, 0);
}

Test(fault, first_write_through_a_snapshot_mapping_commits_one_page)
{
	uvmo_vmo_t *p = pattern_vmo(8, 15);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_rw(c);
	mc[3 * PG + 9] = 0;
	struct uvmo_vmo_info i = info_of(c);
	cr_assert_eq(i.committed_bytes, PG, "the clone owns %llu bytes after one write",
		     (unsigned long long)i.committed_bytes);
	expect_mem_pattern(mc + 3 * PG, 9, 15, 3 * PG);
	expect_mem_pattern(mc + 3 * PG + 10, PG - 10, 15, 3 * PG + 10);
}

Test(fault, clone_of_clone_chain_mapped_at_every_level)
{
	enum { DEPTH = 6, PAGES = 8 };
	uvmo_vmo_t *v[DEPTH + 1];
	uint8_t *m[DEPTH + 1];
	v[0] = make_vmo(PAGES * PG, 0);
	fill_pages(v[0], 0, PAGES, 0xa0);
	m[0] = map_rw(v[0]);
	for (int i = 1; i <= DEPTH; i++) {
		v[i] = snap(v[i - 1]);
		m[i] = map_rw(v[i]);
		memset(m[i] + (uint64_t)i * PG, 0x10 + i, PG);
	}
	/* The root writes after every snapshot was taken. */
	memset(m[0] + 7 * PG, 0xff, PG);
	for (int i = 0; i <= DEPTH; i++)
		for (int k = 0; k < PAGES; k++) {
			uint8_t want = 0xa0;
			if (k >= 1 && k <= i)
				want = (uint8_t)(0x10 + k);
			if (i == 0 && k == 7)
				want = 0xff;
			expect_mem_val(m[i] + (uint64_t)k * PG, PG, want);
			expect_page(v[i], (uint64_t)k, want);
		}
	/* Closing the middle of the chain (merges) keeps every mapping right. */
	uvmo_vmo_close(v[3]);
	uvmo_vmo_close(v[1]);
	for (int i = 0; i <= DEPTH; i++)
		for (int k = 0; k < PAGES; k++) {
			uint8_t want = (k >= 1 && k <= i) ? (uint8_t)(0x10 + k) : 0xa0;
			if (i == 0 && k == 7)
				want = 0xff;
			expect_mem_val(m[i] + (uint64_t)k * PG, PG, want);
		}
	memset(m[DEPTH], 0x77, PAGES * PG);
	expect_mem_val(m[5], PG, 0xa0);
	expect_mem_val(m[2] + 2 * PG, PG, 0x12);
}

Test(fault, snapshot_closed_while_mapped_keeps_its_content)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	uint8_t *mp = map_rw(p);
	memset(mp, 0x31, 4 * PG);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, 4 * PG);
	uvmo_vmo_close(c);
	memset(mp, 0x32, 4 * PG);
	expect_mem_val(mc, 4 * PG, 0x31);
	expect_mem_val(mp, 4 * PG, 0x32);
}

Test(fault, parent_mapping_keeps_working_after_its_snapshot_is_closed)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	uint8_t *mp = map_rw(p);
	memset(mp, 0x41, 2 * PG);
	uvmo_vmo_t *c = snap(p);
	uvmo_vmo_close(c); /* the hidden node merges back */
	memset(mp + PG, 0x42, 2 * PG);
	expect_mem_val(mp, PG, 0x41);
	expect_mem_val(mp + PG, 2 * PG, 0x42);
	expect_mem_val(mp + 3 * PG, PG, 0);
	expect_vmo_matches(p, 0, mp, 4 * PG);
}

Test(fault, slice_mapping_follows_its_parent_across_a_snapshot)
{
	uvmo_vmo_t *p = pattern_vmo(8, 16);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, 4 * PG, 4 * PG);
	uint8_t *mp = map_rw(p);
	uint8_t *ms = map_rw(s);
	expect_mem_pattern(ms, 4 * PG, 16, 4 * PG);
	uvmo_vmo_t *c = snap(p);
	mp[5 * PG] = 0x51;
	cr_assert_eq(ms[PG], 0x51);
	ms[2 * PG] = 0x52;
	cr_assert_eq(mp[6 * PG], 0x52);
	uint8_t x;
	expect_ok(uvmo_vmo_read(c, &x, 5 * PG, 1));
	cr_assert_eq(x, pattern_byte(16, 5 * PG));
	expect_ok(uvmo_vmo_read(c, &x, 6 * PG, 1));
	cr_assert_eq(x, pattern_byte(16, 6 * PG));
}

Test(fault, inherited_pages_read_correctly_in_any_order)
{
	enum { PAGES = 96 };
	uvmo_vmo_t *p = make_vmo(PAGES * PG, 0);
	for (uint64_t pg = 0; pg < PAGES; pg += 3)
		fill_page(p, pg, (uint8_t)(pg + 1));
	uvmo_vmo_t *c = snap(p);
	uint8_t *mp = map_rw(p);
	for (uint64_t pg = 0; pg < PAGES; pg += 5)
		mp[pg * PG] = 0xee; /* parent writes after the snapshot */
	uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, PAGES * PG);
	/* First half sequential, second half in a scattered order. */
	for (uint64_t pg = 0; pg < PAGES / 2; pg++)
		expect_mem_val(mc + pg * PG, PG, pg % 3 == 0 ? pg + 1 : 0);
	for (uint64_t i = 0; i < PAGES / 2; i++) {
		uint64_t pg = PAGES / 2 + (i * 7) % (PAGES / 2);
		expect_mem_val(mc + pg * PG, PG, pg % 3 == 0 ? pg + 1 : 0);
	}
}

/* ---------------------------------------------------------------------- */
/* operations take effect in every mapping at once                        */
/* ---------------------------------------------------------------------- */

Test(fault, decommit_is_visible_in_every_mapping_at_once)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	uint8_t *a = map_rw(v);
	uint8_t *b = map_vmo(root_vmar(), PERM_R, v, 0, 8 * PG);
	memset(a, 0x61, 8 * PG);
	expect_mem_val(b, 8 * PG, 0x61);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 2 * PG, 3 * PG));
	cr_assert_eq(info_of(v).committed_bytes, 5 * PG);
	expect_mem_val(a, 2 * PG, 0x61);
	expect_mem_val(a + 2 * PG, 3 * PG, 0);
	expect_mem_val(b + 2 * PG, 3 * PG, 0);
	expect_mem_val(a + 5 * PG, 3 * PG, 0x61);
	a[3 * PG] = 0x62;
	cr_assert_eq(b[3 * PG], 0x62);
	uint8_t x;
	expect_ok(uvmo_vmo_read(v, &x, 3 * PG, 1));
	cr_assert_eq(x, 0x62);
}

Test(fault, zero_is_visible_in_every_mapping_at_once)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	uint8_t *a = map_rw(v);
	uint8_t *b = map_rw(v);
	memset(a, 0x71, 4 * PG);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_ZERO, PG + 100, 2 * PG + 7));
	expect_mem_val(a, PG + 100, 0x71);
	expect_mem_val(b + PG + 100, 2 * PG + 7, 0);
	expect_mem_val(a + 3 * PG + 107, PG - 107, 0x71);
	expect_vmo_matches(v, 0, b, 4 * PG);
}

Test(fault, decommit_of_a_mapped_clone_reads_zero_and_spares_the_parent)
{
	uvmo_vmo_t *p = pattern_vmo(4, 17);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_rw(c);
	uint8_t *mp = map_rw(p);
	memset(mc + PG, 0x81, PG);
	expect_mem_pattern(mc + 2 * PG, PG, 17, 2 * PG);
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_DECOMMIT, PG, 2 * PG));
	expect_mem_val(mc + PG, 2 * PG, 0);
	expect_mem_pattern(mc, PG, 17, 0);
	expect_mem_pattern(mp, 4 * PG, 17, 0);
}

Test(fault, commit_keeps_mapped_content)
{
	uvmo_vmo_t *p = pattern_vmo(4, 18);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_rw(c);
	expect_mem_pattern(mc, PG, 18, 0);
	expect_ok(uvmo_vmo_op_range(c, UVMO_OP_COMMIT, 0, 4 * PG));
	expect_mem_pattern(mc, 4 * PG, 18, 0);
	mc[0] = 0;
	uint8_t x;
	expect_ok(uvmo_vmo_read(p, &x, 0, 1));
	cr_assert_eq(x, pattern_byte(18, 0));
}

/* ---------------------------------------------------------------------- */
/* the end of the VMO, and read-only mappings                             */
/* ---------------------------------------------------------------------- */

/* A resizable VMO of 8 pages, mapped with ALLOW_FAULTS and filled. */
static uvmo_vmo_t *mapped_resizable(uint8_t **m)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, UVMO_VMO_RESIZABLE);
	*m = map_vmo(root_vmar(), PERM_RW | UVMO_VMAR_ALLOW_FAULTS, v, 0, 8 * PG);
	memset(*m, 0x91, 8 * PG);
	return v;
}

Test(fault, shrink_makes_access_past_the_end_raise_sigbus)
{
	uint8_t *m;
	uvmo_vmo_t *v = mapped_resizable(&m);
	expect_ok(uvmo_vmo_set_size(v, 3 * PG));
	expect_mem_val(m, 3 * PG, 0x91);
	for (uint64_t pg = 3; pg < 8; pg++) {
		expect_read_signal(SIGBUS, m + pg * PG);
		expect_write_signal(SIGBUS, m + pg * PG + 17);
	}
	/* Inside the end everything still works. */
	m[2 * PG + 5] = 0x92;
	uint8_t x;
	expect_ok(uvmo_vmo_read(v, &x, 2 * PG + 5, 1));
	cr_assert_eq(x, 0x92);
}

Test(fault, shrink_then_access_past_the_end_kills_with_sigbus, .signal = SIGBUS)
{
	uint8_t *m;
	uvmo_vmo_t *v = mapped_resizable(&m);
	expect_ok(uvmo_vmo_set_size(v, 2 * PG));
	*(volatile uint8_t *)(m + 5 * PG) = 1;
}

Test(fault, grow_after_shrink_reads_zero_and_works)
{
	uint8_t *m;
	uvmo_vmo_t *v = mapped_resizable(&m);
	expect_ok(uvmo_vmo_set_size(v, 3 * PG));
	expect_read_signal(SIGBUS, m + 4 * PG);
	expect_ok(uvmo_vmo_set_size(v, 8 * PG));
	expect_mem_val(m, 3 * PG, 0x91);
	expect_mem_val(m + 3 * PG, 5 * PG, 0);
	memset(m + 4 * PG, 0x93, PG);
	expect_page(v, 4, 0x93);
	expect_page(v, 5, 0);
}

Test(fault, grow_of_a_clone_never_reveals_old_parent_content_in_a_mapping)
{
	uvmo_vmo_t *p = pattern_vmo(8, 19);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_RESIZABLE, 0, 8 * PG);
	uint8_t *mc = map_vmo(root_vmar(), PERM_RW | UVMO_VMAR_ALLOW_FAULTS, c, 0, 8 * PG);
	expect_mem_pattern(mc, 8 * PG, 19, 0);
	expect_ok(uvmo_vmo_set_size(c, 2 * PG));
	expect_read_signal(SIGBUS, mc + 2 * PG);
	expect_ok(uvmo_vmo_set_size(c, 8 * PG));
	expect_mem_pattern(mc, 2 * PG, 19, 0);
	expect_mem_val(mc + 2 * PG, 6 * PG, 0);
}

Test(fault, access_past_the_end_of_an_allow_faults_mapping_raises_sigbus)
{
	uvmo_vmo_t *v = make_vmo(2 * PG, UVMO_VMO_RESIZABLE);
	uint8_t *m = map_vmo(root_vmar(), PERM_RW | UVMO_VMAR_ALLOW_FAULTS, v, 0, 4 * PG);
	expect_write_ok(m + PG, 1);
	expect_read_signal(SIGBUS, m + 2 * PG);
	expect_read_signal(SIGBUS, m + 4 * PG - 1);
	expect_ok(uvmo_vmo_set_size(v, 4 * PG));
	expect_mem_val(m + 2 * PG, 2 * PG, 0);
	expect_write_ok(m + 3 * PG, 2);
	uint8_t x[2];
	expect_ok(uvmo_vmo_read(v, &x[0], PG, 1));
	expect_ok(uvmo_vmo_read(v, &x[1], 3 * PG, 1));
	cr_assert(x[0] == 1 && x[1] == 2);
}

Test(fault, access_past_the_end_of_a_snapshotted_vmo_raises_sigbus, .timeout = 20)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, UVMO_VMO_RESIZABLE);
	uvmo_vmo_t *c = snap(v);
	uint8_t *m = map_vmo(root_vmar(), PERM_RW | UVMO_VMAR_ALLOW_FAULTS, v, 5 * PG, 5 * PG);
	expect_read_ok(m);
	expect_read_signal(SIGBUS, m + 3 * PG + 5);
	expect_write_signal(SIGBUS, m + 4 * PG);
	uvmo_vmo_close(c);
}

Test(fault, shrink_of_a_mapped_snapshotted_vmo_makes_access_past_the_end_raise_sigbus,
     .timeout = 20)
{
	uint8_t *m;
	uvmo_vmo_t *v = mapped_resizable(&m);
	uvmo_vmo_t *c = snap(v);
	expect_ok(uvmo_vmo_set_size(v, 4 * PG));
	expect_read_signal(SIGBUS, m + 6 * PG);
	expect_write_signal(SIGBUS, m + 5 * PG);
	expect_mem_val(m, 4 * PG, 0x91);
	expect_pages(c, 0, 8, 0x91);
}

Test(fault, write_to_a_read_only_mapping_kills_with_sigsegv, .signal = SIGSEGV)
{
	uvmo_vmo_t *v = make_vmo(PG, 0);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, PG);
	cr_assert_eq(m[0], 0);
	*(volatile uint8_t *)m = 1;
}

Test(fault, write_to_a_read_only_mapping_raises_sigsegv_and_changes_nothing)
{
	uvmo_vmo_t *v = pattern_vmo(2, 20);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 2 * PG);
	expect_write_signal(SIGSEGV, m); /* faulted in by the write itself */
	expect_mem_pattern(m, PG, 20, 0);
	expect_mem_pattern(m + PG, PG, 20, PG);
	expect_write_signal(SIGSEGV, m + PG + 3);
	expect_mem_pattern(m + PG, PG, 20, PG);
	uint8_t buf[PG];
	expect_ok(uvmo_vmo_read(v, buf, 0, PG));
	expect_mem_pattern(buf, PG, 20, 0);
}

Test(fault, write_to_a_read_only_mapping_of_a_clone_raises_sigsegv)
{
	uvmo_vmo_t *p = pattern_vmo(2, 21);
	uvmo_vmo_t *c = snap(p);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, c, 0, 2 * PG);
	expect_write_signal(SIGSEGV, m);
	expect_mem_pattern(m, 2 * PG, 21, 0);
	uint8_t x;
	expect_ok(uvmo_vmo_read(p, &x, 0, 1));
	cr_assert_eq(x, pattern_byte(21, 0));
}

/* ---------------------------------------------------------------------- */
/* system calls on mapped memory                                          */
/* ---------------------------------------------------------------------- */

static void pipe_fill(int fd, const uint8_t *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);
		cr_assert_gt(n, 0, "write to the pipe failed");
		done += (size_t)n;
	}
}

static void read_exactly(int fd, uint8_t *dst, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = read(fd, dst + done, len - done);
		cr_assert_gt(n, 0, "read(2) into %p returned %zd (errno %d)", (void *)(dst + done),
			     n, n < 0 ? errno : 0);
		done += (size_t)n;
	}
}

Test(fault, read_syscall_into_an_untouched_clone_page_works_and_spares_the_parent)
{
	uvmo_vmo_t *p = make_vmo(4 * PG, 0);
	write_pattern(p, 22, 0, 2 * PG); /* pages 2..3 never written */
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_rw(c);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	uint8_t src[1000];
	fill_pattern(src, sizeof(src), 23, 0);
	/* Into a page the clone shares with its parent ... */
	pipe_fill(fds[1], src, sizeof(src));
	read_exactly(fds[0], mc + PG + 50, sizeof(src));
	/* ... and into one nobody ever wrote. */
	pipe_fill(fds[1], src, sizeof(src));
	read_exactly(fds[0], mc + 3 * PG + 10, sizeof(src));
	close(fds[0]);
	close(fds[1]);
	expect_mem_pattern(mc + PG + 50, sizeof(src), 23, 0);
	expect_mem_pattern(mc + PG, 50, 22, PG);
	expect_mem_pattern(mc + PG + 1050, PG - 1050, 22, PG + 1050);
	expect_mem_pattern(mc + 3 * PG + 10, sizeof(src), 23, 0);
	expect_mem_val(mc + 3 * PG, 10, 0);
	expect_vmo_matches(c, 0, mc, 4 * PG);
	uint8_t *buf = read_all(p, NULL);
	expect_mem_pattern(buf, 2 * PG, 22, 0);
	expect_mem_val(buf + 2 * PG, 2 * PG, 0);
	free(buf);
}

Test(fault, read_syscall_into_an_untouched_page_of_a_fresh_vmo_works)
{
	uvmo_vmo_t *v = make_vmo(2 * PG, 0);
	uint8_t *m = map_rw(v);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	uint8_t src[PG];
	fill_pattern(src, sizeof(src), 24, 0);
	pipe_fill(fds[1], src, sizeof(src));
	/* Straddles both pages. */
	read_exactly(fds[0], m + PG / 2, sizeof(src));
	close(fds[0]);
	close(fds[1]);
	expect_mem_pattern(m + PG / 2, PG, 24, 0);
	expect_vmo_matches(v, 0, m, 2 * PG);
}

Test(fault, pread_of_many_pages_into_an_untouched_clone_mapping_works)
{
	enum { PAGES = 24 };
	uvmo_vmo_t *p = pattern_vmo(PAGES, 25);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_rw(c);
	FILE *f = tmpfile();
	cr_assert_not_null(f);
	int fd = fileno(f);
	uint8_t *src = malloc(PAGES * PG);
	fill_pattern(src, PAGES * PG, 26, 0);
	cr_assert_eq(pwrite(fd, src, PAGES * PG, 0), (ssize_t)(PAGES * PG));
	ssize_t n = pread(fd, mc + 100, (PAGES - 1) * PG, 0);
	cr_assert_eq(n, (ssize_t)((PAGES - 1) * PG), "pread into the mapping returned %zd", n);
	expect_mem_pattern(mc + 100, (PAGES - 1) * PG, 26, 0);
	expect_mem_pattern(mc, 100, 25, 0);
	expect_vmo_matches(c, 0, mc, PAGES * PG);
	uint8_t *buf = read_all(p, NULL);
	expect_mem_pattern(buf, PAGES * PG, 25, 0);
	free(buf);
	free(src);
	fclose(f);
}

Test(fault, write_syscall_out_of_an_untouched_clone_page_gives_the_right_bytes)
{
	uvmo_vmo_t *p = pattern_vmo(4, 27);
	uvmo_vmo_t *c = snap(p);
	write_pattern(p, 28, 0, 4 * PG); /* the parent moves on */
	uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, 4 * PG);
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(write(fds[1], mc + PG + 7, 3000), 3000);
	uint8_t got[3000];
	read_exactly(fds[0], got, sizeof(got));
	expect_mem_pattern(got, sizeof(got), 27, PG + 7);
	close(fds[0]);
	close(fds[1]);
}

Test(fault, pwrite_of_many_pages_out_of_an_untouched_clone_mapping_gives_the_right_bytes)
{
	enum { PAGES = 24 };
	uvmo_vmo_t *p = make_vmo(PAGES * PG, 0);
	for (uint64_t pg = 0; pg < PAGES; pg += 2)
		write_pattern(p, 29, pg * PG, PG);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_rw(c);
	FILE *f = tmpfile();
	cr_assert_not_null(f);
	int fd = fileno(f);
	cr_assert_eq(pwrite(fd, mc, PAGES * PG, 0), (ssize_t)(PAGES * PG));
	uint8_t *got = malloc(PAGES * PG);
	cr_assert_eq(pread(fd, got, PAGES * PG, 0), (ssize_t)(PAGES * PG));
	for (uint64_t pg = 0; pg < PAGES; pg++) {
		if (pg % 2 == 0)
			expect_mem_pattern(got + pg * PG, PG, 29, pg * PG);
		else
			expect_mem_val(got + pg * PG, PG, 0);
	}
	free(got);
	fclose(f);
}

/* ---------------------------------------------------------------------- */
/* many threads on one page                                               */
/* ---------------------------------------------------------------------- */

#define CROWD 16

struct crowd {
	pthread_barrier_t *bar;
	uint8_t *page;
	int index;
	uint8_t seen[UVMO_PAGE_SIZE];
};

static void *crowd_read(void *arg)
{
	struct crowd *c = arg;
	pthread_barrier_wait(c->bar);
	memcpy(c->seen, c->page, PG);
	return NULL;
}

static void *crowd_write(void *arg)
{
	struct crowd *c = arg;
	pthread_barrier_wait(c->bar);
	volatile uint64_t *w = (volatile uint64_t *)c->page;
	w[c->index * 8] = 0xc0ffee00u + (uint64_t)c->index;
	memcpy(c->seen, c->page, PG);
	return NULL;
}

static void run_crowd(uint8_t *page, void *(*fn)(void *), struct crowd *cs)
{
	pthread_barrier_t bar;
	pthread_t t[CROWD];
	pthread_barrier_init(&bar, NULL, CROWD);
	for (int i = 0; i < CROWD; i++) {
		cs[i].bar = &bar;
		cs[i].page = page;
		cs[i].index = i;
	}
	start_workers(t, CROWD, fn, cs, sizeof(cs[0]));
	join_workers(t, CROWD);
	pthread_barrier_destroy(&bar);
}

/* Each crowd test repeats on CROWD_ROUNDS fresh pages: the races it looks
 * for are narrow. */
#define CROWD_ROUNDS 32u

Test(fault, sixteen_threads_reading_an_untouched_zero_page_all_see_zero)
{
	uvmo_vmo_t *v = make_vmo(CROWD_ROUNDS * PG, 0);
	uint8_t *m = map_rw(v);
	struct crowd *cs = calloc(CROWD, sizeof(*cs));
	for (uint64_t pg = 0; pg < CROWD_ROUNDS; pg++) {
		run_crowd(m + pg * PG, crowd_read, cs);
		for (int i = 0; i < CROWD; i++)
			expect_mem_val(cs[i].seen, PG, 0);
	}
	free(cs);
}

Test(fault, sixteen_threads_reading_an_untouched_inherited_page_all_see_it)
{
	uvmo_vmo_t *p = pattern_vmo(CROWD_ROUNDS, 30);
	uvmo_vmo_t *c = snap(p);
	write_pattern(p, 31, 0, CROWD_ROUNDS * PG);
	uint8_t *mc = map_rw(c);
	struct crowd *cs = calloc(CROWD, sizeof(*cs));
	for (uint64_t pg = 0; pg < CROWD_ROUNDS; pg++) {
		run_crowd(mc + pg * PG, crowd_read, cs);
		for (int i = 0; i < CROWD; i++)
			expect_mem_pattern(cs[i].seen, PG, 30, pg * PG);
	}
	free(cs);
}

static void expect_crowd_writes(const uint8_t *page, uint64_t seed, uint64_t pos, bool zero)
{
	const uint64_t *w = (const uint64_t *)page;
	for (size_t i = 0; i < WORDS; i++) {
		if (i % 8 == 0 && i / 8 < CROWD) {
			cr_assert_eq(w[i], 0xc0ffee00u + i / 8, "thread %zu's write was lost (word is %#llx)",
				     i / 8, (unsigned long long)w[i]);
		} else if (zero) {
			cr_assert_eq(w[i], 0, "word %zu is %#llx, expected 0", i,
				     (unsigned long long)w[i]);
		} else {
			expect_mem_pattern(page + i * 8, 8, seed, pos + i * 8);
		}
	}
}

Test(fault, sixteen_threads_writing_an_untouched_page_lose_no_write)
{
	uvmo_vmo_t *v = make_vmo(CROWD_ROUNDS * PG, 0);
	uint8_t *m = map_rw(v);
	struct crowd *cs = calloc(CROWD, sizeof(*cs));
	uint8_t buf[PG];
	for (uint64_t pg = 0; pg < CROWD_ROUNDS; pg++) {
		run_crowd(m + pg * PG, crowd_write, cs);
		expect_crowd_writes(m + pg * PG, 0, 0, true);
		expect_ok(uvmo_vmo_read(v, buf, pg * PG, PG));
		expect_crowd_writes(buf, 0, 0, true);
	}
	free(cs);
}

Test(fault, sixteen_threads_writing_an_untouched_inherited_page_lose_no_write)
{
	uvmo_vmo_t *p = pattern_vmo(CROWD_ROUNDS, 32);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_rw(c);
	struct crowd *cs = calloc(CROWD, sizeof(*cs));
	uint8_t buf[PG];
	for (uint64_t pg = 0; pg < CROWD_ROUNDS; pg++) {
		run_crowd(mc + pg * PG, crowd_write, cs);
		expect_crowd_writes(mc + pg * PG, 32, pg * PG, false);
		expect_ok(uvmo_vmo_read(c, buf, pg * PG, PG));
		expect_crowd_writes(buf, 32, pg * PG, false);
		expect_ok(uvmo_vmo_read(p, buf, pg * PG, PG));
		expect_mem_pattern(buf, PG, 32, pg * PG);
	}
	free(cs);
}

Test(fault, sixteen_threads_writing_a_page_just_snapshotted_lose_no_write)
{
	uvmo_vmo_t *v = make_vmo(CROWD_ROUNDS * PG, 0);
	uint8_t *m = map_rw(v);
	/* Every page faulted writable before the snapshot. */
	fill_pattern(m, CROWD_ROUNDS * PG, 33, 0);
	uvmo_vmo_t *c = snap(v);
	struct crowd *cs = calloc(CROWD, sizeof(*cs));
	uint8_t buf[PG];
	for (uint64_t pg = 0; pg < CROWD_ROUNDS; pg++) {
		run_crowd(m + pg * PG, crowd_write, cs);
		expect_crowd_writes(m + pg * PG, 33, pg * PG, false);
		expect_ok(uvmo_vmo_read(c, buf, pg * PG, PG));
		expect_mem_pattern(buf, PG, 33, pg * PG);
	}
	free(cs);
}

/* ---------------------------------------------------------------------- */
/* faults racing with snapshot, decommit and unmap                        */
/* ---------------------------------------------------------------------- */

#define RACE_PAGES 64u
#define WRITERS 3
#define PAGES_PER_WRITER 8u

struct race {
	uint8_t *map;        /* the workers' mapping of the VMO */
	uvmo_vmo_t *vmo;
	atomic_bool *stop;
	unsigned first_page; /* the worker's own pages */
	unsigned pages;
	_Atomic uint64_t *seq; /* per page: last sequence completely written */
	unsigned long rounds;
};

/* Write a page with a new sequence number word by word (ascending), read
 * it back through the mapping, and now and then by call. */
static void *race_writer(void *arg)
{
	struct race *r = arg;
	uint64_t rng = 0x9e3779b97f4a7c15ull * (r->first_page + 1);
	uint64_t local[WORDS];
	while (!atomic_load(r->stop) && !atomic_load(&thread_failed)) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		unsigned page = r->first_page + (unsigned)(rng % r->pages);
		uint64_t seq = atomic_load(&r->seq[page]) + 1;
		volatile uint64_t *w = (volatile uint64_t *)(r->map + (uint64_t)page * PG);
		fill_words(w, page, seq);
		atomic_store(&r->seq[page], seq);
		for (size_t i = 0; i < WORDS; i++)
			if (w[i] != tag(page, seq)) {
				thread_fail("page %u word %zu reads %#llx through the mapping right after "
					    "writing %#llx", page, i, (unsigned long long)w[i],
					    (unsigned long long)tag(page, seq));
				return NULL;
			}
		if (r->rounds % 16 == 0) {
			int rc = uvmo_vmo_read(r->vmo, local, (uint64_t)page * PG, PG);
			tcheck(rc == 0, "uvmo_vmo_read: %s", rc_name(rc));
			for (size_t i = 0; i < WORDS && rc == 0; i++)
				if (local[i] != tag(page, seq)) {
					thread_fail("page %u word %zu reads %#llx by call after writing "
						    "%#llx through the mapping", page, i,
						    (unsigned long long)local[i],
						    (unsigned long long)tag(page, seq));
					return NULL;
				}
		}
		r->rounds++;
	}
	return NULL;
}

/* A snapshot's copy of a page the writers use: all zero (never written), or
 * words of this page whose sequence numbers do not increase along the page
 * and differ by at most one (a write caught in progress). */
static bool snapshot_page_ok(const uint64_t *w, unsigned page, uint64_t max_seq, char *why,
			     size_t whylen)
{
	/* A zero word is "sequence 0" (not yet written the first time). */
	uint64_t first = w[0] >> 20, prev = first;
	for (size_t i = 0; i < WORDS; i++) {
		uint64_t s = w[i] >> 20;
		bool mine = w[i] == 0 || (w[i] & 0xfffff) == page;
		if (!mine || s > prev || first - s > 1 || s > max_seq) {
			snprintf(why, whylen,
				 "page %u word %zu is %#llx (first word's sequence %llu, max %llu)", page,
				 i, (unsigned long long)w[i], (unsigned long long)first,
				 (unsigned long long)max_seq);
			return false;
		}
		prev = s;
	}
	return true;
}

struct race_setup {
	uvmo_vmo_t *vmo;
	uint8_t *map;
	atomic_bool stop;
	_Atomic uint64_t seq[RACE_PAGES];
	struct race w[WRITERS];
	pthread_t t[WRITERS];
};

static void race_start_with(struct race_setup *s, uint32_t vmo_options, uint32_t map_options)
{
	s->vmo = make_vmo(RACE_PAGES * PG, vmo_options);
	s->map = map_vmo(root_vmar(), PERM_RW | map_options, s->vmo, 0, RACE_PAGES * PG);
	atomic_store(&s->stop, false);
	for (unsigned i = 0; i < RACE_PAGES; i++)
		atomic_store(&s->seq[i], 0);
	for (int i = 0; i < WRITERS; i++) {
		s->w[i] = (struct race){ .map = s->map, .vmo = s->vmo, .stop = &s->stop,
					 .first_page = (unsigned)i * PAGES_PER_WRITER,
					 .pages = PAGES_PER_WRITER, .seq = s->seq };
	}
	start_workers(s->t, WRITERS, race_writer, s->w, sizeof(s->w[0]));
}

static void race_start(struct race_setup *s)
{
	race_start_with(s, 0, 0);
}

static void race_stop(struct race_setup *s)
{
	atomic_store(&s->stop, true);
	join_workers(s->t, WRITERS);
	expect_no_thread_failure();
	unsigned long rounds = 0;
	for (int i = 0; i < WRITERS; i++)
		rounds += s->w[i].rounds;
	cr_assert_gt(rounds, 0, "the writers made no progress");
	/* Final state: every page holds its last sequence, by mapping and call. */
	for (unsigned pg = 0; pg < WRITERS * PAGES_PER_WRITER; pg++) {
		uint64_t seq = atomic_load(&s->seq[pg]);
		const uint64_t *w = (const uint64_t *)(s->map + (uint64_t)pg * PG);
		for (size_t i = 0; i < WORDS; i++)
			cr_assert_eq(w[i], seq ? tag(pg, seq) : 0, "page %u word %zu", pg, i);
	}
	expect_vmo_matches(s->vmo, 0, s->map, WRITERS * PAGES_PER_WRITER * PG);
	cr_log_info("writers: %lu rounds", rounds);
}

Test(fault, faults_racing_with_snapshots_stay_correct, .timeout = 120)
{
	struct race_setup *s = calloc(1, sizeof(*s));
	race_start(s);
	const uint64_t len = WRITERS * PAGES_PER_WRITER * PG;
	uint64_t *one = malloc(len), *two = malloc(len);
	char why[256];
	for (int round = 0; round < 150 && !atomic_load(&thread_failed); round++) {
		uint64_t max_seq[RACE_PAGES];
		uvmo_vmo_t *c = snap(s->vmo);
		for (unsigned pg = 0; pg < RACE_PAGES; pg++)
			max_seq[pg] = atomic_load(&s->seq[pg]) + 1;
		expect_ok(uvmo_vmo_read(c, one, 0, len));
		for (unsigned pg = 0; pg < WRITERS * PAGES_PER_WRITER; pg++)
			cr_assert(snapshot_page_ok(one + pg * WORDS, pg, max_seq[pg], why, sizeof(why)),
				  "round %d: snapshot %s", round, why);
		sched_yield();
		usleep(200);
		/* The snapshot does not change while the parent keeps writing. */
		expect_ok(uvmo_vmo_read(c, two, 0, len));
		for (size_t i = 0; i < len / 8; i++)
			cr_assert_eq(one[i], two[i],
				     "round %d: the snapshot changed after it was taken: page %zu word %zu "
				     "read %#llx, later %#llx", round, i / WORDS, i % WORDS,
				     (unsigned long long)one[i], (unsigned long long)two[i]);
		if (round % 3 == 0) {
			uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, len);
			cr_assert(memcmp(mc, one, len) == 0,
				  "round %d: the snapshot's mapping differs from its reads", round);
			expect_ok(uvmo_vmar_unmap(root_vmar(), mc, len));
		}
		/* Keep a few snapshots alive so that chains and merges mix. */
		if (round % 4 != 0)
			uvmo_vmo_close(c);
	}
	free(one);
	free(two);
	race_stop(s);
	free(s);
}

struct decommit_reader {
	uint8_t *map;
	atomic_bool *stop;
	unsigned long rounds;
};

/* Pages [32, 64) are written and decommitted by the test thread: every
 * word read there is zero or a word of that page. */
static void *decommit_reader(void *arg)
{
	struct decommit_reader *r = arg;
	unsigned page = 32;
	while (!atomic_load(r->stop) && !atomic_load(&thread_failed)) {
		const volatile uint64_t *w = (const volatile uint64_t *)(r->map + (uint64_t)page * PG);
		for (size_t i = 0; i < WORDS; i++) {
			uint64_t x = w[i];
			if (x != 0 && (x & 0xfffff) != page) {
				thread_fail("decommitted page %u word %zu reads %#llx", page, i,
					    (unsigned long long)x);
				return NULL;
			}
		}
		page = page == RACE_PAGES - 1 ? 32 : page + 1;
		r->rounds++;
	}
	return NULL;
}

Test(fault, faults_racing_with_decommit_stay_correct, .timeout = 120)
{
	struct race_setup *s = calloc(1, sizeof(*s));
	race_start(s);
	struct decommit_reader rd = { .map = s->map, .stop = &s->stop };
	pthread_t rt;
	cr_assert_eq(pthread_create(&rt, NULL, decommit_reader, &rd), 0);
	uint64_t buf[WORDS];
	for (unsigned round = 0; round < 3000 && !atomic_load(&thread_failed); round++) {
		unsigned page = 32 + round % 32;
		volatile uint64_t *w = (volatile uint64_t *)(s->map + (uint64_t)page * PG);
		fill_words(w, page, round + 1);
		expect_ok(uvmo_vmo_read(s->vmo, buf, (uint64_t)page * PG, PG));
		cr_assert_eq(buf[WORDS - 1], tag(page, round + 1));
		if (round % 2)
			expect_ok(uvmo_vmo_op_range(s->vmo, UVMO_OP_DECOMMIT, (uint64_t)page * PG, PG));
		else
			expect_ok(uvmo_vmo_op_range(s->vmo, UVMO_OP_ZERO, (uint64_t)page * PG, PG));
		for (size_t i = 0; i < WORDS; i++)
			cr_assert_eq(w[i], 0, "round %u: page %u word %zu survived the decommit",
				     round, page, i);
	}
	atomic_store(&s->stop, true);
	cr_assert_eq(pthread_join(rt, NULL), 0);
	race_stop(s);
	free(s);
}

Test(fault, faults_racing_with_map_and_unmap_stay_correct, .timeout = 120)
{
	struct race_setup *s = calloc(1, sizeof(*s));
	race_start(s);
	uvmo_vmo_t *other = make_vmo(16 * PG, 0);
	for (unsigned round = 0; round < 2000 && !atomic_load(&thread_failed); round++) {
		/* The test thread's own pages are 48..63. */
		uint64_t first = 48 + round % 8, n = 1 + round % 8;
		uint8_t *m2 = map_vmo(root_vmar(), PERM_RW, s->vmo, first * PG, n * PG);
		for (uint64_t i = 0; i < n; i++) {
			volatile uint64_t *w = (volatile uint64_t *)(m2 + i * PG);
			fill_words(w, first + i, round + 1);
			const volatile uint64_t *v1 =
				(const volatile uint64_t *)(s->map + (first + i) * PG);
			cr_assert_eq(v1[WORDS / 2], tag(first + i, round + 1),
				     "round %u: the workers' mapping does not see a write through another",
				     round);
		}
		uint8_t *m3 = map_vmo(root_vmar(), PERM_RW, other, 0, 16 * PG);
		m3[(round % 16) * PG] = (uint8_t)round;
		if (n >= 2) {
			/* Unmap in two pieces: a split racing with the faults. */
			expect_ok(uvmo_vmar_unmap(root_vmar(), m2 + PG, (n - 1) * PG));
			expect_ok(uvmo_vmar_unmap(root_vmar(), m2, PG));
		} else {
			expect_ok(uvmo_vmar_unmap(root_vmar(), m2, n * PG));
		}
		expect_ok(uvmo_vmar_unmap(root_vmar(), m3, 16 * PG));
	}
	race_stop(s);
	free(s);
}

Test(fault, faults_racing_with_protect_stay_correct, .timeout = 120)
{
	struct race_setup *s = calloc(1, sizeof(*s));
	race_start(s);
	/* A second mapping of the workers' VMO, flipped between read-only and
	 * read-write while they fault through the first. */
	uint8_t *m2 = map_rw(s->vmo);
	for (unsigned round = 0; round < 2000 && !atomic_load(&thread_failed); round++) {
		uint64_t first = round % 24, n = 1 + round % 7;
		expect_ok(uvmo_vmar_protect(root_vmar(), PERM_R, m2 + first * PG, n * PG));
		volatile uint8_t x = m2[(first + n / 2) * PG];
		(void)x;
		/* Refused, so it changes nothing the writers could notice. */
		expect_write_signal(SIGSEGV, m2 + first * PG + 8 * 40);
		expect_ok(uvmo_vmar_protect(root_vmar(), PERM_RW, m2 + first * PG, n * PG));
	}
	race_stop(s);
	free(s);
}

Test(fault, faults_racing_with_resize_stay_correct, .timeout = 120)
{
	struct race_setup *s = calloc(1, sizeof(*s));
	race_start_with(s, UVMO_VMO_RESIZABLE, UVMO_VMAR_ALLOW_FAULTS);
	/* The writers use pages 0..23; the test thread moves the end between
	 * page 40 and page 64 and looks past it and at the grown tail. */
	for (unsigned round = 0; round < 400 && !atomic_load(&thread_failed); round++) {
		expect_ok(uvmo_vmo_set_size(s->vmo, 40 * PG));
		expect_read_signal(SIGBUS, s->map + (40 + round % 24) * PG);
		expect_ok(uvmo_vmo_set_size(s->vmo, RACE_PAGES * PG));
		uint64_t pg = 40 + (round * 7) % 24;
		expect_mem_val(s->map + pg * PG, PG, 0);
		s->map[pg * PG + round % PG] = (uint8_t)(round | 1);
		uint8_t x;
		expect_ok(uvmo_vmo_read(s->vmo, &x, pg * PG + round % PG, 1));
		cr_assert_eq(x, (uint8_t)(round | 1));
	}
	race_stop(s);
	free(s);
}

/* ---------------------------------------------------------------------- */
/* the pool running out during a fault                                    */
/* ---------------------------------------------------------------------- */

#define SMALL_POOL_PAGES 64u

/* Write page after page of @m until a write raises a signal; returns the
 * number of pages written and the signal in *@sig. */
static uint64_t write_until_signal(uint8_t *m, uint64_t pages, int *sig)
{
	*sig = 0;
	for (uint64_t p = 0; p < pages; p++) {
		int s = probe_write(m + p * PG, (uint8_t)(p + 1));
		if (s) {
			*sig = s;
			return p;
		}
	}
	return pages;
}

Test(fault, pool_exhaustion_during_a_fault_raises_sigbus, .timeout = 60)
{
	init_with_pool_limit(SMALL_POOL_PAGES * PG);
	uvmo_vmo_t *v = make_vmo(4 * SMALL_POOL_PAGES * PG, 0);
	uint8_t *m = map_rw(v);
	int sig;
	uint64_t n = write_until_signal(m, 4 * SMALL_POOL_PAGES, &sig);
	cr_assert_eq(sig, SIGBUS, "writing past the pool limit gave %s after %llu pages",
		     sig_name(sig), (unsigned long long)n);
	cr_assert_leq(n, SMALL_POOL_PAGES);
	cr_assert_gt(n, 0);
	struct uvmo_stats st = stats_now();
	cr_assert_leq(st.committed_bytes, SMALL_POOL_PAGES * PG);
	/* The pages written before are intact; the failed page raises again. */
	for (uint64_t p = 0; p < n; p++)
		cr_assert_eq(m[p * PG], (uint8_t)(p + 1));
	expect_write_signal(SIGBUS, m + n * PG);
}

Test(fault, a_fault_that_ran_out_succeeds_as_soon_as_frames_are_freed, .timeout = 60)
{
	init_with_pool_limit(SMALL_POOL_PAGES * PG);
	uvmo_vmo_t *v = make_vmo(4 * SMALL_POOL_PAGES * PG, 0);
	uint8_t *m = map_rw(v);
	int sig;
	uint64_t n = write_until_signal(m, 4 * SMALL_POOL_PAGES, &sig);
	cr_assert_eq(sig, SIGBUS);
	/* Freeing frames lets the very next fault succeed: the process
	 * caught SIGBUS, made room, and retries. */
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 0, 16 * PG));
	expect_write_ok(m + n * PG, 0x44);
	cr_assert_eq(m[n * PG], 0x44);
	expect_pages(v, 0, 16, 0);
}

Test(fault, pool_exhaustion_during_a_fault_kills_with_sigbus_when_uncaught,
     .signal = SIGBUS, .timeout = 60)
{
	init_with_pool_limit(16 * PG);
	uvmo_vmo_t *v = make_vmo(64 * PG, 0);
	uint8_t *m = map_rw(v);
	for (uint64_t p = 0; p < 64; p++)
		*(volatile uint8_t *)(m + p * PG) = 1;
}

struct exhaust {
	uint8_t *map;
	uint64_t pages;
	uint64_t written;
	int sig;
};

static void *exhaust_thread(void *arg)
{
	struct exhaust *e = arg;
	e->written = write_until_signal(e->map, e->pages, &e->sig);
	return NULL;
}

struct steady {
	uint8_t *map;      /* pages already committed */
	uint64_t pages;
	atomic_bool *stop;
	unsigned long rounds;
};

static void *steady_thread(void *arg)
{
	struct steady *s = arg;
	while (!atomic_load(s->stop)) {
		for (uint64_t p = 0; p < s->pages; p++) {
			volatile uint8_t *b = s->map + p * PG + (s->rounds % 64);
			*b = (uint8_t)s->rounds;
			if (*b != (uint8_t)s->rounds) {
				thread_fail("steady thread: page %llu lost a write",
					    (unsigned long long)p);
				return NULL;
			}
		}
		s->rounds++;
	}
	return NULL;
}

Test(fault, pool_exhaustion_sigbus_hits_only_the_faulting_thread, .timeout = 60)
{
	init_with_pool_limit(SMALL_POOL_PAGES * PG);
	uvmo_vmo_t *held = make_vmo(8 * PG, 0);
	uint8_t *mh = map_rw(held);
	memset(mh, 1, 8 * PG); /* committed before the pool runs out */
	atomic_bool stop = false;
	struct steady st[2] = { { .map = mh, .pages = 4, .stop = &stop },
				{ .map = mh + 4 * PG, .pages = 4, .stop = &stop } };
	pthread_t ts[2];
	start_workers(ts, 2, steady_thread, st, sizeof(st[0]));

	uvmo_vmo_t *v = make_vmo(4 * SMALL_POOL_PAGES * PG, 0);
	struct exhaust e = { .map = map_rw(v), .pages = 4 * SMALL_POOL_PAGES };
	pthread_t te;
	cr_assert_eq(pthread_create(&te, NULL, exhaust_thread, &e), 0);
	cr_assert_eq(pthread_join(te, NULL), 0);
	usleep(20000);
	atomic_store(&stop, true);
	join_workers(ts, 2);
	expect_no_thread_failure();
	cr_assert_eq(e.sig, SIGBUS, "the exhausting thread got %s after %llu pages",
		     sig_name(e.sig), (unsigned long long)e.written);
	cr_assert_gt(st[0].rounds + st[1].rounds, 0);
	/* uvmo keeps working for everyone afterwards. */
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 0, 4 * SMALL_POOL_PAGES * PG));
	memset(e.map, 2, 8 * PG);
	expect_page(v, 7, 2);
}

Test(fault, pool_exhaustion_during_a_copy_on_write_fault_raises_sigbus, .timeout = 60)
{
	init_with_pool_limit(SMALL_POOL_PAGES * PG);
	uvmo_vmo_t *p = make_vmo(48 * PG, 0);
	fill_pages(p, 0, 48, 0x5a);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_rw(c);
	/* 48 pages held; copying all 48 for the clone cannot fit in 64. */
	int sig;
	uint64_t n = write_until_signal(mc, 48, &sig);
	cr_assert_eq(sig, SIGBUS, "got %s after %llu copy-on-write pages", sig_name(sig),
		     (unsigned long long)n);
	/* The clone is intact: written pages hold the write, the rest the
	 * parent's content, and the parent is untouched. */
	for (uint64_t pg = 0; pg < n; pg++) {
		uint8_t x;
		expect_ok(uvmo_vmo_read(c, &x, pg * PG, 1));
		cr_assert_eq(x, (uint8_t)(pg + 1));
	}
	expect_pages(c, n + 1, 48 - n - 1, 0x5a);
	expect_pages(p, 0, 48, 0x5a);
}

Test(fault, mapping_of_a_discarded_vmo_raises_sigbus_until_locked_again, .timeout = 60)
{
	init_with_pool_limit(SMALL_POOL_PAGES * PG);
	uvmo_vmo_t *d = make_vmo(16 * PG, UVMO_VMO_DISCARDABLE);
	expect_ok(uvmo_vmo_op_range(d, UVMO_OP_LOCK, 0, 16 * PG));
	uint8_t *m = map_rw(d);
	memset(m, 0xd1, 16 * PG);
	expect_ok(uvmo_vmo_op_range(d, UVMO_OP_UNLOCK, 0, 16 * PG));
	/* Pressure: the pool needs the unlocked VMO's frames. */
	uvmo_vmo_t *o = make_vmo(SMALL_POOL_PAGES * PG, 0);
	for (uint64_t pg = 0; pg < SMALL_POOL_PAGES; pg++)
		fill_page(o, pg, 0xbb);
	cr_assert(info_of(d).flags & UVMO_INFO_DISCARDED, "the unlocked VMO was not discarded");
	expect_read_signal(SIGBUS, m);
	expect_write_signal(SIGBUS, m + 5 * PG);
	/* Room again, and LOCK reports the discard: the mapping reads zero. */
	expect_ok(uvmo_vmo_op_range(o, UVMO_OP_DECOMMIT, 0, 32 * PG));
	expect_rc(1, uvmo_vmo_op_range(d, UVMO_OP_LOCK, 0, 16 * PG));
	expect_mem_val(m, 16 * PG, 0);
	memset(m + PG, 0xd2, PG);
	expect_page(d, 1, 0xd2);
}

#if defined(__x86_64__)
/* mov eax, 42; ret */
static const uint8_t code_42[] = { 0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3 };

static int call_at(const uint8_t *p)
{
	int (*fn)(void);
	memcpy(&fn, &p, sizeof(fn));
	return fn();
}

Test(fault, execute_mapping_runs_code_from_the_vmo)
{
	uvmo_vmo_t *v = make_vmo(2 * PG, 0);
	expect_ok(uvmo_vmo_write(v, code_42, PG + 16, sizeof(code_42)));
	uint8_t *m = map_vmo(root_vmar(), PERM_R | UVMO_PERM_EXECUTE, v, 0, 2 * PG);
	cr_assert_eq(call_at(m + PG + 16), 42);
	/* A snapshot's mapping runs the code it inherited, never faulted before. */
	uvmo_vmo_t *c = snap(v);
	uint8_t *mc = map_vmo(root_vmar(), PERM_R | UVMO_PERM_EXECUTE, c, 0, 2 * PG);
	cr_assert_eq(call_at(mc + PG + 16), 42);
}

Test(fault, executing_a_mapping_without_execute_kills_with_sigsegv, .signal = SIGSEGV)
{
	uvmo_vmo_t *v = make_vmo(PG, 0);
	expect_ok(uvmo_vmo_write(v, code_42, 0, sizeof(code_42)));
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, PG);
	cr_assert_eq(m[0], 0xb8);
	call_at(m);
}
#endif

/* ---------------------------------------------------------------------- */
/* op_range through the VMAR, and MAP_RANGE                               */
/* ---------------------------------------------------------------------- */

Test(fault, vmar_op_range_commit_commits_the_mapped_range)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	uint8_t *m = map_vmo(root_vmar(), PERM_RW, v, 2 * PG, 4 * PG);
	cr_assert_eq(info_of(v).committed_bytes, 0);
	expect_ok(uvmo_vmar_op_range(root_vmar(), UVMO_OP_COMMIT, m, 4 * PG));
	cr_assert_eq(info_of(v).committed_bytes, 4 * PG);
	expect_mem_val(m, 4 * PG, 0);
	expect_ok(uvmo_vmar_op_range(root_vmar(), UVMO_OP_COMMIT, m + PG, PG));
	cr_assert_eq(info_of(v).committed_bytes, 4 * PG);
}

Test(fault, vmar_op_range_commit_of_a_clone_keeps_its_content)
{
	uvmo_vmo_t *p = pattern_vmo(4, 40);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_rw(c);
	expect_ok(uvmo_vmar_op_range(root_vmar(), UVMO_OP_COMMIT, mc, 4 * PG));
	cr_assert_eq(info_of(c).committed_bytes, 4 * PG);
	expect_mem_pattern(mc, 4 * PG, 40, 0);
	memset(mc, 0, 4 * PG);
	uint8_t buf[PG];
	expect_ok(uvmo_vmo_read(p, buf, 3 * PG, PG));
	expect_mem_pattern(buf, PG, 40, 3 * PG);
}

Test(fault, vmar_op_range_decommit_reads_zero_and_frees)
{
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	uint8_t *m = map_rw(v);
	memset(m, 0xd1, 8 * PG);
	uint8_t *other = map_vmo(root_vmar(), PERM_R, v, 0, 8 * PG);
	expect_ok(uvmo_vmar_op_range(root_vmar(), UVMO_OP_DECOMMIT, m + 2 * PG, 4 * PG));
	cr_assert_eq(info_of(v).committed_bytes, 4 * PG);
	expect_pages(v, 2, 4, 0);
	expect_mem_val(m + 2 * PG, 4 * PG, 0);
	expect_mem_val(other + 2 * PG, 4 * PG, 0);
	expect_mem_val(m, 2 * PG, 0xd1);
	expect_mem_val(m + 6 * PG, 2 * PG, 0xd1);
}

Test(fault, vmar_op_range_decommit_spans_adjacent_mappings)
{
	uint8_t *base;
	uvmo_vmar_t *r = make_vmar(root_vmar(), CAN_MAP_ALL, 0, 16 * PG, &base);
	uvmo_vmo_t *a = make_vmo(4 * PG, 0), *b = make_vmo(4 * PG, 0);
	map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 0, a, 0, 4 * PG);
	map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 4 * PG, b, 0, 4 * PG);
	memset(base, 0xd2, 8 * PG);
	expect_ok(uvmo_vmar_op_range(r, UVMO_OP_DECOMMIT, base + 3 * PG, 2 * PG));
	cr_assert_eq(info_of(a).committed_bytes, 3 * PG);
	cr_assert_eq(info_of(b).committed_bytes, 3 * PG);
	expect_mem_val(base, 3 * PG, 0xd2);
	expect_mem_val(base + 3 * PG, 2 * PG, 0);
	expect_mem_val(base + 5 * PG, 3 * PG, 0xd2);
}

Test(fault, vmar_op_range_map_range_populates_with_the_right_content)
{
	uvmo_vmo_t *p = make_vmo(8 * PG, 0);
	write_pattern(p, 41, 0, 4 * PG);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_vmo(root_vmar(), PERM_R, c, 0, 8 * PG);
	expect_ok(uvmo_vmar_op_range(root_vmar(), UVMO_OP_MAP_RANGE, mc, 8 * PG));
	write_pattern(p, 42, 0, 8 * PG); /* the parent moves on */
	expect_mem_pattern(mc, 4 * PG, 41, 0);
	expect_mem_val(mc + 4 * PG, 4 * PG, 0);
	uvmo_vmo_t *v = pattern_vmo(4, 43);
	uint8_t *m = map_rw(v);
	expect_ok(uvmo_vmar_op_range(root_vmar(), UVMO_OP_MAP_RANGE, m, 4 * PG));
	expect_mem_pattern(m, 4 * PG, 43, 0);
	m[0] = 1;
	uint8_t x;
	expect_ok(uvmo_vmo_read(v, &x, 0, 1));
	cr_assert_eq(x, 1);
}

Test(fault, map_range_option_commits_at_map_time)
{
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	struct uvmo_stats before = stats_now();
	uint8_t *m = map_vmo(root_vmar(), PERM_RW | UVMO_VMAR_MAP_RANGE, v, 4 * PG, 8 * PG);
	cr_assert_eq(info_of(v).committed_bytes, 8 * PG,
		     "committed_bytes is %llu pages right after a MAP_RANGE map of 8",
		     (unsigned long long)(info_of(v).committed_bytes / PG));
	struct uvmo_stats after = stats_now();
	cr_assert_geq(after.committed_bytes, before.committed_bytes + 8 * PG);
	expect_mem_val(m, 8 * PG, 0);
	memset(m, 0xe1, 8 * PG);
	expect_pages(v, 4, 8, 0xe1);
	expect_page(v, 3, 0);
}

Test(fault, map_range_option_of_a_read_only_mapping_populates, .timeout = 20)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	write_pattern(v, 46, 0, PG); /* pages 1..3 never written */
	uint8_t *m = map_vmo(root_vmar(), PERM_R | UVMO_VMAR_MAP_RANGE, v, 0, 4 * PG);
	expect_mem_pattern(m, PG, 46, 0);
	expect_mem_val(m + PG, 3 * PG, 0);
	uvmo_vmo_t *c = snap(v);
	uint8_t *mc = map_vmo(root_vmar(), PERM_R | UVMO_VMAR_MAP_RANGE, c, 0, 4 * PG);
	expect_mem_pattern(mc, PG, 46, 0);
}

Test(fault, map_range_option_of_a_clone_shows_the_parent_content_and_stays_isolated)
{
	uvmo_vmo_t *p = pattern_vmo(8, 44);
	uvmo_vmo_t *c = snap(p);
	uint8_t *mc = map_vmo(root_vmar(), PERM_RW | UVMO_VMAR_MAP_RANGE, c, 0, 8 * PG);
	write_pattern(p, 45, 0, 8 * PG);
	expect_mem_pattern(mc, 8 * PG, 44, 0);
	memset(mc + PG, 0xe2, PG);
	uint8_t buf[PG];
	expect_ok(uvmo_vmo_read(p, buf, PG, PG));
	expect_mem_pattern(buf, PG, 45, PG);
}

Test(fault, map_range_that_cannot_commit_is_enomem_and_maps_nothing, .timeout = 60)
{
	init_with_pool_limit(8 * PG);
	uint8_t *base;
	uvmo_vmar_t *r = make_vmar(root_vmar(), CAN_MAP_ALL, 0, 32 * PG, &base);
	uvmo_vmo_t *v = make_vmo(32 * PG, 0);
	void *x = NULL;
	expect_rc(-ENOMEM, uvmo_vmar_map(r, PERM_RW | UVMO_VMAR_MAP_RANGE | UVMO_VMAR_SPECIFIC, 0,
					 v, 0, 32 * PG, &x));
	cr_assert_null(x);
	expect_read_signal(SIGSEGV, base);
	/* The range is free. */
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 0, 32 * PG));
	uint8_t *m = map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 0, v, 0, 32 * PG);
	cr_assert_eq(m, base);
	m[0] = 1;
	cr_assert_eq(m[0], 1);
}

/* ---------------------------------------------------------------------- */
/* a snapshot taken while another thread writes                            */
/* ---------------------------------------------------------------------- */

struct scribbler {
	volatile uint64_t *page;
	atomic_bool stop;
};

static void *scribble(void *arg)
{
	struct scribbler *s = arg;
	for (uint64_t seq = 1; !atomic_load(&s->stop); seq++)
		for (size_t i = 0; i < WORDS; i++)
			s->page[i] = seq;
	return NULL;
}

/* Write faults unprotect their fault-ahead pages too — but a restored page
 * must stay protected until it is written, or the next restore to the same
 * snapshot would think it unchanged. */
Test(fault, sequential_writes_after_a_restore_are_all_restored_again)
{
	const uint64_t pages = 256;
	uvmo_vmo_t *v = make_vmo(pages * PG, 0);
	uint8_t *map = map_rw(v);
	for (uint64_t pg = 0; pg < pages; pg++)
		fill_words((volatile uint64_t *)(map + pg * PG), pg, 1);
	uvmo_vmo_t *s;
	expect_ok(uvmo_vmo_snapshot(v, &s));
	for (int round = 2; round <= 4; round++) {
		for (uint64_t pg = 0; pg < pages; pg++)
			fill_words((volatile uint64_t *)(map + pg * PG), pg, (uint64_t)round);
		expect_ok(uvmo_vmo_restore(v, s));
		for (uint64_t pg = 0; pg < pages; pg++) {
			const uint64_t *w = (const uint64_t *)(map + pg * PG);
			for (size_t i = 0; i < WORDS; i += 97)
				cr_assert_eq(w[i], tag(pg, 1), "round %d: page %llu word %zu "
					     "not restored", round, (unsigned long long)pg, i);
		}
	}
	uvmo_vmo_close(s);
}

/* First touches of a fresh VMO install their zero pages with the tree lock
 * dropped (src/cow/fill.c).  Threads first-touch their own stripes (and
 * decommit them to touch them afresh next round), another keeps reading a
 * scratch range, while the test thread reads, commits and decommits the
 * scratch range, takes snapshots and checks they hold still — every call
 * must wait for the fills in flight: no write may reach a snapshot, no
 * frame may be left behind. */
#define TOUCHERS 3
#define STRIPE_PAGES 256u
#define TOUCH_ROUNDS 12u
#define SCRATCH_FIRST (TOUCHERS * STRIPE_PAGES)
#define SCRATCH_PAGES 32u

struct toucher {
	uint8_t *map;
	uvmo_vmo_t *vmo;
	unsigned first_page;
	atomic_uint *done;
};

static void *first_toucher(void *arg)
{
	struct toucher *t = arg;
	for (unsigned round = 1; round <= TOUCH_ROUNDS && !atomic_load(&thread_failed); round++) {
		for (unsigned pg = t->first_page; pg < t->first_page + STRIPE_PAGES; pg++) {
			volatile uint64_t *w = (volatile uint64_t *)(t->map + (uint64_t)pg * PG);
			tcheck(w[WORDS - 1] == 0, "round %u: page %u reads %#llx before its first "
			       "write", round, pg, (unsigned long long)w[WORDS - 1]);
			fill_words(w, pg, round);
		}
		if (round == TOUCH_ROUNDS)
			break;
		int rc = uvmo_vmo_op_range(t->vmo, UVMO_OP_DECOMMIT, (uint64_t)t->first_page * PG,
					   (uint64_t)STRIPE_PAGES * PG);
		tcheck(rc == 0, "decommit of a stripe: %d", rc);
	}
	atomic_fetch_add(t->done, 1);
	return NULL;
}

struct scratch_reader {
	const uint8_t *map;
	atomic_uint *done;
};

/* Reads the scratch pages, which only ever hold zeros, faulting them in
 * again after each decommit. */
static void *scratch_reader(void *arg)
{
	struct scratch_reader *r = arg;
	while (atomic_load(r->done) < TOUCHERS && !atomic_load(&thread_failed)) {
		for (unsigned pg = SCRATCH_FIRST; pg < SCRATCH_FIRST + SCRATCH_PAGES; pg++) {
			const volatile uint64_t *w =
				(const volatile uint64_t *)(r->map + (uint64_t)pg * PG);
			tcheck(w[pg % WORDS] == 0, "scratch page %u reads %#llx", pg,
			       (unsigned long long)w[pg % WORDS]);
		}
	}
	return NULL;
}

Test(fault, first_touches_by_several_threads_racing_with_calls_stay_correct, .timeout = 120)
{
	const uint64_t pages = SCRATCH_FIRST + SCRATCH_PAGES;
	uvmo_vmo_t *v = make_vmo(pages * PG, 0);
	uint8_t *map = map_rw(v);
	struct toucher tt[TOUCHERS];
	pthread_t th[TOUCHERS];
	atomic_uint done = 0;
	for (unsigned i = 0; i < TOUCHERS; i++)
		tt[i] = (struct toucher){ map, v, i * STRIPE_PAGES, &done };
	start_workers(th, TOUCHERS, first_toucher, tt, sizeof(tt[0]));
	struct scratch_reader sr = { map, &done };
	pthread_t rt;
	cr_assert_eq(pthread_create(&rt, NULL, scratch_reader, &sr), 0);
	size_t span = (size_t)SCRATCH_FIRST * PG;
	uint8_t *one = malloc(span), *two = malloc(span);
	cr_assert(one && two);

	uint64_t buf[WORDS];
	for (unsigned i = 0; atomic_load(&done) < TOUCHERS || i < 500; i++) {
		unsigned pg = (i * 7919u) % SCRATCH_FIRST;
		expect_ok(uvmo_vmo_read(v, buf, (uint64_t)pg * PG, PG));
		for (size_t k = 0; k < WORDS; k++)
			cr_assert(buf[k] == 0 || (buf[k] & 0xfffff) == pg,
				  "page %u word %zu reads %#llx by call", pg, k,
				  (unsigned long long)buf[k]);
		unsigned sp = SCRATCH_FIRST + i % SCRATCH_PAGES;
		expect_ok(uvmo_vmo_op_range(v, i % 2 ? UVMO_OP_DECOMMIT : UVMO_OP_COMMIT,
					    (uint64_t)sp * PG, PG));
		if (i % 64 == 0) {
			uvmo_vmo_t *c = snap(v);
			expect_ok(uvmo_vmo_read(c, one, 0, span));
			usleep(200);
			expect_ok(uvmo_vmo_read(c, two, 0, span));
			cr_assert(memcmp(one, two, span) == 0, "round %u: a snapshot changed", i);
			uvmo_vmo_close(c);
		}
		if (atomic_load(&thread_failed))
			break;
	}
	join_workers(th, TOUCHERS);
	cr_assert_eq(pthread_join(rt, NULL), 0);
	expect_no_thread_failure();
	free(one);
	free(two);
	struct uvmo_stats st;
	expect_ok(uvmo_get_stats(&st));
	cr_assert_eq(st.host_bytes, st.committed_bytes, "frames left behind by fills");
	for (unsigned pg = 0; pg < SCRATCH_FIRST; pg++) {
		const uint64_t *w = (const uint64_t *)(map + (uint64_t)pg * PG);
		for (size_t k = 0; k < WORDS; k++)
			cr_assert_eq(w[k], tag(pg, TOUCH_ROUNDS), "page %u word %zu", pg, k);
	}
	expect_vmo_matches(v, 0, map, (uint64_t)SCRATCH_FIRST * PG);
}

/* The smallest form of faults_racing_with_snapshots_stay_correct: one
 * thread rewrites one mapped page without pause while the test thread
 * takes snapshots (keeping them all) and reads each one twice. */
Test(fault, snapshot_taken_while_another_thread_writes_stays_frozen, .timeout = 60)
{
	uvmo_vmo_t *v = make_vmo(PG, 0);
	struct scribbler s = { .page = (volatile uint64_t *)map_rw(v) };
	s.page[0] = 1;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, scribble, &s), 0);
	uint64_t one[WORDS], two[WORDS];
	int bad = -1;
	for (int round = 0; round < 300 && bad < 0; round++) {
		uvmo_vmo_t *c = snap(v);
		expect_ok(uvmo_vmo_read(c, one, 0, PG));
		usleep(100);
		expect_ok(uvmo_vmo_read(c, two, 0, PG));
		if (memcmp(one, two, PG) != 0)
			bad = round;
	}
	atomic_store(&s.stop, true);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(bad, -1, "round %d: the snapshot changed after it was taken (word 0 read "
		     "%llu, later %llu)", bad, (unsigned long long)one[0], (unsigned long long)two[0]);
}

/* SPDX-License-Identifier: MIT */
/*
 * VMAR bookkeeping through the public API (issue 3, section 1): the root
 * region, sub-regions, rights, placement, splitting by unmap and protect,
 * destroy, the VMO a mapping keeps alive, bad input, and address
 * allocation that does not fragment.
 *
 * Most tests work inside a sub-VMAR of a known size so that placement and
 * "changes nothing" can be checked exactly: a region holds nothing when a
 * SPECIFIC mapping over all of it succeeds.
 */
#include "map_test_util.h"

#include <sys/mman.h>

#define RGN_PAGES 64u
#define RGN (RGN_PAGES * PG)

/* A fresh sub-VMAR of the root with every right, @pages pages long. */
static uvmo_vmar_t *region(uint64_t pages, uint8_t **addr)
{
	return make_vmar(root_vmar(), CAN_MAP_ALL, 0, pages * PG, addr);
}

/* [@off, @off + @len) of @vmar (which has CAN_MAP_SPECIFIC) holds no
 * mapping and no sub-VMAR: a SPECIFIC mapping over all of it succeeds. */
static void expect_range_free(uvmo_vmar_t *vmar, uint64_t off, uint64_t len)
{
	uvmo_vmo_t *v = make_vmo(len, 0);
	void *a = NULL;
	int rc = uvmo_vmar_map(vmar, PERM_R | UVMO_VMAR_SPECIFIC, off, v, 0, len, &a);
	cr_assert_eq(rc, 0, "range [+%llu pages, %llu pages) is not free: map SPECIFIC gave %s",
		     (unsigned long long)(off / PG), (unsigned long long)(len / PG), rc_name(rc));
	expect_ok(uvmo_vmar_unmap(vmar, a, len));
	uvmo_vmo_close(v);
}

/* [@off, @off + @len) of @vmar is not free (SPECIFIC placement is refused). */
static void expect_range_taken(uvmo_vmar_t *vmar, uint64_t off, uint64_t len)
{
	uvmo_vmo_t *v = make_vmo(len, 0);
	void *a = NULL;
	expect_rc(-ENOMEM, uvmo_vmar_map(vmar, PERM_R | UVMO_VMAR_SPECIFIC, off, v, 0, len, &a));
	uvmo_vmo_close(v);
}

/* A VMO of @pages pages holding pattern @seed. */
static uvmo_vmo_t *pattern_vmo(uint64_t pages, uint64_t seed)
{
	uvmo_vmo_t *v = make_vmo(pages * PG, 0);
	write_pattern(v, seed, 0, pages * PG);
	return v;
}

static bool overlaps(uintptr_t a, uint64_t alen, uintptr_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* ---------------------------------------------------------------------- */
/* the root                                                               */
/* ---------------------------------------------------------------------- */

Test(vmar, root_exists_before_any_other_call)
{
	/* The first call of any function initialises uvmo. */
	cr_assert_not_null(uvmo_vmar_root());
}

Test(vmar, root_is_the_same_handle_every_time)
{
	uvmo_vmar_t *r = root_vmar();
	for (int i = 0; i < 100; i++)
		cr_assert_eq(uvmo_vmar_root(), r);
}

Test(vmar, root_survives_close)
{
	uvmo_vmar_t *r = root_vmar();
	uvmo_vmar_close(r);
	uvmo_vmar_close(r);
	cr_assert_eq(uvmo_vmar_root(), r);
	uvmo_vmo_t *v = make_vmo(PG, 0);
	uint8_t *p = map_vmo(r, PERM_RW, v, 0, PG);
	p[0] = 7;
	uint8_t b = 0;
	expect_ok(uvmo_vmo_read(v, &b, 0, 1));
	cr_assert_eq(b, 7);
}

Test(vmar, root_cannot_be_destroyed)
{
	uvmo_vmar_t *r = root_vmar();
	expect_rc(-EACCES, uvmo_vmar_destroy(r));
	uvmo_vmo_t *v = make_vmo(PG, 0);
	uint8_t *p = map_vmo(r, PERM_RW, v, 0, PG);
	p[0] = 1;
	cr_assert_eq(p[0], 1);
}

Test(vmar, root_size_follows_the_configuration)
{
	struct uvmo_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.root_vmar_size = 256 * PG;
	expect_ok(uvmo_init(&cfg));
	uvmo_vmar_t *r = root_vmar();
	uvmo_vmar_t *sub = NULL;
	expect_rc(-ENOMEM, uvmo_vmar_allocate(r, CAN_MAP_ALL, 0, 512 * PG, &sub, NULL));
	sub = make_vmar(r, CAN_MAP_ALL, 0, 128 * PG, NULL);
	/* 128 of 256 pages are taken; another 192 cannot fit. */
	uvmo_vmar_t *sub2 = NULL;
	expect_rc(-ENOMEM, uvmo_vmar_allocate(r, CAN_MAP_ALL, 0, 192 * PG, &sub2, NULL));
	expect_ok(uvmo_vmar_destroy(sub));
	uvmo_vmar_close(sub);
	sub2 = make_vmar(r, CAN_MAP_ALL, 0, 192 * PG, NULL);
	uvmo_vmar_close(sub2);
}

Test(vmar, root_mappings_avoid_sub_vmars)
{
	uint8_t *a;
	uvmo_vmar_t *sub = region(RGN_PAGES, &a);
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	for (int i = 0; i < 32; i++) {
		uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, (uint64_t)(i % 16 + 1) * PG);
		cr_assert(!overlaps((uintptr_t)m, (uint64_t)(i % 16 + 1) * PG, (uintptr_t)a, RGN),
			  "root mapping %p overlaps the sub-VMAR at %p", (void *)m, (void *)a);
	}
	expect_range_free(sub, 0, RGN);
}

/* ---------------------------------------------------------------------- */
/* sub-VMARs                                                              */
/* ---------------------------------------------------------------------- */

Test(vmar, allocate_places_children_inside_parent_without_overlap)
{
	uint8_t *base;
	uvmo_vmar_t *parent = region(RGN_PAGES, &base);
	uintptr_t at[8];
	uint64_t len[8];
	for (int i = 0; i < 8; i++) {
		uint8_t *a;
		len[i] = (uint64_t)(i + 1) * PG;
		make_vmar(parent, CAN_MAP_ALL, 0, len[i], &a);
		at[i] = (uintptr_t)a;
		cr_assert(at[i] >= (uintptr_t)base && at[i] + len[i] <= (uintptr_t)base + RGN,
			  "child %d at %p..+%llu lies outside its parent %p..+%llu", i, (void *)a,
			  (unsigned long long)len[i], (void *)base, (unsigned long long)RGN);
		for (int j = 0; j < i; j++)
			cr_assert(!overlaps(at[i], len[i], at[j], len[j]),
				  "children %d and %d overlap", i, j);
	}
}

Test(vmar, allocate_nests)
{
	uint8_t *a0, *a1, *a2;
	uvmo_vmar_t *l0 = region(RGN_PAGES, &a0);
	uvmo_vmar_t *l1 = make_vmar(l0, CAN_MAP_ALL, 0, 32 * PG, &a1);
	uvmo_vmar_t *l2 = make_vmar(l1, CAN_MAP_ALL, 0, 8 * PG, &a2);
	cr_assert(a1 >= a0 && a1 + 32 * PG <= a0 + RGN);
	cr_assert(a2 >= a1 && a2 + 8 * PG <= a1 + 32 * PG);
	uvmo_vmo_t *v = pattern_vmo(8, 11);
	uint8_t *m = map_vmo(l2, PERM_RW, v, 0, 8 * PG);
	cr_assert(m >= a2 && m + 8 * PG <= a2 + 8 * PG);
	expect_mem_pattern(m, 8 * PG, 11, 0);
	/* The innermost region is full. */
	void *x;
	expect_rc(-ENOMEM, uvmo_vmar_map(l2, PERM_R, 0, v, 0, PG, &x));
}

Test(vmar, allocate_specific_places_at_the_offset)
{
	uint8_t *base, *a, *b;
	uvmo_vmar_t *parent = region(RGN_PAGES, &base);
	make_vmar(parent, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC, 8 * PG, 4 * PG, &a);
	cr_assert_eq(a, base + 8 * PG);
	uvmo_vmar_t *nested = NULL;
	expect_ok(uvmo_vmar_allocate(parent, UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_SPECIFIC,
				     40 * PG, 24 * PG, &nested, (void **)&b));
	cr_assert_eq(b, base + 40 * PG);
	expect_range_taken(parent, 8 * PG, PG);
	expect_range_taken(parent, 63 * PG, PG);
	expect_range_free(parent, 0, 8 * PG);
	expect_range_free(parent, 12 * PG, 28 * PG);
}

Test(vmar, allocate_specific_nested)
{
	uint8_t *base, *a, *b;
	uvmo_vmar_t *l1 = make_vmar(region(RGN_PAGES, &base), CAN_MAP_ALL | UVMO_VMAR_SPECIFIC,
				    16 * PG, 32 * PG, &a);
	cr_assert_eq(a, base + 16 * PG);
	uvmo_vmar_t *l2 = make_vmar(l1, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC, 4 * PG, 8 * PG, &b);
	cr_assert_eq(b, a + 4 * PG);
	uvmo_vmo_t *v = pattern_vmo(2, 3);
	uint8_t *m = map_at(l2, PERM_RW | UVMO_VMAR_SPECIFIC, 6 * PG, v, 0, 2 * PG);
	cr_assert_eq(m, b + 6 * PG);
	expect_mem_pattern(m, 2 * PG, 3, 0);
}

Test(vmar, allocate_without_addr_out)
{
	uvmo_vmar_t *parent = region(RGN_PAGES, NULL);
	uvmo_vmar_t *c = NULL;
	expect_ok(uvmo_vmar_allocate(parent, CAN_MAP_ALL, 0, 4 * PG, &c, NULL));
	cr_assert_not_null(c);
}

Test(vmar, allocate_specific_over_a_child_is_enomem)
{
	uvmo_vmar_t *parent = region(RGN_PAGES, NULL);
	make_vmar(parent, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC, 8 * PG, 8 * PG, NULL);
	uvmo_vmar_t *c = NULL;
	expect_rc(-ENOMEM, uvmo_vmar_allocate(parent, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC,
					      12 * PG, 8 * PG, &c, NULL));
	expect_rc(-ENOMEM, uvmo_vmar_allocate(parent, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC,
					      4 * PG, 5 * PG, &c, NULL));
	expect_rc(-ENOMEM, uvmo_vmar_allocate(parent, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC,
					      0, RGN, &c, NULL));
	cr_assert_null(c);
	expect_range_free(parent, 0, 8 * PG);
	expect_range_free(parent, 16 * PG, RGN - 16 * PG);
}

Test(vmar, allocate_specific_over_a_mapping_is_enomem)
{
	uvmo_vmar_t *parent = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	map_at(parent, PERM_R | UVMO_VMAR_SPECIFIC, 20 * PG, v, 0, 4 * PG);
	uvmo_vmar_t *c = NULL;
	expect_rc(-ENOMEM, uvmo_vmar_allocate(parent, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC,
					      16 * PG, 8 * PG, &c, NULL));
	expect_rc(-ENOMEM, uvmo_vmar_allocate(parent, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC,
					      23 * PG, PG, &c, NULL));
	make_vmar(parent, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC, 24 * PG, PG, NULL);
}

Test(vmar, allocate_larger_than_free_space_is_enomem)
{
	uvmo_vmar_t *parent = region(RGN_PAGES, NULL);
	uvmo_vmar_t *c = NULL;
	expect_rc(-ENOMEM, uvmo_vmar_allocate(parent, CAN_MAP_ALL, 0, RGN + PG, &c, NULL));
	make_vmar(parent, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC, 32 * PG, PG, NULL);
	/* 63 pages are free, but not in one piece. */
	expect_rc(-ENOMEM, uvmo_vmar_allocate(parent, CAN_MAP_ALL, 0, 33 * PG, &c, NULL));
	make_vmar(parent, CAN_MAP_ALL, 0, 32 * PG, NULL);
	make_vmar(parent, CAN_MAP_ALL, 0, 31 * PG, NULL);
	expect_rc(-ENOMEM, uvmo_vmar_allocate(parent, CAN_MAP_ALL, 0, PG, &c, NULL));
}

Test(vmar, allocate_rights_beyond_parent_are_eacces)
{
	uvmo_vmar_t *ro = make_vmar(root_vmar(), UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_CAN_MAP_SPECIFIC,
				    0, RGN, NULL);
	uvmo_vmar_t *c = NULL;
	expect_rc(-EACCES, uvmo_vmar_allocate(ro, UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_CAN_MAP_WRITE,
					      0, PG, &c, NULL));
	expect_rc(-EACCES, uvmo_vmar_allocate(ro, UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_CAN_MAP_EXECUTE,
					      0, PG, &c, NULL));
	uvmo_vmar_t *nospec = make_vmar(root_vmar(), UVMO_VMAR_CAN_MAP_READ, 0, RGN, NULL);
	expect_rc(-EACCES, uvmo_vmar_allocate(nospec, UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_CAN_MAP_SPECIFIC,
					      0, PG, &c, NULL));
	cr_assert_null(c);
	/* Within the rights it works, and the refusals took no space. */
	make_vmar(ro, UVMO_VMAR_CAN_MAP_READ, 0, RGN, NULL);
	make_vmar(nospec, UVMO_VMAR_CAN_MAP_READ, 0, RGN, NULL);
}

Test(vmar, allocate_specific_without_can_map_specific_is_eacces)
{
	uvmo_vmar_t *nospec = make_vmar(root_vmar(),
					UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_CAN_MAP_WRITE, 0, RGN, NULL);
	uvmo_vmar_t *c = NULL;
	expect_rc(-EACCES, uvmo_vmar_allocate(nospec, UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_SPECIFIC,
					      0, PG, &c, NULL));
	cr_assert_null(c);
	make_vmar(nospec, UVMO_VMAR_CAN_MAP_READ, 0, RGN, NULL);
}

Test(vmar, allocate_rejects_bad_input_and_changes_nothing)
{
	uvmo_vmar_t *parent = region(RGN_PAGES, NULL);
	uvmo_vmar_t *c = NULL;
	void *a = NULL;
	expect_rc(-EINVAL, uvmo_vmar_allocate(NULL, CAN_MAP_ALL, 0, PG, &c, &a));
	expect_rc(-EINVAL, uvmo_vmar_allocate(parent, CAN_MAP_ALL, 0, PG, NULL, &a));
	expect_rc(-EINVAL, uvmo_vmar_allocate(parent, CAN_MAP_ALL, 0, 0, &c, &a));
	expect_rc(-EINVAL, uvmo_vmar_allocate(parent, CAN_MAP_ALL, 0, PG + 1, &c, &a));
	expect_rc(-EINVAL, uvmo_vmar_allocate(parent, CAN_MAP_ALL, 0, PG / 2, &c, &a));
	expect_rc(-EINVAL, uvmo_vmar_allocate(parent, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC,
					      PG + 8, PG, &c, &a));
	expect_rc(-EINVAL, uvmo_vmar_allocate(parent, CAN_MAP_ALL | (1u << 30), 0, PG, &c, &a));
	expect_rc(-EINVAL, uvmo_vmar_allocate(parent, CAN_MAP_ALL | (1u << 20), 0, PG, &c, &a));
	cr_assert_null(c);
	cr_assert_null(a);
	expect_range_free(parent, 0, RGN);
}

/* ---------------------------------------------------------------------- */
/* mapping: placement                                                     */
/* ---------------------------------------------------------------------- */

Test(vmar, map_returns_aligned_disjoint_addresses_inside_the_vmar)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *v = pattern_vmo(8, 5);
	uintptr_t at[16];
	uint64_t len[16];
	uint64_t used = 0;
	for (int i = 0; i < 16; i++) {
		len[i] = (uint64_t)(i % 4 + 1) * PG;
		uint64_t off = (uint64_t)(7 - i % 8) * PG;
		if (off + len[i] > 8 * PG)
			off = 8 * PG - len[i];
		uint8_t *m = map_vmo(r, PERM_R, v, off, len[i]);
		at[i] = (uintptr_t)m;
		used += len[i];
		cr_assert(at[i] >= (uintptr_t)base && at[i] + len[i] <= (uintptr_t)base + RGN,
			  "mapping %d at %p lies outside the VMAR %p..+%llu", i, (void *)m,
			  (void *)base, (unsigned long long)RGN);
		for (int j = 0; j < i; j++)
			cr_assert(!overlaps(at[i], len[i], at[j], len[j]),
				  "mappings %d and %d overlap", i, j);
		expect_mem_pattern(m, len[i], 5, off);
	}
	cr_assert_leq(used, RGN);
}

Test(vmar, map_specific_places_at_the_offset)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *v = pattern_vmo(8, 9);
	uint8_t *m = map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 10 * PG, v, 2 * PG, 3 * PG);
	cr_assert_eq(m, base + 10 * PG);
	expect_mem_pattern(m, 3 * PG, 9, 2 * PG);
	uint8_t *last = map_at(r, PERM_R | UVMO_VMAR_SPECIFIC, RGN - PG, v, 7 * PG, PG);
	cr_assert_eq(last, base + RGN - PG);
	expect_mem_pattern(last, PG, 9, 7 * PG);
}

Test(vmar, map_fills_a_region_exactly)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *v = make_vmo(RGN, 0);
	uint8_t *m = map_vmo(r, PERM_RW, v, 0, RGN);
	cr_assert_eq(m, base);
	void *x;
	expect_rc(-ENOMEM, uvmo_vmar_map(r, PERM_R, 0, v, 0, PG, &x));
}

Test(vmar, map_specific_over_a_mapping_is_enomem)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = pattern_vmo(8, 2);
	uint8_t *m = map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 8 * PG, v, 0, 8 * PG);
	void *x = NULL;
	expect_rc(-ENOMEM, uvmo_vmar_map(r, PERM_R | UVMO_VMAR_SPECIFIC, 4 * PG, v, 0, 5 * PG, &x));
	expect_rc(-ENOMEM, uvmo_vmar_map(r, PERM_R | UVMO_VMAR_SPECIFIC, 15 * PG, v, 0, 2 * PG, &x));
	expect_rc(-ENOMEM, uvmo_vmar_map(r, PERM_R | UVMO_VMAR_SPECIFIC, 10 * PG, v, 0, PG, &x));
	cr_assert_null(x);
	expect_mem_pattern(m, 8 * PG, 2, 0);
	expect_range_free(r, 0, 8 * PG);
	expect_range_free(r, 16 * PG, RGN - 16 * PG);
}

Test(vmar, map_specific_over_a_sub_vmar_is_enomem)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	make_vmar(r, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC, 8 * PG, 8 * PG, NULL);
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	void *x = NULL;
	expect_rc(-ENOMEM, uvmo_vmar_map(r, PERM_R | UVMO_VMAR_SPECIFIC, 6 * PG, v, 0, 4 * PG, &x));
	expect_rc(-ENOMEM, uvmo_vmar_map(r, PERM_R | UVMO_VMAR_SPECIFIC, 8 * PG, v, 0, PG, &x));
	cr_assert_null(x);
}

Test(vmar, map_specific_overwrite_replaces_what_it_covers)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *a = pattern_vmo(8, 100);
	uvmo_vmo_t *b = pattern_vmo(8, 200);
	uint8_t *ma = map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 0, a, 0, 8 * PG);
	uint8_t *mb = map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC_OVERWRITE, 3 * PG, b, 4 * PG, 2 * PG);
	cr_assert_eq(ma, base);
	cr_assert_eq(mb, base + 3 * PG);
	expect_mem_pattern(base, 3 * PG, 100, 0);
	expect_mem_pattern(base + 3 * PG, 2 * PG, 200, 4 * PG);
	expect_mem_pattern(base + 5 * PG, 3 * PG, 100, 5 * PG);
	/* Writes through the new mapping go to b, not to a. */
	base[3 * PG] = 0xee;
	uint8_t x = 0;
	expect_ok(uvmo_vmo_read(b, &x, 4 * PG, 1));
	cr_assert_eq(x, 0xee);
	expect_ok(uvmo_vmo_read(a, &x, 3 * PG, 1));
	cr_assert_eq(x, pattern_byte(100, 3 * PG));
	/* The pieces of a on either side are separate mappings now. */
	expect_ok(uvmo_vmar_unmap(r, base, 3 * PG));
	expect_read_signal(SIGSEGV, base);
	expect_mem_pattern(base + 5 * PG, 3 * PG, 100, 5 * PG);
}

Test(vmar, map_specific_overwrite_spanning_several_mappings)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *a = pattern_vmo(4, 1), *b = pattern_vmo(4, 2), *c = pattern_vmo(16, 3);
	map_at(r, PERM_R | UVMO_VMAR_SPECIFIC, 0, a, 0, 4 * PG);
	map_at(r, PERM_R | UVMO_VMAR_SPECIFIC, 6 * PG, b, 0, 4 * PG);
	/* Covers a's last two pages, the hole, and b's first two. */
	map_at(r, PERM_R | UVMO_VMAR_SPECIFIC_OVERWRITE, 2 * PG, c, 0, 6 * PG);
	expect_mem_pattern(base, 2 * PG, 1, 0);
	expect_mem_pattern(base + 2 * PG, 6 * PG, 3, 0);
	expect_mem_pattern(base + 8 * PG, 2 * PG, 2, 2 * PG);
}

Test(vmar, map_rights_beyond_can_map_are_eacces)
{
	uint8_t *base;
	uvmo_vmar_t *ro = make_vmar(root_vmar(), UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_CAN_MAP_SPECIFIC,
				    0, RGN, &base);
	uvmo_vmar_t *rw = make_vmar(root_vmar(), CAN_MAP_RW_SPECIFIC, 0, RGN, NULL);
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	void *x = NULL;
	expect_rc(-EACCES, uvmo_vmar_map(ro, PERM_RW, 0, v, 0, PG, &x));
	expect_rc(-EACCES, uvmo_vmar_map(ro, PERM_R | UVMO_PERM_EXECUTE, 0, v, 0, PG, &x));
	expect_rc(-EACCES, uvmo_vmar_map(rw, PERM_R | UVMO_PERM_EXECUTE, 0, v, 0, PG, &x));
	expect_rc(-EACCES, uvmo_vmar_map(ro, PERM_RW | UVMO_VMAR_SPECIFIC, 0, v, 0, PG, &x));
	cr_assert_null(x);
	expect_range_free(ro, 0, RGN);
	expect_range_free(rw, 0, RGN);
	/* Within the rights it works. */
	map_vmo(ro, PERM_R, v, 0, PG);
	map_vmo(rw, PERM_RW, v, 0, PG);
	map_vmo(root_vmar(), PERM_R | UVMO_PERM_EXECUTE, v, 0, PG);
}

Test(vmar, map_write_of_a_no_write_handle_is_eacces)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *p = pattern_vmo(4, 77);
	uvmo_vmo_t *ro = make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_NO_WRITE, 0, 4 * PG);
	uvmo_vmo_t *ros = make_child(p, UVMO_CHILD_SLICE | UVMO_CHILD_NO_WRITE, 0, 4 * PG);
	uvmo_vmo_t *ross = make_child(ros, UVMO_CHILD_SLICE, PG, 2 * PG);
	void *x = NULL;
	expect_rc(-EACCES, uvmo_vmar_map(r, PERM_RW, 0, ro, 0, 4 * PG, &x));
	expect_rc(-EACCES, uvmo_vmar_map(r, PERM_RW, 0, ros, 0, 4 * PG, &x));
	expect_rc(-EACCES, uvmo_vmar_map(r, PERM_RW, 0, ross, 0, PG, &x));
	cr_assert_null(x);
	expect_range_free(r, 0, RGN);
	uint8_t *m = map_vmo(r, PERM_R, ro, 0, 4 * PG);
	expect_mem_pattern(m, 4 * PG, 77, 0);
	m = map_vmo(r, PERM_R, ross, 0, 2 * PG);
	expect_mem_pattern(m, 2 * PG, 77, PG);
}

Test(vmar, map_specific_without_can_map_specific_is_eacces)
{
	uvmo_vmar_t *r = make_vmar(root_vmar(), UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_CAN_MAP_WRITE,
				   0, RGN, NULL);
	uvmo_vmo_t *v = make_vmo(PG, 0);
	void *x = NULL;
	expect_rc(-EACCES, uvmo_vmar_map(r, PERM_R | UVMO_VMAR_SPECIFIC, 0, v, 0, PG, &x));
	expect_rc(-EACCES, uvmo_vmar_map(r, PERM_R | UVMO_VMAR_SPECIFIC_OVERWRITE, 0, v, 0, PG, &x));
	cr_assert_null(x);
	/* Without placement it works; the region is RGN_PAGES long and empty. */
	uvmo_vmo_t *big = make_vmo(RGN, 0);
	map_vmo(r, PERM_RW, big, 0, RGN);
}

Test(vmar, map_past_the_vmo_end_is_erange_without_allow_faults)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	void *x = NULL;
	expect_rc(-ERANGE, uvmo_vmar_map(r, PERM_R, 0, v, 0, 5 * PG, &x));
	expect_rc(-ERANGE, uvmo_vmar_map(r, PERM_R, 0, v, 3 * PG, 2 * PG, &x));
	expect_rc(-ERANGE, uvmo_vmar_map(r, PERM_R, 0, v, 4 * PG, PG, &x));
	expect_rc(-ERANGE, uvmo_vmar_map(r, PERM_R, 0, v, 8 * PG, PG, &x));
	cr_assert_null(x);
	expect_range_free(r, 0, RGN);
}

Test(vmar, map_of_an_overflowing_vmo_range_is_erange)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = make_vmo(4 * PG, UVMO_VMO_RESIZABLE);
	void *x = NULL;
	/* vmo_offset + len wraps past 2^64: "offset + length overflows". */
	expect_rc(-ERANGE, uvmo_vmar_map(r, PERM_R, 0, v, UINT64_MAX - PG + 1, 2 * PG, &x));
	expect_rc(-ERANGE, uvmo_vmar_map(r, PERM_R, 0, v, UINT64_MAX - PG + 1, PG, &x));
	expect_rc(-ERANGE, uvmo_vmar_map(r, PERM_R | UVMO_VMAR_ALLOW_FAULTS, 0, v,
					 UINT64_MAX - PG + 1, 2 * PG, &x));
	cr_assert_null(x);
	expect_range_free(r, 0, RGN);
}

Test(vmar, map_past_the_vmo_end_is_allowed_with_allow_faults)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = make_vmo(4 * PG, UVMO_VMO_RESIZABLE);
	uint8_t *m = map_vmo(r, PERM_RW | UVMO_VMAR_ALLOW_FAULTS, v, 0, 8 * PG);
	m[0] = 1;
	m[4 * PG - 1] = 2;
	uint8_t b[2];
	expect_ok(uvmo_vmo_read(v, &b[0], 0, 1));
	expect_ok(uvmo_vmo_read(v, &b[1], 4 * PG - 1, 1));
	cr_assert(b[0] == 1 && b[1] == 2);
}

Test(vmar, map_rejects_bad_input_and_changes_nothing)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	struct uvmo_stats before = stats_now();
	void *x = NULL;
	expect_rc(-EINVAL, uvmo_vmar_map(NULL, PERM_R, 0, v, 0, PG, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_R, 0, NULL, 0, PG, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_R, 0, v, 0, PG, NULL));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_R, 0, v, 1, PG, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_R, 0, v, PG / 2, PG, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_R, 0, v, 0, PG + 1, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_R, 0, v, 0, 100, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_R, 0, v, 0, 0, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_R | (1u << 30), 0, v, 0, PG, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_R | (1u << 7), 0, v, 0, PG, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_R | UVMO_VMAR_CAN_MAP_READ, 0, v, 0, PG, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, UVMO_PERM_WRITE, 0, v, 0, PG, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, UVMO_PERM_EXECUTE, 0, v, 0, PG, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_R | UVMO_VMAR_SPECIFIC, PG + 16, v, 0, PG, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_R | UVMO_VMAR_SPECIFIC_OVERWRITE, 12, v, 0, PG, &x));
	/* Range errors, and the same with MAP_RANGE, which must not commit. */
	expect_rc(-ERANGE, uvmo_vmar_map(r, PERM_RW, 0, v, 0, 9 * PG, &x));
	expect_rc(-ERANGE, uvmo_vmar_map(r, PERM_RW | UVMO_VMAR_MAP_RANGE, 0, v, 4 * PG, 5 * PG, &x));
	expect_rc(-EINVAL, uvmo_vmar_map(r, PERM_RW | UVMO_VMAR_MAP_RANGE, 0, v, 0, 0, &x));
	cr_assert_null(x);
	expect_range_free(r, 0, RGN);
	struct uvmo_vmo_info info = info_of(v);
	cr_assert_eq(info.committed_bytes, 0, "failed maps committed %llu bytes",
		     (unsigned long long)info.committed_bytes);
	struct uvmo_stats after = stats_now();
	cr_assert_eq(after.committed_bytes, before.committed_bytes);
	cr_assert_eq(after.vmos, before.vmos);
}

Test(vmar, map_of_a_closed_vmo_is_ebadf)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = make_vmo(PG, 0);
	uvmo_vmo_close(v);
	void *x = NULL;
	expect_rc(-EBADF, uvmo_vmar_map(r, PERM_R, 0, v, 0, PG, &x));
	cr_assert_null(x);
	expect_range_free(r, 0, RGN);
}

/* ---------------------------------------------------------------------- */
/* unmap                                                                  */
/* ---------------------------------------------------------------------- */

Test(vmar, unmap_of_the_middle_splits_the_mapping)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *v = pattern_vmo(16, 42);
	/* Mapping page i shows VMO page i + 2. */
	uint8_t *m = map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 4 * PG, v, 2 * PG, 10 * PG);
	expect_mem_pattern(m, 10 * PG, 42, 2 * PG);
	expect_ok(uvmo_vmar_unmap(r, m + 4 * PG, 2 * PG));
	/* Every surviving page keeps va - base + vmo_offset. */
	expect_mem_pattern(m, 4 * PG, 42, 2 * PG);
	expect_mem_pattern(m + 6 * PG, 4 * PG, 42, 8 * PG);
	expect_read_signal(SIGSEGV, m + 4 * PG);
	expect_read_signal(SIGSEGV, m + 6 * PG - 1);
	/* Writes through both halves land at the right VMO offsets. */
	m[PG + 3] = 0xa1;
	m[7 * PG + 5] = 0xb2;
	uint8_t x;
	expect_ok(uvmo_vmo_read(v, &x, 3 * PG + 3, 1));
	cr_assert_eq(x, 0xa1);
	expect_ok(uvmo_vmo_read(v, &x, 9 * PG + 5, 1));
	cr_assert_eq(x, 0xb2);
	/* The halves are separate mappings: each can be protected and
	 * unmapped exactly, and the hole can be mapped again. */
	expect_ok(uvmo_vmar_protect(r, PERM_R, m + 6 * PG, 4 * PG));
	expect_ok(uvmo_vmar_unmap(r, m, 4 * PG));
	expect_read_signal(SIGSEGV, m);
	expect_mem_pattern(m + 6 * PG + 6, PG - 6, 42, 8 * PG + 6);
	expect_range_free(r, 4 * PG, 6 * PG);
	expect_range_taken(r, 10 * PG, PG);
}

Test(vmar, unmap_of_an_end_trims_the_mapping)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = pattern_vmo(8, 8);
	uint8_t *m = map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 0, v, 0, 8 * PG);
	expect_ok(uvmo_vmar_unmap(r, m, 2 * PG));
	expect_ok(uvmo_vmar_unmap(r, m + 6 * PG, 2 * PG));
	expect_read_signal(SIGSEGV, m + PG);
	expect_read_signal(SIGSEGV, m + 6 * PG);
	expect_mem_pattern(m + 2 * PG, 4 * PG, 8, 2 * PG);
	expect_range_free(r, 0, 2 * PG);
	expect_range_free(r, 6 * PG, RGN - 6 * PG);
}

Test(vmar, unmap_of_a_whole_mapping_frees_its_range)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = pattern_vmo(8, 4);
	uint8_t *m = map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 16 * PG, v, 0, 8 * PG);
	m[0] = 1;
	expect_ok(uvmo_vmar_unmap(r, m, 8 * PG));
	expect_read_signal(SIGSEGV, m);
	expect_read_signal(SIGSEGV, m + 8 * PG - 1);
	expect_range_free(r, 0, RGN);
}

Test(vmar, unmap_across_mappings_and_holes)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *a = pattern_vmo(4, 1), *b = pattern_vmo(4, 2), *c = pattern_vmo(4, 3);
	map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 0, a, 0, 4 * PG);
	map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 6 * PG, b, 0, 4 * PG);
	map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 12 * PG, c, 0, 4 * PG);
	expect_ok(uvmo_vmar_unmap(r, base + 2 * PG, 12 * PG));
	expect_mem_pattern(base, 2 * PG, 1, 0);
	expect_mem_pattern(base + 14 * PG, 2 * PG, 3, 2 * PG);
	for (uint64_t p = 2; p < 14; p++)
		expect_read_signal(SIGSEGV, base + p * PG);
	expect_range_free(r, 2 * PG, 12 * PG);
}

Test(vmar, unmap_destroys_sub_vmars_inside_the_range)
{
	uint8_t *base, *sa;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmar_t *sub = make_vmar(r, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC, 8 * PG, 8 * PG, &sa);
	uvmo_vmar_t *subsub = make_vmar(sub, CAN_MAP_ALL, 0, 4 * PG, NULL);
	uvmo_vmo_t *v = pattern_vmo(4, 6);
	uint8_t *m = map_vmo(subsub, PERM_RW, v, 0, 4 * PG);
	expect_mem_pattern(m, 4 * PG, 6, 0);
	expect_ok(uvmo_vmar_unmap(r, base + 4 * PG, 16 * PG));
	expect_read_signal(SIGSEGV, m);
	void *x;
	expect_rc(-EBADF, uvmo_vmar_map(sub, PERM_R, 0, v, 0, PG, &x));
	expect_rc(-EBADF, uvmo_vmar_map(subsub, PERM_R, 0, v, 0, PG, &x));
	expect_range_free(r, 0, RGN);
	uvmo_vmar_close(subsub);
	uvmo_vmar_close(sub);
}

Test(vmar, unmap_cutting_a_sub_vmar_is_einval_and_changes_nothing)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmar_t *sub = make_vmar(r, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC, 8 * PG, 8 * PG, NULL);
	uvmo_vmo_t *v = pattern_vmo(8, 12);
	uint8_t *ms = map_vmo(sub, PERM_RW, v, 0, 8 * PG);
	uint8_t *mr = map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 0, v, 0, 8 * PG);
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, base + 4 * PG, 8 * PG));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, base + 12 * PG, 8 * PG));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, base + 9 * PG, PG));
	expect_mem_pattern(mr, 8 * PG, 12, 0);
	expect_mem_pattern(ms, 8 * PG, 12, 0);
	/* The sub-VMAR is alive and still full. */
	uvmo_vmar_t *x = NULL;
	expect_rc(-ENOMEM, uvmo_vmar_allocate(sub, CAN_MAP_ALL, 0, PG, &x, NULL));
	expect_ok(uvmo_vmar_unmap(sub, ms, 8 * PG));
	make_vmar(sub, CAN_MAP_ALL, 0, 8 * PG, NULL);
}

Test(vmar, unmap_rejects_bad_input_and_changes_nothing)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *v = pattern_vmo(RGN_PAGES, 21);
	uint8_t *m = map_vmo(r, PERM_RW, v, 0, RGN);
	cr_assert_eq(m, base);
	expect_rc(-EINVAL, uvmo_vmar_unmap(NULL, m, PG));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, m + 1, PG));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, m + PG / 2, PG));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, m, PG + 1));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, m, 7));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, m, 0));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, NULL, PG));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, m + RGN, PG));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, m - PG, PG));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, m - PG, 2 * PG));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, m + RGN - PG, 2 * PG));
	expect_rc(-EINVAL, uvmo_vmar_unmap(r, m, UINT64_MAX - PG + 1));
	expect_mem_pattern(m, RGN, 21, 0);
	expect_range_taken(r, 0, PG);
	expect_range_taken(r, RGN - PG, PG);
}

Test(vmar, unmap_in_a_child_region_leaves_the_parent_alone)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmar_t *sub = make_vmar(r, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC, 0, 8 * PG, NULL);
	uvmo_vmo_t *v = pattern_vmo(8, 30);
	uint8_t *mr = map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 8 * PG, v, 0, 8 * PG);
	/* The parent's mapping lies outside the child: the child refuses. */
	expect_rc(-EINVAL, uvmo_vmar_unmap(sub, mr, PG));
	expect_mem_pattern(mr, 8 * PG, 30, 0);
}

/* ---------------------------------------------------------------------- */
/* protect                                                                */
/* ---------------------------------------------------------------------- */

Test(vmar, protect_of_part_splits_the_mapping)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = pattern_vmo(8, 50);
	uint8_t *m = map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 0, v, 0, 8 * PG);
	for (uint64_t p = 0; p < 8; p++)
		m[p * PG] = (uint8_t)p; /* every page faulted writable */
	expect_ok(uvmo_vmar_protect(r, PERM_R, m + 2 * PG, 3 * PG));
	for (uint64_t p = 0; p < 8; p++) {
		if (p >= 2 && p < 5) {
			expect_write_signal(SIGSEGV, m + p * PG + 9);
		} else {
			expect_write_ok(m + p * PG + 9, 0x77);
		}
		cr_assert_eq(m[p * PG], (uint8_t)p);
	}
	for (uint64_t p = 2; p < 5; p++)
		expect_mem_pattern(m + p * PG + 1, PG - 1, 50, p * PG + 1);
	/* The three pieces are mappings of their own. */
	expect_ok(uvmo_vmar_unmap(r, m + 2 * PG, 3 * PG));
	expect_read_signal(SIGSEGV, m + 3 * PG);
	cr_assert_eq(m[PG], 1);
	cr_assert_eq(m[5 * PG], 5);
	expect_range_free(r, 2 * PG, 3 * PG);
}

Test(vmar, protect_back_to_read_write_allows_writes_again)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	uint8_t *m = map_vmo(r, PERM_RW, v, 0, 4 * PG);
	expect_ok(uvmo_vmar_protect(r, PERM_R, m, 4 * PG));
	expect_write_signal(SIGSEGV, m + PG);
	expect_ok(uvmo_vmar_protect(r, PERM_RW, m + PG, PG));
	expect_write_ok(m + PG, 0x3c);
	expect_write_signal(SIGSEGV, m);
	expect_write_signal(SIGSEGV, m + 2 * PG);
	uint8_t x;
	expect_ok(uvmo_vmo_read(v, &x, PG, 1));
	cr_assert_eq(x, 0x3c);
	cr_assert_eq(m[0], 0);
}

Test(vmar, protect_of_a_whole_mapping_drops_write_from_every_page)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	uint8_t *m = map_vmo(r, PERM_RW, v, 0, 16 * PG);
	/* Split it first so that sub-ranges had write access of their own. */
	expect_ok(uvmo_vmar_protect(r, PERM_R, m + 4 * PG, 4 * PG));
	expect_ok(uvmo_vmar_protect(r, PERM_RW, m + 4 * PG, 4 * PG));
	for (uint64_t p = 0; p < 16; p++)
		m[p * PG] = (uint8_t)(p + 1);
	expect_ok(uvmo_vmar_protect(r, PERM_R, m, 16 * PG));
	for (uint64_t p = 0; p < 16; p++) {
		expect_write_signal(SIGSEGV, m + p * PG);
		cr_assert_eq(m[p * PG], (uint8_t)(p + 1));
	}
}

Test(vmar, protect_across_adjacent_mappings)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *a = make_vmo(4 * PG, 0), *b = make_vmo(4 * PG, 0);
	map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 0, a, 0, 4 * PG);
	map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 4 * PG, b, 0, 4 * PG);
	expect_ok(uvmo_vmar_protect(r, PERM_R, base + 2 * PG, 4 * PG));
	for (uint64_t p = 0; p < 8; p++) {
		if (p >= 2 && p < 6)
			expect_write_signal(SIGSEGV, base + p * PG);
		else
			expect_write_ok(base + p * PG, 1);
	}
}

Test(vmar, protect_of_a_range_with_a_hole_is_enomem_and_changes_nothing)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *a = make_vmo(4 * PG, 0), *b = make_vmo(4 * PG, 0);
	map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 0, a, 0, 4 * PG);
	map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 5 * PG, b, 0, 4 * PG);
	expect_rc(-ENOMEM, uvmo_vmar_protect(r, PERM_R, base, 9 * PG));
	expect_rc(-ENOMEM, uvmo_vmar_protect(r, PERM_R, base + 2 * PG, 4 * PG));
	expect_rc(-ENOMEM, uvmo_vmar_protect(r, PERM_R, base + 4 * PG, PG));
	expect_rc(-ENOMEM, uvmo_vmar_protect(r, PERM_R, base + 8 * PG, 2 * PG));
	for (uint64_t p = 0; p < 9; p++) {
		if (p == 4)
			continue;
		expect_write_ok(base + p * PG, (uint8_t)(p + 1));
	}
	/* Nothing was split either: each mapping still unmaps in one piece. */
	expect_ok(uvmo_vmar_protect(r, PERM_R, base, 4 * PG));
	expect_write_signal(SIGSEGV, base + 3 * PG);
	expect_write_ok(base + 5 * PG, 9);
}

Test(vmar, protect_beyond_rights_is_eacces_and_changes_nothing)
{
	uvmo_vmar_t *rw = make_vmar(root_vmar(), CAN_MAP_RW_SPECIFIC, 0, RGN, NULL);
	uvmo_vmar_t *ro = make_vmar(root_vmar(), UVMO_VMAR_CAN_MAP_READ, 0, RGN, NULL);
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	uvmo_vmo_t *nw = make_child(v, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_NO_WRITE, 0, 4 * PG);
	uint8_t *m1 = map_vmo(rw, PERM_RW, v, 0, 4 * PG);
	uint8_t *m2 = map_vmo(ro, PERM_R, v, 0, 4 * PG);
	uint8_t *m3 = map_vmo(rw, PERM_R, nw, 0, 4 * PG);
	expect_rc(-EACCES, uvmo_vmar_protect(rw, PERM_R | UVMO_PERM_EXECUTE, m1, 4 * PG));
	expect_rc(-EACCES, uvmo_vmar_protect(ro, PERM_RW, m2, 4 * PG));
	expect_rc(-EACCES, uvmo_vmar_protect(rw, PERM_RW, m3, 4 * PG));
	expect_rc(-EACCES, uvmo_vmar_protect(rw, PERM_RW, m3 + PG, PG));
	expect_write_ok(m1 + PG, 1);
	expect_write_signal(SIGSEGV, m2 + PG);
	expect_write_signal(SIGSEGV, m3 + PG);
	cr_assert_eq(m2[PG], 1);
}

Test(vmar, protect_rejects_bad_input_and_changes_nothing)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	uint8_t *m = map_vmo(r, PERM_RW, v, 0, 4 * PG);
	expect_rc(-EINVAL, uvmo_vmar_protect(NULL, PERM_R, m, PG));
	expect_rc(-EINVAL, uvmo_vmar_protect(r, PERM_R, m + 1, PG));
	expect_rc(-EINVAL, uvmo_vmar_protect(r, PERM_R, m, PG + 1));
	expect_rc(-EINVAL, uvmo_vmar_protect(r, PERM_R, m, 0));
	expect_rc(-EINVAL, uvmo_vmar_protect(r, PERM_R | (1u << 30), m, PG));
	expect_rc(-EINVAL, uvmo_vmar_protect(r, UVMO_PERM_WRITE, m, PG));
	expect_rc(-EINVAL, uvmo_vmar_protect(r, UVMO_PERM_EXECUTE, m, PG));
	for (uint64_t p = 0; p < 4; p++)
		expect_write_ok(m + p * PG, 1);
}

/* ---------------------------------------------------------------------- */
/* op_range (bookkeeping side; content effects are in test_fault.c)       */
/* ---------------------------------------------------------------------- */

Test(vmar, op_range_rejects_bad_input_and_changes_nothing)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *v = pattern_vmo(4, 61);
	uint8_t *m = map_at(r, PERM_RW | UVMO_VMAR_SPECIFIC, 0, v, 0, 4 * PG);
	uvmo_vmo_t *nw = make_child(v, UVMO_CHILD_SLICE | UVMO_CHILD_NO_WRITE, 0, 4 * PG);
	uint8_t *mn = map_at(r, PERM_R | UVMO_VMAR_SPECIFIC, 8 * PG, nw, 0, 4 * PG);
	expect_rc(-EINVAL, uvmo_vmar_op_range(NULL, UVMO_OP_DECOMMIT, m, PG));
	expect_rc(-EINVAL, uvmo_vmar_op_range(r, 999, m, PG));
	expect_rc(-EINVAL, uvmo_vmar_op_range(r, 0, m, PG));
	expect_rc(-EINVAL, uvmo_vmar_op_range(r, UVMO_OP_DECOMMIT, m + 1, PG));
	expect_rc(-EINVAL, uvmo_vmar_op_range(r, UVMO_OP_DECOMMIT, m, PG - 1));
	expect_rc(-EINVAL, uvmo_vmar_op_range(r, UVMO_OP_DECOMMIT, m, 0));
	/* A hole in the range. */
	expect_rc(-ENOMEM, uvmo_vmar_op_range(r, UVMO_OP_DECOMMIT, m, 8 * PG));
	expect_rc(-ENOMEM, uvmo_vmar_op_range(r, UVMO_OP_COMMIT, m + 2 * PG, 8 * PG));
	/* DECOMMIT needs the VMO handle's write right. */
	expect_rc(-EACCES, uvmo_vmar_op_range(r, UVMO_OP_DECOMMIT, mn, 4 * PG));
	expect_mem_pattern(m, 4 * PG, 61, 0);
	expect_mem_pattern(mn, 4 * PG, 61, 0);
	struct uvmo_vmo_info i = info_of(v);
	cr_assert_eq(i.committed_bytes, 4 * PG);
}

Test(vmar, op_range_hints_are_accepted)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmo_t *v = pattern_vmo(4, 62);
	uint8_t *m = map_vmo(r, PERM_RW, v, 0, 4 * PG);
	expect_ok(uvmo_vmar_op_range(r, UVMO_OP_DONT_NEED, m, 4 * PG));
	expect_ok(uvmo_vmar_op_range(r, UVMO_OP_ALWAYS_NEED, m + PG, 2 * PG));
	expect_mem_pattern(m, 4 * PG, 62, 0);
}

/* ---------------------------------------------------------------------- */
/* destroy and close                                                      */
/* ---------------------------------------------------------------------- */

Test(vmar, destroyed_vmar_refuses_every_call)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	uint8_t *m = map_vmo(r, PERM_RW, v, 0, 4 * PG);
	expect_ok(uvmo_vmar_destroy(r));
	uvmo_vmar_t *c = NULL;
	void *x = NULL;
	expect_rc(-EBADF, uvmo_vmar_allocate(r, CAN_MAP_ALL, 0, PG, &c, &x));
	expect_rc(-EBADF, uvmo_vmar_map(r, PERM_R, 0, v, 0, PG, &x));
	expect_rc(-EBADF, uvmo_vmar_map(r, PERM_R | UVMO_VMAR_SPECIFIC, 0, v, 0, PG, &x));
	expect_rc(-EBADF, uvmo_vmar_unmap(r, m, PG));
	expect_rc(-EBADF, uvmo_vmar_protect(r, PERM_R, m, PG));
	expect_rc(-EBADF, uvmo_vmar_op_range(r, UVMO_OP_COMMIT, m, PG));
	expect_rc(-EBADF, uvmo_vmar_destroy(r));
	cr_assert_null(c);
	cr_assert_null(x);
	uvmo_vmar_close(r);
}

Test(vmar, destroy_removes_every_mapping_and_nested_region)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmar_t *sub = make_vmar(r, CAN_MAP_ALL, 0, 16 * PG, NULL);
	uvmo_vmo_t *v = pattern_vmo(4, 70);
	uint8_t *m1 = map_vmo(r, PERM_RW, v, 0, 4 * PG);
	uint8_t *m2 = map_vmo(sub, PERM_RW, v, 0, 4 * PG);
	expect_mem_pattern(m1, 4 * PG, 70, 0);
	expect_mem_pattern(m2, 4 * PG, 70, 0);
	expect_ok(uvmo_vmar_destroy(r));
	for (uint64_t p = 0; p < 4; p++) {
		expect_read_signal(SIGSEGV, m1 + p * PG);
		expect_read_signal(SIGSEGV, m2 + p * PG);
	}
	void *x;
	expect_rc(-EBADF, uvmo_vmar_map(sub, PERM_R, 0, v, 0, PG, &x));
	expect_rc(-EBADF, uvmo_vmar_destroy(sub));
	/* The VMO is untouched. */
	uint8_t buf[16];
	expect_ok(uvmo_vmo_read(v, buf, 0, sizeof(buf)));
	expect_mem_pattern(buf, sizeof(buf), 70, 0);
}

Test(vmar, destroy_of_a_sub_vmar_frees_its_range_in_the_parent)
{
	uint8_t *base, *a;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmar_t *sub = make_vmar(r, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC, 8 * PG, 16 * PG, &a);
	uvmo_vmo_t *v = make_vmo(16 * PG, 0);
	map_vmo(sub, PERM_RW, v, 0, 16 * PG);
	expect_range_taken(r, 8 * PG, PG);
	expect_ok(uvmo_vmar_destroy(sub));
	expect_range_free(r, 0, RGN);
	uvmo_vmar_t *again = make_vmar(r, CAN_MAP_ALL | UVMO_VMAR_SPECIFIC, 8 * PG, 16 * PG, &a);
	cr_assert_eq(a, base + 8 * PG);
	uvmo_vmar_close(again);
	uvmo_vmar_close(sub);
}

Test(vmar, destroy_leaves_sibling_and_parent_mappings_alone)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmar_t *s1 = make_vmar(r, CAN_MAP_ALL, 0, 8 * PG, NULL);
	uvmo_vmar_t *s2 = make_vmar(r, CAN_MAP_ALL, 0, 8 * PG, NULL);
	uvmo_vmo_t *v = pattern_vmo(4, 71);
	uint8_t *m0 = map_vmo(r, PERM_RW, v, 0, 4 * PG);
	uint8_t *m1 = map_vmo(s1, PERM_RW, v, 0, 4 * PG);
	uint8_t *m2 = map_vmo(s2, PERM_RW, v, 0, 4 * PG);
	expect_ok(uvmo_vmar_destroy(s1));
	expect_read_signal(SIGSEGV, m1);
	expect_mem_pattern(m0, 4 * PG, 71, 0);
	expect_mem_pattern(m2, 4 * PG, 71, 0);
}

Test(vmar, destroy_rejects_null)
{
	expect_rc(-EINVAL, uvmo_vmar_destroy(NULL));
	uvmo_vmar_close(NULL);
}

Test(vmar, close_keeps_the_mappings)
{
	uint8_t *base;
	uvmo_vmar_t *r = region(RGN_PAGES, &base);
	uvmo_vmo_t *v = pattern_vmo(4, 72);
	uint8_t *m = map_vmo(r, PERM_RW, v, 0, 4 * PG);
	uvmo_vmar_close(r);
	expect_mem_pattern(m, 4 * PG, 72, 0);
	m[5] = 0x99;
	uint8_t x;
	expect_ok(uvmo_vmo_read(v, &x, 5, 1));
	cr_assert_eq(x, 0x99);
	/* The range stays taken in the root: new root mappings avoid it. */
	for (int i = 0; i < 16; i++) {
		uint8_t *n = map_vmo(root_vmar(), PERM_R, v, 0, 4 * PG);
		cr_assert(!overlaps((uintptr_t)n, 4 * PG, (uintptr_t)base, RGN));
	}
}

Test(vmar, closed_vmar_handle_is_ebadf)
{
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uvmo_vmar_close(r);
	uvmo_vmo_t *v = make_vmo(PG, 0);
	void *x = NULL;
	expect_rc(-EBADF, uvmo_vmar_map(r, PERM_R, 0, v, 0, PG, &x));
	expect_rc(-EBADF, uvmo_vmar_destroy(r));
	uvmo_vmar_close(r);
}

/* ---------------------------------------------------------------------- */
/* the VMO a mapping keeps alive                                          */
/* ---------------------------------------------------------------------- */

Test(vmar, closing_the_vmo_keeps_the_mapping_working)
{
	uvmo_vmo_t *v = pattern_vmo(8, 80);
	uint8_t *m = map_rw(v);
	expect_mem_pattern(m, 4 * PG, 80, 0); /* half faulted before the close */
	uvmo_vmo_close(v);
	expect_mem_pattern(m, 8 * PG, 80, 0);
	for (uint64_t p = 0; p < 8; p++)
		m[p * PG + 1] = (uint8_t)(0xc0 + p);
	for (uint64_t p = 0; p < 8; p++)
		cr_assert_eq(m[p * PG + 1], (uint8_t)(0xc0 + p));
	cr_assert_eq(m[2], pattern_byte(80, 2));
}

Test(vmar, closing_the_vmo_keeps_every_mapping_coherent)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, 0);
	uint8_t *a = map_rw(v);
	uint8_t *b = map_rw(v);
	uvmo_vmo_close(v);
	a[100] = 1;
	b[PG + 100] = 2;
	cr_assert_eq(b[100], 1);
	cr_assert_eq(a[PG + 100], 2);
	cr_assert_eq(a[3 * PG], 0);
}

Test(vmar, unmapping_the_last_mapping_of_a_closed_vmo_frees_its_frames)
{
	struct uvmo_stats base = stats_now();
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uint8_t *m = map_vmo(r, PERM_RW, v, 0, 8 * PG);
	memset(m, 0x11, 8 * PG);
	uvmo_vmo_close(v);
	struct uvmo_stats mid = stats_now();
	cr_assert_geq(mid.committed_bytes, base.committed_bytes + 8 * PG,
		      "the mapped content of a closed VMO was freed");
	expect_mem_val(m, 8 * PG, 0x11);
	expect_ok(uvmo_vmar_unmap(r, m, 8 * PG));
	struct uvmo_stats end = stats_now();
	cr_assert_eq(end.committed_bytes, base.committed_bytes,
		     "%llu bytes still committed after the last mapping went",
		     (unsigned long long)(end.committed_bytes - base.committed_bytes));
	cr_assert_eq(end.vmos, base.vmos);
}

Test(vmar, destroying_the_region_frees_a_closed_vmo)
{
	struct uvmo_stats base = stats_now();
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	uvmo_vmar_t *r = region(RGN_PAGES, NULL);
	uint8_t *m = map_vmo(r, PERM_RW, v, 0, 8 * PG);
	memset(m, 0x22, 8 * PG);
	uvmo_vmo_close(v);
	expect_ok(uvmo_vmar_destroy(r));
	struct uvmo_stats end = stats_now();
	cr_assert_eq(end.committed_bytes, base.committed_bytes);
}

Test(vmar, closed_clone_keeps_its_mapping_and_its_parent_untouched)
{
	uvmo_vmo_t *p = pattern_vmo(4, 81);
	uvmo_vmo_t *c = snap(p);
	uint8_t *m = map_rw(c);
	uvmo_vmo_close(c);
	memset(m + PG, 0x5e, PG);
	expect_mem_pattern(m, PG, 81, 0);
	expect_mem_val(m + PG, PG, 0x5e);
	uint8_t buf[PG];
	expect_ok(uvmo_vmo_read(p, buf, PG, PG));
	expect_mem_pattern(buf, PG, 81, PG);
}

/* ---------------------------------------------------------------------- */
/* address allocation over many cycles                                   */
/* ---------------------------------------------------------------------- */

#define CYCLES 100000u
#define FRAG_PAGES 16384u /* 64 MiB region */
#define LONG_LIVED 32u
#define SHORT_LIVED 64u
#define MAX_MAP_PAGES 64u

struct live_map {
	uint8_t *addr;
	uint64_t len;
	uint64_t off; /* in the VMO */
};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Mostly small, sometimes large: 1..MAX_MAP_PAGES pages, log-uniform. */
static uint64_t random_pages(uint64_t *rng)
{
	unsigned bits = (unsigned)(xorshift(rng) % 7); /* 0..6 */
	uint64_t hi = 1ull << bits;                     /* 1..64 */
	return 1 + xorshift(rng) % hi;
}

static void map_random(uvmo_vmar_t *r, uint8_t *base, uvmo_vmo_t *v, uint64_t *rng,
		       struct live_map *slot, const struct live_map *all, size_t nall,
		       unsigned cycle)
{
	uint64_t pages = random_pages(rng);
	uint64_t off = (xorshift(rng) % (MAX_MAP_PAGES - pages + 1)) * PG;
	uint32_t perm = (xorshift(rng) & 1) ? PERM_RW : PERM_R;
	void *a = NULL;
	int rc = uvmo_vmar_map(r, perm, 0, v, off, pages * PG, &a);
	cr_assert_eq(rc, 0, "cycle %u: map of %llu pages failed with %s (fragmentation?)", cycle,
		     (unsigned long long)pages, rc_name(rc));
	uintptr_t at = (uintptr_t)a;
	cr_assert(at % PG == 0 && at >= (uintptr_t)base &&
			  at + pages * PG <= (uintptr_t)base + (uint64_t)FRAG_PAGES * PG,
		  "cycle %u: mapping %p..+%llu pages outside the region", cycle, a,
		  (unsigned long long)pages);
	for (size_t i = 0; i < nall; i++)
		if (all[i].addr && &all[i] != slot)
			cr_assert(!overlaps(at, pages * PG, (uintptr_t)all[i].addr, all[i].len),
				  "cycle %u: mapping %p overlaps live mapping %p", cycle, a,
				  (void *)all[i].addr);
	slot->addr = a;
	slot->len = pages * PG;
	slot->off = off;
}

static void unmap_slot(uvmo_vmar_t *r, struct live_map *slot, unsigned cycle)
{
	/* Every so often check the content, then sometimes unmap in two
	 * pieces (a split on the way out). */
	if (cycle % 997 == 0) {
		uint64_t i = slot->len / 2;
		cr_assert_eq(slot->addr[i], pattern_byte(90, slot->off + i));
	}
	if (slot->len >= 2 * PG && cycle % 5 == 0) {
		uint64_t cut = (slot->len / PG / 2) * PG;
		expect_ok(uvmo_vmar_unmap(r, slot->addr + cut, slot->len - cut));
		expect_ok(uvmo_vmar_unmap(r, slot->addr, cut));
	} else {
		expect_ok(uvmo_vmar_unmap(r, slot->addr, slot->len));
	}
	slot->addr = NULL;
	slot->len = 0;
}

Test(vmar, address_allocation_does_not_fragment, .timeout = 300)
{
	uint8_t *base;
	uvmo_vmar_t *r = make_vmar(root_vmar(), CAN_MAP_ALL, 0, (uint64_t)FRAG_PAGES * PG, &base);
	uvmo_vmo_t *v = pattern_vmo(MAX_MAP_PAGES, 90);
	struct live_map maps[LONG_LIVED + SHORT_LIVED];
	memset(maps, 0, sizeof(maps));
	const size_t nmaps = LONG_LIVED + SHORT_LIVED;
	uint64_t rng = 0x243f6a8885a308d3ull;
	double t0 = now_seconds();

	for (unsigned i = 0; i < LONG_LIVED; i++)
		map_random(r, base, v, &rng, &maps[i], maps, nmaps, 0);
	for (unsigned cycle = 1; cycle <= CYCLES; cycle++) {
		/* Replace a long-lived mapping now and then. */
		if (cycle % 500 == 0) {
			struct live_map *l = &maps[xorshift(&rng) % LONG_LIVED];
			unmap_slot(r, l, cycle);
			map_random(r, base, v, &rng, l, maps, nmaps, cycle);
		}
		struct live_map *s = &maps[LONG_LIVED + xorshift(&rng) % SHORT_LIVED];
		if (s->addr)
			unmap_slot(r, s, cycle);
		map_random(r, base, v, &rng, s, maps, nmaps, cycle);
	}
	for (size_t i = 0; i < nmaps; i++)
		if (maps[i].addr)
			unmap_slot(r, &maps[i], 1);
	/* Nothing is left: the whole region maps in one piece again. */
	uvmo_vmo_t *all = make_vmo((uint64_t)FRAG_PAGES * PG, 0);
	uint8_t *m = map_vmo(r, PERM_R, all, 0, (uint64_t)FRAG_PAGES * PG);
	cr_assert_eq(m, base);
	cr_log_info("%u map/unmap cycles in %.2f s", CYCLES, now_seconds() - t0);
}

Test(vmar, address_allocation_reuses_the_root_over_many_cycles, .timeout = 300)
{
	uvmo_vmo_t *v = pattern_vmo(MAX_MAP_PAGES, 90);
	uint64_t rng = 0x13198a2e03707344ull;
	uint8_t *keep[16];
	for (int i = 0; i < 16; i++)
		keep[i] = map_vmo(root_vmar(), PERM_R, v, 0, MAX_MAP_PAGES * PG);
	for (unsigned cycle = 0; cycle < 20000; cycle++) {
		uint64_t pages = random_pages(&rng);
		void *a = NULL;
		int rc = uvmo_vmar_map(root_vmar(), PERM_RW, 0, v, 0, pages * PG, &a);
		cr_assert_eq(rc, 0, "cycle %u: %s", cycle, rc_name(rc));
		expect_ok(uvmo_vmar_unmap(root_vmar(), a, pages * PG));
	}
	for (int i = 0; i < 16; i++)
		expect_mem_pattern(keep[i], MAX_MAP_PAGES * PG, 90, 0);
}

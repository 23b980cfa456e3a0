/* SPDX-License-Identifier: MIT */
/*
 * Every bad input of the VMO API, one test each.  Each test also checks
 * that the failed call changed nothing: content, size, committed bytes,
 * children, and the global counters.
 */
#include "vmo_test_util.h"

#include <limits.h>

/* Everything a failed call must leave alone. */
struct state {
	uint64_t size;
	uint64_t committed;
	uint64_t attributed;
	uint32_t children;
	uint32_t flags;
	uint32_t lock_count;
	uint64_t pool_committed;
	uint64_t pool_host;
	uint64_t vmos;
	uint64_t nodes;
	uint64_t hidden;
	uint8_t *content;
};

/* Captures live until the test's process ends; keep them reachable so
 * that the sanitizer build's leak checker does not report them. */
static uint8_t *captures[64];
static unsigned ncaptures;

static struct state capture(uvmo_vmo_t *v)
{
	struct state s;
	struct uvmo_vmo_info i = info_of(v);
	struct uvmo_stats st = stats_now();
	s.size = i.size;
	s.committed = i.committed_bytes;
	s.attributed = i.attributed_bytes;
	s.children = i.num_children;
	s.flags = i.flags;
	s.lock_count = i.lock_count;
	s.pool_committed = st.committed_bytes;
	s.pool_host = st.host_bytes;
	s.vmos = st.vmos;
	s.nodes = st.nodes;
	s.hidden = st.hidden_nodes;
	s.content = read_all(v, NULL);
	if (ncaptures < 64)
		captures[ncaptures++] = s.content;
	return s;
}

#define expect_unchanged(v, before)                                           \
	do {                                                                  \
		struct state now_ = capture(v);                               \
		cr_assert_eq(now_.size, (before).size, "size changed");       \
		cr_assert_eq(now_.committed, (before).committed,              \
			     "committed_bytes %llu -> %llu",                  \
			     (unsigned long long)(before).committed,          \
			     (unsigned long long)now_.committed);             \
		cr_assert_eq(now_.attributed, (before).attributed,            \
			     "attributed_bytes changed");                     \
		cr_assert_eq(now_.children, (before).children,                \
			     "num_children %u -> %u", (before).children,      \
			     now_.children);                                  \
		cr_assert_eq(now_.flags, (before).flags, "flags changed");    \
		cr_assert_eq(now_.lock_count, (before).lock_count,            \
			     "lock_count changed");                           \
		cr_assert_eq(now_.pool_committed, (before).pool_committed,    \
			     "pool committed %llu -> %llu",                   \
			     (unsigned long long)(before).pool_committed,     \
			     (unsigned long long)now_.pool_committed);        \
		cr_assert_eq(now_.pool_host, (before).pool_host,              \
			     "pool host bytes %llu -> %llu",                  \
			     (unsigned long long)(before).pool_host,          \
			     (unsigned long long)now_.pool_host);             \
		cr_assert_eq(now_.vmos, (before).vmos, "live VMO count changed"); \
		cr_assert_eq(now_.nodes, (before).nodes, "node count changed"); \
		cr_assert_eq(now_.hidden, (before).hidden, "hidden node count changed"); \
		cr_assert_arr_eq(now_.content, (before).content, (before).size, \
				 "content changed");                          \
		free(now_.content);                                           \
	} while (0)

/* Global counters only, for calls that have no VMO to look at. */
#define expect_pool_unchanged(before)                                         \
	do {                                                                  \
		struct uvmo_stats now_ = stats_now();                         \
		cr_assert_eq(now_.vmos, (before).vmos, "live VMO count changed"); \
		cr_assert_eq(now_.nodes, (before).nodes, "node count changed"); \
		cr_assert_eq(now_.committed_bytes, (before).committed_bytes,  \
			     "pool committed changed");                       \
		cr_assert_eq(now_.host_bytes, (before).host_bytes,            \
			     "pool host bytes changed");                      \
	} while (0)

/* A 4-page VMO with distinct content in pages 0..2 and page 3 never written. */
static uvmo_vmo_t *populated(uint32_t options)
{
	uvmo_vmo_t *v = make_vmo(4 * PG, options);
	uint8_t buf[3 * UVMO_PAGE_SIZE];
	fill_pattern(buf, sizeof(buf), 42, 0);
	expect_ok(uvmo_vmo_write(v, buf, 0, sizeof(buf)));
	return v;
}

#define SENTINEL ((uvmo_vmo_t *)(uintptr_t)0x5a5a5a5a)

/* ---------------------------------------------------------------------- */
/* uvmo_vmo_create                                                        */
/* ---------------------------------------------------------------------- */

static void expect_create_fails(int want, uint64_t size, uint32_t options)
{
	struct uvmo_stats before = stats_now();
	uvmo_vmo_t *out = NULL;
	int rc = uvmo_vmo_create(size, options, &out);
	cr_assert_eq(rc, want, "create(size=%llu, options=0x%x) returned %d (%s), expected %s",
		     (unsigned long long)size, options, rc, rc_name(rc), rc_name(want));
	expect_pool_unchanged(before);
}

Test(errors, create_with_zero_size_is_einval)
{
	expect_create_fails(-EINVAL, 0, 0);
}

Test(errors, create_with_zero_size_is_einval_for_discardable)
{
	expect_create_fails(-EINVAL, 0, UVMO_VMO_DISCARDABLE);
}

Test(errors, create_with_zero_size_is_allowed_when_resizable)
{
	uvmo_vmo_t *v = make_vmo(0, UVMO_VMO_RESIZABLE);
	cr_assert_eq(size_of(v), 0);
}

Test(errors, create_with_unaligned_size_is_einval)
{
	expect_create_fails(-EINVAL, 1, 0);
	expect_create_fails(-EINVAL, PG - 1, 0);
	expect_create_fails(-EINVAL, PG + 1, 0);
	expect_create_fails(-EINVAL, 3 * PG + 17, UVMO_VMO_RESIZABLE);
}

Test(errors, create_above_max_size_is_erange)
{
	expect_create_fails(-ERANGE, UVMO_VMO_MAX_SIZE + PG, 0);
	expect_create_fails(-ERANGE, 1ull << 50, 0);
	expect_create_fails(-ERANGE, UVMO_VMO_MAX_SIZE + PG, UVMO_VMO_RESIZABLE);
}

Test(errors, create_at_max_size_succeeds)
{
	uvmo_vmo_t *v = make_vmo(UVMO_VMO_MAX_SIZE, 0);
	cr_assert_eq(size_of(v), UVMO_VMO_MAX_SIZE);
	fill_page(v, UVMO_VMO_MAX_SIZE / PG - 1, 0x12);
	expect_page(v, UVMO_VMO_MAX_SIZE / PG - 1, 0x12);
}

Test(errors, create_with_unknown_option_bits_is_einval)
{
	expect_create_fails(-EINVAL, PG, 1u << 2);
	expect_create_fails(-EINVAL, PG, 1u << 8);
	expect_create_fails(-EINVAL, PG, 1u << 31);
	expect_create_fails(-EINVAL, PG, UVMO_VMO_RESIZABLE | (1u << 5));
}

Test(errors, create_resizable_and_discardable_is_einval)
{
	expect_create_fails(-EINVAL, PG, UVMO_VMO_RESIZABLE | UVMO_VMO_DISCARDABLE);
}

Test(errors, create_with_null_out_is_einval)
{
	struct uvmo_stats before = stats_now();
	expect_rc(-EINVAL, uvmo_vmo_create(PG, 0, NULL));
	expect_pool_unchanged(before);
}

/* ---------------------------------------------------------------------- */
/* uvmo_init                                                              */
/* ---------------------------------------------------------------------- */

/* A refused uvmo_init leaves uvmo uninitialised: a good one still works. */
static void expect_init_fails(int want, const struct uvmo_config *cfg)
{
	int rc = uvmo_init(cfg);
	cr_assert_eq(rc, want, "uvmo_init returned %d (%s), expected %s", rc, rc_name(rc),
		     rc_name(want));
	init_with_pool_limit(16 * PG);
	cr_assert_eq(stats_now().pool_limit, 16 * PG);
}

Test(errors, init_with_an_unaligned_pool_span_is_einval)
{
	struct uvmo_config cfg = { .pool_span = (1ull << 30) + 1 };
	expect_init_fails(-EINVAL, &cfg);
}

Test(errors, init_with_a_numa_node_that_does_not_exist_is_einval)
{
	struct uvmo_config cfg = { .numa_node = 4097 };
	expect_init_fails(-EINVAL, &cfg);
}

/* ---------------------------------------------------------------------- */
/* NULL pointers                                                          */
/* ---------------------------------------------------------------------- */

Test(errors, read_into_null_buffer_is_einval)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-EINVAL, uvmo_vmo_read(v, NULL, 0, 16));
	expect_unchanged(v, before);
}

Test(errors, write_from_null_buffer_is_einval)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-EINVAL, uvmo_vmo_write(v, NULL, 0, 16));
	expect_rc(-EINVAL, uvmo_vmo_write(v, NULL, 3 * PG, PG));
	expect_unchanged(v, before);
}

Test(errors, get_size_into_null_is_einval)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-EINVAL, uvmo_vmo_get_size(v, NULL));
	expect_unchanged(v, before);
}

Test(errors, get_info_into_null_is_einval)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-EINVAL, uvmo_vmo_get_info(v, NULL));
	expect_unchanged(v, before);
}

Test(errors, get_stats_into_null_is_einval)
{
	struct uvmo_stats before = stats_now();
	expect_rc(-EINVAL, uvmo_get_stats(NULL));
	expect_pool_unchanged(before);
}

/* docs/api.md: a NULL handle is an argument error (-EINVAL); only a closed
 * handle is -EBADF. */
Test(errors, null_handle_is_einval_for_every_call)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	uint8_t buf[16] = { 0 };
	uint64_t size;
	struct uvmo_vmo_info info;
	uvmo_vmo_t *child = NULL;
	expect_rc(-EINVAL, uvmo_vmo_read(NULL, buf, 0, sizeof(buf)));
	expect_rc(-EINVAL, uvmo_vmo_write(NULL, buf, 0, sizeof(buf)));
	expect_rc(-EINVAL, uvmo_vmo_get_size(NULL, &size));
	expect_rc(-EINVAL, uvmo_vmo_set_size(NULL, PG));
	expect_rc(-EINVAL, uvmo_vmo_op_range(NULL, UVMO_OP_COMMIT, 0, PG));
	expect_rc(-EINVAL, uvmo_vmo_create_child(NULL, UVMO_CHILD_SNAPSHOT, 0, PG, &child));
	expect_rc(-EINVAL, uvmo_vmo_get_info(NULL, &info));
	uvmo_vmo_close(NULL);
	expect_unchanged(v, before);
}

/* ---------------------------------------------------------------------- */
/* read / write ranges                                                    */
/* ---------------------------------------------------------------------- */

Test(errors, read_straddling_the_end_is_erange_and_fills_nothing)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	uint8_t buf[64];
	memset(buf, 0xee, sizeof(buf));
	expect_rc(-ERANGE, uvmo_vmo_read(v, buf, 4 * PG - 10, sizeof(buf)));
	cr_assert_eq(first_other_byte(buf, sizeof(buf), 0xee), -1,
		     "a failed read wrote into the buffer");
	expect_unchanged(v, before);
}

Test(errors, read_starting_at_or_past_the_end_is_erange)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	uint8_t buf[8];
	expect_rc(-ERANGE, uvmo_vmo_read(v, buf, 4 * PG, 1));
	expect_rc(-ERANGE, uvmo_vmo_read(v, buf, 5 * PG, 8));
	expect_rc(-ERANGE, uvmo_vmo_read(v, buf, UINT64_MAX, 1));
	expect_unchanged(v, before);
}

Test(errors, write_straddling_the_end_is_erange_and_writes_nothing)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	uint8_t buf[2 * UVMO_PAGE_SIZE];
	memset(buf, 0xcd, sizeof(buf));
	expect_rc(-ERANGE, uvmo_vmo_write(v, buf, 3 * PG - 10, sizeof(buf)));
	expect_rc(-ERANGE, uvmo_vmo_write(v, buf, 3 * PG, PG + 1));
	expect_unchanged(v, before);
}

Test(errors, write_starting_at_or_past_the_end_is_erange)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	uint8_t buf[8] = { 1 };
	expect_rc(-ERANGE, uvmo_vmo_write(v, buf, 4 * PG, 1));
	expect_rc(-ERANGE, uvmo_vmo_write(v, buf, 9 * PG, 8));
	expect_rc(-ERANGE, uvmo_vmo_write(v, buf, UINT64_MAX, 1));
	expect_unchanged(v, before);
}

Test(errors, read_with_overflowing_offset_plus_len_is_erange)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	uint8_t buf[256];
	expect_rc(-ERANGE, uvmo_vmo_read(v, buf, UINT64_MAX - 10, sizeof(buf)));
	expect_rc(-ERANGE, uvmo_vmo_read(v, buf, UINT64_MAX - PG + 1, PG));
	expect_unchanged(v, before);
}

Test(errors, write_with_overflowing_offset_plus_len_is_erange)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	uint8_t buf[256] = { 3 };
	expect_rc(-ERANGE, uvmo_vmo_write(v, buf, UINT64_MAX - 10, sizeof(buf)));
	expect_rc(-ERANGE, uvmo_vmo_write(v, buf, UINT64_MAX - PG + 1, PG));
	expect_unchanged(v, before);
}

/* ---------------------------------------------------------------------- */
/* op_range                                                               */
/* ---------------------------------------------------------------------- */

Test(errors, op_range_with_unknown_op_is_einval)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-EINVAL, uvmo_vmo_op_range(v, 0, 0, PG));
	expect_rc(-EINVAL, uvmo_vmo_op_range(v, 9, 0, PG));
	expect_rc(-EINVAL, uvmo_vmo_op_range(v, 1000, 0, PG));
	expect_rc(-EINVAL, uvmo_vmo_op_range(v, UINT32_MAX, 0, PG));
	expect_unchanged(v, before);
}

Test(errors, decommit_with_unaligned_offset_is_einval)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-EINVAL, uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 1, PG));
	expect_rc(-EINVAL, uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, PG + 100, PG));
	expect_unchanged(v, before);
}

Test(errors, decommit_with_unaligned_length_is_einval)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-EINVAL, uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 0, PG + 1));
	expect_rc(-EINVAL, uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, PG, 10));
	expect_unchanged(v, before);
}

Test(errors, commit_past_the_end_is_erange_and_commits_nothing)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 0, 5 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 3 * PG, 2 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_COMMIT, 8 * PG, PG));
	expect_unchanged(v, before);
}

Test(errors, decommit_past_the_end_is_erange_and_frees_nothing)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 0, 5 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 2 * PG, 4 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, 4 * PG, PG));
	expect_unchanged(v, before);
}

Test(errors, zero_past_the_end_is_erange_and_zeroes_nothing)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_ZERO, 0, 4 * PG + 1));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_ZERO, 2 * PG + 5, 2 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_ZERO, 4 * PG, 1));
	expect_unchanged(v, before);
}

Test(errors, op_range_with_overflowing_range_is_erange)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	uint64_t off = UINT64_MAX - PG + 1; /* page aligned */
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_COMMIT, off, 2 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_DECOMMIT, off, 2 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_ZERO, off, 2 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_DONT_NEED, off, 2 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_ALWAYS_NEED, off, 2 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_COMMIT, PG, UINT64_MAX - PG + 1));
	expect_unchanged(v, before);
}

Test(errors, need_hints_past_the_end_are_erange)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_DONT_NEED, 0, 5 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_ALWAYS_NEED, 4 * PG, PG));
	expect_unchanged(v, before);
}

Test(errors, lock_ops_on_a_non_discardable_vmo_are_enotsup)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-ENOTSUP, uvmo_vmo_op_range(v, UVMO_OP_LOCK, 0, 4 * PG));
	expect_rc(-ENOTSUP, uvmo_vmo_op_range(v, UVMO_OP_TRY_LOCK, 0, 4 * PG));
	expect_rc(-ENOTSUP, uvmo_vmo_op_range(v, UVMO_OP_UNLOCK, 0, 4 * PG));
	expect_unchanged(v, before);
}

Test(errors, lock_ops_on_a_resizable_vmo_are_enotsup)
{
	uvmo_vmo_t *v = populated(UVMO_VMO_RESIZABLE);
	struct state before = capture(v);
	expect_rc(-ENOTSUP, uvmo_vmo_op_range(v, UVMO_OP_LOCK, 0, 4 * PG));
	expect_rc(-ENOTSUP, uvmo_vmo_op_range(v, UVMO_OP_UNLOCK, 0, 4 * PG));
	expect_unchanged(v, before);
}

Test(errors, lock_not_covering_the_whole_vmo_is_erange)
{
	uvmo_vmo_t *v = populated(UVMO_VMO_DISCARDABLE);
	struct state before = capture(v);
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_LOCK, 0, 3 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_LOCK, PG, 3 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_LOCK, 0, 5 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_TRY_LOCK, 0, PG));
	expect_unchanged(v, before);
	cr_assert_eq(info_of(v).lock_count, 0);
}

Test(errors, unlock_not_covering_the_whole_vmo_is_erange)
{
	uvmo_vmo_t *v = populated(UVMO_VMO_DISCARDABLE);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_LOCK, 0, 4 * PG));
	struct state before = capture(v);
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_UNLOCK, 0, 2 * PG));
	expect_rc(-ERANGE, uvmo_vmo_op_range(v, UVMO_OP_UNLOCK, PG, 3 * PG));
	expect_unchanged(v, before);
	cr_assert_eq(info_of(v).lock_count, 1);
}

Test(errors, unlock_at_count_zero_is_ebusy)
{
	uvmo_vmo_t *v = populated(UVMO_VMO_DISCARDABLE);
	struct state before = capture(v);
	expect_rc(-EBUSY, uvmo_vmo_op_range(v, UVMO_OP_UNLOCK, 0, 4 * PG));
	expect_unchanged(v, before);
}

Test(errors, unlock_more_often_than_locked_is_ebusy)
{
	uvmo_vmo_t *v = populated(UVMO_VMO_DISCARDABLE);
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_LOCK, 0, 4 * PG));
	expect_ok(uvmo_vmo_op_range(v, UVMO_OP_UNLOCK, 0, 4 * PG));
	struct state before = capture(v);
	expect_rc(-EBUSY, uvmo_vmo_op_range(v, UVMO_OP_UNLOCK, 0, 4 * PG));
	expect_unchanged(v, before);
}

/* ---------------------------------------------------------------------- */
/* set_size                                                               */
/* ---------------------------------------------------------------------- */

Test(errors, set_size_of_a_non_resizable_vmo_is_enotsup)
{
	uvmo_vmo_t *v = populated(0);
	struct state before = capture(v);
	expect_rc(-ENOTSUP, uvmo_vmo_set_size(v, 8 * PG));
	expect_rc(-ENOTSUP, uvmo_vmo_set_size(v, PG));
	expect_unchanged(v, before);
}

Test(errors, set_size_of_a_discardable_vmo_is_enotsup)
{
	uvmo_vmo_t *v = populated(UVMO_VMO_DISCARDABLE);
	struct state before = capture(v);
	expect_rc(-ENOTSUP, uvmo_vmo_set_size(v, 8 * PG));
	expect_unchanged(v, before);
}

Test(errors, set_size_unaligned_is_einval)
{
	uvmo_vmo_t *v = populated(UVMO_VMO_RESIZABLE);
	struct state before = capture(v);
	expect_rc(-EINVAL, uvmo_vmo_set_size(v, 4 * PG + 1));
	expect_rc(-EINVAL, uvmo_vmo_set_size(v, 2 * PG - 1));
	expect_rc(-EINVAL, uvmo_vmo_set_size(v, 1));
	expect_unchanged(v, before);
}

Test(errors, set_size_above_max_is_erange)
{
	uvmo_vmo_t *v = populated(UVMO_VMO_RESIZABLE);
	struct state before = capture(v);
	expect_rc(-ERANGE, uvmo_vmo_set_size(v, UVMO_VMO_MAX_SIZE + PG));
	expect_rc(-ERANGE, uvmo_vmo_set_size(v, UINT64_MAX - PG + 1));
	expect_unchanged(v, before);
}

Test(errors, set_size_of_a_slice_is_enotsup)
{
	uvmo_vmo_t *p = populated(0);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE, 0, 2 * PG);
	struct state bs = capture(s), bp = capture(p);
	expect_rc(-ENOTSUP, uvmo_vmo_set_size(s, 4 * PG));
	expect_rc(-ENOTSUP, uvmo_vmo_set_size(s, PG));
	expect_unchanged(s, bs);
	expect_unchanged(p, bp);
}

Test(errors, set_size_of_a_non_resizable_child_is_enotsup)
{
	uvmo_vmo_t *p = populated(UVMO_VMO_RESIZABLE);
	uvmo_vmo_t *c = snap(p);
	struct state bc = capture(c);
	expect_rc(-ENOTSUP, uvmo_vmo_set_size(c, 8 * PG));
	expect_unchanged(c, bc);
}

/* ---------------------------------------------------------------------- */
/* create_child                                                           */
/* ---------------------------------------------------------------------- */

static void expect_child_fails(int want, uvmo_vmo_t *parent, uint32_t options,
			       uint64_t offset, uint64_t size)
{
	struct state before = capture(parent);
	uvmo_vmo_t *out = SENTINEL;
	int rc = uvmo_vmo_create_child(parent, options, offset, size, &out);
	cr_assert_eq(rc, want,
		     "create_child(options=0x%x, offset=%llu, size=%llu) returned %d (%s), expected %s",
		     options, (unsigned long long)offset, (unsigned long long)size, rc,
		     rc_name(rc), rc_name(want));
	expect_unchanged(parent, before);
	free(before.content);
}

Test(errors, child_with_no_type_is_einval)
{
	uvmo_vmo_t *p = populated(0);
	expect_child_fails(-EINVAL, p, 0, 0, PG);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_RESIZABLE, 0, PG);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_NO_WRITE, 0, PG);
}

Test(errors, child_with_two_types_is_einval)
{
	uvmo_vmo_t *p = populated(0);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_SLICE, 0, PG);
	expect_child_fails(-EINVAL, p,
			   UVMO_CHILD_SNAPSHOT | UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, PG);
	expect_child_fails(-EINVAL, p,
			   UVMO_CHILD_SLICE | UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, PG);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_SNAPSHOT_MODIFIED, 0, PG);
	expect_child_fails(-EINVAL, p,
			   UVMO_CHILD_SNAPSHOT | UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE |
				   UVMO_CHILD_SNAPSHOT_MODIFIED | UVMO_CHILD_SLICE,
			   0, PG);
}

Test(errors, child_with_unknown_option_bits_is_einval)
{
	uvmo_vmo_t *p = populated(0);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_SNAPSHOT | (1u << 4), 0, PG);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_SNAPSHOT | (1u << 10), 0, PG);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_SLICE | (1u << 31), 0, PG);
}

Test(errors, child_with_unaligned_offset_is_einval)
{
	uvmo_vmo_t *p = populated(0);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_SNAPSHOT, 1, PG);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_SLICE, PG / 2, PG);
}

Test(errors, child_with_unaligned_size_is_einval)
{
	uvmo_vmo_t *p = populated(0);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_SNAPSHOT, 0, PG + 1);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_SLICE, 0, PG - 1);
}

Test(errors, child_with_zero_size_is_einval)
{
	uvmo_vmo_t *p = populated(0);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_SNAPSHOT, 0, 0);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_SLICE, 0, 0);
}

Test(errors, child_with_overflowing_offset_plus_size_is_erange)
{
	uvmo_vmo_t *p = populated(0);
	uint64_t off = UINT64_MAX - PG + 1;
	expect_child_fails(-ERANGE, p, UVMO_CHILD_SNAPSHOT, off, 2 * PG);
	expect_child_fails(-ERANGE, p, UVMO_CHILD_SLICE, off, 2 * PG);
	expect_child_fails(-ERANGE, p, UVMO_CHILD_SNAPSHOT, 2 * PG, UINT64_MAX - PG + 1);
}

Test(errors, child_with_offset_past_the_parent_is_erange)
{
	uvmo_vmo_t *p = populated(0);
	expect_child_fails(-ERANGE, p, UVMO_CHILD_SNAPSHOT, 5 * PG, PG);
	expect_child_fails(-ERANGE, p, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 64 * PG, PG);
}

Test(errors, child_above_max_size_is_erange)
{
	uvmo_vmo_t *p = populated(0);
	expect_child_fails(-ERANGE, p, UVMO_CHILD_SNAPSHOT, 0, UVMO_VMO_MAX_SIZE + PG);
	expect_child_fails(-ERANGE, p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_RESIZABLE, 0,
			   UVMO_VMO_MAX_SIZE + PG);
}

Test(errors, slice_past_the_parent_end_is_erange)
{
	uvmo_vmo_t *p = populated(0);
	expect_child_fails(-ERANGE, p, UVMO_CHILD_SLICE, 0, 5 * PG);
	expect_child_fails(-ERANGE, p, UVMO_CHILD_SLICE, 3 * PG, 2 * PG);
	expect_child_fails(-ERANGE, p, UVMO_CHILD_SLICE, 4 * PG, PG);
}

Test(errors, slice_of_a_resizable_vmo_is_enotsup)
{
	uvmo_vmo_t *p = populated(UVMO_VMO_RESIZABLE);
	expect_child_fails(-ENOTSUP, p, UVMO_CHILD_SLICE, 0, PG);
}

Test(errors, slice_of_a_resizable_child_is_enotsup)
{
	uvmo_vmo_t *p = populated(0);
	uvmo_vmo_t *c = make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_RESIZABLE, 0, 4 * PG);
	expect_child_fails(-ENOTSUP, c, UVMO_CHILD_SLICE, 0, PG);
}

Test(errors, resizable_slice_is_einval)
{
	uvmo_vmo_t *p = populated(0);
	expect_child_fails(-EINVAL, p, UVMO_CHILD_SLICE | UVMO_CHILD_RESIZABLE, 0, PG);
}

Test(errors, snapshot_modified_of_a_discardable_vmo_is_enotsup)
{
	uvmo_vmo_t *p = populated(UVMO_VMO_DISCARDABLE);
	expect_child_fails(-ENOTSUP, p, UVMO_CHILD_SNAPSHOT_MODIFIED, 0, 4 * PG);
}

Test(errors, snapshot_child_of_a_discardable_vmo_is_enotsup)
{
	uvmo_vmo_t *p = populated(UVMO_VMO_DISCARDABLE);
	expect_child_fails(-ENOTSUP, p, UVMO_CHILD_SNAPSHOT, 0, 4 * PG);
	expect_child_fails(-ENOTSUP, p, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 4 * PG);
}

Test(errors, slice_of_a_discardable_vmo_is_enotsup)
{
	uvmo_vmo_t *p = populated(UVMO_VMO_DISCARDABLE);
	expect_child_fails(-ENOTSUP, p, UVMO_CHILD_SLICE, 0, PG);
}

Test(errors, child_with_null_out_is_einval)
{
	uvmo_vmo_t *p = populated(0);
	struct state before = capture(p);
	expect_rc(-EINVAL, uvmo_vmo_create_child(p, UVMO_CHILD_SNAPSHOT, 0, PG, NULL));
	expect_rc(-EINVAL, uvmo_vmo_create_child(p, UVMO_CHILD_SLICE, 0, PG, NULL));
	expect_unchanged(p, before);
}

/* ---------------------------------------------------------------------- */
/* NO_WRITE handles                                                       */
/* ---------------------------------------------------------------------- */

static uvmo_vmo_t *no_write_child(uvmo_vmo_t *p, uint32_t extra)
{
	return make_child(p, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_NO_WRITE | extra, 0, 4 * PG);
}

Test(errors, no_write_child_can_be_read)
{
	uvmo_vmo_t *p = populated(0);
	uvmo_vmo_t *c = no_write_child(p, 0);
	uint8_t *pc = read_all(p, NULL), *cc = read_all(c, NULL);
	cr_assert_arr_eq(cc, pc, 4 * PG);
	free(pc);
	free(cc);
}

Test(errors, write_through_a_no_write_child_is_eacces)
{
	uvmo_vmo_t *p = populated(0);
	uvmo_vmo_t *c = no_write_child(p, 0);
	struct state bc = capture(c), bp = capture(p);
	uint8_t buf[16] = { 9 };
	expect_rc(-EACCES, uvmo_vmo_write(c, buf, 0, sizeof(buf)));
	expect_rc(-EACCES, uvmo_vmo_write(c, buf, 3 * PG, sizeof(buf)));
	expect_unchanged(c, bc);
	expect_unchanged(p, bp);
}

Test(errors, commit_through_a_no_write_child_is_eacces)
{
	uvmo_vmo_t *p = populated(0);
	uvmo_vmo_t *c = no_write_child(p, 0);
	struct state bc = capture(c), bp = capture(p);
	expect_rc(-EACCES, uvmo_vmo_op_range(c, UVMO_OP_COMMIT, 0, 4 * PG));
	expect_unchanged(c, bc);
	expect_unchanged(p, bp);
}

Test(errors, zero_through_a_no_write_child_is_eacces)
{
	uvmo_vmo_t *p = populated(0);
	uvmo_vmo_t *c = no_write_child(p, 0);
	struct state bc = capture(c), bp = capture(p);
	expect_rc(-EACCES, uvmo_vmo_op_range(c, UVMO_OP_ZERO, 0, 4 * PG));
	expect_rc(-EACCES, uvmo_vmo_op_range(c, UVMO_OP_ZERO, 10, 20));
	expect_unchanged(c, bc);
	expect_unchanged(p, bp);
}

Test(errors, decommit_through_a_no_write_child_is_eacces)
{
	uvmo_vmo_t *p = populated(0);
	uvmo_vmo_t *c = no_write_child(p, 0);
	struct state bc = capture(c), bp = capture(p);
	expect_rc(-EACCES, uvmo_vmo_op_range(c, UVMO_OP_DECOMMIT, 0, 4 * PG));
	expect_unchanged(c, bc);
	expect_unchanged(p, bp);
}

Test(errors, set_size_through_a_no_write_child_is_eacces)
{
	uvmo_vmo_t *p = populated(0);
	uvmo_vmo_t *c = no_write_child(p, UVMO_CHILD_RESIZABLE);
	struct state bc = capture(c), bp = capture(p);
	expect_rc(-EACCES, uvmo_vmo_set_size(c, 8 * PG));
	expect_rc(-EACCES, uvmo_vmo_set_size(c, PG));
	expect_unchanged(c, bc);
	expect_unchanged(p, bp);
}

Test(errors, no_write_slice_cannot_write_but_sees_parent_writes)
{
	uvmo_vmo_t *p = populated(0);
	uvmo_vmo_t *s = make_child(p, UVMO_CHILD_SLICE | UVMO_CHILD_NO_WRITE, PG, 2 * PG);
	struct state bs = capture(s), bp = capture(p);
	uint8_t buf[16] = { 9 };
	expect_rc(-EACCES, uvmo_vmo_write(s, buf, 0, sizeof(buf)));
	expect_rc(-EACCES, uvmo_vmo_op_range(s, UVMO_OP_ZERO, 0, PG));
	expect_unchanged(s, bs);
	expect_unchanged(p, bp);
	fill_page(p, 1, 0x3c);
	expect_page(s, 0, 0x3c);
}

Test(errors, slice_of_a_no_write_handle_cannot_write)
{
	uvmo_vmo_t *p = populated(0);
	uvmo_vmo_t *c = no_write_child(p, 0);
	uvmo_vmo_t *s = make_child(c, UVMO_CHILD_SLICE, 0, 2 * PG);
	cr_assert(info_of(s).flags & UVMO_INFO_NO_WRITE, "slice flags 0x%x", info_of(s).flags);
	struct state bs = capture(s), bc = capture(c), bp = capture(p);
	uint8_t buf[16] = { 9 };
	expect_rc(-EACCES, uvmo_vmo_write(s, buf, 0, sizeof(buf)));
	expect_rc(-EACCES, uvmo_vmo_op_range(s, UVMO_OP_COMMIT, 0, PG));
	expect_rc(-EACCES, uvmo_vmo_op_range(s, UVMO_OP_ZERO, 0, PG));
	expect_rc(-EACCES, uvmo_vmo_op_range(s, UVMO_OP_DECOMMIT, 0, PG));
	expect_unchanged(s, bs);
	expect_unchanged(c, bc);
	expect_unchanged(p, bp);
}

Test(errors, no_write_child_still_sees_its_snapshot_moment)
{
	uvmo_vmo_t *p = populated(0);
	uint8_t *orig = read_all(p, NULL);
	uvmo_vmo_t *c = no_write_child(p, 0);
	fill_pages(p, 0, 4, 0x99);
	uint8_t *now = read_all(c, NULL);
	cr_assert_arr_eq(now, orig, 4 * PG);
	free(orig);
	free(now);
}

/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by the per-behaviour VMO suites (test_vmo.c,
 * test_errors.c, test_clone.c, test_memory.c, test_discard.c,
 * test_threads.c).  Public API only.  Everything is static inline so a
 * suite that does not use a helper does not warn.
 */
#ifndef UVMO_TESTS_VMO_TEST_UTIL_H
#define UVMO_TESTS_VMO_TEST_UTIL_H

#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uvmo/uvmo.h>

#define PG ((uint64_t)UVMO_PAGE_SIZE)

/* "-EINVAL" style name of a return code, for failure messages. */
static inline const char *rc_name(int rc)
{
	switch (rc) {
	case 0: return "0";
	case 1: return "1";
	case -EINVAL: return "-EINVAL";
	case -ERANGE: return "-ERANGE";
	case -ENOMEM: return "-ENOMEM";
	case -EBUSY: return "-EBUSY";
	case -ENOTSUP: return "-ENOTSUP";
	case -EACCES: return "-EACCES";
	case -EAGAIN: return "-EAGAIN";
	case -ENOENT: return "-ENOENT";
	case -EBADF: return "-EBADF";
	case -EEXIST: return "-EEXIST";
	case -EIO: return "-EIO";
	default: return rc < 0 ? "-E?" : "positive";
	}
}

/* Assert that a call returns exactly @want, naming both on failure. */
#define expect_rc(want, expr)                                                 \
	do {                                                                  \
		int want_ = (want);                                           \
		int rc_ = (expr);                                             \
		cr_assert_eq(rc_, want_, "%s returned %d (%s), expected %d (%s)", \
			     #expr, rc_, rc_name(rc_), want_, rc_name(want_)); \
	} while (0)

#define expect_ok(expr) expect_rc(0, expr)

static inline uvmo_vmo_t *make_vmo(uint64_t size, uint32_t options)
{
	uvmo_vmo_t *v = NULL;
	expect_ok(uvmo_vmo_create(size, options, &v));
	cr_assert_not_null(v);
	return v;
}

static inline uvmo_vmo_t *make_child(uvmo_vmo_t *parent, uint32_t options,
				     uint64_t offset, uint64_t size)
{
	uvmo_vmo_t *c = NULL;
	expect_ok(uvmo_vmo_create_child(parent, options, offset, size, &c));
	cr_assert_not_null(c);
	return c;
}

static inline uvmo_vmo_t *snap(uvmo_vmo_t *parent)
{
	uint64_t size = 0;
	expect_ok(uvmo_vmo_get_size(parent, &size));
	return make_child(parent, UVMO_CHILD_SNAPSHOT, 0, size);
}

static inline struct uvmo_vmo_info info_of(uvmo_vmo_t *v)
{
	struct uvmo_vmo_info info;
	memset(&info, 0xa5, sizeof(info));
	expect_ok(uvmo_vmo_get_info(v, &info));
	return info;
}

static inline uint64_t size_of(uvmo_vmo_t *v)
{
	uint64_t size = ~0ull;
	expect_ok(uvmo_vmo_get_size(v, &size));
	return size;
}

static inline struct uvmo_stats stats_now(void)
{
	struct uvmo_stats s;
	memset(&s, 0, sizeof(s));
	expect_ok(uvmo_get_stats(&s));
	return s;
}

/* Fill page @page of @v with the byte @val. */
static inline void fill_page(uvmo_vmo_t *v, uint64_t page, uint8_t val)
{
	static _Thread_local uint8_t buf[UVMO_PAGE_SIZE];
	memset(buf, val, sizeof(buf));
	expect_ok(uvmo_vmo_write(v, buf, page * PG, PG));
}

/* Fill pages [first, first + n) of @v with @val. */
static inline void fill_pages(uvmo_vmo_t *v, uint64_t first, uint64_t n, uint8_t val)
{
	for (uint64_t p = first; p < first + n; p++)
		fill_page(v, p, val);
}

/* Index of the first byte of @buf that is not @val, or -1. */
static inline long first_other_byte(const uint8_t *buf, size_t len, uint8_t val)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != val)
			return (long)i;
	return -1;
}

/* Assert that every byte of page @page of @v equals @val. */
#define expect_page(v, page, val)                                             \
	do {                                                                  \
		static _Thread_local uint8_t pbuf_[UVMO_PAGE_SIZE];           \
		uint64_t page_ = (page);                                      \
		uint8_t val_ = (uint8_t)(val);                                \
		expect_ok(uvmo_vmo_read((v), pbuf_, page_ * PG, PG));         \
		long bad_ = first_other_byte(pbuf_, PG, val_);                \
		cr_assert(bad_ < 0,                                           \
			  "%s page %llu byte %ld is 0x%02x, expected 0x%02x", \
			  #v, (unsigned long long)page_, bad_,                \
			  bad_ < 0 ? 0 : pbuf_[bad_], val_);                  \
	} while (0)

/* Assert that pages [first, first + n) of @v all hold @val. */
#define expect_pages(v, first, n, val)                                        \
	do {                                                                  \
		uint64_t f_ = (first), n_ = (n);                              \
		for (uint64_t p_ = f_; p_ < f_ + n_; p_++)                    \
			expect_page(v, p_, val);                              \
	} while (0)

/* Deterministic, position-dependent pattern byte. */
static inline uint8_t pattern_byte(uint64_t seed, uint64_t pos)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + pos;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	return (uint8_t)x;
}

static inline void fill_pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t pos)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern_byte(seed, pos + i);
}

/* Whole-content snapshot of a VMO, read through the API. */
static inline uint8_t *read_all(uvmo_vmo_t *v, uint64_t *size_out)
{
	uint64_t size = size_of(v);
	uint8_t *buf = malloc(size ? size : 1);
	cr_assert_not_null(buf);
	expect_ok(uvmo_vmo_read(v, buf, 0, size));
	if (size_out)
		*size_out = size;
	return buf;
}

static inline void init_with_pool_limit(uint64_t limit)
{
	struct uvmo_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.pool_limit = limit;
	expect_ok(uvmo_init(&cfg));
}

#endif /* UVMO_TESTS_VMO_TEST_UTIL_H */

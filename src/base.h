/* SPDX-License-Identifier: MIT */
/*
 * base.h — definitions every module shares: page arithmetic, assertions,
 * export markers.  No module state lives here.
 */
#ifndef UVMO_BASE_H
#define UVMO_BASE_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE  (1ull << PAGE_SHIFT)

/* Public entry points are the only symbols the shared library exports. */
#define UVMO_EXPORT __attribute__((visibility("default")))

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static inline bool page_aligned(uint64_t v)
{
	return (v & (PAGE_SIZE - 1)) == 0;
}

static inline uint64_t page_round_down(uint64_t v)
{
	return v & ~(PAGE_SIZE - 1);
}

static inline uint64_t page_round_up(uint64_t v)
{
	return (v + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
}

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* True if [off, off + len) overflows 64 bits. */
static inline bool range_overflows(uint64_t off, uint64_t len)
{
	uint64_t end;
	return __builtin_add_overflow(off, len, &end);
}

/*
 * Cheap invariant checks stay on in every build type but release; the
 * expensive whole-tree walks are compiled in only with -Dvalidation=true.
 */
#define UVMO_ASSERT(cond) assert(cond)

#ifdef UVMO_VALIDATE
#define UVMO_VALIDATION 1
#else
#define UVMO_VALIDATION 0
#endif

#endif /* UVMO_BASE_H */

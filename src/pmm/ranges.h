/* SPDX-License-Identifier: MIT */
/*
 * ranges.h — private to pmm: allocation of file-page ranges of the pool
 * for windows.  First fit over the free extents, kept in a red-black tree
 * ordered by start so that a freed range merges with its neighbours (which
 * is what keeps 100,000 create/close cycles from fragmenting the span).
 * Caller holds the pmm lock.
 */
#ifndef UVMO_PMM_RANGES_H
#define UVMO_PMM_RANGES_H

#include <stdint.h>

void ranges_init(uint64_t span_pages);
void ranges_fini(void);
/* -ENOMEM when no free extent is large enough. */
int ranges_alloc(uint64_t pages, uint64_t *base);
void ranges_free(uint64_t base, uint64_t pages);
/* Grow [base, base + pages) in place to new_pages if the extent right
 * after it is free and large enough: 0, or -ENOMEM leaving it unchanged. */
int ranges_try_extend(uint64_t base, uint64_t pages, uint64_t new_pages);

#endif

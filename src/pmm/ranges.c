/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <sys/tree.h>

#include "base.h"
#include "pmm/ranges.h"

struct extent {
	RB_ENTRY(extent) link;
	uint64_t start;
	uint64_t pages;
};

static int extent_cmp(const struct extent *a, const struct extent *b)
{
	return a->start < b->start ? -1 : a->start > b->start;
}

RB_HEAD(extent_tree, extent);
RB_GENERATE(extent_tree, extent, link, extent_cmp)

static struct extent_tree free_extents = RB_INITIALIZER(&free_extents);

void ranges_init(uint64_t span_pages)
{
	struct extent *e = calloc(1, sizeof(*e));
	if (!e)
		abort(); /* at start-up, before any object exists */
	e->start = 0;
	e->pages = span_pages;
	RB_INSERT(extent_tree, &free_extents, e);
}

void ranges_fini(void)
{
	struct extent *e, *next;
	RB_FOREACH_SAFE(e, extent_tree, &free_extents, next) {
		RB_REMOVE(extent_tree, &free_extents, e);
		free(e);
	}
}

int ranges_alloc(uint64_t pages, uint64_t *base)
{
	struct extent *e;
	RB_FOREACH(e, extent_tree, &free_extents) {
		if (e->pages < pages)
			continue;
		*base = e->start;
		e->start += pages;
		e->pages -= pages;
		if (e->pages == 0) {
			RB_REMOVE(extent_tree, &free_extents, e);
			free(e);
		}
		return 0;
	}
	return -ENOMEM;
}

void ranges_free(uint64_t base, uint64_t pages)
{
	struct extent key = { .start = base };
	struct extent *next = RB_NFIND(extent_tree, &free_extents, &key);
	struct extent *prev = next ? RB_PREV(extent_tree, &free_extents, next)
				   : RB_MAX(extent_tree, &free_extents);

	UVMO_ASSERT(!next || base + pages <= next->start);
	UVMO_ASSERT(!prev || prev->start + prev->pages <= base);
	if (prev && prev->start + prev->pages == base) {
		prev->pages += pages;
		if (next && prev->start + prev->pages == next->start) {
			prev->pages += next->pages;
			RB_REMOVE(extent_tree, &free_extents, next);
			free(next);
		}
		return;
	}
	if (next && base + pages == next->start) {
		/* Changing the key in place keeps the order: no extent lies
		 * between base and next->start. */
		next->start = base;
		next->pages += pages;
		return;
	}
	struct extent *e = malloc(sizeof(*e));
	if (!e) {
		/* Losing a free range wastes file offsets, never memory. */
		return;
	}
	e->start = base;
	e->pages = pages;
	RB_INSERT(extent_tree, &free_extents, e);
}

int ranges_try_extend(uint64_t base, uint64_t pages, uint64_t new_pages)
{
	struct extent key = { .start = base + pages };
	struct extent *e = RB_FIND(extent_tree, &free_extents, &key);
	uint64_t extra = new_pages - pages;

	if (!e || e->pages < extra)
		return -ENOMEM;
	e->start += extra;
	e->pages -= extra;
	if (e->pages == 0) {
		RB_REMOVE(extent_tree, &free_extents, e);
		free(e);
	}
	return 0;
}


/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cow/pagelist.h"

static _Atomic int64_t metadata_bytes;

static int chunk_cmp(const struct pl_chunk *a, const struct pl_chunk *b)
{
	return a->index < b->index ? -1 : a->index > b->index;
}

RB_GENERATE(pl_tree, pl_chunk, link, chunk_cmp)

void pl_metadata_account(int64_t bytes)
{
	atomic_fetch_add(&metadata_bytes, bytes);
}

uint64_t pl_metadata_bytes(void)
{
	int64_t v = atomic_load(&metadata_bytes);
	return v > 0 ? (uint64_t)v : 0;
}

void pl_init(struct pagelist *pl)
{
	RB_INIT(&pl->root);
	pl->chunks = 0;
	pl->last = NULL;
}

/* Remember @c as the chunk found last.  Lookups take a const list: the
 * cache is not part of its value, and the owner's lock covers it too. */
static struct pl_chunk *remember(const struct pagelist *pl, struct pl_chunk *c)
{
	if (c)
		((struct pagelist *)pl)->last = c;
	return c;
}

static void chunk_free(struct pagelist *pl, struct pl_chunk *c)
{
	if (pl->last == c)
		pl->last = NULL;
	RB_REMOVE(pl_tree, &pl->root, c);
	pl->chunks--;
	free(c);
	pl_metadata_account(-(int64_t)sizeof(*c));
}

void pl_clear(struct pagelist *pl)
{
	struct pl_chunk *c, *next;
	RB_FOREACH_SAFE(c, pl_tree, &pl->root, next)
		chunk_free(pl, c);
}

static struct pl_chunk *chunk_find(const struct pagelist *pl, uint64_t index)
{
	if (pl->last && pl->last->index == index)
		return pl->last;
	struct pl_chunk key = { .index = index };
	return remember(pl, RB_FIND(pl_tree, (struct pl_tree *)&pl->root, &key));
}

uint16_t pl_get(const struct pagelist *pl, uint64_t pg)
{
	struct pl_chunk *c = chunk_find(pl, pg >> PL_CHUNK_SHIFT);
	return c ? c->entry[pg & (PL_CHUNK_PAGES - 1)] : 0;
}

static struct pl_chunk *chunk_get(struct pagelist *pl, uint64_t index)
{
	struct pl_chunk *c = chunk_find(pl, index);
	if (c)
		return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->index = index;
	RB_INSERT(pl_tree, &pl->root, c);
	pl->chunks++;
	pl_metadata_account((int64_t)sizeof(*c));
	return c;
}

int pl_reserve(struct pagelist *pl, uint64_t pg)
{
	return chunk_get(pl, pg >> PL_CHUNK_SHIFT) ? 0 : -ENOMEM;
}

void pl_trim(struct pagelist *pl, uint64_t pg)
{
	struct pl_chunk *c = chunk_find(pl, pg >> PL_CHUNK_SHIFT);
	if (c && c->used == 0)
		chunk_free(pl, c);
}

int pl_set(struct pagelist *pl, uint64_t pg, uint16_t e)
{
	unsigned slot = pg & (PL_CHUNK_PAGES - 1);
	struct pl_chunk *c;

	if (e == 0) {
		c = chunk_find(pl, pg >> PL_CHUNK_SHIFT);
		if (!c || c->entry[slot] == 0)
			return 0;
		c->entry[slot] = 0;
		if (--c->used == 0)
			chunk_free(pl, c);
		return 0;
	}
	c = chunk_get(pl, pg >> PL_CHUNK_SHIFT);
	if (!c)
		return -ENOMEM;
	if (c->entry[slot] == 0)
		c->used++;
	c->entry[slot] = e;
	return 0;
}

bool pl_next(const struct pagelist *pl, uint64_t from, uint64_t end,
	     uint64_t *pg, uint16_t *e)
{
	struct pl_chunk key = { .index = from >> PL_CHUNK_SHIFT };
	struct pl_chunk *c = pl->last && pl->last->index == key.index
				     ? pl->last
				     : RB_NFIND(pl_tree, (struct pl_tree *)&pl->root, &key);

	for (; c; c = RB_NEXT(pl_tree, (struct pl_tree *)&pl->root, c)) {
		uint64_t first = c->index << PL_CHUNK_SHIFT;
		if (first >= end)
			return false;
		unsigned i = from > first ? (unsigned)(from - first) : 0;
		for (; i < PL_CHUNK_PAGES; i++) {
			if (c->entry[i] == 0)
				continue;
			if (first + i >= end)
				return false;
			*pg = first + i;
			*e = c->entry[i];
			remember(pl, c);
			return true;
		}
	}
	return false;
}

void pl_take(struct pagelist *dst, struct pagelist *src)
{
	UVMO_ASSERT(pl_empty(dst));
	dst->root = src->root;
	dst->chunks = src->chunks;
	dst->last = src->last;
	pl_init(src);
}

bool pl_empty(const struct pagelist *pl)
{
	return RB_EMPTY(&pl->root);
}

bool pl_consistent(const struct pagelist *pl)
{
	struct pl_chunk *c;
	uint64_t chunks = 0;

	RB_FOREACH(c, pl_tree, (struct pl_tree *)&pl->root) {
		uint32_t used = 0;
		for (unsigned i = 0; i < PL_CHUNK_PAGES; i++)
			used += c->entry[i] != 0;
		if (used != c->used || used == 0)
			return false;
		chunks++;
	}
	return chunks == pl->chunks;
}

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
	pl->dir = NULL;
}

/* ---- the lookup table ---- */

static void dir_free(struct pagelist *pl)
{
	struct pl_dir *d = pl->dir;
	if (!d)
		return;
	uint64_t bytes = sizeof(*d) + d->nleaves * sizeof(d->leaf[0]);
	for (uint64_t i = 0; i < d->nleaves; i++) {
		if (d->leaf[i]) {
			free(d->leaf[i]);
			bytes += PL_DIR_LEAF * sizeof(struct pl_chunk *);
		}
	}
	free(d);
	pl->dir = NULL;
	pl_metadata_account(-(int64_t)bytes);
}

/* The table's slot for chunk @index, or NULL if it has none (yet). */
static struct pl_chunk **dir_slot(const struct pl_dir *d, uint64_t index)
{
	uint64_t l = index >> PL_DIR_LEAF_SHIFT;
	if (l >= d->nleaves || !d->leaf[l])
		return NULL;
	return &d->leaf[l][index & (PL_DIR_LEAF - 1)];
}

/* Make room for chunk @index in the table: false if memory ran out. */
static bool dir_make_slot(struct pagelist *pl, uint64_t index)
{
	uint64_t l = index >> PL_DIR_LEAF_SHIFT;
	struct pl_dir *d = pl->dir;
	if (l >= d->nleaves) {
		uint64_t n = l + 1;
		struct pl_dir *d2 = realloc(d, sizeof(*d) + n * sizeof(d->leaf[0]));
		if (!d2)
			return false;
		for (uint64_t i = d2->nleaves; i < n; i++)
			d2->leaf[i] = NULL;
		pl_metadata_account((int64_t)((n - d2->nleaves) * sizeof(d2->leaf[0])));
		d2->nleaves = n;
		pl->dir = d = d2;
	}
	if (!d->leaf[l]) {
		d->leaf[l] = calloc(PL_DIR_LEAF, sizeof(struct pl_chunk *));
		if (!d->leaf[l])
			return false;
		pl_metadata_account(PL_DIR_LEAF * sizeof(struct pl_chunk *));
	}
	return true;
}

/* Enter @c in the table; without memory the table goes (lookups fall back
 * to the tree, correct as ever). */
static void dir_insert(struct pagelist *pl, struct pl_chunk *c)
{
	if (c->index >= PL_DIR_MAX_INDEX)
		return;
	if (dir_make_slot(pl, c->index))
		*dir_slot(pl->dir, c->index) = c;
	else
		dir_free(pl);
}

/* Build the table of a list that has grown large enough. */
static void dir_build(struct pagelist *pl)
{
	pl->dir = calloc(1, sizeof(*pl->dir));
	if (!pl->dir)
		return;
	pl_metadata_account(sizeof(*pl->dir));
	struct pl_chunk *c;
	RB_FOREACH(c, pl_tree, &pl->root) {
		dir_insert(pl, c);
		if (!pl->dir)
			return;
	}
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
	if (pl->dir) {
		struct pl_chunk **slot = dir_slot(pl->dir, c->index);
		if (slot)
			*slot = NULL;
	}
	RB_REMOVE(pl_tree, &pl->root, c);
	pl->chunks--;
	free(c);
	pl_metadata_account(-(int64_t)sizeof(*c));
	if (pl->chunks == 0)
		dir_free(pl);
}

void pl_clear(struct pagelist *pl)
{
	struct pl_chunk *c, *next;
	RB_FOREACH_SAFE(c, pl_tree, &pl->root, next)
		chunk_free(pl, c);
	dir_free(pl);
}

/* The chunk of @index as the cache or the table knows it, without the
 * tree; *@known: the answer is final (NULL then means no such chunk). */
static struct pl_chunk *chunk_known(const struct pagelist *pl, uint64_t index, bool *known)
{
	*known = true;
	if (pl->last && pl->last->index == index)
		return pl->last;
	if (pl->dir && index < PL_DIR_MAX_INDEX) {
		struct pl_chunk **slot = dir_slot(pl->dir, index);
		return remember(pl, slot ? *slot : NULL);
	}
	*known = false;
	return NULL;
}

static struct pl_chunk *chunk_find(const struct pagelist *pl, uint64_t index)
{
	bool known;
	struct pl_chunk *c = chunk_known(pl, index, &known);
	if (known)
		return c;
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
	if (pl->dir)
		dir_insert(pl, c);
	else if (pl->chunks % PL_DIR_MIN_CHUNKS == 0)
		dir_build(pl); /* (tried again each time the count passes a multiple) */
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
	bool known;
	struct pl_chunk *c = chunk_known(pl, key.index, &known);
	if (!c) /* one walk finds that chunk or the next one */
		c = RB_NFIND(pl_tree, (struct pl_tree *)&pl->root, &key);

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
	dst->dir = src->dir;
	pl_init(src);
}

bool pl_empty(const struct pagelist *pl)
{
	return RB_EMPTY(&pl->root);
}

bool pl_consistent(const struct pagelist *pl)
{
	struct pl_chunk *c;
	uint64_t chunks = 0, indexed = 0;

	RB_FOREACH(c, pl_tree, (struct pl_tree *)&pl->root) {
		uint32_t used = 0;
		for (unsigned i = 0; i < PL_CHUNK_PAGES; i++)
			used += c->entry[i] != 0;
		if (used != c->used || used == 0)
			return false;
		/* The table holds every chunk it can, each at its index. */
		if (pl->dir && c->index < PL_DIR_MAX_INDEX) {
			struct pl_chunk **slot = dir_slot(pl->dir, c->index);
			if (!slot || *slot != c)
				return false;
			indexed++;
		}
		chunks++;
	}
	if (pl->dir) {
		uint64_t slots = 0;
		for (uint64_t l = 0; l < pl->dir->nleaves; l++)
			for (unsigned i = 0; pl->dir->leaf[l] && i < PL_DIR_LEAF; i++)
				slots += pl->dir->leaf[l][i] != NULL;
		if (slots != indexed)
			return false; /* a chunk freed but still in the table */
	}
	return chunks == pl->chunks;
}

/* SPDX-License-Identifier: MIT */
/*
 * pagelist.h — a node's page list: offset (in pages) → 16-bit entry.
 *
 * Entries are grouped in chunks of 64 consecutive pages kept in a libbsd
 * red-black tree keyed by chunk index, so a dense list costs about 2.8
 * bytes per page and a sparse one one chunk per touched 256 KiB.  An entry
 * of 0 means "nothing here"; the meaning of the other bits belongs to the
 * copy-on-write layer (cow_private.h).
 *
 * A list of PL_DIR_MIN_CHUNKS chunks or more also indexes them in a
 * two-level table (chunk index → chunk; leaves of PL_DIR_LEAF chunks),
 * which answers a lookup with two dependent loads where the tree, over a
 * large list, misses the cache at every level (a restore of 1000 pages of
 * a 1 GiB VMO spent a third of its time in tree walks).  The tree still
 * orders the chunks for iteration; the table holds every chunk whose index
 * is below PL_DIR_MAX_INDEX (all of them, for VMOs up to
 * UVMO_VMO_MAX_SIZE).  It only speeds lookups up: without it (small
 * lists, or its memory could not be had) the tree answers.
 *
 * Not thread-safe: the owning tree's lock protects it.
 */
#ifndef UVMO_COW_PAGELIST_H
#define UVMO_COW_PAGELIST_H

#include <stdint.h>
#include <sys/tree.h>

#include "base.h"

#define PL_CHUNK_SHIFT 6
#define PL_CHUNK_PAGES (1u << PL_CHUNK_SHIFT)

struct pl_chunk {
	RB_ENTRY(pl_chunk) link;
	uint64_t index; /* first page = index << PL_CHUNK_SHIFT */
	uint32_t used;  /* non-zero entries */
	uint16_t entry[PL_CHUNK_PAGES];
};

RB_HEAD(pl_tree, pl_chunk);

/* 16 MiB of pages; validation builds index lists from 2 chunks on, so that
 * every test, the reference-model runs included, goes through the table
 * (and checks it against the tree after each operation). */
#if UVMO_VALIDATION
#define PL_DIR_MIN_CHUNKS 2u
#else
#define PL_DIR_MIN_CHUNKS 64u
#endif
#define PL_DIR_LEAF_SHIFT 9            /* 512 chunks (128 MiB of pages) per leaf */
#define PL_DIR_LEAF (1u << PL_DIR_LEAF_SHIFT)
#define PL_DIR_MAX_INDEX (1ull << 22)  /* chunks of 1 TiB of pages */

/* The table: @nleaves slots, each NULL or PL_DIR_LEAF chunk pointers. */
struct pl_dir {
	uint64_t nleaves;
	struct pl_chunk **leaf[];
};

struct pagelist {
	struct pl_tree root;
	uint64_t chunks;
	struct pl_dir *dir; /* NULL: the tree alone */
	/* The chunk found last, or NULL: the copy-on-write layer looks the
	 * same page up several times in a row (a restore: four times), and a
	 * tree walk over a large list misses the cache at every level. */
	struct pl_chunk *last;
};

void pl_init(struct pagelist *pl);
/* Free every chunk.  The caller has already released what entries stood for. */
void pl_clear(struct pagelist *pl);
uint16_t pl_get(const struct pagelist *pl, uint64_t pg);
/* Set an entry (0 erases it).  Erasing never fails; setting may need a new
 * chunk: -ENOMEM, with nothing changed.  pl_reserve makes sure it won't. */
int pl_set(struct pagelist *pl, uint64_t pg, uint16_t e);
int pl_reserve(struct pagelist *pl, uint64_t pg);
/* Drop the chunk of @pg if a reservation left it empty. */
void pl_trim(struct pagelist *pl, uint64_t pg);
/* First non-zero entry at a page in [from, end): true and its page and
 * value, or false. */
bool pl_next(const struct pagelist *pl, uint64_t from, uint64_t end,
	     uint64_t *pg, uint16_t *e);
/* dst (empty) takes every entry of src, which becomes empty.  O(1). */
void pl_take(struct pagelist *dst, struct pagelist *src);
bool pl_empty(const struct pagelist *pl);
/* Validation: every chunk's count is exact and no chunk is empty. */
bool pl_consistent(const struct pagelist *pl);

/* Heap bytes held by all page lists and cow nodes (for uvmo_get_stats). */
uint64_t pl_metadata_bytes(void);
void pl_metadata_account(int64_t bytes);

/* Iterate non-zero entries in [from, end): for each, pg and e are set.
 * The body may modify the entry at pg (but no other). */
#define PL_FOREACH(pl, from, end, pg, e)                                     \
	for (bool _more = pl_next((pl), (from), (end), &(pg), &(e)); _more;  \
	     _more = (pg) + 1 < (end) &&                                     \
		     pl_next((pl), (pg) + 1, (end), &(pg), &(e)))

#endif

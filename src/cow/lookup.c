/* SPDX-License-Identifier: MIT */
/*
 * lookup.c — finding what a node shows at an offset, and who else can see
 * the page that shows.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cow/cow_private.h"

void path_init(struct cow_path *p)
{
	p->depth = 0;
	p->cap = 16;
	p->nodes = p->inline_nodes;
	p->pgs = p->inline_pgs;
}

void path_fini(struct cow_path *p)
{
	if (p->nodes != p->inline_nodes) {
		free(p->nodes);
		free(p->pgs);
	}
	path_init(p);
}

static int path_push(struct cow_path *p, struct cow_node *n, uint64_t pg)
{
	if (p->depth == p->cap) {
		unsigned cap = p->cap * 2;
		struct cow_node **nodes = malloc(cap * sizeof(*nodes));
		uint64_t *pgs = malloc(cap * sizeof(*pgs));
		if (!nodes || !pgs) {
			free(nodes);
			free(pgs);
			return -ENOMEM;
		}
		memcpy(nodes, p->nodes, p->depth * sizeof(*nodes));
		memcpy(pgs, p->pgs, p->depth * sizeof(*pgs));
		if (p->nodes != p->inline_nodes) {
			free(p->nodes);
			free(p->pgs);
		}
		p->nodes = nodes;
		p->pgs = pgs;
		p->cap = cap;
	}
	p->nodes[p->depth] = n;
	p->pgs[p->depth] = pg;
	p->depth++;
	return 0;
}

/*
 * Walk up while the offset is below the node's parent_limit, translating by
 * parent_offset; the first entry (a frame or a zero marker) wins.  Reaching
 * the top without one means zero: anonymous VMOs have no page source.
 */
int cow_lookup(struct cow_node *n, uint64_t pg, struct cow_hit *hit,
	       struct cow_path *path)
{
	if (path)
		path->depth = 0;
	for (;;) {
		uint16_t e = pl_get(&n->pages, pg);
		if (path) {
			int rc = path_push(path, n, pg);
			if (rc < 0)
				return rc;
		}
		if (e & (E_PRESENT | E_ZERO)) {
			hit->owner = n;
			hit->pg = pg;
			hit->e = e;
			return 0;
		}
		if (!n->parent || pg >= size_pages(n->parent_limit))
			break;
		pg += size_pages(n->parent_offset);
		n = n->parent;
	}
	hit->owner = NULL;
	hit->pg = 0;
	hit->e = 0;
	return 0;
}

/*
 * The owner's page is seen only along the path if, at every hidden level,
 * the sibling of the path's child cannot see it: at the owner's level
 * because that side already split off its own copy or its window misses
 * the offset; below it (those levels hold no entry at the offset, or the
 * walk would have stopped there) only because the window misses it.
 */
bool path_exclusive(const struct cow_path *path, uint16_t owner_entry,
		    unsigned from_level)
{
	unsigned top = path->depth - 1;

	for (unsigned i = top; i >= 1; i--) {
		struct cow_node *cur = path->nodes[i];
		struct cow_node *child = path->nodes[i - 1];
		struct cow_node *sib = cur->left == child ? cur->right : cur->left;
		uint16_t sib_split = split_bit_for(cur, sib);

		if (i == top && from_level == 0 && (owner_entry & sib_split))
			continue;
		if (i == top && from_level == 1)
			continue;
		if (child_covers(sib, path->pgs[i]))
			return false;
	}
	return true;
}

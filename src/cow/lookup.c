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

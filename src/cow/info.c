/* SPDX-License-Identifier: MIT */
/*
 * info.c — per-VMO figures: committed and attributed bytes.
 */
#include "cow/cow_private.h"

static uint64_t own_pages_in(const struct cow_node *n, uint64_t first, uint64_t end)
{
	uint64_t pg, pages = 0;
	uint16_t e;

	if (first == 0 && end >= size_pages(n->size))
		return n->committed;
	PL_FOREACH(&n->pages, first, end, pg, e) {
		if (e & E_PRESENT)
			pages++;
	}
	return pages;
}

/*
 * Hidden-ancestor pages that @n alone can still see: the page is what @n
 * shows at that offset, and at every level the other side either split off
 * its own copy or does not cover the offset (Zircon's attribution rule).
 */
static uint64_t exclusive_ancestor_pages(struct cow_node *n, uint64_t first,
					 uint64_t end)
{
	uint64_t shift = 0, pages = 0, pg;
	uint16_t e;
	for (struct cow_node *x = n; x->parent && first < end; x = x->parent) {
		end = min_u64(end, size_pages(x->parent_limit) > shift
				       ? size_pages(x->parent_limit) - shift : 0);
		shift += size_pages(x->parent_offset);
		struct cow_node *a = x->parent;
		PL_FOREACH(&a->pages, first + shift, end + shift, pg, e) {
			struct cow_hit hit;
			if (!(e & E_PRESENT))
				continue;
			cow_lookup(n, pg - shift, &hit, NULL);
			if (hit.owner == a && hit.pg == pg &&
			    !cow_page_seen_by_others(a, pg, n))
				pages++;
		}
	}
	return pages;
}

void cow_get_info(struct cow_node *n, uint64_t off, uint64_t len,
		  struct cow_info *info)
{
	tree_lock(n->tree);
	uint64_t first = size_pages(off);
	uint64_t end = size_pages(min_u64(off + len, n->size));
	uint64_t own = first < end ? own_pages_in(n, first, end) : 0;
	/* An at-least-on-write child of a paged root has no hidden
	 * ancestors: it owns what it wrote, the rest is the root's. */
	uint64_t excl = first < end && !alow_child(n)
				? exclusive_ancestor_pages(n, first, end) : 0;

	info->size = n->size;
	info->committed_bytes = own << PAGE_SHIFT;
	info->attributed_bytes = (own + excl) << PAGE_SHIFT;
	info->lock_count = n->lock_count;
	info->discarded = n->discarded;
	tree_unlock(n->tree);
}

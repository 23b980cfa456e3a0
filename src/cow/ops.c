/* SPDX-License-Identifier: MIT */
/*
 * ops.c — the byte-level operations on a VMO: read, write, commit, zero
 * and resize.  Each takes the tree lock for its whole duration.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cow/cow_private.h"

/* Range and state checks common to every operation on content. */
static int check_access(struct cow_node *n, uint64_t off, uint64_t len)
{
	if (range_overflows(off, len) || off + len > n->size)
		return -ERANGE;
	if (n->discarded)
		return -ENOENT;
	return 0;
}

int cow_check_range(struct cow_node *n, uint64_t off, uint64_t len)
{
	tree_lock(n->tree);
	int rc = range_overflows(off, len) || off + len > n->size ? -ERANGE : 0;
	tree_unlock(n->tree);
	return rc;
}

/* Bytes [inoff, inoff + len) of the page that @n shows at @pg. */
static void read_page(struct cow_node *n, uint64_t pg, uint64_t inoff,
		      size_t len, char *dst)
{
	struct cow_hit hit;
	cow_lookup(n, pg, &hit, NULL); /* no path: cannot fail */
	if (hit.owner && (hit.e & E_PRESENT))
		memcpy(dst, (char *)pmm_slot_addr(entry_window(hit.owner, hit.e),
						  hit.pg) + inoff, len);
	else
		memset(dst, 0, len);
}

static bool (*memory_managed)(const void *p, size_t len);

void cow_set_managed_memory(bool (*managed)(const void *p, size_t len))
{
	memory_managed = managed;
}

/* A caller's buffer that may be a uvmo mapping is never touched with a
 * tree lock held: a fault on it would wait for that very lock. */
static bool needs_bounce(const void *buf, size_t len)
{
	return len && memory_managed && memory_managed(buf, len);
}

/* Pages a pager has not supplied yet, that [first, end) of @n shows: ask
 * for them and return -EINPROGRESS (nothing changed), else 0. */
static int need_content(struct cow_node *n, uint64_t first, uint64_t end)
{
	if (node_paged(n))
		return paged_need_present(n, first, end);
	if (alow_child(n))
		return alow_need_present(n, first, end);
	return 0;
}

static int read_locked(struct cow_node *n, void *buf, uint64_t off, size_t len);
static int write_locked(struct cow_node *n, const void *buf, uint64_t off, size_t len);

int cow_read(struct cow_node *n, void *buf, uint64_t off, size_t len)
{
	if (!needs_bounce(buf, len))
		return read_locked(n, buf, off, len);
	void *bounce = malloc(len);
	if (!bounce)
		return -ENOMEM;
	int rc = read_locked(n, bounce, off, len);
	if (rc == 0)
		memcpy(buf, bounce, len);
	free(bounce);
	return rc;
}

int cow_write(struct cow_node *n, const void *buf, uint64_t off, size_t len)
{
	if (!needs_bounce(buf, len))
		return write_locked(n, buf, off, len);
	void *bounce = malloc(len);
	if (!bounce)
		return -ENOMEM;
	memcpy(bounce, buf, len);
	int rc = write_locked(n, bounce, off, len);
	free(bounce);
	return rc;
}

static int read_locked(struct cow_node *n, void *buf, uint64_t off, size_t len)
{
	char *dst = buf;

	tree_lock(n->tree);
	int rc = check_access(n, off, len);
	if (rc == 0 && len)
		rc = need_content(n, off >> PAGE_SHIFT, page_round_up(off + len) >> PAGE_SHIFT);
	while (rc == 0 && len) {
		uint64_t inoff = off & (PAGE_SIZE - 1);
		size_t chunk = (size_t)min_u64(len, PAGE_SIZE - inoff);
		read_page(n, off >> PAGE_SHIFT, inoff, chunk, dst);
		dst += chunk;
		off += chunk;
		len -= chunk;
	}
	tree_unlock(n->tree);
	return rc;
}

/* Give @n its own frame for every page in [first, end) (a write fault
 * that changes no byte).  Pages done before a failure stay done. */
int cow_own_pages(struct cow_node *n, uint64_t first, uint64_t end)
{
	for (uint64_t pg = first; pg < end; pg++) {
		if (pl_get(&n->pages, pg) & E_PRESENT)
			continue;
		int rc = cow_fork_page(n, pg);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* A VMO with no parent needs no copy-on-write: allocate runs of missing
 * frames with one call each. */
int cow_own_pages_root(struct cow_node *n, uint64_t first, uint64_t end)
{
	uint64_t pg = first;

	while (pg < end) {
		if (pl_get(&n->pages, pg) & E_PRESENT) {
			pg++;
			continue;
		}
		uint64_t run = pg;
		while (run < end && !(pl_get(&n->pages, run) & E_PRESENT) &&
		       run - pg < 512)
			run++;
		int rc = pmm_frame_alloc(n->home, pg, run - pg);
		if (rc < 0)
			return rc;
		uint64_t run_start = pg;
		for (; pg < run; pg++) {
			rc = node_set_entry(n, pg, E_PRESENT);
			if (rc < 0) {
				pmm_frame_free(n->home, pg, run - pg);
				count(&cow_counters.zero_fills, pg - run_start);
				return rc;
			}
		}
		count(&cow_counters.zero_fills, run - run_start);
	}
	return 0;
}

static int write_locked(struct cow_node *n, const void *buf, uint64_t off, size_t len)
{
	const char *src = buf;

	tree_lock(n->tree);
	int rc = check_access(n, off, len);
	if (rc == 0 && len) {
		/* Reserve every frame the write needs, own every page, then
		 * copy: running out of pool writes nothing and allocates
		 * nothing. */
		uint64_t first = off >> PAGE_SHIFT;
		uint64_t end = page_round_up(off + len) >> PAGE_SHIFT;
		rc = need_content(n, first, end);
		if (rc == 0 && node_paged(n))
			rc = paged_check_write(n, first, end);
		if (rc < 0)
			goto out;
		uint64_t need = 0;
		for (uint64_t pg = first; pg < end; pg++)
			need += node_paged(n) ? !(pl_get(&n->pages, pg) & E_PRESENT)
					      : cow_fork_cost(n, pg);
		rc = pmm_reserve(need);
		if (rc == 0) {
			rc = node_paged(n) ? paged_own_pages(n, first, end)
					   : cow_own_pages(n, first, end);
			pmm_unreserve();
		}
		if (rc == 0 && node_paged(n)) {
			paged_mark_dirty(n, first, end);
			alow_invalidate(n, first, end);
		}
		if (rc == 0)
			restore_forget(n, first, end);
		while (rc == 0 && len) {
			uint64_t inoff = off & (PAGE_SIZE - 1);
			size_t chunk = (size_t)min_u64(len, PAGE_SIZE - inoff);
			memcpy((char *)pmm_slot_addr(n->home, off >> PAGE_SHIFT) + inoff,
			       src, chunk);
			src += chunk;
			off += chunk;
			len -= chunk;
		}
		VALIDATE(n);
	}
out:
	tree_unlock(n->tree);
	return rc;
}

int cow_commit(struct cow_node *n, uint64_t off, uint64_t len)
{
	tree_lock(n->tree);
	int rc = check_access(n, off, len);
	if (rc == 0 && len) {
		uint64_t first = off >> PAGE_SHIFT;
		uint64_t end = page_round_up(off + len) >> PAGE_SHIFT;
		if (node_paged(n)) {
			rc = paged_need_present(n, first, end);
			if (rc == 0)
				rc = paged_own_pages(n, first, end);
		} else {
			rc = need_content(n, first, end);
			if (rc == 0)
				rc = n->parent ? cow_own_pages(n, first, end)
					       : cow_own_pages_root(n, first, end);
		}
		VALIDATE(n);
	}
	tree_unlock(n->tree);
	return rc;
}

/* ---- releasing ranges: zero and shrink ---- */

int page_set_add(struct page_set *s, uint64_t pg)
{
	if (s->len == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		uint64_t *p = realloc(s->pgs, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		s->pgs = p;
		s->cap = cap;
	}
	s->pgs[s->len++] = pg;
	return 0;
}

/*
 * The pages of @n in [first, end) at which anything exists: an entry of
 * @n, or an entry of an ancestor within what @n sees of it.  Only these
 * can need releasing, so a huge range costs what it holds, not its size.
 */
int collect_pages(struct cow_node *n, uint64_t first, uint64_t end, struct page_set *out)
{
	uint64_t shift = 0; /* page offset of @n's view in node x */
	uint64_t pg;
	uint16_t e;

	for (struct cow_node *x = n; x && first < end; x = x->parent) {
		PL_FOREACH(&x->pages, first + shift, end + shift, pg, e) {
			int rc = page_set_add(out, pg - shift);
			if (rc < 0)
				return rc;
		}
		if (!x->parent)
			break;
		end = min_u64(end, size_pages(x->parent_limit) > shift
				       ? size_pages(x->parent_limit) - shift : 0);
		shift += size_pages(x->parent_offset);
	}
	return 0;
}

static int release_range(struct cow_node *n, uint64_t first, uint64_t end,
			 bool leave_marker)
{
	struct page_set set = { 0 };
	int rc = collect_pages(n, first, end, &set);

	for (size_t i = 0; rc == 0 && i < set.len; i++)
		rc = cow_release_page(n, set.pgs[i], leave_marker);
	free(set.pgs);
	return rc;
}

/* Drop every entry of non-hidden @n in [first, end); its frames go back
 * to the pool in runs (one punch per run). */
void cow_drop_own_pages(struct cow_node *n, uint64_t first, uint64_t end)
{
	uint64_t pg, run_start = 0, run_len = 0;
	uint16_t e;

	PL_FOREACH(&n->pages, first, end, pg, e) {
		if (e & E_PRESENT) {
			if (run_len && run_start + run_len == pg) {
				run_len++;
			} else {
				if (run_len)
					pmm_frame_free(n->home, run_start, run_len);
				run_start = pg;
				run_len = 1;
			}
		}
		node_set_entry(n, pg, 0);
	}
	if (run_len)
		pmm_frame_free(n->home, run_start, run_len);
}

/* Frames zero_partial will take for page @pg: none if it reads zero. */
static uint64_t zero_partial_cost(struct cow_node *n, uint64_t pg)
{
	struct cow_hit hit;
	cow_lookup(n, pg, &hit, NULL);
	if ((!hit.owner || !(hit.e & E_PRESENT)) && !alow_child(n))
		return 0;
	return cow_fork_cost(n, pg);
}

/* Zero part of one page: only if it can hold anything but zeros. */
static int zero_partial(struct cow_node *n, uint64_t pg, uint64_t inoff, uint64_t len)
{
	struct cow_hit hit;
	cow_lookup(n, pg, &hit, NULL);
	/* An at-least-on-write child follows its root's later writes: even
	 * a page that reads zero now must become its own to stay zero. */
	if ((!hit.owner || !(hit.e & E_PRESENT)) && !alow_child(n))
		return 0;
	if (!(pl_get(&n->pages, pg) & E_PRESENT)) {
		int rc = cow_fork_page(n, pg);
		if (rc < 0)
			return rc;
	}
	restore_forget(n, pg, pg + 1);
	memset((char *)pmm_slot_addr(n->home, pg) + inoff, 0, len);
	return 0;
}

int cow_zero(struct cow_node *n, uint64_t off, uint64_t len)
{
	tree_lock(n->tree);
	int rc = check_access(n, off, len);
	if (rc == 0 && len && node_paged(n)) {
		rc = paged_zero(n, off, len);
		VALIDATE(n);
	} else if (rc == 0 && len) {
		uint64_t end = off + len;
		uint64_t first_full = page_round_up(off);
		uint64_t end_full = page_round_down(end);

		/* Partial pages keep part of their content: it must be here. */
		if (off < first_full || first_full > end_full)
			rc = need_content(n, off >> PAGE_SHIFT, (off >> PAGE_SHIFT) + 1);
		if (rc == 0 && end_full < end && end_full >= first_full)
			rc = need_content(n, end_full >> PAGE_SHIFT, (end_full >> PAGE_SHIFT) + 1);
		if (rc < 0)
			goto out;
		/* Partial pages may need their own copy first: reserve those
		 * frames up front, so that running out changes nothing. */
		uint64_t need = 0;
		if (off < first_full || first_full > end_full)
			need += zero_partial_cost(n, off >> PAGE_SHIFT);
		if (end_full < end && end_full >= first_full)
			need += zero_partial_cost(n, end_full >> PAGE_SHIFT);
		rc = pmm_reserve(need);
		if (rc < 0)
			goto out;
		if (first_full > end_full) {
			/* Inside one page. */
			rc = zero_partial(n, off >> PAGE_SHIFT, off & (PAGE_SIZE - 1), len);
		} else {
			if (off < first_full)
				rc = zero_partial(n, off >> PAGE_SHIFT,
						  off & (PAGE_SIZE - 1), first_full - off);
			if (rc == 0 && end_full < end)
				rc = zero_partial(n, end_full >> PAGE_SHIFT, 0,
						  end - end_full);
			if (rc == 0 && first_full < end_full) {
				if (alow_child(n))
					rc = alow_zero_pages(n, first_full >> PAGE_SHIFT,
							     end_full >> PAGE_SHIFT);
				else if (n->parent)
					rc = release_range(n, first_full >> PAGE_SHIFT,
							   end_full >> PAGE_SHIFT, true);
				else
					cow_drop_own_pages(n, first_full >> PAGE_SHIFT,
							   end_full >> PAGE_SHIFT);
			}
		}
		pmm_unreserve();
		VALIDATE(n);
	}
out:
	tree_unlock(n->tree);
	return rc;
}

int cow_set_size(struct cow_node *n, uint64_t size)
{
	tree_lock(n->tree);
	int rc = node_set_size(n, size);
	tree_unlock(n->tree);
	return rc;
}

int node_set_size(struct cow_node *n, uint64_t size)
{
	int rc = 0;

	if (!(n->flags & N_RESIZABLE)) {
		rc = -ENOTSUP;
	} else if (size > n->size) {
		uint64_t need = size_pages(size), old = n->size;
		if (need > pmm_window_pages(n->home))
			rc = pmm_window_grow(n->home, max_u64(need, 2 * pmm_window_pages(n->home)));
		if (rc == 0) {
			n->size = size;
			cow_notify_window(n, old, size);
		}
		if (rc == 0 && node_paged(n))
			n->modified = true; /* the new pages are Dirty zeros */
	} else if (size < n->size && node_paged(n)) {
		paged_shrink(n, size);
	} else if (size < n->size) {
		uint64_t first = size_pages(size), end = size_pages(n->size);
		/* Release with the old limits in place, so that ancestor pages
		 * only this VMO could see are found and freed; then lower the
		 * limit for good: growing again must reveal zeros. */
		if (n->parent)
			rc = release_range(n, first, end, false);
		else
			cow_drop_own_pages(n, first, end);
		if (rc == 0) {
			n->size = size;
			n->parent_limit = min_u64(n->parent_limit, size);
		}
	}
	VALIDATE(n);
	return rc;
}

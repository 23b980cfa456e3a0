/* SPDX-License-Identifier: MIT */
/*
 * restore.c — restore a VMO to one of its snapshots, and list where they
 * differ, at a cost proportional to the pages that differ.
 *
 * A snapshot S of V (cow_snapshot) and V share their lowest common
 * ancestor L.  Everything below L on either side — V's own entries, the
 * entries of hidden nodes later snapshots of V inserted, S's own — is where
 * the two *may* differ; everywhere else both see L's content (or both see
 * zero), except where their visible limits into L differ (a shrink), whose
 * range is added too.  Each candidate page is then decided by looking up
 * what both show.
 *
 * Restored pages stay V's own where V owned a frame: the snapshot's bytes
 * are copied into it in place, so mappings keep the page and see the bytes
 * at once.  Such a page is marked E_RESTORED ("equals snapshot
 * `restored_from`") and write-protected in every mapping of V; any write
 * (a call, a fault lifting the protection, a zero) clears the mark.  The
 * next restore to the same snapshot skips marked pages without a lookup:
 * the fuzzing loop's reset costs a scan of V's entries plus a copy per
 * page the run wrote.  Invariant: an E_RESTORED page of V is protected in
 * every mapping of V (mappings of a node with restored_from set are
 * installed write-protected).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cow/cow_private.h"

/*
 * The lowest common ancestor L of @v and @s if @s is a snapshot of @v's
 * lineage, else NULL.  A snapshot puts the original on the left of the new
 * hidden node and the snapshot on the right (clone.c), and every later
 * snapshot or clone of @v puts it on the left again; so @s is a snapshot
 * of @v, or of one of those, exactly when @v hangs below L by left links
 * only, @s's side starts with a right link, and (uvmo_vmo_snapshot takes
 * whole VMOs) every link on both sides is at offset 0.
 * *@vlimit / *@slimit: how far (bytes) each sees into L.
 */
static struct cow_node *common_ancestor(struct cow_node *v, struct cow_node *s,
					uint64_t *vlimit, uint64_t *slimit)
{
	uint64_t lim_v = UINT64_MAX;
	for (struct cow_node *y = v; y->parent; y = y->parent) {
		struct cow_node *l = y->parent;
		if (y->parent_offset || l->left != y || !node_hidden(l))
			return NULL;
		lim_v = min_u64(lim_v, y->parent_limit);
		/* Is @s below l's right side? */
		uint64_t lim_s = UINT64_MAX;
		for (struct cow_node *x = s; x->parent; x = x->parent) {
			if (x->parent_offset)
				break;
			lim_s = min_u64(lim_s, x->parent_limit);
			if (x->parent == l) {
				if (l->right != x)
					break;
				*vlimit = lim_v;
				*slimit = lim_s;
				return l;
			}
		}
	}
	return NULL;
}

/* Pages below @stop on the way up from @n, in [0, end); *@sources counts
 * the nodes that added any (2 for an unsorted list).  @n's own pages
 * restored from @s are skipped: they are known to be equal (the restore
 * loop's common case); if @n kept the pages changed since, only those are
 * read. */
static int collect_below(struct cow_node *n, struct cow_node *stop, uint64_t end,
			 const struct cow_node *s, struct page_set *out, unsigned *sources)
{
	for (struct cow_node *x = n; x != stop; x = x->parent) {
		bool skip_restored = x == n && n->restored_from == s->id;
		size_t before = out->len;
		if (skip_restored && n->changed.valid) {
			for (size_t i = 0; i < n->changed.set.len; i++) {
				uint64_t pg = n->changed.set.pgs[i];
				if (pg < end && !(pl_get(&n->pages, pg) & E_RESTORED) &&
				    page_set_add(out, pg) < 0)
					return -ENOMEM;
			}
			*sources += out->len != before ? 2 : 0;
			continue;
		}
		uint64_t pg;
		uint16_t e;
		PL_FOREACH(&x->pages, 0, end, pg, e) {
			if (skip_restored && (e & E_RESTORED))
				continue;
			int rc = page_set_add(out, pg);
			if (rc < 0)
				return rc;
		}
		*sources += out->len != before;
	}
	return 0;
}

/* Every page of V (size @end pages) at which V and S may differ, sorted,
 * without duplicates.  -EINVAL if S is not a snapshot of V's lineage. */
static int candidates(struct cow_node *v, struct cow_node *s, uint64_t end,
		      struct page_set *out)
{
	uint64_t vlimit, slimit;
	struct cow_node *l = common_ancestor(v, s, &vlimit, &slimit);
	if (!l)
		return -EINVAL;
	unsigned sources = 0;
	int rc = collect_below(v, l, end, s, out, &sources);
	if (rc == 0)
		rc = collect_below(s, l, end, s, out, &sources);
	if (rc == 0 && vlimit != slimit) {
		uint64_t lo = size_pages(min_u64(vlimit, slimit));
		uint64_t hi = min_u64(size_pages(max_u64(vlimit, slimit)), end);
		if (lo < hi)
			rc = collect_pages(l, lo, hi, out);
		sources += 2; /* in any order */
	}
	if (rc < 0)
		return rc;
	/* One page list yields its pages in order already. */
	if (sources > 1 && out->len)
		qsort(out->pgs, out->len, sizeof(*out->pgs), u64_cmp);
	size_t w = 0;
	for (size_t i = 0; i < out->len; i++)
		if (w == 0 || out->pgs[w - 1] != out->pgs[i])
			out->pgs[w++] = out->pgs[i];
	out->len = w;
	return 0;
}

static bool shows_zero(const struct cow_hit *h)
{
	return !h->owner || (h->e & E_ZERO);
}

static const void *hit_bytes(const struct cow_hit *h)
{
	static const char zeros[PAGE_SIZE];
	return shows_zero(h) ? zeros : pmm_slot_addr(entry_window(h->owner, h->e), h->pg);
}

/* True if V shows the same bytes as S at @pg.  The tree answers most
 * cases; two different frames are compared byte by byte (a page V only
 * read through a mapping is a copy of S's, and a page written back with
 * the same bytes is the same page). */
static bool same_page(struct cow_node *v, struct cow_node *s, uint64_t pg)
{
	uint16_t e = pl_get(&v->pages, pg);
	if ((e & E_RESTORED) && v->restored_from == s->id)
		return true;
	struct cow_hit hv, hs;
	cow_lookup(v, pg, &hv, NULL);
	cow_lookup(s, pg, &hs, NULL);
	if (shows_zero(&hv) && shows_zero(&hs))
		return true;
	if (hv.owner == hs.owner && hv.pg == hs.pg)
		return true;
	return memcmp(hit_bytes(&hv), hit_bytes(&hs), PAGE_SIZE) == 0;
}

static bool snapshot_shows_zero(struct cow_node *s, uint64_t pg)
{
	struct cow_hit hs;
	cow_lookup(s, pg, &hs, NULL);
	return shows_zero(&hs);
}

/* Frames restore_page will take for @pg (V and S differ there). */
static uint64_t restore_cost(struct cow_node *v, struct cow_node *s, uint64_t pg)
{
	struct cow_hit hs;
	cow_lookup(s, pg, &hs, NULL);
	return !shows_zero(&hs) && !(pl_get(&v->pages, pg) & E_PRESENT);
}

/*
 * Make V show S's bytes at @pg (they differ).  V never lets go of a page
 * to see an ancestor's instead: the split bits above may say V's side has
 * its own copy, and a merge would then drop the page V relies on.
 */
static int restore_page(struct cow_node *v, struct cow_node *s, uint64_t pg)
{
	struct cow_hit hs;
	cow_lookup(s, pg, &hs, NULL);
	if (shows_zero(&hs))
		return cow_release_page(v, pg, true);
	uint16_t e = pl_get(&v->pages, pg);
	if (e & E_PRESENT) {
		memcpy(pmm_slot_addr(v->home, pg), hit_bytes(&hs), PAGE_SIZE);
		node_set_entry(v, pg, E_PRESENT | E_RESTORED);
		count(&cow_counters.copies, 1);
		return 0;
	}
	int rc = pl_reserve(&v->pages, pg);
	if (rc < 0)
		return rc;
	cow_claim_home_slot(v, pg);
	rc = pmm_frame_fill(v->home, pg, hit_bytes(&hs));
	if (rc < 0) {
		pl_trim(&v->pages, pg);
		return rc;
	}
	node_set_entry(v, pg, E_PRESENT | E_RESTORED);
	count(&cow_counters.copies, 1);
	return 0;
}

/* Write-protect the candidate pages in V's mappings, in runs. */
static void protect_pages(struct cow_node *v, const struct page_set *set)
{
	size_t i = 0;
	while (i < set->len) {
		size_t j = i + 1;
		while (j < set->len && set->pgs[j] == set->pgs[j - 1] + 1)
			j++;
		cow_notify_protect(v, set->pgs[i], set->pgs[j - 1] + 1);
		i = j;
	}
}

int cow_restore(struct cow_node *v, struct cow_node *s)
{
	struct page_set set = { 0 };
	uint64_t vlimit, slimit, old_size = v->size;
	bool in_loop;
	int rc = 0;

	if (v->tree != s->tree)
		return -EINVAL;
	tree_lock(v->tree);
	if (!common_ancestor(v, s, &vlimit, &slimit) ||
	    (v->size != s->size && !(v->flags & N_RESIZABLE))) {
		rc = -EINVAL;
		goto out;
	}
	/* A second restore to the same snapshot: a reset loop. */
	in_loop = v->restored_from == s->id;
	if (!in_loop)
		v->async_refused = false; /* a new loop may find room */
	tracking_harvest(v);
	/* Growing first lets V see the new range as S does (zero until
	 * restored); shrinking waits until nothing can fail any more. */
	if (s->size > v->size)
		rc = node_set_size(v, s->size);
	if (rc == 0)
		rc = candidates(v, s, size_pages(s->size), &set);
	/* What can fail comes first: the frames of pages V must copy in. */
	uint64_t need = 0;
	for (size_t i = 0; rc == 0 && i < set.len; i++)
		if (!(pl_get(&v->pages, set.pgs[i]) & E_PRESENT) && !same_page(v, s, set.pgs[i]))
			need += restore_cost(v, s, set.pgs[i]); /* V's own frames cost none */
	if (rc == 0)
		rc = pmm_reserve(need);
	if (rc < 0) {
		if (v->size != old_size)
			node_set_size(v, old_size); /* only zeros were added */
		goto out;
	}
	if (s->size < v->size)
		rc = node_set_size(v, s->size);
	/* Writers through mappings fault (and wait for this lock) before a
	 * page is overwritten, never during; and every page marked restored
	 * below must stay protected until written.  On the async tier the
	 * scan protected again every page written; a write racing the copy
	 * is seen by the next scan. */
	if (!node_async(v))
		protect_pages(v, &set);
	/* Candidates from the set of pages changed since the last restore
	 * were most likely written: a copy costs no more than comparing
	 * first.  A whole page list read (after writes were lost track of)
	 * is mostly unchanged pages: compared, not copied. */
	bool copy_blind = in_loop && v->changed.valid;
	for (size_t i = 0; rc == 0 && i < set.len; i++) {
		uint64_t pg = set.pgs[i];
		uint16_t e = pl_get(&v->pages, pg);
		bool changed = copy_blind && (e & E_PRESENT) && !(e & E_RESTORED);
		if (changed || !same_page(v, s, pg) ||
		    ((e & E_PRESENT) && snapshot_shows_zero(s, pg)))
			rc = restore_page(v, s, pg); /* a zero frame is given back too */
		else if ((e & E_PRESENT) && !(e & E_RESTORED))
			node_set_entry(v, pg, e | E_RESTORED);
	}
	pmm_unreserve();
	if (rc == 0) {
		v->restored_from = s->id;
		/* Every entry of V now equals S (E_RESTORED) or is a zero
		 * marker S shows too: what changes from here on is all the
		 * next restore has to look at. */
		v->changed.set.len = 0;
		v->changed.valid = true;
	}
	if (rc == 0 && in_loop)
		tracking_try_enter_async(v);
	VALIDATE(v);
out:
	tree_unlock(v->tree);
	free(set.pgs);
	return rc;
}

int cow_diff(struct cow_node *v, struct cow_node *s, uint64_t off, uint64_t len,
	     bool (*emit)(void *arg, uint64_t off, uint64_t len, bool zero), void *arg,
	     uint64_t *total)
{
	struct page_set set = { 0 };
	struct run_emitter r = { .emit = emit, .arg = arg };

	if (v->tree != s->tree)
		return -EINVAL;
	tree_lock(v->tree);
	int rc = range_overflows(off, len) || off + len > v->size ? -ERANGE : 0;
	if (rc == 0) {
		tracking_harvest(v);
		rc = candidates(v, s, size_pages(v->size), &set);
	}
	uint64_t first = off >> PAGE_SHIFT, end = (off + len) >> PAGE_SHIFT;
	for (size_t i = 0; rc == 0 && i < set.len; i++) {
		uint64_t pg = set.pgs[i];
		if (pg >= first && pg < end && !same_page(v, s, pg))
			add_run(&r, pg, pg + 1, false);
	}
	if (rc == 0)
		flush_run(&r);
	tree_unlock(v->tree);
	free(set.pgs);
	*total = r.total;
	return rc;
}

/* Past this many changed pages, reading the page list costs less than
 * keeping the set. */
static size_t changed_limit(const struct cow_node *n)
{
	return size_pages(n->size) / 8 + 64;
}

void restore_note_change(struct cow_node *n, uint64_t pg)
{
	struct changed_pages *c = &n->changed;
	if (c->set.len >= changed_limit(n) || page_set_add(&c->set, pg) < 0)
		c->valid = false; /* the next restore reads the page list */
}

void restore_drop_changes(struct cow_node *n)
{
	free(n->changed.set.pgs);
	n->changed = (struct changed_pages){ 0 };
}

/* A write is about to change V's pages [first, end): they no longer equal
 * the snapshot they were restored from. */
void restore_forget(struct cow_node *n, uint64_t first, uint64_t end)
{
	if (!n->restored_from)
		return;
	uint64_t pg;
	uint16_t e;
	PL_FOREACH(&n->pages, first, end, pg, e) {
		if (e & E_RESTORED)
			node_set_entry(n, pg, e & ~E_RESTORED);
	}
}

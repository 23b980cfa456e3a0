/* SPDX-License-Identifier: MIT */
/*
 * cow_private.h — the copy-on-write layer's own structures, shared by the
 * files of src/cow/ and nobody else.
 *
 * THE CLONE TREE
 *
 * Every VMO is a non-hidden node.  A snapshot of node N inserts a hidden
 * node H where N was: H takes N's page list (O(1)), N becomes H's left
 * child with an empty list, and the snapshot is H's new right child.
 * Hidden nodes are immutable, never exposed, and always have two children.
 * A node sees its parent at offsets below parent_limit, translated by
 * parent_offset (Zircon's VmCowPages).
 *
 * Page entries (16 bits, see pagelist.h):
 *   E_PRESENT  a frame holds this node's content at this offset
 *   E_ZERO     a zero marker: reads zero, hides the ancestors, no frame
 *   E_SPLIT_L  hidden nodes: the left subtree has its own copy
 *   E_SPLIT_R  hidden nodes: the right subtree has its own copy
 *   E_HOME     hidden nodes: the frame is in the node's home window
 *              (otherwise in its lender window, see below)
 * A page never has both split bits; non-hidden nodes have none.
 * Pager-backed roots only (see cow.h), with E_PRESENT or E_ZERO:
 *   E_DIRTY    the page differs from what the pager has (Dirty)
 *   E_AWAIT    writeback began and no write came since (AwaitingClean)
 *   neither    Clean
 * and on absent pages (no E_PRESENT / E_ZERO):
 *   E_READ_REQ a READ for it is outstanding (asked once, until answered)
 * and on Clean / AwaitingClean pages:
 *   E_DIRTY_REQ a DIRTY request for it is outstanding
 *
 * WHERE FRAMES LIVE (the placement rules; pmm has the windows)
 *
 * A non-hidden node's frames are always at its home window's slot of the
 * same page offset, so a later mapping of the window shows them without a
 * fault.  A snapshot does not move frames: the hidden node H *borrows* them
 * where they are, in N's window, which becomes H's `lender`.  So a hidden
 * node's frame for offset p is at slot p of its lender window, or of its
 * own home window when E_HOME is set.  Consequences, relied on throughout:
 *
 *  (L1) A hidden node and its lender's owner use the same offsets: snapshot
 *       puts N at parent_offset 0 under H, and so does every later
 *       snapshot of N, so the chain of hidden nodes lending from N's window
 *       is contiguous directly above N and all at offset 0.
 *  (L2) So slot p of N's home window holds either N's own frame, or the
 *       frame of exactly one hidden node of that chain at offset p (a
 *       "lent" frame), or nothing.  Before N puts its own content into
 *       slot p (write, zero, decommit, shrink), a lent frame there must
 *       go: moved to its owner's home window, or freed if nobody can see
 *       it (cow_claim_home_slot).
 *  (L3) When a page moves to another node it stays where it is only if the
 *       destination lends from the same window (or, for a non-hidden
 *       destination, if the slot is its own home slot); otherwise it is
 *       copied to the destination's home.
 *
 * LOCKING
 *
 * One mutex per clone tree (struct cow_tree) protects every node, page
 * list, window frame count and window reference of the tree.  Lock order:
 * tree lock → discard list lock → pmm's internal lock.  Code that must touch
 * another tree's lock while holding one (reclaim) only trylocks it.
 * Exception: a fault's zero fill of a parentless VMO drops the lock while
 * it installs (fill.c); tree_lock() — every operation but faults — waits
 * until no such fill is in flight, so outside faults an entry's frame is
 * always in its slot.
 */
#ifndef UVMO_COW_PRIVATE_H
#define UVMO_COW_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/queue.h>

#include "cow/cow.h"
#include "cow/pagelist.h"
#include "pmm/pmm.h"

enum {
	E_PRESENT = 1u << 0,
	E_ZERO = 1u << 1,
	E_SPLIT_L = 1u << 2,
	E_SPLIT_R = 1u << 3,
	E_HOME = 1u << 4,
	E_DIRTY = 1u << 5,
	E_AWAIT = 1u << 6,
	E_READ_REQ = 1u << 7,
	E_DIRTY_REQ = 1u << 8,
	E_CACHE = 1u << 9, /* at-least-on-write child: a cache of its root's page (alow.c) */
	E_RESTORED = 1u << 10, /* equals snapshot `restored_from`, write-protected (restore.c) */
};

enum {
	N_HIDDEN = 1u << 0,
	N_RESIZABLE = 1u << 1,
	N_DISCARDABLE = 1u << 2,
	N_PAGED = 1u << 3,     /* pager-backed root */
	N_TRAP_DIRTY = 1u << 4,
	N_PAGED_CHILD = 1u << 5, /* at-least-on-write child of a paged root */
	N_ASYNC = 1u << 6,     /* on the async dirty-tracking tier (tracking.c) */
};

/* Most zero fills of faults in flight at once in one tree (fill.c); more
 * concurrent faults fill with the lock held. */
#define MAX_FILLS 8

struct cow_tree {
	pthread_mutex_t lock;
	uint32_t nodes; /* under lock; the last node frees the tree */
	/* Fault zero fills installing with the lock dropped (fill.c), all
	 * under lock: their page ranges, the threads in tree_lock waiting for
	 * them to end, and the signal that one ended. */
	struct cow_fill {
		const struct cow_node *node;
		uint64_t first, end;
	} fills[MAX_FILLS];
	uint32_t nfills;
	uint32_t drain_waiters;
	pthread_cond_t fill_ended;
};

/* A growing array of page offsets (page_set_add). */
struct page_set {
	uint64_t *pgs;
	size_t len, cap;
};

static inline int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct cow_node {
	struct cow_tree *tree;
	struct cow_node *parent;
	struct cow_node *left, *right; /* hidden nodes only */

	uint64_t size;          /* bytes, page-aligned */
	uint64_t parent_offset; /* bytes, page-aligned */
	uint64_t parent_limit;  /* bytes; offsets at or above it see zero */

	struct pagelist pages;
	uint64_t committed; /* pages with E_PRESENT */
	uint64_t split_entries; /* entries with a split bit */
	struct pmm_window *home;   /* own frames */
	struct pmm_window *lender; /* hidden: window of borrowed frames */

	uint64_t id;
	uint32_t flags; /* N_* */
	/* !(flags & (N_PAGED | N_PAGED_CHILD)), kept apart because fault
	 * handlers read it without the tree lock while @flags may change
	 * under it: set before the node is handed out, never changed. */
	bool installs_writable;
	/* Paged roots that nothing can write, whose content is a file's
	 * (cow_set_direct_file): our own descriptor of the file; -1 otherwise.
	 * Set before the node is handed out, never changed (read lock-free). */
	int direct_fd;
	uint32_t refs;  /* holders outside the tree; 0 for hidden nodes */

	LIST_HEAD(, cow_mapping) mappings; /* non-hidden nodes */

	/* pager-backed roots (N_PAGED) */
	struct cow_source *source;          /* NULL once detached */
	const struct cow_source_ops *source_ops;
	uint64_t source_limit;  /* bytes: below, no entry = absent */
	bool modified;          /* written since the pager last reset it */
	bool dead;              /* content gone; memory kept for holds */
	uint32_t holds;         /* cow_node_hold, plus one while alive */
	/* Of @refs, those the source holds itself (cow_pager_keep): when
	 * @refs falls to them, nobody else uses the VMO and the source hears
	 * `unused`.  source_refs <= refs. */
	uint32_t source_refs;
	LIST_HEAD(, cow_node) paged_children; /* at-least-on-write children */
	/* an at-least-on-write child of a paged root */
	LIST_ENTRY(cow_node) paged_link;
	uint64_t cached;        /* E_CACHE entries */
	/* restore.c: the snapshot the E_RESTORED entries equal (its id), 0 none */
	uint64_t restored_from;
	/* restore.c: while valid, every page whose entry changed since the
	 * last restore (node_set_entry appends; duplicates allowed), so that
	 * the next restore need not read the whole page list. */
	struct changed_pages {
		struct page_set set;
		bool valid;
	} changed;
	/* tracking.c: the window's file offset when the node went async */
	uint64_t async_window;
	/* tracking.c: the pool had no room to go async in this reset loop */
	bool async_refused;

	/* discardable VMOs */
	uint32_t lock_count;
	bool discarded;
	bool on_lru;
	TAILQ_ENTRY(cow_node) lru;
};

static inline bool node_hidden(const struct cow_node *n)
{
	return n->flags & N_HIDDEN;
}

/* The hidden nodes borrowing frames from non-hidden @n's window: by (L1)
 * the chain directly above it. */
#define FOR_EACH_LENDER(x, n) \
	for (x = (n)->parent; x && node_hidden(x) && x->lender == (n)->home; x = x->parent)

static inline uint64_t size_pages(uint64_t bytes)
{
	return bytes >> PAGE_SHIFT;
}

/* The window holding the frame of entry @e of node @n. */
static inline struct pmm_window *entry_window(const struct cow_node *n, uint16_t e)
{
	if (node_hidden(n) && !(e & E_HOME))
		return n->lender;
	return n->home;
}

static inline uint16_t split_bit_for(const struct cow_node *parent,
				     const struct cow_node *child)
{
	return parent->left == child ? E_SPLIT_L : E_SPLIT_R;
}

static inline struct cow_node *sibling_of(const struct cow_node *child)
{
	struct cow_node *p = child->parent;
	return p->left == child ? p->right : p->left;
}

/* True if @child sees its parent's page @ppg (a page offset in the parent). */
static inline bool child_covers(const struct cow_node *child, uint64_t ppg)
{
	uint64_t first = size_pages(child->parent_offset);
	return ppg >= first && ppg - first < size_pages(child->parent_limit);
}

static inline bool node_paged(const struct cow_node *n)
{
	return n->flags & N_PAGED;
}

/* An at-least-on-write child of a paged root (see alow.c). */
static inline bool alow_child(const struct cow_node *n)
{
	return n->flags & N_PAGED_CHILD;
}

/* A page of a pager-backed root that only the pager can fill. */
static inline bool page_absent(const struct cow_node *n, uint64_t pg, uint16_t e)
{
	return node_paged(n) && !(e & (E_PRESENT | E_ZERO)) &&
	       pg < size_pages(n->source_limit);
}

/* ---- runs of pages reported to a caller (dirty ranges, diffs) ---- */
struct run_emitter {
	bool (*emit)(void *arg, uint64_t off, uint64_t len, bool zero);
	void *arg;
	uint64_t start, end; /* pages of the open run, end == 0: none */
	bool zero;
	bool full;
	uint64_t total;
};

static inline void flush_run(struct run_emitter *r)
{
	if (r->end == 0)
		return;
	r->total++;
	if (!r->full && !r->emit(r->arg, r->start << PAGE_SHIFT,
				 (r->end - r->start) << PAGE_SHIFT, r->zero))
		r->full = true;
	r->end = 0;
}

static inline void add_run(struct run_emitter *r, uint64_t start, uint64_t end, bool zero)
{
	if (start >= end)
		return;
	if (r->end && r->end == start && r->zero == zero) {
		r->end = end;
		return;
	}
	flush_run(r);
	r->start = start;
	r->end = end;
	r->zero = zero;
}

/* ---- counters (node.c) ---- */
struct cow_counters {
	_Atomic uint64_t nodes, hidden_nodes, async_nodes;
	_Atomic uint64_t copies, moves, zero_fills, merges, discards;
};
extern struct cow_counters cow_counters;

static inline void count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---- node.c ---- */
int node_alloc(struct cow_tree *tree, uint64_t size, uint32_t flags,
	       struct cow_node **out);
void node_free(struct cow_node *n);
/* Lock @t for an operation: waits until no fault fill is in flight, so
 * that every entry's frame is in its slot (fill.c). */
void tree_lock(struct cow_tree *t);
void tree_unlock(struct cow_tree *t);
/* Free a tree whose last node is gone (lock not held). */
void tree_free(struct cow_tree *t);

/* Entry bookkeeping that keeps `committed` exact. */
int node_set_entry(struct cow_node *n, uint64_t pg, uint16_t e);

/* ---- lookup.c ---- */
/* A path from a node up to the owner of some content: nodes[0] is where the
 * lookup started, nodes[depth - 1] the owner; pgs[] the offset at each. */
struct cow_path {
	unsigned depth, cap;
	struct cow_node **nodes;
	uint64_t *pgs;
	struct cow_node *inline_nodes[16];
	uint64_t inline_pgs[16];
};

struct cow_hit {
	struct cow_node *owner; /* NULL: no content anywhere (reads zero) */
	uint64_t pg;            /* offset in the owner */
	uint16_t e;             /* owner's entry: E_PRESENT or E_ZERO */
};

void path_init(struct cow_path *p);
void path_fini(struct cow_path *p);
/* Find what @n shows at page @pg.  With @path, record the walk (only
 * -ENOMEM if a very deep tree needs more path than fits inline). */
int cow_lookup(struct cow_node *n, uint64_t pg, struct cow_hit *hit,
	       struct cow_path *path);
/* ---- fork.c ---- */
/* True if a node of @child's subtree other than @exclude sees its hidden
 * parent's page at @ppg (no entry shadows it on the way down). */
bool cow_side_sees(const struct cow_node *child, uint64_t ppg,
		   const struct cow_node *exclude);
/* True if a node other than @exclude sees hidden @h's page at @pg. */
bool cow_page_seen_by_others(const struct cow_node *h, uint64_t pg,
			     const struct cow_node *exclude);
/* Make non-hidden @n own a frame with its current content at @pg. */
int cow_fork_page(struct cow_node *n, uint64_t pg);
/* How many new frames cow_fork_page(n, pg) would take now. */
uint64_t cow_fork_cost(struct cow_node *n, uint64_t pg);
/* Placement rule (L3): the frame at slot @fpg of @from becomes node @to's
 * page @tpg — staying where it is if @to lends from @from (or it is @to's
 * own slot), else copied to @to's own window.  Returns @to's new entry. */
uint16_t cow_place_frame(struct pmm_window *from, uint64_t fpg,
			 struct cow_node *to, uint64_t tpg);
/* Empty slot @pg of @n's home window of any frame lent to an ancestor. */
void cow_claim_home_slot(struct cow_node *n, uint64_t pg);
/* Release @n's claim on its content at @pg: its own frame, and ancestor
 * frames only it can see.  With @leave_marker, @n reads zero there
 * afterwards (a marker is left if ancestor content would show through). */
int cow_release_page(struct cow_node *n, uint64_t pg, bool leave_marker);

/* ---- ops.c ---- */
int page_set_add(struct page_set *s, uint64_t pg);
/* The pages of @n in [first, end) at which anything exists: an entry of @n
 * or of an ancestor within what @n sees of it. */
int collect_pages(struct cow_node *n, uint64_t first, uint64_t end, struct page_set *out);
/* cow_set_size with the tree lock held. */
int node_set_size(struct cow_node *n, uint64_t size);
/* Give @n its own frame for every page in [first, end); pages done before
 * a failure stay done.  The _root variant is for nodes with no parent
 * (no copy-on-write: runs of frames in one call). */
int cow_own_pages(struct cow_node *n, uint64_t first, uint64_t end);
int cow_own_pages_root(struct cow_node *n, uint64_t first, uint64_t end);
/* Drop every entry of non-hidden @n in [first, end), frames in runs. */
void cow_drop_own_pages(struct cow_node *n, uint64_t first, uint64_t end);

/* ---- mapping.c ---- */
/* Tell every mapping of @n that its window moved or its size changed. */
void cow_notify_window(struct cow_node *n, uint64_t old_size, uint64_t new_size);
/* Tell every mapping of @n that a snapshot was taken. */
void cow_notify_snapshot(struct cow_node *n);
/* Remove write access to node pages [first, end) in every mapping of @n. */
void cow_notify_protect(struct cow_node *n, uint64_t first, uint64_t end);

/* ---- paged.c ---- */
/* Register the thread's wait for @kind on pages [pg, pg + count) of paged
 * root @n, asking the source for those not yet asked; returns -EINPROGRESS,
 * or -EBUSY when detached, -ENOMEM if the request cannot be recorded. */
int paged_need(struct cow_node *n, uint32_t kind, uint64_t pg, uint64_t count);
/* Calls that need content: -EINPROGRESS (after asking) if any page of
 * [first, end) is absent, else 0. */
int paged_need_present(struct cow_node *n, uint64_t first, uint64_t end);
/* The state bits (E_DIRTY / E_AWAIT) of @n's page @pg, kept when a frame
 * replaces a zero marker; the zero tail is Dirty. */
uint16_t paged_state(const struct cow_node *n, uint64_t pg);
/* A write of [first, end) is coming: with trap-dirty, pages not Dirty are
 * asked for (-EINPROGRESS); else 0.  Callers then write and mark them. */
int paged_check_write(struct cow_node *n, uint64_t first, uint64_t end);
void paged_mark_dirty(struct cow_node *n, uint64_t first, uint64_t end);
/* Frames for every page of [first, end) (none absent), states kept. */
int paged_own_pages(struct cow_node *n, uint64_t first, uint64_t end);
int paged_zero(struct cow_node *n, uint64_t off, uint64_t len);
void paged_shrink(struct cow_node *n, uint64_t size);
/* cow_fault for a paged root. */
int paged_fault(struct cow_node *n, uint64_t pg, uint64_t ahead, bool write);
/* The last holder went (node_die for paged roots). */
void paged_die(struct cow_node *n);
/* A reference to @n was dropped and @n lives on (tree lock held): if only
 * its source's own references remain, tell the source (`unused`). */
void paged_ref_dropped(struct cow_node *n);

/* ---- alow.c ---- */
uint64_t alow_own_cost(const struct cow_node *c, uint64_t pg);
/* cow_fork_page for an at-least-on-write child (may -EINPROGRESS). */
int alow_own(struct cow_node *c, uint64_t pg);
int alow_fault(struct cow_node *c, uint64_t pg, bool write);
/* Wait for root pages that [first, end) of @c shows and are absent. */
int alow_need_present(struct cow_node *c, uint64_t first, uint64_t end);
int alow_release(struct cow_node *c, uint64_t pg, bool leave_marker);
int alow_zero_pages(struct cow_node *c, uint64_t first, uint64_t end);
/* The root's pages [first, end) change: drop the children's caches. */
void alow_invalidate(struct cow_node *r, uint64_t first, uint64_t end);
void alow_parent_shrank(struct cow_node *r, uint64_t size);
void alow_die(struct cow_node *c);

/* ---- restore.c ---- */
/* Pages [first, end) of @n are about to be written: drop E_RESTORED. */
void restore_forget(struct cow_node *n, uint64_t first, uint64_t end);
/* Entry @pg of @n changed (node_set_entry). */
void restore_note_change(struct cow_node *n, uint64_t pg);
/* @n's page list changed wholesale (snapshot, merge, death). */
void restore_drop_changes(struct cow_node *n);

/* ---- tracking.c ---- */
/* Async nodes: learn the writes made through mappings since the last
 * scan (their E_RESTORED marks go).  Lock held. */
void tracking_harvest(struct cow_node *n);
/* After a restore of @n that shows it is in a reset loop: move it to the
 * async tier if the tier exists and the pool has room.  Lock held. */
void tracking_try_enter_async(struct cow_node *n);
/* Back to the sync tier (a snapshot is taken, fork()).  Lock held. */
void tracking_leave_async(struct cow_node *n);
/* The window of async @n moved, or one of its mappings went: writes made
 * through the old mapping cannot be scanned any more.  Lock held. */
void tracking_lost(struct cow_node *n);
static inline bool node_async(const struct cow_node *n)
{
	return n->flags & N_ASYNC;
}

/* ---- fill.c ---- */
/* Lock @t for a fault: fills of other faults may be in flight. */
void tree_lock_fault(struct cow_tree *t);
/* A fault on page @pg of @n, a VMO with no parent and no pager (its
 * missing pages are zero): give @n frames for the missing pages of
 * [pg, end), installing them with the tree lock dropped; held again on
 * return.  If @pg is being filled by another fault, wait for it.  0, or
 * -ENOMEM if @pg could not be had (fault-ahead pages are best effort). */
int fill_fault_root(struct cow_node *n, uint64_t pg, uint64_t end);
/* True if slot @pg of @n's home is being filled with the lock dropped
 * (lock held): its entry says present, the slot is still a hole. */
bool fill_in_flight(const struct cow_node *n, uint64_t pg);

/* ---- merge.c ---- */
/* @n (non-hidden) has no holders left: free it and merge its parent. */
void node_die(struct cow_node *n);

/* ---- discard.c ---- */
void discard_track(struct cow_node *n);   /* a new discardable VMO */
void discard_untrack(struct cow_node *n); /* it dies */
uint64_t discard_reclaim(uint64_t pages);
/* Free every frame of a discardable node (tree lock held). */
void discard_node(struct cow_node *n);

/* ---- validate.c ---- */
/* Check @n's whole tree; the tree lock is held. */
void validate_tree_locked(struct cow_node *n);
#if UVMO_VALIDATION
#define VALIDATE(n) validate_tree_locked(n)
#else
#define VALIDATE(n) ((void)0)
#endif

#endif

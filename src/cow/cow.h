/* SPDX-License-Identifier: MIT */
/*
 * cow — VMOs as nodes of copy-on-write clone trees (the logical model).
 *
 * Contract with the layers above:
 *  - A struct cow_node * handed out here is a non-hidden node (a VMO) with
 *    one reference held by the caller.  cow_node_unref drops it; when the
 *    last holder goes the node dies, its frames return to the pool and its
 *    hidden parent merges into the surviving sibling.
 *  - Every function takes the node's tree lock itself; callers hold no uvmo
 *    lock.  Byte ranges are checked here against the size under that lock
 *    (the size can change concurrently); callers check alignment, NULLs and
 *    overflow.
 *  - Offsets and lengths are bytes.  Errors are negative errnos as in
 *    include/uvmo/uvmo.h.
 *  - Nothing here maps memory: the logical model is testable on its own.
 */
#ifndef UVMO_COW_H
#define UVMO_COW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "base.h"

struct cow_node;

#define COW_RESIZABLE   (1u << 0)
#define COW_DISCARDABLE (1u << 1)

/* Installs the reclaim hook in pmm; call once after pmm_init. */
void cow_init(void);

/* @capacity: window pages to reserve (>= size). */
int cow_create(uint64_t size, uint64_t capacity, uint32_t flags,
	       struct cow_node **out);
void cow_node_ref(struct cow_node *n);
void cow_node_unref(struct cow_node *n);

uint64_t cow_id(const struct cow_node *n);
uint64_t cow_size(struct cow_node *n);
bool cow_is_resizable(const struct cow_node *n);
bool cow_is_discardable(const struct cow_node *n);

int cow_read(struct cow_node *n, void *buf, uint64_t off, size_t len);
int cow_write(struct cow_node *n, const void *buf, uint64_t off, size_t len);
int cow_commit(struct cow_node *n, uint64_t off, uint64_t len);
/* Any alignment; partial pages are zeroed in place. */
int cow_zero(struct cow_node *n, uint64_t off, uint64_t len);
/* Checks the range only (hint ops for anonymous VMOs). */
int cow_check_range(struct cow_node *n, uint64_t off, uint64_t len);
int cow_set_size(struct cow_node *n, uint64_t size);

/* Snapshot [off, off + size) of @n into a new node (see uvmo.h); the child
 * sees @n only in its first @visible bytes (a snapshot of a slice must not
 * see past the slice), zeros after.  -ERANGE if @off is past @n's end. */
int cow_snapshot(struct cow_node *n, uint64_t off, uint64_t size,
		 uint64_t visible, uint64_t capacity, uint32_t flags,
		 struct cow_node **out);

/* Restore @v to @s, a snapshot of its lineage (see restore.c): 0,
 * -EINVAL (not such a snapshot; sizes differ and @v is not resizable),
 * -ENOMEM (nothing changed). */
int cow_restore(struct cow_node *v, struct cow_node *s);
/* Report the runs of pages of [off, off + len) where @v differs from @s
 * (@emit returns false once its storage is full; *@total counts all). */
int cow_diff(struct cow_node *v, struct cow_node *s, uint64_t off, uint64_t len,
	     bool (*emit)(void *arg, uint64_t off, uint64_t len, bool zero), void *arg,
	     uint64_t *total);

/* Discardable VMOs: 0 or 1 (was discarded) / -EAGAIN / -EBUSY. */
int cow_lock(struct cow_node *n, bool try_only);
int cow_unlock(struct cow_node *n);

struct cow_info {
	uint64_t size;
	uint64_t committed_bytes;
	uint64_t attributed_bytes;
	uint32_t lock_count;
	bool discarded;
};
/* Figures for the window [off, off + len) of @n (a slice passes its own). */
void cow_get_info(struct cow_node *n, uint64_t off, uint64_t len,
		  struct cow_info *info);

struct cow_stats {
	uint64_t nodes, hidden_nodes, async_nodes;
	uint64_t copies, moves, zero_fills, merges, discards;
	uint64_t metadata_bytes;
};
void cow_get_stats(struct cow_stats *out);

/* ---- for the mapping layer (uffd) ---- */

/*
 * A mapping of a node, kept on the node so that cow can keep it coherent.
 * The callbacks run with the tree lock held: they may make system calls on
 * the mapping but must not call into cow.
 */
struct cow_mapping;
struct cow_mapping_ops {
	/* Map the window (at pool file offset @file_offset) into place;
	 * @write_protect: the node has borrowed frames in its window, which
	 * the mapping must not write in place; @track_async: register it with
	 * the async-tracking userfaultfd, all of it write-protected (the node
	 * is on the async tier).  0 or a negative errno. */
	int (*install)(struct cow_mapping *m, uint64_t file_offset, bool write_protect,
		       bool track_async);
	/* Register the mapping with the async-tracking userfaultfd (@async)
	 * or the ordinary one, all of it write-protected there.  Between the
	 * two registrations the range is briefly registered with neither: an
	 * access then is served by the kernel (see tracking.c).  0 or a
	 * negative errno (the mapping is left with the ordinary one). */
	int (*set_tracking)(struct cow_mapping *m, bool async);
	/* An async-tracked mapping: report the runs of node pages written
	 * through it since they were last protected, and protect them again.
	 * 0, or a negative errno (nothing is known about its writes). */
	int (*scan_written)(struct cow_mapping *m,
			    void (*written)(void *arg, uint64_t first, uint64_t end), void *arg);
	/* Remove write access from node pages [first, end) (a snapshot:
	 * all of them; a pager writeback: a range). */
	void (*write_protect)(struct cow_mapping *m, uint64_t first, uint64_t end);
	/* Node pages [first, end) hold frames now (a pager supplied them):
	 * map them in ahead of the accesses (read-only where protected), so
	 * a sequential reader does not fault once per page.  Must not fault
	 * into uvmo: every page of the range is present. */
	void (*populate)(struct cow_mapping *m, uint64_t first, uint64_t end);
	/* The node's window moved to @file_offset (remap there), or its size
	 * changed from @old_size to @new_size (pages past the old end may have
	 * been refused and must be retried). */
	void (*window_changed)(struct cow_mapping *m, uint64_t file_offset,
			       uint64_t old_size, uint64_t new_size);
};
struct cow_mapping {
	const struct cow_mapping_ops *ops;
	LIST_ENTRY(cow_mapping) link;
};

/* Make sure @n's window covers @bytes (a mapping must never reach into
 * another window), install @m through its ops and attach it, all under the
 * tree lock, so no snapshot or resize can slip in between.  The mapping
 * holds a reference on @n.  -ENOMEM if the window cannot grow, or the
 * install's error. */
int cow_mapping_attach(struct cow_node *n, struct cow_mapping *m, uint64_t bytes);
/* Install @m again (after fork(), on the child's own pool). */
int cow_mapping_reinstall(struct cow_node *n, struct cow_mapping *m);
/* Attach a piece split off an attached mapping (no install needed). */
void cow_mapping_attach_split(struct cow_node *n, struct cow_mapping *m);
/* Run @fn(@arg) under @n's tree lock: how the mapping layer changes what
 * its callbacks read (ranges, permissions) without racing them. */
void cow_mapping_update(struct cow_node *n, void (*fn)(void *arg), void *arg);
void cow_mapping_detach(struct cow_node *n, struct cow_mapping *m);
/* A fault on page @pg of @n: make @n own it (copy-on-write or zero fill),
 * and, as far as the pool allows, the @ahead pages after it (fault-ahead).
 * @write: a write fault (pager-backed roots track dirty pages).
 * On success @resolved(@arg, @pages) runs before the tree lock is dropped,
 * so that e.g. lifting a write protection cannot race a new snapshot;
 * @pages (at least 1) is how many pages from @pg on @n now owns, so the
 * protection of the fault-ahead pages can be lifted in the same call.  0,
 * or -ERANGE (past the end), -ENOMEM (pool exhausted), -ENOENT
 * (discarded), -EBUSY (pager detached), -EINPROGRESS (waits for the pager:
 * see cow_wait_use; the thread is woken through the wait's @complete). */
int cow_fault(struct cow_node *n, uint64_t pg, uint64_t ahead, bool write,
	      void (*resolved)(void *arg, uint64_t pages), void *arg);
/* False for nodes whose faults must not be answered by installing pages
 * straight into the mapping (a UFFDIO_COPY maps them writable): a paged
 * root's Clean pages and an at-least-on-write child's caches must stay
 * write-protected, so their frames go in through the physmap.  Lock-free. */
bool cow_fault_installs_writable(const struct cow_node *n);
/* The async dirty-tracking tier is available (set once by the mapping
 * layer at start-up; see tracking.c). */
void cow_set_async_tracking(bool available);
/* Put @n back on the sync tier if it is on the async one: a fork() needs
 * writes through its mappings to fault again.  Takes the tree lock. */
void cow_tracking_leave_async(struct cow_node *n);
/* Tell cow which buffers may be uvmo mappings: those are never touched
 * with a tree lock held (they are bounced). */
void cow_set_managed_memory(bool (*managed)(const void *p, size_t len));

/* ---- pager-backed roots (the pager module is the page source) ---- */

/*
 * A pager-backed root has no content of its own: a page below its
 * `source_limit` that holds no entry is *absent*, and whoever needs it asks
 * the page source (a READ request) and waits.  Pages at or above the limit
 * (the VMO grew) read zero and are Dirty.  Every page that is present (or
 * a zero marker) has a dirty state: Clean, Dirty or AwaitingClean.
 *
 * Waiting.  An operation that needs a page the source has not supplied (or,
 * with COW_TRAP_DIRTY, a write the source has not acknowledged) registers a
 * struct cow_wait with the source under the tree lock and returns
 * -EINPROGRESS without changing anything.  The caller drops every lock and
 * waits (cow_wait_sleep for calls; fault handlers pass a wait whose
 * @complete wakes the faulting thread), then runs the operation again.
 * Supplying, acknowledging, failing or detaching completes the waits that
 * overlap the range.  Lock order: tree lock → source's lock.
 */
struct cow_source;
struct cow_wait;

#define COW_WAIT_READ  1u
#define COW_WAIT_DIRTY 2u

struct cow_source_ops {
	/* Pages [pg, pg + count) of the root are needed (@kind): queue a
	 * request for them.  Tree lock held; must not block or call cow. */
	void (*request)(struct cow_source *s, uint32_t kind, uint64_t pg, uint64_t count);
	/* Link @w so that it completes when one of its pages is supplied,
	 * acknowledged or failed (tree lock held). */
	void (*link_wait)(struct cow_source *s, struct cow_wait *w);
	/* Sleep until @w completes (no uvmo lock held). */
	void (*sleep)(struct cow_source *s, struct cow_wait *w);
	/* The root shrank to @pg pages: waits for pages past it are over
	 * (they find the pages gone).  Tree lock held. */
	void (*cut)(struct cow_source *s, uint64_t pg);
	/* The root died (tree lock held): nothing will be asked any more. */
	void (*gone)(struct cow_source *s);
	/* Every reference to the root but the source's own (cow_pager_keep)
	 * is gone: no handle, mapping or child uses it any more, and it dies
	 * when the source drops its own.  Tree lock held; must not block or
	 * call cow.  May be NULL. */
	void (*unused)(struct cow_source *s);
};

struct cow_wait {
	/* Set by the waiter.  NULL: a thread sleeps in cow_wait_sleep.
	 * Otherwise called (with the source's lock held, no tree lock) once
	 * the wait is over, with @result set. */
	void (*complete)(struct cow_wait *w);
	void *ctx;
	/* Set by cow and the source. */
	struct cow_source *source;
	const struct cow_source_ops *ops;
	uint32_t kind;
	uint64_t pg, count;   /* the pages the waiter needs */
	int result;           /* 0: try again; < 0: fail with it */
	bool done;
	LIST_ENTRY(cow_wait) link;
};

#define COW_TRAP_DIRTY (1u << 2)

/* A root whose absent pages @source supplies.  @flags: COW_RESIZABLE,
 * COW_TRAP_DIRTY.  The node holds no reference on the source; the source
 * must outlive it or cow_pager_detach it first. */
int cow_create_paged(uint64_t size, uint64_t capacity, uint32_t flags,
		     struct cow_source *source, const struct cow_source_ops *ops,
		     struct cow_node **out);
bool cow_is_paged(const struct cow_node *n);
/* An at-least-on-write child of paged root @r (see alow.c): @r's current
 * content shows through until the child writes a page, in its first
 * @visible bytes (a child of a slice sees nothing past the slice).  With
 * @snapshot_modified, pages of @r that are not Clean are copied now. */
int cow_paged_child(struct cow_node *r, uint64_t off, uint64_t size, uint64_t visible,
		    uint64_t capacity, uint32_t flags, bool snapshot_modified,
		    struct cow_node **out);
/*
 * Paged root @n shows a file's content, exactly, and nothing can write it
 * (a READONLY file VMO): read-only mappings of it may then be mappings of
 * the file itself (cow_direct_file), which the kernel serves from its page
 * cache with no fault ever reaching uvmo.  Everything else — calls,
 * children, the pager's supplies and evictions — goes on through the
 * window, which holds the same bytes.  @n takes @fd (closed when @n dies,
 * or at once on failure); it should be open read-only, so that nothing can
 * ever make such a mapping writable.  Call before @n is mapped or handed
 * out.  0, or -EINVAL (not a paged root, or mapped already).
 */
int cow_set_direct_file(struct cow_node *n, int fd);
/* The descriptor set by cow_set_direct_file (the node's own; valid while
 * the node lives), or -1.  Lock-free. */
int cow_direct_file(const struct cow_node *n);
/* True for such a child (it cannot have clones of its own). */
bool cow_is_paged_child(struct cow_node *n);
/* The source serving paged root @n, or NULL (not paged, or detached). */
struct cow_source *cow_node_source(struct cow_node *n);
/* Keep the node's memory (not its content) alive: pagers hold this while
 * they may still name the node after every handle and mapping is gone. */
void cow_node_hold(struct cow_node *n);
void cow_node_release(struct cow_node *n);

/* A reference to paged root @n held by its source itself (cow_node_ref
 * that counts as the source's): once every other reference is gone, the
 * source's `unused` op runs, so that it can finish with the content (write
 * it back) before dropping this one with cow_pager_unkeep, which the root
 * may die of.  -ENOENT if @n is dead or detached. */
int cow_pager_keep(struct cow_node *n);
void cow_pager_unkeep(struct cow_node *n);

/* The calling thread's wait from the last -EINPROGRESS: sleep until it
 * completes.  0 (try again) or the error the source failed it with. */
int cow_wait_sleep(void);
/* Pass @w for the next operation of this thread that may wait (fault
 * handlers: one wait per fault).  NULL: use the thread's own. */
void cow_wait_use(struct cow_wait *w);

/* Source side.  All take the tree lock; -ENOENT if @n is dead or detached. */
/* Fill absent pages of [off, off + len) from @data (NULL: zeros); pages
 * present keep their content.  Supplied pages are Clean.  0, -ERANGE,
 * -ENOMEM (pages supplied before stay). */
int cow_pager_supply(struct cow_node *n, uint64_t off, uint64_t len, const void *data);
/* Forget outstanding requests in the range, so later accesses ask again. */
int cow_pager_unrequest(struct cow_node *n, uint64_t off, uint64_t len);
/* Clean/AwaitingClean → Dirty (acknowledging DIRTY requests). */
int cow_pager_dirty(struct cow_node *n, uint64_t off, uint64_t len);
/* Dirty → AwaitingClean (write access removed); AwaitingClean → Clean. */
int cow_pager_writeback_begin(struct cow_node *n, uint64_t off, uint64_t len);
int cow_pager_writeback_end(struct cow_node *n, uint64_t off, uint64_t len);
/* Drop Clean pages; returns how many (or an error). */
int64_t cow_pager_evict(struct cow_node *n, uint64_t off, uint64_t len);
/* Report runs of non-Clean pages: @emit returns false to stop (storage
 * full); the count of all runs is returned in *@total. */
int cow_pager_dirty_ranges(struct cow_node *n, uint64_t off, uint64_t len,
			   bool (*emit)(void *arg, uint64_t off, uint64_t len, bool zero),
			   void *arg, uint64_t *total);
/* Read and optionally clear the "modified" flag. */
int cow_pager_modified(struct cow_node *n, bool reset, bool *modified);
/* The source stops serving: later accesses to absent pages fail with
 * -EBUSY (calls) / SIGBUS (faults); returns the Dirty pages lost to it. */
uint64_t cow_pager_detach(struct cow_node *n);

/* Walk and check every invariant of @n's tree; abort on violation.  Always
 * available (tests call it directly); -Dvalidation=true also runs it after
 * every mutating operation. */
void cow_validate(struct cow_node *n);

#endif

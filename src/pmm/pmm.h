/* SPDX-License-Identifier: MIT */
/*
 * pmm — the frame pool.  The lowest layer: knows nothing of VMOs.
 *
 * One memfd holds every frame uvmo ever uses.  Its file offsets are carved
 * into *windows*: a window is a run of consecutive file pages ("slots"),
 * slot i of window w being file page w->base + i.  Each VMO gets a window
 * as large as it can grow (sparse: holes cost nothing), so a later mapping
 * of the VMO can be one MAP_SHARED VMA over its window.  The *physmap* is a
 * private MAP_SHARED mapping of the whole file through which calls copy
 * bytes; nothing here ever touches a hole through it (a read fault on a
 * shmem hole would allocate a page behind the accounting's back).
 *
 * Frames and accounting.  A frame is a populated slot.  pmm_frame_alloc
 * charges one frame against the pool limit and populates the slot with a
 * zero page; pmm_frame_free punches it back to the host and uncharges.  The
 * caller (the copy-on-write layer) decides which slots hold frames; pmm
 * only counts them, per window and globally, so the totals can be checked
 * against what the kernel reports for the memfd (pmm_host_bytes).
 *
 * When a charge would pass the limit, pmm calls the reclaim hook once (the
 * copy-on-write layer discards unlocked discardable VMOs there) and retries.
 *
 * Windows are reference counted by the nodes whose frames live in them.  A
 * window's file range returns to the allocator when its last reference is
 * dropped; by then it must hold no frame.
 *
 * Locking: window allocation takes pmm's internal lock, a leaf lock (pmm
 * never calls out while holding it).  Per-window frame counts and window
 * references are protected by the caller's lock: every user of a window
 * belongs to one clone tree and holds that tree's lock.  The global frame
 * counter is atomic.  The reclaim hook is called with no pmm lock held.
 */
#ifndef UVMO_PMM_H
#define UVMO_PMM_H

#include <stdint.h>

#include "base.h"

struct pmm_config {
	uint64_t limit_bytes; /* 0: unlimited */
	uint64_t span_bytes;  /* file offsets reserved for windows */
	int numa_node;        /* -1: local allocation */
};

struct pmm_stats {
	uint64_t limit_bytes;
	uint64_t frames;      /* frames charged now */
	uint64_t peak_frames;
	uint64_t windows;     /* live windows */
	uint64_t host_bytes;  /* st_blocks of the memfd, in bytes */
};

struct pmm_window;

/* Pool life cycle.  pmm_init: -EINVAL (bad span or node), -ENOMEM, or the
 * errno of memfd_create/ftruncate/mmap. */
int pmm_init(const struct pmm_config *cfg);
void pmm_fini(void);
bool pmm_ready(void);

/* Reclaim hook: asked to free at least @pages frames; returns how many it
 * freed.  Called from pmm_frame_alloc with the caller's locks held, so the
 * hook must only trylock anything else. */
void pmm_set_reclaim_hook(uint64_t (*hook)(uint64_t pages));

/*
 * A thread may name a better way to fill holes for a while: the fault
 * engine installs pages straight into the faulting mapping
 * (UFFDIO_COPY / UFFDIO_ZEROPAGE), which fills the slot and maps it in one
 * step.  @fill returns 0 if it filled [pg, pg + n) of @w with copies of the
 * pages at @src (NULL: zeros), else an error and pmm fills them itself.
 */
struct pmm_installer {
	int (*fill)(void *ctx, const struct pmm_window *w, uint64_t pg, uint64_t n,
		    const void *src);
	/* Optional: true if @fill would take [pg, pg + n) of @w.  Then
	 * pmm_frame_fill defers such copies and hands each run of them
	 * (consecutive slots from consecutive sources) to @fill in one call:
	 * see pmm_flush_fills. */
	bool (*takes)(void *ctx, const struct pmm_window *w, uint64_t pg, uint64_t n);
	void *ctx;
};
/* Set (or, with NULL, clear) this thread's installer; completes the
 * copies deferred for the old one. */
void pmm_set_installer(const struct pmm_installer *installer);
/* Complete the copies pmm_frame_fill deferred for this thread's installer.
 * Until then their slots are holes that the counts already call frames,
 * and their sources must stay as they are: call it before anything else
 * may look at either (before the caller's lock drops).  The other pmm
 * calls that change slots complete them first by themselves. */
void pmm_flush_fills(void);

/* Called after frames were returned to the pool (so that faults refused
 * for want of memory may be retried).  Must be cheap when idle; runs with
 * the caller's locks held and must not call into pmm. */
void pmm_set_freed_hook(void (*hook)(void));

/* Windows.  A new window holds one reference and no frame. */
int pmm_window_create(uint64_t pages, struct pmm_window **out);
void pmm_window_ref(struct pmm_window *w);
void pmm_window_unref(struct pmm_window *w);
uint64_t pmm_window_pages(const struct pmm_window *w);
uint64_t pmm_window_frames(const struct pmm_window *w);
/* Pool file offset of the window's first slot (for mappings). */
uint64_t pmm_window_file_offset(const struct pmm_window *w);
/* Give the window at least @pages slots.  Moves its frames to a new file
 * range if the old one cannot grow in place; -ENOMEM when the span is full. */
int pmm_window_grow(struct pmm_window *w, uint64_t pages);

/* Physmap address of slot @pg of @w.  Only for slots that hold a frame. */
void *pmm_slot_addr(const struct pmm_window *w, uint64_t pg);

/* Charge and populate @n zero frames at slots [pg, pg + n) of @w, which
 * must be holes.  All or nothing: -ENOMEM at the pool limit (after the
 * reclaim hook had its chance) or when the host is out of memory. */
int pmm_frame_alloc(struct pmm_window *w, uint64_t pg, uint64_t n);
/* pmm_frame_alloc in two steps, for a caller that populates with its own
 * lock dropped: pmm_frame_charge counts @n frames against the limit and
 * in @w (caller's lock held; -ENOMEM as pmm_frame_alloc); the caller
 * populates them with pmm_frame_populate (zero pages, through the
 * thread's installer if it has one; no lock needed: it touches no count),
 * and on its failure gives them back with pmm_frame_free. */
int pmm_frame_charge(struct pmm_window *w, uint64_t n);
int pmm_frame_populate(const struct pmm_window *w, uint64_t pg, uint64_t n);
/* Charge one frame at hole @pg of @w and fill it with the page at @src,
 * atomically: no mapping of the slot ever sees it half-written.  Draws on
 * the thread's reservation first.  -ENOMEM at the limit.  A copy the
 * thread's installer takes may be deferred (see pmm_flush_fills). */
int pmm_frame_fill(struct pmm_window *w, uint64_t pg, const void *src);
/* Reserve @n frames for this thread's next allocations, so that an
 * operation needing several frames fails before it starts (-ENOMEM, with
 * the reclaim hook's help as for pmm_frame_alloc) instead of half-way.
 * pmm_frame_alloc draws on the reservation first; pmm_unreserve returns
 * what is left.  One reservation per thread at a time. */
int pmm_reserve(uint64_t n);
void pmm_unreserve(void);
/* Punch frames [pg, pg + n) of @w back to the host and uncharge them. */
void pmm_frame_free(struct pmm_window *w, uint64_t pg, uint64_t n);
/* Move one frame's bytes from a slot to a hole elsewhere; the source slot
 * becomes a hole.  Charges nothing (one frame before, one after). */
void pmm_frame_move(struct pmm_window *dst, uint64_t dpg,
		   struct pmm_window *src, uint64_t spg);
/* True if the slot is populated in the memfd (a syscall). */
bool pmm_slot_populated(const struct pmm_window *w, uint64_t pg);
/* The first run of populated slots of @w in [from, end): true and
 * [*first, *last) if there is one (SEEK_DATA / SEEK_HOLE: a syscall each). */
bool pmm_window_data_run(const struct pmm_window *w, uint64_t from, uint64_t end,
			 uint64_t *first, uint64_t *last);
/* Count a frame the kernel put into hole @pg of @w behind uvmo's back (an
 * access through a mapping that was briefly not registered with
 * userfaultfd) as one of @w's: charged even past the limit, since it
 * exists already and may hold a write. */
void pmm_frame_adopt(struct pmm_window *w, uint64_t pg);

/* The pool memfd, for mappings of windows (MAP_SHARED at a window's file
 * offset).  Valid while the pool is up. */
int pmm_fd(void);
/* True if another frame could be charged now without reclaim. */
bool pmm_has_room(void);

/* In a child of fork(): switch to a private copy of the pool (same window
 * offsets).  -ENOMEM or an errno if it cannot be made. */
int pmm_fork_child(void);

void pmm_get_stats(struct pmm_stats *out);
uint64_t pmm_frames_charged(void);

#endif /* UVMO_PMM_H */

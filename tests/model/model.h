/* SPDX-License-Identifier: MIT */
/*
 * The reference model of uvmo's VMO semantics (DESIGN.md section 7).
 *
 * Deliberately simple, so that it is obviously correct: every model VMO is a
 * window onto a flat, malloc'd byte array (a "store").
 *
 *  - A root VMO and every snapshot own a store of exactly their size.
 *  - A snapshot copies its parent's bytes at creation time; the part of the
 *    snapshot past the parent's end is zero.  Copying eagerly is the whole
 *    meaning of SNAPSHOT: later writes on either side cannot be seen by the
 *    other.  SNAPSHOT_AT_LEAST_ON_WRITE of an anonymous parent is the same.
 *  - A slice shares its parent's store (a slice of a slice shares the root's
 *    store), so writes through any of them are seen by all of them.
 *  - Resizing reallocates the store; a grown tail is zero, so a shrink and a
 *    later grow can never bring old bytes back.
 *  - Decommit and zero write zeros; commit changes no content.
 *  - A pager-backed root (model_pager_create) starts out holding what its
 *    pager supplies: model_pager_byte(key, offset) at every offset.  The
 *    differential engine serves it with a pager thread that supplies exactly
 *    that, so when a page is supplied does not matter.  A slice of one is a
 *    slice as above.
 *  - An at-least-on-write child of a pager-backed VMO (model_follow) has no
 *    copy of anything at first: every page it has not written (or zeroed, or
 *    committed) reads the parent's *current* content, so later parent writes
 *    show through.  Its first write of a page copies the parent's current
 *    content of that page and keeps it from then on.  Past the parent's end,
 *    or past a size it shrank to, it reads zero (growing never reveals the
 *    parent again).  A closed parent lives on in the model while children
 *    follow it.
 *  - A discardable VMO is discarded only when the pool runs short, which the
 *    model cannot foresee: the test observes it (UVMO_INFO_DISCARDED) and
 *    tells the model with model_discard.  From then on content calls fail
 *    with -ENOENT until LOCK, which returns 1 and leaves the VMO zero-filled.
 *
 * Two layers:
 *  - model_* primitives implement the content semantics and assume valid
 *    arguments (they assert them);
 *  - model_api_* functions mirror the public uvmo calls one for one: they
 *    check arguments as include/uvmo/uvmo.h documents and return the errno
 *    uvmo must return, then apply the primitive.  Where several errors apply
 *    at once the header does not fix an order, so the differential engine
 *    only generates calls with at most one fault.
 */
#ifndef UVMO_TESTS_MODEL_H
#define UVMO_TESTS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Generations of live snapshots of snapshots the model tracks. */
#define MODEL_SNAP_CHAIN 8u
/* Generations of clones of any kind (create_child, live snapshots). */
#define MODEL_CLONE_CHAIN 32u

/* Bytes shared by a VMO and all slices of it. */
struct model_store {
	uint8_t *bytes;
	uint64_t size;
	unsigned refs; /* VMOs (the owner and its slices) using these bytes */
};

struct model_vmo {
	struct model_store *store;
	uint64_t start; /* where this VMO's byte 0 lies in the store */
	uint64_t size;
	bool resizable;
	bool discardable;
	bool slice;
	bool snapshot;  /* created as a copy-on-write child */
	bool no_write;
	unsigned lock_count; /* discardable only */
	bool discarded;      /* discardable only: content gone until LOCK */
	uint64_t uid;        /* unique model identity, never reused */
	/* A live snapshot (uvmo_vmo_snapshot) remembers whom it may restore:
	 * snap_of[0] is the VMO it was taken of, snap_of[1] that VMO's own
	 * origin if it was a live snapshot too, and so on (the contract: "a
	 * snapshot of @vmo, or a snapshot of one of those"). */
	uint64_t snap_of[MODEL_SNAP_CHAIN];
	unsigned snap_chain; /* entries used; 0: not a live snapshot */
	/* pager-backed trees */
	bool pager;          /* a pager-backed root, or a slice or at-least-on-write child of one */
	struct model_vmo *follow; /* at-least-on-write child: the parent it follows */
	uint64_t follow_offset;   /* where this VMO's byte 0 lies in @follow */
	uint64_t follow_limit;    /* bytes [0, follow_limit) may show @follow; never grows */
	uint8_t *owned;           /* per page: 1 once this child has its own copy */
	unsigned followers;       /* at-least-on-write children following this VMO */
	bool closed;              /* handle closed; kept while followers remain */
	/* Every VMO this one was made from, by create_child of any type or by a
	 * live snapshot, nearest first (clone_truncated: more than fit). */
	uint64_t clone_of[MODEL_CLONE_CHAIN];
	unsigned clone_chain;
	bool clone_truncated;
};

/* ---- content primitives (arguments must be valid) ---------------------- */

struct model_vmo *model_create(uint64_t size, bool resizable);
/* Copy of parent[offset, offset + size); the part past parent's end is zero. */
struct model_vmo *model_snapshot(const struct model_vmo *parent, uint64_t offset,
				 uint64_t size);
/* Alias of parent[offset, offset + size); must lie inside the parent. */
struct model_vmo *model_slice(struct model_vmo *parent, uint64_t offset, uint64_t size);
void model_read(const struct model_vmo *m, uint64_t offset, void *buf, uint64_t len);
void model_write(struct model_vmo *m, uint64_t offset, const void *buf, uint64_t len);
void model_zero(struct model_vmo *m, uint64_t offset, uint64_t len);
void model_decommit(struct model_vmo *m, uint64_t offset, uint64_t len);
void model_commit(struct model_vmo *m, uint64_t offset, uint64_t len);
void model_resize(struct model_vmo *m, uint64_t size);
void model_close(struct model_vmo *m);
/* The pool discarded this (discardable, unlocked) VMO: its bytes are gone. */
void model_discard(struct model_vmo *m);
uint64_t model_size(const struct model_vmo *m);
/* The byte a pager-backed root created with @key holds at @offset until
 * written: what the differential engine's pager thread supplies. */
uint8_t model_pager_byte(uint64_t key, uint64_t offset);
/* A pager-backed root of @size bytes holding model_pager_byte(key, .). */
struct model_vmo *model_pager_create(uint64_t size, bool resizable, uint64_t key);
/* An at-least-on-write child of parent[offset, offset + size) (parent in a
 * pager-backed tree, never resized while followed). */
struct model_vmo *model_follow(struct model_vmo *parent, uint64_t offset, uint64_t size);

/* ---- the public contract (returns 0 / count, or the expected -errno) ---- */

int model_api_create(uint64_t size, uint32_t options, struct model_vmo **out);
/* uvmo_pager_create_vmo (options: RESIZABLE, TRAP_DIRTY); @key as given. */
int model_api_pager_create(uint64_t size, uint32_t options, uint64_t key,
			   struct model_vmo **out);
int model_api_create_child(struct model_vmo *parent, uint32_t options, uint64_t offset,
			   uint64_t size, struct model_vmo **out);
int model_api_read(const struct model_vmo *m, void *buf, uint64_t offset, size_t len);
int model_api_write(struct model_vmo *m, const void *buf, uint64_t offset, size_t len);
int model_api_set_size(struct model_vmo *m, uint64_t size);
int model_api_op_range(struct model_vmo *m, uint32_t op, uint64_t offset, uint64_t len);
/*
 * Live snapshots (uvmo_vmo_snapshot / _restore / _diff).  A snapshot is an
 * eager copy of the whole VMO, NO_WRITE, flagged as a snapshot, resizable
 * if the VMO is (so uvmo reports it; it cannot resize it).  Restore
 * copies the snapshot's bytes (and, for a resizable VMO, its size) back.
 * Diff compares pages byte by byte where uvmo's tree cannot tell, so a
 * page is reported exactly when its bytes differ: model_api_diff states
 * the errno, model_ranges_equal whether a page must be reported.
 */
int model_api_snapshot(struct model_vmo *m, struct model_vmo **out);
int model_api_restore(struct model_vmo *m, const struct model_vmo *snap);
int model_api_diff(const struct model_vmo *m, const struct model_vmo *snap, uint64_t offset,
		   uint64_t len, bool out_null, size_t max);
/* The same, with the question "is @snap a snapshot of @m" answered by the
 * caller (see model_is_clone_of). */
int model_api_restore_lineage(struct model_vmo *m, const struct model_vmo *snap, bool is_snapshot);
int model_api_diff_lineage(const struct model_vmo *m, const struct model_vmo *snap,
			   uint64_t offset, uint64_t len, bool out_null, size_t max,
			   bool is_snapshot);
/* Is @snap a live snapshot of @m, or a live snapshot of one of those? */
bool model_is_snapshot_of(const struct model_vmo *snap, const struct model_vmo *m);
/* Was @c made from @m, through any chain of create_child and live
 * snapshots?  Where @c is such a clone but no live snapshot of @m (say a
 * SNAPSHOT child made with create_child, or a live snapshot of one), the
 * header leaves open whether it counts as "a snapshot of @vmo": a restore
 * or diff may accept it or refuse it with -EINVAL. */
bool model_is_clone_of(const struct model_vmo *c, const struct model_vmo *m);
/* Do @a and @b hold the same bytes in [offset, offset + len) (in both)? */
bool model_ranges_equal(const struct model_vmo *a, const struct model_vmo *b, uint64_t offset,
			uint64_t len);

/* The UVMO_INFO_* flags uvmo_vmo_get_info must report. */
uint32_t model_info_flags(const struct model_vmo *m);

#endif /* UVMO_TESTS_MODEL_H */

/* SPDX-License-Identifier: MIT */
/*
 * api — the public entry points: argument checks, handles, run-time
 * settings.  Sits on top of cow and pmm; nothing below includes this.
 *
 * A public uvmo_vmo_t * is not a pointer but an encoded handle (table index
 * and generation), so a closed or stale handle is recognised (-EBADF)
 * instead of being dereferenced.  The handle table holds one reference to
 * each VMO object; every call holds another while it runs, so a concurrent
 * close never frees an object under a call.
 */
#ifndef UVMO_API_H
#define UVMO_API_H

#include <stdatomic.h>
#include <stdint.h>

#include <uvmo/uvmo.h>

#include "cow/cow.h"

/* What every handle-reachable object starts with. */
enum handle_type { HANDLE_VMO = 1, HANDLE_VMAR = 2, HANDLE_PAGER = 3 };
struct handle_obj {
	_Atomic uint32_t refs;
	enum handle_type type;
	void (*destroy)(struct handle_obj *obj); /* when refs reach 0 */
	bool internal; /* held by uvmo itself (pager_vmo_keep): not in handle_count */
};

struct uvmo_vmo {
	struct handle_obj hdr;
	struct cow_node *node;  /* one reference */
	uint64_t offset;        /* slice: start of the window in node */
	uint64_t slice_size;    /* slice: fixed size */
	bool slice;
	bool no_write;
	bool snapshot;
	bool source_kept;       /* node reference is its pager's own (cow_pager_keep) */
	uint64_t id;
	uint64_t parent_id;
	/* Live children, counted in a block of its own so that a child keeps
	 * its creator's counter alive, not the creator itself. */
	struct child_count *children;        /* ours; one reference */
	struct child_count *creator_children; /* the creator's; one reference */
	/* uvmo_vmo_snapshot: the ids of the VMOs this is a snapshot of (its
	 * origin, and what that was a snapshot of), for restore and diff. */
	uint64_t *snapshot_of;
	uint32_t snapshot_of_len;
};

struct child_count {
	_Atomic uint32_t refs;
	_Atomic uint32_t live;
};

struct child_count *child_count_new(void);
void child_count_put(struct child_count *c);

/* runtime.c */
int api_ensure_init(void);
uint64_t api_resizable_window(void);
uint64_t api_next_id(void);

/*
 * Hooks of a layer built on the public API above this one (the file pager,
 * src/pager/file.c), which owns a thread and must be stopped before the
 * handles it uses are closed.  One set; registering again replaces it.
 *  - shutdown: first thing in uvmo_shutdown, under init_lock, while every
 *    handle is still valid;
 *  - fork_prepare: after init_lock is taken, before uvmo's own locks;
 *  - fork_parent / fork_child: after uvmo's own handlers, init_lock
 *    released (the child may then make uvmo calls; it has one thread).
 * Any member may be NULL.
 */
struct api_layer_hooks {
	void (*shutdown)(void);
	void (*fork_prepare)(void);
	void (*fork_parent)(void);
	void (*fork_child)(void);
};
void api_set_layer_hooks(const struct api_layer_hooks *hooks);

/* handle.c */
int handle_install(struct handle_obj *obj, void **out);
/* The object of that type with a reference taken for the call, or NULL
 * (stale handle, or a handle of another type). */
struct handle_obj *handle_get(const void *h, enum handle_type type);
/* Remove the handle; returns the table's reference, or NULL. */
struct handle_obj *handle_remove(const void *h, enum handle_type type);
void obj_get(struct handle_obj *obj);
void obj_put(struct handle_obj *obj);
/* Remove every handle (shutdown); returns how many were open. */
uint64_t handle_close_all(void);
uint64_t handle_count(enum handle_type type);
/* Held across fork() so the child finds the table consistent. */
void handle_table_lock(void);
void handle_table_unlock(void);

/* vmar.c */
int api_vmar_init(void);
void api_vmar_fini(void);

/* vmo.c */
void vmo_destroy(struct handle_obj *obj);
static inline void vmo_put(struct uvmo_vmo *obj)
{
	obj_put(&obj->hdr);
}
/* The VMO object of a handle, referenced, or NULL with *rc set. */
struct uvmo_vmo *vmo_from_handle(uvmo_vmo_t *h, int *rc);
/* Runs of pages handed out in struct uvmo_dirty_range arrays (pager dirty
 * ranges, diffs): the emit callback of cow's range reports. */
struct range_sink {
	struct uvmo_dirty_range *out;
	size_t max, stored;
};
bool range_sink_store(void *arg, uint64_t off, uint64_t len, bool zero);

/* A handle for @node, taking over the caller's reference (dropped on
 * failure). */
int vmo_publish_node(struct cow_node *node, uvmo_vmo_t **out);
/* pager_vmo_keep: an internal handle to the VMO of @src (not a slice)
 * holding its paged root's source reference (cow_pager_keep). */
int vmo_publish_source_kept(struct uvmo_vmo *src, uvmo_vmo_t **out);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * vmo.c — the public VMO calls.  Order of checks, so that every bad input
 * gets the same answer whatever else is wrong with it: the handle (-EBADF),
 * the arguments' form (-EINVAL), what the object supports (-ENOTSUP), the
 * handle's rights (-EACCES), then ranges (-ERANGE) — the last under the
 * tree lock in cow, since sizes change.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "uffd/uffd.h"

#define CREATE_OPTIONS (UVMO_VMO_RESIZABLE | UVMO_VMO_DISCARDABLE)
#define CHILD_TYPES (UVMO_CHILD_SNAPSHOT | UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE | \
		     UVMO_CHILD_SNAPSHOT_MODIFIED | UVMO_CHILD_SLICE)
#define CHILD_OPTIONS (CHILD_TYPES | UVMO_CHILD_RESIZABLE | UVMO_CHILD_NO_WRITE)

/* Look the handle up, initialising on first use.  Sets rc. */
struct uvmo_vmo *vmo_from_handle(uvmo_vmo_t *h, int *rc)
{
	if (!h) {
		*rc = -EINVAL;
		return NULL;
	}
	*rc = api_ensure_init();
	if (*rc < 0)
		return NULL;
	struct handle_obj *obj = handle_get(h, HANDLE_VMO);
	if (!obj)
		*rc = -EBADF;
	return (struct uvmo_vmo *)obj;
}


/* A public call on a VMO: its object, with the address-space lock held
 * for reading (see uffd_enter), or NULL with *rc set. */
static struct uvmo_vmo *enter(uvmo_vmo_t *h, int *rc)
{
	struct uvmo_vmo *obj = vmo_from_handle(h, rc);
	if (obj)
		uffd_enter();
	return obj;
}

static void leave(struct uvmo_vmo *obj)
{
	vmo_put(obj); /* may end the node: still under the lock */
	uffd_leave();
}

void vmo_destroy(struct handle_obj *hobj)
{
	struct uvmo_vmo *obj = (struct uvmo_vmo *)hobj;

	if (obj->source_kept)
		cow_pager_unkeep(obj->node);
	else
		cow_node_unref(obj->node);
	if (obj->creator_children) {
		atomic_fetch_sub(&obj->creator_children->live, 1);
		child_count_put(obj->creator_children);
	}
	child_count_put(obj->children);
	free(obj->snapshot_of);
	free(obj);
}

static uint64_t obj_size(struct uvmo_vmo *obj)
{
	return obj->slice ? obj->slice_size : cow_size(obj->node);
}

/* Slices check their fixed window here; everything else in cow. */
static int slice_range(struct uvmo_vmo *obj, uint64_t off, uint64_t len)
{
	if (range_overflows(off, len))
		return -ERANGE;
	if (obj->slice && off + len > obj->slice_size)
		return -ERANGE;
	return 0;
}

/* A new object for @node, not yet reachable through any handle. */
static struct uvmo_vmo *new_object(struct cow_node *node)
{
	struct uvmo_vmo *obj = calloc(1, sizeof(*obj));
	if (!obj)
		return NULL;
	obj->children = child_count_new();
	if (!obj->children) {
		free(obj);
		return NULL;
	}
	atomic_init(&obj->hdr.refs, 1);
	obj->hdr.type = HANDLE_VMO;
	obj->hdr.destroy = vmo_destroy;
	obj->node = node;
	obj->id = api_next_id();
	return obj;
}

/* Publish a fully built object.  On failure the object and its node
 * reference (and creator reference) are dropped. */
static int publish(struct uvmo_vmo *obj, uvmo_vmo_t **out)
{
	int rc = handle_install(&obj->hdr, (void **)out);
	if (rc < 0)
		vmo_put(obj);
	return rc;
}

int vmo_publish_node(struct cow_node *node, uvmo_vmo_t **out)
{
	struct uvmo_vmo *obj = new_object(node);
	if (!obj) {
		cow_node_unref(node);
		return -ENOMEM;
	}
	return publish(obj, out);
}

int vmo_publish_source_kept(struct uvmo_vmo *src, uvmo_vmo_t **out)
{
	struct uvmo_vmo *obj = new_object(src->node);
	if (!obj)
		return -ENOMEM;
	int rc = cow_pager_keep(src->node);
	if (rc < 0) {
		/* No node reference to drop with it. */
		child_count_put(obj->children);
		free(obj);
		return rc;
	}
	obj->source_kept = true;
	obj->hdr.internal = true;
	obj->no_write = src->no_write;
	obj->id = src->id; /* the same VMO */
	return publish(obj, out);
}

static void set_creator(struct uvmo_vmo *child, struct uvmo_vmo *parent)
{
	child->parent_id = parent->id;
	child->creator_children = parent->children;
	atomic_fetch_add(&parent->children->refs, 1);
	atomic_fetch_add(&parent->children->live, 1);
}

UVMO_EXPORT int uvmo_vmo_create(uint64_t size, uint32_t options, uvmo_vmo_t **out)
{
	struct cow_node *node;
	uint32_t flags = 0;
	int rc;

	if (!out || (options & ~CREATE_OPTIONS) ||
	    (options & CREATE_OPTIONS) == CREATE_OPTIONS || !page_aligned(size) ||
	    (size == 0 && !(options & UVMO_VMO_RESIZABLE)))
		return -EINVAL;
	if (size > UVMO_VMO_MAX_SIZE)
		return -ERANGE;
	rc = api_ensure_init();
	if (rc < 0)
		return rc;
	if (options & UVMO_VMO_RESIZABLE)
		flags |= COW_RESIZABLE;
	if (options & UVMO_VMO_DISCARDABLE)
		flags |= COW_DISCARDABLE;
	uint64_t capacity = (options & UVMO_VMO_RESIZABLE)
				    ? max_u64(size, api_resizable_window()) : size;
	uffd_enter();
	rc = cow_create(size, capacity, flags, &node);
	if (rc == 0) {
		struct uvmo_vmo *obj = new_object(node);
		if (obj) {
			rc = publish(obj, out);
		} else {
			cow_node_unref(node);
			rc = -ENOMEM;
		}
	}
	uffd_leave();
	return rc;
}

UVMO_EXPORT void uvmo_vmo_close(uvmo_vmo_t *vmo)
{
	if (!vmo || api_ensure_init() < 0)
		return;
	struct handle_obj *obj = handle_remove(vmo, HANDLE_VMO);
	if (obj) {
		uffd_enter();
		obj_put(obj);
		uffd_leave();
	}
}

/*
 * A call on a pager-backed VMO may need pages the pager has not supplied:
 * cow then returns -EINPROGRESS having changed nothing, and the call sleeps
 * with no lock held (not even the address-space lock, which the pager's
 * own thread may need) and runs again.
 */
static bool pager_answered(int *rc)
{
	if (*rc != -EINPROGRESS)
		return false;
	*rc = cow_wait_sleep();
	return *rc == 0;
}

UVMO_EXPORT int uvmo_vmo_read(uvmo_vmo_t *vmo, void *buf, uint64_t offset, size_t len)
{
	int rc;
	do {
		struct uvmo_vmo *obj = enter(vmo, &rc);
		if (!obj)
			return rc;
		if (!buf && len)
			rc = -EINVAL;
		else if ((rc = slice_range(obj, offset, len)) == 0)
			rc = cow_read(obj->node, buf, obj->offset + offset, len);
		leave(obj);
	} while (pager_answered(&rc));
	return rc;
}

UVMO_EXPORT int uvmo_vmo_write(uvmo_vmo_t *vmo, const void *buf, uint64_t offset,
			       size_t len)
{
	int rc;
	do {
		struct uvmo_vmo *obj = enter(vmo, &rc);
		if (!obj)
			return rc;
		if (!buf && len)
			rc = -EINVAL;
		else if (obj->no_write)
			rc = -EACCES;
		else if ((rc = slice_range(obj, offset, len)) == 0)
			rc = cow_write(obj->node, buf, obj->offset + offset, len);
		leave(obj);
	} while (pager_answered(&rc));
	return rc;
}

UVMO_EXPORT int uvmo_vmo_get_size(uvmo_vmo_t *vmo, uint64_t *size)
{
	int rc;
	if (!size)
		return -EINVAL;
	struct uvmo_vmo *obj = enter(vmo, &rc);
	if (!obj)
		return rc;
	*size = obj_size(obj);
	leave(obj);
	return 0;
}

UVMO_EXPORT int uvmo_vmo_set_size(uvmo_vmo_t *vmo, uint64_t size)
{
	int rc;
	struct uvmo_vmo *obj = enter(vmo, &rc);
	if (!obj)
		return rc;
	if (!page_aligned(size))
		rc = -EINVAL;
	else if (obj->slice || !cow_is_resizable(obj->node))
		rc = -ENOTSUP;
	else if (obj->no_write)
		rc = -EACCES;
	else if (size > UVMO_VMO_MAX_SIZE)
		rc = -ERANGE;
	else
		rc = cow_set_size(obj->node, size);
	leave(obj);
	return rc;
}

static int lock_op(struct uvmo_vmo *obj, uint32_t op, uint64_t offset, uint64_t len)
{
	if (obj->slice || !cow_is_discardable(obj->node))
		return -ENOTSUP;
	/* Locks cover the whole VMO (a discardable VMO cannot be resized). */
	if (offset != 0 || len != cow_size(obj->node))
		return -ERANGE;
	if (op == UVMO_OP_UNLOCK)
		return cow_unlock(obj->node);
	return cow_lock(obj->node, op == UVMO_OP_TRY_LOCK);
}

static int content_op(struct uvmo_vmo *obj, uint32_t op, uint64_t offset, uint64_t len)
{
	int rc;

	if (op == UVMO_OP_DECOMMIT && (!page_aligned(offset) || !page_aligned(len)))
		return -EINVAL;
	if (op == UVMO_OP_DECOMMIT && cow_is_paged(obj->node))
		return -ENOTSUP; /* the pager's content cannot be dropped unasked */
	if (obj->no_write && op != UVMO_OP_DONT_NEED && op != UVMO_OP_ALWAYS_NEED)
		return -EACCES;
	rc = slice_range(obj, offset, len);
	if (rc < 0)
		return rc;
	offset += obj->offset;
	switch (op) {
	case UVMO_OP_COMMIT:
		return cow_commit(obj->node, offset, len);
	case UVMO_OP_DECOMMIT:
	case UVMO_OP_ZERO:
		return cow_zero(obj->node, offset, len);
	default: /* hints: anonymous memory has nothing to evict or pin */
		return cow_check_range(obj->node, offset, len);
	}
}

UVMO_EXPORT int uvmo_vmo_op_range(uvmo_vmo_t *vmo, uint32_t op, uint64_t offset,
				  uint64_t len)
{
	int rc;
	do {
		struct uvmo_vmo *obj = enter(vmo, &rc);
		if (!obj)
			return rc;
		switch (op) {
		case UVMO_OP_LOCK:
		case UVMO_OP_TRY_LOCK:
		case UVMO_OP_UNLOCK:
			rc = lock_op(obj, op, offset, len);
			break;
		case UVMO_OP_COMMIT:
		case UVMO_OP_DECOMMIT:
		case UVMO_OP_ZERO:
		case UVMO_OP_DONT_NEED:
		case UVMO_OP_ALWAYS_NEED:
			rc = content_op(obj, op, offset, len);
			break;
		default:
			rc = -EINVAL;
		}
		leave(obj);
	} while (pager_answered(&rc));
	return rc;
}

static int check_child_args(uint32_t options, uint64_t offset, uint64_t size)
{
	uint32_t type = options & CHILD_TYPES;

	if ((options & ~CHILD_OPTIONS) || type == 0 || (type & (type - 1)))
		return -EINVAL;
	if ((type & UVMO_CHILD_SLICE) && (options & UVMO_CHILD_RESIZABLE))
		return -EINVAL;
	if (!page_aligned(offset) || !page_aligned(size) ||
	    (size == 0 && !(options & UVMO_CHILD_RESIZABLE)))
		return -EINVAL;
	if (range_overflows(offset, size) || size > UVMO_VMO_MAX_SIZE)
		return -ERANGE;
	return 0;
}

static int make_slice(struct uvmo_vmo *parent, uint32_t options, uint64_t offset,
		      uint64_t size, uvmo_vmo_t **out)
{
	if (cow_is_resizable(parent->node))
		return -ENOTSUP;
	if (offset + size > obj_size(parent))
		return -ERANGE;
	/* A slice of a slice is a slice of the real parent. */
	struct uvmo_vmo *obj = new_object(parent->node);
	if (!obj)
		return -ENOMEM;
	cow_node_ref(parent->node);
	obj->slice = true;
	obj->offset = parent->offset + offset;
	obj->slice_size = size;
	obj->no_write = parent->no_write || (options & UVMO_CHILD_NO_WRITE);
	set_creator(obj, parent);
	return publish(obj, out);
}

/*
 * A copy-on-write child of @parent: a SNAPSHOT (any parent), or an
 * AT_LEAST_ON_WRITE / SNAPSHOT_MODIFIED child of a pager-backed VMO.  The
 * child of a slice sees that window of the real parent and nothing past
 * the slice's end.
 */
/* Give @obj the list of VMOs it is a snapshot of: @first (if not 0), then
 * @ids.  -ENOMEM. */
static int set_snapshot_of(struct uvmo_vmo *obj, uint64_t first, const uint64_t *ids,
			   uint32_t len)
{
	uint32_t total = len + (first != 0);
	if (!total)
		return 0;
	obj->snapshot_of = malloc(total * sizeof(*obj->snapshot_of));
	if (!obj->snapshot_of)
		return -ENOMEM;
	if (first)
		obj->snapshot_of[0] = first;
	if (len)
		memcpy(obj->snapshot_of + (first != 0), ids, len * sizeof(*ids));
	obj->snapshot_of_len = total;
	return 0;
}

static int make_cow_child(struct uvmo_vmo *parent, uint32_t options, uint64_t offset,
			  uint64_t size, bool live_snapshot, uvmo_vmo_t **out)
{
	struct cow_node *node;
	uint64_t psize = obj_size(parent);
	uint32_t flags = (options & UVMO_CHILD_RESIZABLE) ? COW_RESIZABLE : 0;
	uint64_t capacity = (options & UVMO_CHILD_RESIZABLE)
				    ? max_u64(size, api_resizable_window()) : size;
	int rc;

	if (offset > psize)
		return -ERANGE;
	if (cow_is_paged(parent->node))
		rc = cow_paged_child(parent->node, parent->offset + offset, size,
				     psize - offset, capacity, flags,
				     options & UVMO_CHILD_SNAPSHOT_MODIFIED, &node);
	else
		rc = cow_snapshot(parent->node, parent->offset + offset, size,
				  psize - offset, capacity, flags, &node);
	if (rc < 0)
		return rc;
	struct uvmo_vmo *obj = new_object(node);
	if (!obj) {
		cow_node_unref(node);
		return -ENOMEM;
	}
	obj->snapshot = true;
	obj->no_write = options & UVMO_CHILD_NO_WRITE;
	set_creator(obj, parent);
	/* uvmo_vmo_snapshot: what it is a snapshot of, for restore and diff. */
	if (live_snapshot &&
	    set_snapshot_of(obj, parent->id, parent->snapshot_of, parent->snapshot_of_len) < 0) {
		vmo_put(obj);
		return -ENOMEM;
	}
	return publish(obj, out);
}

UVMO_EXPORT int uvmo_vmo_create_child(uvmo_vmo_t *parent, uint32_t options,
				      uint64_t offset, uint64_t size, uvmo_vmo_t **out)
{
	int rc;

	if (!out)
		return -EINVAL;
	struct uvmo_vmo *pobj = enter(parent, &rc);
	if (!pobj)
		return rc;
	rc = check_child_args(options, offset, size);
	if (rc == 0 && cow_is_discardable(pobj->node))
		rc = -ENOTSUP;
	if (rc == 0 && !(options & UVMO_CHILD_SLICE) &&
	    ((cow_is_paged(pobj->node) && (options & UVMO_CHILD_SNAPSHOT)) ||
	     cow_is_paged_child(pobj->node)))
		rc = -ENOTSUP; /* see uvmo.h: clones of pager-backed VMOs */
	if (rc == 0) {
		/* AT_LEAST_ON_WRITE of an anonymous parent: the stronger
		 * SNAPSHOT guarantee, as Zircon gives. */
		if (options & UVMO_CHILD_SLICE)
			rc = make_slice(pobj, options, offset, size, out);
		else
			rc = make_cow_child(pobj, options, offset, size, false, out);
	}
	leave(pobj);
	return rc;
}

UVMO_EXPORT int uvmo_vmo_get_info(uvmo_vmo_t *vmo, struct uvmo_vmo_info *info)
{
	struct cow_info ci;
	int rc;

	if (!info)
		return -EINVAL;
	struct uvmo_vmo *obj = enter(vmo, &rc);
	if (!obj)
		return rc;
	cow_get_info(obj->node, obj->offset,
		     obj->slice ? obj->slice_size : UVMO_VMO_MAX_SIZE, &ci);
	memset(info, 0, sizeof(*info));
	info->id = obj->id;
	info->parent_id = obj->parent_id;
	info->size = obj->slice ? obj->slice_size : ci.size;
	info->committed_bytes = ci.committed_bytes;
	info->attributed_bytes = ci.attributed_bytes;
	info->num_children = atomic_load(&obj->children->live);
	info->lock_count = ci.lock_count;
	if (cow_is_resizable(obj->node) && !obj->slice)
		info->flags |= UVMO_INFO_RESIZABLE;
	if (cow_is_discardable(obj->node))
		info->flags |= UVMO_INFO_DISCARDABLE;
	if (obj->slice)
		info->flags |= UVMO_INFO_SLICE;
	if (obj->snapshot)
		info->flags |= UVMO_INFO_SNAPSHOT;
	if (obj->no_write)
		info->flags |= UVMO_INFO_NO_WRITE;
	if (ci.discarded)
		info->flags |= UVMO_INFO_DISCARDED;
	leave(obj);
	return 0;
}

UVMO_EXPORT int uvmo_vmo_duplicate(uvmo_vmo_t *vmo, uvmo_vmo_t **out)
{
	int rc;
	if (!out)
		return -EINVAL;
	struct uvmo_vmo *src = enter(vmo, &rc);
	if (!src)
		return rc;
	struct uvmo_vmo *obj = new_object(src->node);
	if (!obj) {
		rc = -ENOMEM;
	} else {
		cow_node_ref(src->node);
		obj->offset = src->offset;
		obj->slice_size = src->slice_size;
		obj->slice = src->slice;
		obj->no_write = src->no_write;
		obj->snapshot = src->snapshot;
		obj->id = src->id; /* the same VMO */
		obj->parent_id = src->parent_id;
		rc = set_snapshot_of(obj, 0, src->snapshot_of, src->snapshot_of_len);
		if (rc == 0)
			rc = publish(obj, out);
		else
			vmo_put(obj);
	}
	leave(src);
	return rc;
}

/* ---- snapshot, restore, diff of live VMOs ---- */

static bool is_snapshot_of(const struct uvmo_vmo *s, const struct uvmo_vmo *v)
{
	for (uint32_t i = 0; i < s->snapshot_of_len; i++)
		if (s->snapshot_of[i] == v->id)
			return true;
	return false;
}

UVMO_EXPORT int uvmo_vmo_snapshot(uvmo_vmo_t *vmo, uvmo_vmo_t **snap)
{
	int rc;
	if (!snap)
		return -EINVAL;
	struct uvmo_vmo *obj = enter(vmo, &rc);
	if (!obj)
		return rc;
	if (obj->slice || cow_is_discardable(obj->node) || cow_is_paged(obj->node) ||
	    cow_is_paged_child(obj->node))
		rc = -ENOTSUP;
	else
		rc = make_cow_child(obj, UVMO_CHILD_SNAPSHOT | UVMO_CHILD_NO_WRITE |
				   (cow_is_resizable(obj->node) ? UVMO_CHILD_RESIZABLE : 0),
				   0, obj_size(obj), true, snap);
	leave(obj);
	return rc;
}

/* Both objects of a restore or diff, or an error: handles first, then
 * what they are. */
static int enter_pair(uvmo_vmo_t *vmo, uvmo_vmo_t *snap, struct uvmo_vmo **v,
		      struct uvmo_vmo **s)
{
	int rc;
	if (!snap)
		return -EINVAL;
	*v = enter(vmo, &rc);
	if (!*v)
		return rc;
	*s = vmo_from_handle(snap, &rc);
	if (!*s) {
		leave(*v);
		return rc;
	}
	return 0;
}

static void leave_pair(struct uvmo_vmo *v, struct uvmo_vmo *s)
{
	vmo_put(s);
	leave(v);
}

UVMO_EXPORT int uvmo_vmo_restore(uvmo_vmo_t *vmo, uvmo_vmo_t *snap)
{
	struct uvmo_vmo *v, *s;
	int rc = enter_pair(vmo, snap, &v, &s);
	if (rc < 0)
		return rc;
	if (v->slice)
		rc = -ENOTSUP;
	else if (!is_snapshot_of(s, v))
		rc = -EINVAL;
	else if (cow_size(v->node) != cow_size(s->node) && !cow_is_resizable(v->node))
		rc = -EINVAL;
	else if (v->no_write)
		rc = -EACCES;
	else
		rc = cow_restore(v->node, s->node);
	leave_pair(v, s);
	return rc;
}

bool range_sink_store(void *arg, uint64_t off, uint64_t len, bool zero)
{
	struct range_sink *d = arg;
	if (d->stored == d->max)
		return false;
	d->out[d->stored++] = (struct uvmo_dirty_range){
		.offset = off,
		.length = len,
		.options = zero ? UVMO_DIRTY_RANGE_IS_ZERO : 0,
	};
	return true;
}

UVMO_EXPORT int uvmo_vmo_diff(uvmo_vmo_t *vmo, uvmo_vmo_t *snap, uint64_t offset,
			      uint64_t len, struct uvmo_dirty_range *out, size_t max,
			      size_t *actual, size_t *avail)
{
	struct uvmo_vmo *v, *s;
	int rc = enter_pair(vmo, snap, &v, &s);
	if (rc < 0)
		return rc;
	struct range_sink sink = { .out = out, .max = out ? max : 0 };
	uint64_t total = 0;
	if ((!out && max) || !page_aligned(offset) || !page_aligned(len))
		rc = -EINVAL;
	else if (!is_snapshot_of(s, v))
		rc = -EINVAL;
	else
		rc = cow_diff(v->node, s->node, offset, len, range_sink_store, &sink, &total);
	if (rc == 0) {
		if (actual)
			*actual = sink.stored;
		if (avail)
			*avail = (size_t)total;
	}
	leave_pair(v, s);
	return rc;
}

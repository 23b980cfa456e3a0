/* SPDX-License-Identifier: MIT */
/*
 * pager.c — the public pager calls: handles and argument checks on top of
 * the pager module (src/pager/).  Same order of checks as vmo.c: handles
 * (-EBADF), the arguments' form (-EINVAL), then what the VMO is (-ENOENT:
 * not this pager's), then ranges (-ERANGE, in cow).
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "api/api.h"
#include "pager/pager.h"
#include "uffd/uffd.h"

struct uvmo_pager {
	struct handle_obj hdr;
	struct pager *p; /* one reference */
};

static void pager_obj_destroy(struct handle_obj *hobj)
{
	struct uvmo_pager *obj = (struct uvmo_pager *)hobj;
	pager_destroy(obj->p); /* shutdown closes handles this way */
	pager_release(obj->p);
	free(obj);
}

static struct uvmo_pager *pager_from_handle(uvmo_pager_t *h, int *rc)
{
	if (!h) {
		*rc = -EINVAL;
		return NULL;
	}
	*rc = api_ensure_init();
	if (*rc < 0)
		return NULL;
	struct handle_obj *obj = handle_get(h, HANDLE_PAGER);
	if (!obj)
		*rc = -EBADF;
	return (struct uvmo_pager *)obj;
}

static void pager_obj_put(struct uvmo_pager *obj)
{
	obj_put(&obj->hdr);
}

UVMO_EXPORT int uvmo_pager_create(uint32_t options, uvmo_pager_t **out)
{
	if (!out || options)
		return -EINVAL;
	int rc = api_ensure_init();
	if (rc < 0)
		return rc;
	struct uvmo_pager *obj = calloc(1, sizeof(*obj));
	if (!obj)
		return -ENOMEM;
	rc = pager_create(&obj->p);
	if (rc < 0) {
		free(obj);
		return rc;
	}
	atomic_init(&obj->hdr.refs, 1);
	obj->hdr.type = HANDLE_PAGER;
	obj->hdr.destroy = pager_obj_destroy;
	rc = handle_install(&obj->hdr, (void **)out);
	if (rc < 0)
		pager_obj_put(obj);
	else
		pager_set_handle(obj->p, *out);
	return rc;
}

UVMO_EXPORT void uvmo_pager_destroy(uvmo_pager_t *pager)
{
	if (!pager || api_ensure_init() < 0)
		return;
	struct handle_obj *obj = handle_remove(pager, HANDLE_PAGER);
	if (obj) {
		/* At once, not when the last call in flight returns: a thread
		 * blocked in get_requests must be woken by this. */
		uffd_enter();
		pager_destroy(((struct uvmo_pager *)obj)->p);
		uffd_leave();
		obj_put(obj);
	}
}

UVMO_EXPORT int uvmo_pager_fd(uvmo_pager_t *pager)
{
	int rc;
	struct uvmo_pager *obj = pager_from_handle(pager, &rc);
	if (!obj)
		return rc == -EINVAL ? -EBADF : rc;
	rc = pager_fd(obj->p);
	pager_obj_put(obj);
	return rc;
}

#define PAGER_VMO_OPTIONS (UVMO_VMO_RESIZABLE | UVMO_VMO_TRAP_DIRTY)

UVMO_EXPORT int uvmo_pager_create_vmo(uvmo_pager_t *pager, uint32_t options, uint64_t key,
				      uint64_t size, uvmo_vmo_t **out)
{
	int rc;
	struct uvmo_pager *obj = pager_from_handle(pager, &rc);
	if (!obj)
		return rc;
	if (!out || (options & ~PAGER_VMO_OPTIONS) || !page_aligned(size) ||
	    (size == 0 && !(options & UVMO_VMO_RESIZABLE)))
		rc = -EINVAL;
	else if (size > UVMO_VMO_MAX_SIZE)
		rc = -ERANGE;
	if (rc < 0) {
		pager_obj_put(obj);
		return rc;
	}
	uint32_t flags = 0;
	if (options & UVMO_VMO_RESIZABLE)
		flags |= COW_RESIZABLE;
	if (options & UVMO_VMO_TRAP_DIRTY)
		flags |= COW_TRAP_DIRTY;
	uint64_t capacity = (options & UVMO_VMO_RESIZABLE)
				    ? max_u64(size, api_resizable_window()) : size;
	struct cow_node *node;
	struct pager_vmo *pv;
	uffd_enter();
	rc = pager_create_vmo(obj->p, flags, key, size, capacity, &node, &pv);
	if (rc == 0) {
		rc = vmo_publish_node(node, out);
		if (rc == 0)
			pager_set_ident(pv, *out);
		pager_vmo_put(pv);
	}
	uffd_leave();
	pager_obj_put(obj);
	return rc;
}

UVMO_EXPORT int uvmo_pager_get_requests(uvmo_pager_t *pager, struct uvmo_page_request *reqs,
					size_t max, int timeout_ms)
{
	int rc;
	struct uvmo_pager *obj = pager_from_handle(pager, &rc);
	if (!obj)
		return rc;
	if (!reqs && max)
		rc = -EINVAL;
	else
		rc = pager_get_requests(obj->p, reqs, max, timeout_ms); /* no lock held */
	pager_obj_put(obj);
	return rc;
}

/* The VMO @vmo of @p, referenced: by the handle create_vmo returned (open
 * or closed), or by any other open, non-slice handle of it. */
static struct pager_vmo *resolve_vmo(struct pager *p, uvmo_vmo_t *vmo, int *rc)
{
	if (!vmo) {
		*rc = -EINVAL;
		return NULL;
	}
	struct pager_vmo *pv = pager_find(p, vmo, NULL);
	if (pv)
		return pv;
	struct uvmo_vmo *obj = vmo_from_handle(vmo, rc);
	if (!obj)
		return NULL;
	pv = obj->slice ? NULL : pager_find(p, NULL, obj->node);
	vmo_put(obj);
	if (!pv)
		*rc = -ENOENT;
	return pv;
}

/* The pager and VMO of a call, with the address-space lock held for
 * reading like every call that touches a VMO.  NULL with *rc set. */
static struct pager_vmo *enter_vmo(uvmo_pager_t *pager, uvmo_vmo_t *vmo,
				   struct uvmo_pager **pobj, int *rc)
{
	*pobj = pager_from_handle(pager, rc);
	if (!*pobj)
		return NULL;
	struct pager_vmo *pv = resolve_vmo((*pobj)->p, vmo, rc);
	if (!pv) {
		pager_obj_put(*pobj);
		return NULL;
	}
	uffd_enter();
	return pv;
}

static void leave_vmo(struct uvmo_pager *pobj, struct pager_vmo *pv)
{
	pager_vmo_put(pv);
	uffd_leave();
	pager_obj_put(pobj);
}

static bool range_ok(uint64_t offset, uint64_t len)
{
	return page_aligned(offset) && page_aligned(len);
}

UVMO_EXPORT int uvmo_pager_supply_pages(uvmo_pager_t *pager, uvmo_vmo_t *vmo,
					uint64_t offset, uint64_t len, const void *data)
{
	struct uvmo_pager *pobj;
	int rc;
	struct pager_vmo *pv = enter_vmo(pager, vmo, &pobj, &rc);
	if (!pv)
		return rc;
	rc = range_ok(offset, len) ? pager_supply(pv, offset, len, data) : -EINVAL;
	leave_vmo(pobj, pv);
	return rc;
}

/* Errors a pager may fail a range with (what a call then returns). */
static bool fail_errno_ok(uint64_t err)
{
	switch (err) {
	case EIO: case EINVAL: case ENOMEM: case ENOSPC:
	case EBUSY: case EACCES: case ENOENT:
		return true;
	default:
		return false;
	}
}

UVMO_EXPORT int uvmo_pager_op_range(uvmo_pager_t *pager, uint32_t op, uvmo_vmo_t *vmo,
				    uint64_t offset, uint64_t len, uint64_t data)
{
	struct uvmo_pager *pobj;
	int rc;
	struct pager_vmo *pv = enter_vmo(pager, vmo, &pobj, &rc);
	if (!pv)
		return rc;
	struct cow_node *n = pager_vmo_node(pv);
	if (!range_ok(offset, len)) {
		rc = -EINVAL;
	} else {
		switch (op) {
		case UVMO_PAGER_OP_FAIL:
			rc = fail_errno_ok(data) ? pager_fail(pv, offset, len, (int)data)
						 : -EINVAL;
			break;
		case UVMO_PAGER_OP_DIRTY:
			rc = pager_ack_dirty(pv, offset, len);
			break;
		case UVMO_PAGER_OP_WRITEBACK_BEGIN:
		case UVMO_PAGER_OP_WRITEBACK_BEGIN_ZERO:
			rc = cow_pager_writeback_begin(n, offset, len);
			break;
		case UVMO_PAGER_OP_WRITEBACK_END:
			rc = cow_pager_writeback_end(n, offset, len);
			break;
		case UVMO_PAGER_OP_EVICT: {
			int64_t got = cow_pager_evict(n, offset, len);
			rc = got > INT32_MAX ? INT32_MAX : (int)got;
			break;
		}
		default:
			rc = -EINVAL;
		}
	}
	leave_vmo(pobj, pv);
	return rc;
}

UVMO_EXPORT int uvmo_pager_query_dirty_ranges(uvmo_pager_t *pager, uvmo_vmo_t *vmo,
					      uint64_t offset, uint64_t len,
					      struct uvmo_dirty_range *out, size_t max,
					      size_t *actual, size_t *avail)
{
	struct uvmo_pager *pobj;
	int rc;
	struct pager_vmo *pv = enter_vmo(pager, vmo, &pobj, &rc);
	if (!pv)
		return rc;
	struct range_sink sink = { .out = out, .max = out ? max : 0 };
	uint64_t total = 0;
	if ((!out && max) || !range_ok(offset, len))
		rc = -EINVAL;
	else
		rc = cow_pager_dirty_ranges(pager_vmo_node(pv), offset, len, range_sink_store,
					    &sink, &total);
	if (rc == 0) {
		if (actual)
			*actual = sink.stored;
		if (avail)
			*avail = (size_t)total;
	}
	leave_vmo(pobj, pv);
	return rc;
}

UVMO_EXPORT int uvmo_pager_query_vmo_stats(uvmo_pager_t *pager, uvmo_vmo_t *vmo,
					   uint32_t options, struct uvmo_pager_vmo_stats *out)
{
	struct uvmo_pager *pobj;
	int rc;
	struct pager_vmo *pv = enter_vmo(pager, vmo, &pobj, &rc);
	if (!pv)
		return rc;
	bool modified = false;
	if (!out || (options & ~UVMO_PAGER_RESET_VMO_STATS))
		rc = -EINVAL;
	else
		rc = cow_pager_modified(pager_vmo_node(pv),
					options & UVMO_PAGER_RESET_VMO_STATS, &modified);
	if (rc == 0)
		*out = (struct uvmo_pager_vmo_stats){ .modified = modified };
	leave_vmo(pobj, pv);
	return rc;
}

UVMO_EXPORT int uvmo_pager_detach_vmo(uvmo_pager_t *pager, uvmo_vmo_t *vmo)
{
	struct uvmo_pager *pobj;
	int rc;
	struct pager_vmo *pv = enter_vmo(pager, vmo, &pobj, &rc);
	if (!pv)
		return rc;
	rc = pager_detach(pv);
	leave_vmo(pobj, pv);
	return rc;
}

int pager_vmo_key(uvmo_vmo_t *vmo, uvmo_pager_t **pager, uint64_t *key)
{
	int rc;
	struct uvmo_vmo *obj = vmo_from_handle(vmo, &rc);
	if (!obj)
		return rc;
	rc = -EINVAL;
	struct pager *p = pager_of_node(obj->node);
	struct pager_vmo *pv = p ? pager_find(p, NULL, obj->node) : NULL;
	if (pv) {
		*pager = pager_handle(p);
		*key = pager_vmo_get_key(pv);
		pager_vmo_put(pv);
		rc = 0;
	}
	vmo_put(obj);
	return rc;
}

int pager_vmo_map_directly(uvmo_vmo_t *vmo, int fd)
{
	int rc;
	struct uvmo_vmo *obj = vmo_from_handle(vmo, &rc);
	if (!obj) {
		close(fd);
		return rc;
	}
	if (obj->slice) {
		close(fd);
		rc = -EINVAL;
	} else {
		rc = cow_set_direct_file(obj->node, fd);
	}
	vmo_put(obj);
	return rc;
}

int pager_vmo_keep(uvmo_vmo_t *vmo, uvmo_vmo_t **kept)
{
	int rc;
	struct uvmo_vmo *obj = vmo_from_handle(vmo, &rc);
	if (!obj)
		return rc;
	uffd_enter();
	if (obj->slice || !pager_of_node(obj->node))
		rc = -EINVAL;
	else
		rc = vmo_publish_source_kept(obj, kept);
	vmo_put(obj);
	uffd_leave();
	return rc;
}

/* SPDX-License-Identifier: MIT */
/*
 * vmar.c — the public VMAR calls: handles and arguments; the work is in
 * src/uffd.
 */
#include <errno.h>
#include <stdlib.h>

#include "api/api.h"
#include "uffd/uffd.h"

struct uvmo_vmar {
	struct handle_obj hdr;
	struct vmar *v; /* one reference */
};

static void *root_handle;

static void vmar_obj_destroy(struct handle_obj *obj)
{
	struct uvmo_vmar *h = (struct uvmo_vmar *)obj;
	vmar_put(h->v);
	free(h);
}

static int publish_vmar(struct vmar *v, uvmo_vmar_t **out)
{
	struct uvmo_vmar *h = calloc(1, sizeof(*h));
	if (!h) {
		vmar_put(v);
		return -ENOMEM;
	}
	atomic_init(&h->hdr.refs, 1);
	h->hdr.type = HANDLE_VMAR;
	h->hdr.destroy = vmar_obj_destroy;
	h->v = v;
	int rc = handle_install(&h->hdr, (void **)out);
	if (rc < 0)
		obj_put(&h->hdr);
	return rc;
}

int api_vmar_init(void)
{
	vmar_get(vmar_root());
	return publish_vmar(vmar_root(), (uvmo_vmar_t **)&root_handle);
}

void api_vmar_fini(void)
{
	root_handle = NULL; /* closed with every other handle */
}

static struct uvmo_vmar *vmar_from_handle(uvmo_vmar_t *h, int *rc)
{
	if (!h) {
		*rc = -EINVAL;
		return NULL;
	}
	*rc = api_ensure_init();
	if (*rc < 0)
		return NULL;
	struct handle_obj *obj = handle_get(h, HANDLE_VMAR);
	if (!obj)
		*rc = -EBADF;
	return (struct uvmo_vmar *)obj;
}

UVMO_EXPORT uvmo_vmar_t *uvmo_vmar_root(void)
{
	return api_ensure_init() < 0 ? NULL : root_handle;
}

UVMO_EXPORT int uvmo_vmar_allocate(uvmo_vmar_t *parent, uint32_t options, uint64_t offset,
				   uint64_t size, uvmo_vmar_t **child, void **addr)
{
	struct vmar *v;
	int rc;

	if (!child)
		return -EINVAL;
	struct uvmo_vmar *p = vmar_from_handle(parent, &rc);
	if (!p)
		return rc;
	rc = vmar_allocate(p->v, options, offset, size, &v);
	if (rc == 0) {
		if (addr)
			*addr = (void *)(uintptr_t)vmar_start(v);
		rc = publish_vmar(v, child);
	}
	obj_put(&p->hdr);
	return rc;
}

UVMO_EXPORT int uvmo_vmar_map(uvmo_vmar_t *vmar, uint32_t options, uint64_t vmar_offset,
			      uvmo_vmo_t *vmo, uint64_t vmo_offset, uint64_t len, void **addr)
{
	int rc;

	if (!addr)
		return -EINVAL;
	struct uvmo_vmar *h = vmar_from_handle(vmar, &rc);
	if (!h)
		return rc;
	struct uvmo_vmo *obj = vmo_from_handle(vmo, &rc);
	if (obj) {
		struct map_target t = {
			.node = obj->node,
			.base = obj->offset,
			.limit = obj->slice ? obj->slice_size : 0,
			.writable = !obj->no_write,
		};
		uint64_t at;
		rc = vmar_map(h->v, options, vmar_offset, &t, vmo_offset, len, &at);
		if (rc == 0)
			*addr = (void *)(uintptr_t)at;
		uffd_enter();
		vmo_put(obj);
		uffd_leave();
	}
	obj_put(&h->hdr);
	return rc;
}

UVMO_EXPORT int uvmo_vmar_unmap(uvmo_vmar_t *vmar, void *addr, uint64_t len)
{
	int rc;
	struct uvmo_vmar *h = vmar_from_handle(vmar, &rc);
	if (!h)
		return rc;
	rc = vmar_unmap(h->v, (uint64_t)(uintptr_t)addr, len);
	obj_put(&h->hdr);
	return rc;
}

UVMO_EXPORT int uvmo_vmar_protect(uvmo_vmar_t *vmar, uint32_t options, void *addr,
				  uint64_t len)
{
	int rc;
	struct uvmo_vmar *h = vmar_from_handle(vmar, &rc);
	if (!h)
		return rc;
	rc = vmar_protect(h->v, options, (uint64_t)(uintptr_t)addr, len);
	obj_put(&h->hdr);
	return rc;
}

UVMO_EXPORT int uvmo_vmar_op_range(uvmo_vmar_t *vmar, uint32_t op, void *addr, uint64_t len)
{
	int rc;
	struct uvmo_vmar *h = vmar_from_handle(vmar, &rc);
	if (!h)
		return rc;
	/* COMMIT and MAP_RANGE of a pager-backed VMO may wait for its pager:
	 * with no lock held, then again from the start (each op may be
	 * repeated without harm). */
	do
		rc = vmar_op_range(h->v, op, (uint64_t)(uintptr_t)addr, len);
	while (rc == -EINPROGRESS && (rc = cow_wait_sleep()) == 0);
	obj_put(&h->hdr);
	return rc;
}

UVMO_EXPORT int uvmo_vmar_destroy(uvmo_vmar_t *vmar)
{
	int rc;
	struct uvmo_vmar *h = vmar_from_handle(vmar, &rc);
	if (!h)
		return rc;
	rc = vmar_destroy(h->v);
	obj_put(&h->hdr);
	return rc;
}

UVMO_EXPORT void uvmo_vmar_close(uvmo_vmar_t *vmar)
{
	if (!vmar || vmar == root_handle || api_ensure_init() < 0)
		return;
	struct handle_obj *obj = handle_remove(vmar, HANDLE_VMAR);
	if (obj)
		obj_put(obj);
}

/* SPDX-License-Identifier: MIT */
/*
 * The reference model: see model.h.  Everything here is the plainest code
 * that states the semantics; speed and memory do not matter.
 */
#include "model.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <uvmo/uvmo.h>

static void *xcalloc(size_t n)
{
	/* calloc(0) may return NULL; a zero-size store still needs an object. */
	void *p = calloc(n ? n : 1, 1);

	if (!p)
		abort(); /* the model running out of memory is a test-rig failure */
	return p;
}

static struct model_store *store_new(uint64_t size)
{
	struct model_store *s = xcalloc(sizeof(*s));

	s->bytes = xcalloc(size);
	s->size = size;
	s->refs = 1;
	return s;
}

static struct model_vmo *vmo_new(struct model_store *store, uint64_t start, uint64_t size)
{
	static uint64_t next_uid; /* shared by threads: atomically */
	struct model_vmo *m = xcalloc(sizeof(*m));

	m->uid = __atomic_add_fetch(&next_uid, 1, __ATOMIC_RELAXED);
	m->store = store;
	m->start = start;
	m->size = size;
	return m;
}

static bool in_range(uint64_t offset, uint64_t len, uint64_t size)
{
	/* offset + len must neither overflow nor pass the end. */
	return offset <= size && len <= size - offset;
}

static bool page_aligned(uint64_t x)
{
	return x % UVMO_PAGE_SIZE == 0;
}

/* ---- content primitives ------------------------------------------------ */

struct model_vmo *model_create(uint64_t size, bool resizable)
{
	struct model_vmo *m = vmo_new(store_new(size), 0, size);

	m->resizable = resizable;
	return m;
}

struct model_vmo *model_snapshot(const struct model_vmo *parent, uint64_t offset,
				 uint64_t size)
{
	struct model_vmo *m = vmo_new(store_new(size), 0, size);

	/* Copy what the parent has in the window; the rest stays zero. */
	if (offset < parent->size) {
		uint64_t n = parent->size - offset;

		if (n > size)
			n = size;
		model_read(parent, offset, m->store->bytes, n);
	}
	m->snapshot = true;
	return m;
}

struct model_vmo *model_slice(struct model_vmo *parent, uint64_t offset, uint64_t size)
{
	assert(in_range(offset, size, parent->size));
	assert(!parent->resizable && !parent->follow);
	/* Alias the root's store directly: a slice of a slice sees the root. */
	parent->store->refs++;
	struct model_vmo *m = vmo_new(parent->store, parent->start + offset, size);

	m->slice = true;
	return m;
}

void model_read(const struct model_vmo *m, uint64_t offset, void *buf, uint64_t len)
{
	assert(in_range(offset, len, m->size));
	if (!m->follow) {
		if (len)
			memcpy(buf, m->store->bytes + m->start + offset, len);
		return;
	}
	/* Page by page: the child's own copy, else the parent's current
	 * content (inside the followed window), else zero. */
	uint8_t *out = buf;

	while (len) {
		uint64_t page = offset / UVMO_PAGE_SIZE;
		uint64_t n = UVMO_PAGE_SIZE - offset % UVMO_PAGE_SIZE;

		if (n > len)
			n = len;
		if (m->owned[page])
			memcpy(out, m->store->bytes + offset, n);
		else if (offset < m->follow_limit)
			model_read(m->follow, m->follow_offset + offset, out, n);
		else
			memset(out, 0, n);
		out += n;
		offset += n;
		len -= n;
	}
}

/* An at-least-on-write child takes its own copy of the pages of the range
 * (the parent's current content) before it changes them. */
static void own_pages(struct model_vmo *m, uint64_t offset, uint64_t len)
{
	if (!m->follow || !len)
		return;
	for (uint64_t page = offset / UVMO_PAGE_SIZE;
	     page <= (offset + len - 1) / UVMO_PAGE_SIZE; page++) {
		if (m->owned[page])
			continue;
		model_read(m, page * UVMO_PAGE_SIZE, m->store->bytes + page * UVMO_PAGE_SIZE,
			   UVMO_PAGE_SIZE);
		m->owned[page] = 1;
	}
}

void model_write(struct model_vmo *m, uint64_t offset, const void *buf, uint64_t len)
{
	assert(in_range(offset, len, m->size));
	own_pages(m, offset, len);
	if (len)
		memcpy(m->store->bytes + m->start + offset, buf, len);
}

void model_zero(struct model_vmo *m, uint64_t offset, uint64_t len)
{
	assert(in_range(offset, len, m->size));
	own_pages(m, offset, len);
	memset(m->store->bytes + m->start + offset, 0, len);
}

void model_decommit(struct model_vmo *m, uint64_t offset, uint64_t len)
{
	/* Content-wise, decommit is a page-aligned zero. */
	assert(page_aligned(offset) && page_aligned(len));
	model_zero(m, offset, len);
}

void model_commit(struct model_vmo *m, uint64_t offset, uint64_t len)
{
	/* Commit only allocates frames; the bytes do not change.  But the
	 * frames are this VMO's own: an at-least-on-write child stops
	 * following its parent there (a commit is a write that keeps the
	 * bytes). */
	assert(in_range(offset, len, m->size));
	own_pages(m, offset, len);
}

void model_resize(struct model_vmo *m, uint64_t size)
{
	/* Resizable VMOs are never slices and never have slices. */
	assert(m->resizable && !m->slice && m->store->refs == 1 && m->start == 0);
	uint8_t *bytes = xcalloc(size);
	uint64_t keep = size < m->size ? size : m->size;

	/* A fresh zeroed array: whatever lay past the old end is gone for good. */
	memcpy(bytes, m->store->bytes, keep);
	free(m->store->bytes);
	m->store->bytes = bytes;
	m->store->size = size;
	if (m->follow) {
		uint8_t *owned = xcalloc(size / UVMO_PAGE_SIZE);

		memcpy(owned, m->owned, keep / UVMO_PAGE_SIZE);
		free(m->owned);
		m->owned = owned;
		/* Cut pages never show the parent again. */
		if (m->follow_limit > size)
			m->follow_limit = size;
	}
	m->size = size;
}

static void model_free(struct model_vmo *m)
{
	struct model_vmo *parent = m->follow;

	if (--m->store->refs == 0) {
		free(m->store->bytes);
		free(m->store);
	}
	free(m->owned);
	free(m);
	if (parent && --parent->followers == 0 && parent->closed)
		model_free(parent);
}

void model_close(struct model_vmo *m)
{
	if (!m)
		return;
	if (m->followers) {
		m->closed = true; /* its children still show its content */
		return;
	}
	model_free(m);
}

void model_discard(struct model_vmo *m)
{
	assert(m->discardable && m->lock_count == 0 && !m->slice);
	memset(m->store->bytes, 0, m->size);
	m->discarded = true;
}

uint64_t model_size(const struct model_vmo *m)
{
	return m->size;
}

uint8_t model_pager_byte(uint64_t key, uint64_t offset)
{
	uint64_t x = (key + 1) * 0xd1342543de82ef95ull ^ (offset / UVMO_PAGE_SIZE) * 0x9e3779b97f4a7c15ull;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return (uint8_t)(x + offset % UVMO_PAGE_SIZE * 7);
}

struct model_vmo *model_pager_create(uint64_t size, bool resizable, uint64_t key)
{
	struct model_vmo *m = model_create(size, resizable);

	for (uint64_t i = 0; i < size; i++)
		m->store->bytes[i] = model_pager_byte(key, i);
	m->pager = true;
	return m;
}

struct model_vmo *model_follow(struct model_vmo *parent, uint64_t offset, uint64_t size)
{
	assert(page_aligned(offset) && page_aligned(size) && !parent->resizable);
	struct model_vmo *m = vmo_new(store_new(size), 0, size);

	m->follow = parent;
	parent->followers++;
	m->follow_offset = offset;
	m->follow_limit = offset < parent->size ? parent->size - offset : 0;
	if (m->follow_limit > size)
		m->follow_limit = size;
	m->owned = xcalloc(size / UVMO_PAGE_SIZE);
	m->pager = true;
	m->snapshot = true;
	return m;
}

/* @child was made from @parent: it inherits the lineage. */
static void inherit_lineage(struct model_vmo *child, const struct model_vmo *parent)
{
	child->clone_of[0] = parent->uid;
	child->clone_chain = 1;
	child->clone_truncated = parent->clone_truncated;
	for (unsigned i = 0; i < parent->clone_chain; i++) {
		if (child->clone_chain == MODEL_CLONE_CHAIN) {
			child->clone_truncated = true;
			break;
		}
		child->clone_of[child->clone_chain++] = parent->clone_of[i];
	}
}

/* ---- the public contract ----------------------------------------------- */

int model_api_create(uint64_t size, uint32_t options, struct model_vmo **out)
{
	const uint32_t known = UVMO_VMO_RESIZABLE | UVMO_VMO_DISCARDABLE;

	if (!out || (options & ~known) || options == known)
		return -EINVAL;
	if (!page_aligned(size))
		return -EINVAL;
	if (size == 0 && !(options & UVMO_VMO_RESIZABLE))
		return -EINVAL;
	if (size > UVMO_VMO_MAX_SIZE)
		return -ERANGE;
	*out = model_create(size, options & UVMO_VMO_RESIZABLE);
	(*out)->discardable = options & UVMO_VMO_DISCARDABLE;
	return 0;
}

int model_api_pager_create(uint64_t size, uint32_t options, uint64_t key,
			   struct model_vmo **out)
{
	const uint32_t known = UVMO_VMO_RESIZABLE | UVMO_VMO_TRAP_DIRTY;

	if (!out || (options & ~known))
		return -EINVAL;
	if (!page_aligned(size))
		return -EINVAL;
	if (size == 0 && !(options & UVMO_VMO_RESIZABLE))
		return -EINVAL;
	if (size > UVMO_VMO_MAX_SIZE)
		return -ERANGE;
	*out = model_pager_create(size, options & UVMO_VMO_RESIZABLE, key);
	return 0;
}

int model_api_create_child(struct model_vmo *parent, uint32_t options, uint64_t offset,
			   uint64_t size, struct model_vmo **out)
{
	const uint32_t types = UVMO_CHILD_SNAPSHOT | UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE |
			       UVMO_CHILD_SNAPSHOT_MODIFIED | UVMO_CHILD_SLICE;
	const uint32_t modifiers = UVMO_CHILD_RESIZABLE | UVMO_CHILD_NO_WRITE;
	uint32_t type = options & types;

	if (!parent || !out || (options & ~(types | modifiers)))
		return -EINVAL;
	if (__builtin_popcount(type) != 1)
		return -EINVAL;
	if (type == UVMO_CHILD_SLICE && (options & UVMO_CHILD_RESIZABLE))
		return -EINVAL;
	if (!page_aligned(offset) || !page_aligned(size) || size == 0)
		return -EINVAL;
	if (size > UVMO_VMO_MAX_SIZE || offset > UINT64_MAX - size)
		return -ERANGE;
	if (parent->discardable)
		return -ENOTSUP;
	/* Pager-backed trees refuse plain snapshots (as Zircon does). */
	if (type == UVMO_CHILD_SNAPSHOT && parent->pager)
		return -ENOTSUP;

	struct model_vmo *child;

	if (type == UVMO_CHILD_SLICE) {
		if (parent->resizable)
			return -ENOTSUP;
		if (!in_range(offset, size, parent->size))
			return -ERANGE;
		child = model_slice(parent, offset, size);
		/* A slice can never write more than its parent. */
		child->no_write = parent->no_write;
		child->pager = parent->pager;
	} else if (parent->pager) {
		if (offset > parent->size)
			return -ERANGE;
		/* SNAPSHOT_MODIFIED would need the parent's modified pages,
		 * which the model does not track: the engine never makes one,
		 * and it is modelled (wrongly for modified pages) as
		 * at-least-on-write. */
		child = model_follow(parent, offset, size);
		child->resizable = options & UVMO_CHILD_RESIZABLE;
	} else {
		if (offset > parent->size)
			return -ERANGE;
		/* Anonymous parents: at-least-on-write and snapshot-modified
		 * are plain snapshots. */
		child = model_snapshot(parent, offset, size);
		child->resizable = options & UVMO_CHILD_RESIZABLE;
	}
	if (options & UVMO_CHILD_NO_WRITE)
		child->no_write = true;
	inherit_lineage(child, parent);
	*out = child;
	return 0;
}

int model_api_read(const struct model_vmo *m, void *buf, uint64_t offset, size_t len)
{
	if (!m || (!buf && len))
		return -EINVAL;
	if (!in_range(offset, len, m->size))
		return -ERANGE;
	if (m->discarded)
		return -ENOENT;
	model_read(m, offset, buf, len);
	return 0;
}

int model_api_write(struct model_vmo *m, const void *buf, uint64_t offset, size_t len)
{
	if (!m || (!buf && len))
		return -EINVAL;
	if (!in_range(offset, len, m->size))
		return -ERANGE;
	if (m->no_write)
		return -EACCES;
	if (m->discarded)
		return -ENOENT;
	model_write(m, offset, buf, len);
	return 0;
}

int model_api_set_size(struct model_vmo *m, uint64_t size)
{
	if (!m)
		return -EINVAL;
	if (!m->resizable || m->slice)
		return -ENOTSUP;
	if (!page_aligned(size))
		return -EINVAL;
	if (size > UVMO_VMO_MAX_SIZE)
		return -ERANGE;
	if (m->no_write)
		return -EACCES;
	model_resize(m, size);
	return 0;
}

int model_api_op_range(struct model_vmo *m, uint32_t op, uint64_t offset, uint64_t len)
{
	if (!m)
		return -EINVAL;
	switch (op) {
	case UVMO_OP_LOCK:
	case UVMO_OP_TRY_LOCK:
	case UVMO_OP_UNLOCK:
		if (!m->discardable)
			return -ENOTSUP;
		if (offset != 0 || len != m->size)
			return -ERANGE;
		if (op == UVMO_OP_UNLOCK) {
			if (m->lock_count == 0)
				return -EBUSY;
			m->lock_count--;
			return 0;
		}
		if (m->discarded) {
			if (op == UVMO_OP_TRY_LOCK)
				return -EAGAIN;
			/* LOCK reports the discard; the content is now zero
			 * (model_discard cleared it). */
			m->discarded = false;
			m->lock_count++;
			return 1;
		}
		m->lock_count++;
		return 0;
	case UVMO_OP_COMMIT:
	case UVMO_OP_DECOMMIT:
	case UVMO_OP_ZERO:
	case UVMO_OP_DONT_NEED:
	case UVMO_OP_ALWAYS_NEED:
		break;
	default:
		return -EINVAL;
	}
	if (!in_range(offset, len, m->size))
		return -ERANGE;
	if (op == UVMO_OP_DONT_NEED || op == UVMO_OP_ALWAYS_NEED)
		return 0; /* hints: only the range is checked */
	if (m->no_write)
		return -EACCES;
	if (op == UVMO_OP_DECOMMIT && (!page_aligned(offset) || !page_aligned(len)))
		return -EINVAL;
	if (m->discarded)
		return -ENOENT;
	switch (op) {
	case UVMO_OP_COMMIT:
		model_commit(m, offset, len);
		break;
	case UVMO_OP_DECOMMIT:
		model_decommit(m, offset, len);
		break;
	default:
		model_zero(m, offset, len);
		break;
	}
	return 0;
}

/* ---- live snapshots ----------------------------------------------------- */

bool model_is_snapshot_of(const struct model_vmo *snap, const struct model_vmo *m)
{
	for (unsigned i = 0; i < snap->snap_chain; i++)
		if (snap->snap_of[i] == m->uid)
			return true;
	return false;
}

bool model_ranges_equal(const struct model_vmo *a, const struct model_vmo *b, uint64_t offset,
			uint64_t len)
{
	assert(in_range(offset, len, a->size) && in_range(offset, len, b->size));
	return memcmp(a->store->bytes + a->start + offset, b->store->bytes + b->start + offset,
		      len) == 0;
}

int model_api_snapshot(struct model_vmo *m, struct model_vmo **out)
{
	if (!m || !out)
		return -EINVAL;
	if (m->slice || m->discardable || m->pager)
		return -ENOTSUP;
	struct model_vmo *s = model_snapshot(m, 0, m->size);

	s->no_write = true;
	/* The header leaves it open; uvmo marks the snapshot of a resizable
	 * VMO resizable (it cannot resize it: it cannot write). */
	s->resizable = m->resizable;
	s->snap_of[0] = m->uid;
	s->snap_chain = 1;
	for (unsigned i = 0; i < m->snap_chain && s->snap_chain < MODEL_SNAP_CHAIN; i++)
		s->snap_of[s->snap_chain++] = m->snap_of[i];
	inherit_lineage(s, m);
	*out = s;
	return 0;
}

bool model_is_clone_of(const struct model_vmo *c, const struct model_vmo *m)
{
	if (c->clone_truncated)
		return true;
	for (unsigned i = 0; i < c->clone_chain; i++)
		if (c->clone_of[i] == m->uid)
			return true;
	return false;
}

int model_api_restore(struct model_vmo *m, const struct model_vmo *snap)
{
	return model_api_restore_lineage(m, snap, m && snap && model_is_snapshot_of(snap, m));
}

int model_api_restore_lineage(struct model_vmo *m, const struct model_vmo *snap, bool is_snapshot)
{
	if (!m || !snap)
		return -EINVAL;
	if (m->slice)
		return -ENOTSUP;
	if (!is_snapshot)
		return -EINVAL;
	if (snap->size != m->size && !m->resizable)
		return -EINVAL;
	if (m->no_write)
		return -EACCES;
	if (snap->size != m->size)
		model_resize(m, snap->size);
	model_write(m, 0, snap->store->bytes + snap->start, snap->size);
	return 0;
}

int model_api_diff(const struct model_vmo *m, const struct model_vmo *snap, uint64_t offset,
		   uint64_t len, bool out_null, size_t max)
{
	return model_api_diff_lineage(m, snap, offset, len, out_null, max,
				      m && snap && model_is_snapshot_of(snap, m));
}

int model_api_diff_lineage(const struct model_vmo *m, const struct model_vmo *snap,
			   uint64_t offset, uint64_t len, bool out_null, size_t max,
			   bool is_snapshot)
{
	if (!m || !snap || (out_null && max > 0))
		return -EINVAL;
	if (!page_aligned(offset) || !page_aligned(len))
		return -EINVAL;
	if (!in_range(offset, len, m->size))
		return -ERANGE;
	if (!is_snapshot)
		return -EINVAL;
	return 0;
}

uint32_t model_info_flags(const struct model_vmo *m)
{
	uint32_t flags = 0;

	if (m->resizable)
		flags |= UVMO_INFO_RESIZABLE;
	if (m->discardable)
		flags |= UVMO_INFO_DISCARDABLE;
	if (m->slice)
		flags |= UVMO_INFO_SLICE;
	if (m->snapshot)
		flags |= UVMO_INFO_SNAPSHOT;
	if (m->no_write)
		flags |= UVMO_INFO_NO_WRITE;
	if (m->discarded)
		flags |= UVMO_INFO_DISCARDED;
	return flags;
}

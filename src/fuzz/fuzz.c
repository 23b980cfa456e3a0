// SPDX-License-Identifier: MIT
/*
 * fuzz.c — resettable memory for fuzzing harnesses (include/uvmo/fuzz.h).
 *
 * Built only on the public API: each region is a VMO mapped read/write in
 * the root VMAR; arming takes a uvmo_vmo_snapshot of each, resetting calls
 * uvmo_vmo_restore on each.  The registry (a growable array of regions)
 * has one mutex; the bump allocator's cursor is an atomic outside the
 * regions, saved at arm time and put back by reset, so allocating never
 * takes the mutex once the heap exists.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include <uvmo/fuzz.h>
#include <uvmo/uvmo.h>

#include "base.h"

struct fuzz_region {
	uvmo_vmo_t *vmo;
	uvmo_vmo_t *pristine; /* snapshot taken by arm; NULL before */
	void *addr;
	uint64_t size;
};

static struct {
	pthread_mutex_t lock;
	struct fuzz_region *regions;
	size_t count;
	size_t capacity;
	bool armed;
} registry = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The allocator's region.  base and size are published (release) once the
 * region is mapped; the cursor is an offset from base. */
static struct {
	_Atomic(uint8_t *) base;
	size_t size;
	_Atomic size_t cursor;
	size_t cursor_at_arm;
} heap;

/* Bytes of a region for @size requested bytes, or a negative errno. */
static int64_t region_bytes(size_t size)
{
	if (size == 0)
		return -EINVAL;
	if ((uint64_t)size > UVMO_VMO_MAX_SIZE)
		return -ERANGE;
	return (int64_t)page_round_up(size);
}

static int registry_reserve_slot(void)
{
	if (registry.count < registry.capacity)
		return 0;
	size_t capacity = registry.capacity ? 2 * registry.capacity : 8;
	struct fuzz_region *grown = realloc(registry.regions, capacity * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	registry.regions = grown;
	registry.capacity = capacity;
	return 0;
}

/*
 * Create, map and register a region of @bytes (page-aligned).  With the
 * registry armed, the region is snapshotted at once (the heap only).
 * Caller holds registry.lock.  On error nothing is left behind.
 */
static int region_create_locked(uint64_t bytes, struct fuzz_region **out)
{
	int rc = registry_reserve_slot();
	if (rc < 0)
		return rc;

	struct fuzz_region region = { .size = bytes };
	rc = uvmo_vmo_create(bytes, 0, &region.vmo);
	if (rc < 0)
		return rc;
	rc = uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ | UVMO_PERM_WRITE, 0,
			   region.vmo, 0, bytes, &region.addr);
	if (rc < 0)
		goto fail_close;
	if (registry.armed) {
		rc = uvmo_vmo_snapshot(region.vmo, &region.pristine);
		if (rc < 0)
			goto fail_unmap;
	}
	registry.regions[registry.count] = region;
	*out = &registry.regions[registry.count];
	registry.count++;
	return 0;

fail_unmap:
	uvmo_vmar_unmap(uvmo_vmar_root(), region.addr, bytes);
fail_close:
	uvmo_vmo_close(region.vmo);
	return rc;
}

UVMO_EXPORT int uvmo_fuzz_region(size_t size, void **addr)
{
	if (!addr)
		return -EINVAL;
	int64_t bytes = region_bytes(size);
	if (bytes < 0)
		return (int)bytes;

	pthread_mutex_lock(&registry.lock);
	struct fuzz_region *region;
	int rc = registry.armed ? -EBUSY : region_create_locked((uint64_t)bytes, &region);
	if (rc == 0)
		*addr = region->addr;
	pthread_mutex_unlock(&registry.lock);
	return rc;
}

UVMO_EXPORT int uvmo_fuzz_adopt(const void *src, size_t len, void **addr)
{
	if (!src || !addr)
		return -EINVAL;
	int64_t bytes = region_bytes(len);
	if (bytes < 0)
		return (int)bytes;

	pthread_mutex_lock(&registry.lock);
	struct fuzz_region *region;
	int rc = registry.armed ? -EBUSY : region_create_locked((uint64_t)bytes, &region);
	if (rc == 0) {
		/* Through the call, not the mapping: one copy, no faults. */
		rc = uvmo_vmo_write(region->vmo, src, 0, len);
		if (rc < 0) {
			uvmo_vmar_unmap(uvmo_vmar_root(), region->addr, region->size);
			uvmo_vmo_close(region->vmo);
			registry.count--;
		} else {
			*addr = region->addr;
		}
	}
	pthread_mutex_unlock(&registry.lock);
	return rc;
}

UVMO_EXPORT int uvmo_fuzz_heap(size_t size)
{
	int64_t bytes = region_bytes(size);
	if (bytes < 0)
		return (int)bytes;

	pthread_mutex_lock(&registry.lock);
	struct fuzz_region *region;
	int rc = atomic_load(&heap.base) ? -EEXIST : region_create_locked((uint64_t)bytes, &region);
	if (rc == 0) {
		heap.size = region->size;
		atomic_store(&heap.cursor, 0);
		heap.cursor_at_arm = 0;
		atomic_store_explicit(&heap.base, region->addr, memory_order_release);
	}
	pthread_mutex_unlock(&registry.lock);
	return rc;
}

UVMO_EXPORT void *uvmo_fuzz_alloc(size_t size)
{
	if (size == 0)
		return NULL;
	uint8_t *base = atomic_load_explicit(&heap.base, memory_order_acquire);
	if (!base) {
		int rc = uvmo_fuzz_heap(UVMO_FUZZ_HEAP_DEFAULT_SIZE);
		if (rc < 0 && rc != -EEXIST)
			return NULL;
		base = atomic_load_explicit(&heap.base, memory_order_acquire);
	}

	size_t cursor = atomic_load_explicit(&heap.cursor, memory_order_relaxed);
	size_t start, end;
	do {
		start = (cursor + UVMO_FUZZ_ALLOC_ALIGN - 1) & ~(size_t)(UVMO_FUZZ_ALLOC_ALIGN - 1);
		if (start < cursor || __builtin_add_overflow(start, size, &end) || end > heap.size)
			return NULL;
	} while (!atomic_compare_exchange_weak_explicit(&heap.cursor, &cursor, end,
							memory_order_relaxed,
							memory_order_relaxed));
	return base + start;
}

UVMO_EXPORT int uvmo_fuzz_arm(void)
{
	pthread_mutex_lock(&registry.lock);
	int rc = 0;
	size_t taken = 0;
	if (registry.count == 0) {
		rc = -ENOENT;
		goto out;
	}

	/* All new snapshots first, so a failure keeps the old pristine state. */
	uvmo_vmo_t **fresh = calloc(registry.count, sizeof(*fresh));
	if (!fresh) {
		rc = -ENOMEM;
		goto out;
	}
	for (; taken < registry.count; taken++) {
		rc = uvmo_vmo_snapshot(registry.regions[taken].vmo, &fresh[taken]);
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		for (size_t i = 0; i < taken; i++)
			uvmo_vmo_close(fresh[i]);
	} else {
		for (size_t i = 0; i < registry.count; i++) {
			uvmo_vmo_close(registry.regions[i].pristine);
			registry.regions[i].pristine = fresh[i];
		}
		heap.cursor_at_arm = atomic_load(&heap.cursor);
		registry.armed = true;
	}
	free(fresh);
out:
	pthread_mutex_unlock(&registry.lock);
	return rc;
}

UVMO_EXPORT int uvmo_fuzz_reset(void)
{
	pthread_mutex_lock(&registry.lock);
	int rc = registry.armed ? 0 : -EBUSY;
	for (size_t i = 0; rc == 0 && i < registry.count; i++)
		rc = uvmo_vmo_restore(registry.regions[i].vmo, registry.regions[i].pristine);
	/* Rewind only once the heap's content is pristine again: memory past
	 * the cursor must read zero when it is handed out. */
	if (rc == 0)
		atomic_store(&heap.cursor, heap.cursor_at_arm);
	pthread_mutex_unlock(&registry.lock);
	return rc;
}

/* Pages of @region that differ from its pristine snapshot. */
static int region_dirty_pages(const struct fuzz_region *region, size_t *pages)
{
	struct uvmo_dirty_range runs[64];
	uint64_t offset = 0;

	*pages = 0;
	while (offset < region->size) {
		size_t stored = 0, available = 0;
		int rc = uvmo_vmo_diff(region->vmo, region->pristine, offset,
				       region->size - offset, runs, 64, &stored, &available);
		if (rc < 0)
			return rc;
		for (size_t i = 0; i < stored; i++)
			*pages += runs[i].length / UVMO_PAGE_SIZE;
		if (stored == 0 || stored == available)
			break;
		offset = runs[stored - 1].offset + runs[stored - 1].length;
	}
	return 0;
}

UVMO_EXPORT int uvmo_fuzz_dirty_pages(size_t *count)
{
	if (!count)
		return -EINVAL;
	pthread_mutex_lock(&registry.lock);
	int rc = registry.armed ? 0 : -EBUSY;
	size_t total = 0;
	for (size_t i = 0; rc == 0 && i < registry.count; i++) {
		size_t pages;
		rc = region_dirty_pages(&registry.regions[i], &pages);
		total += pages;
	}
	if (rc == 0)
		*count = total;
	pthread_mutex_unlock(&registry.lock);
	return rc;
}

UVMO_EXPORT void uvmo_fuzz_release(void)
{
	pthread_mutex_lock(&registry.lock);
	for (size_t i = 0; i < registry.count; i++) {
		struct fuzz_region *region = &registry.regions[i];
		uvmo_vmar_unmap(uvmo_vmar_root(), region->addr, region->size);
		uvmo_vmo_close(region->pristine);
		uvmo_vmo_close(region->vmo);
	}
	free(registry.regions);
	registry.regions = NULL;
	registry.count = registry.capacity = 0;
	registry.armed = false;
	atomic_store(&heap.base, NULL);
	heap.size = 0;
	atomic_store(&heap.cursor, 0);
	heap.cursor_at_arm = 0;
	pthread_mutex_unlock(&registry.lock);
}

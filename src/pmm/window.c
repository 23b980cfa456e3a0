/* SPDX-License-Identifier: MIT */
/*
 * window.c — windows: runs of pool slots owned by (and lent among) the
 * nodes of one clone tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pmm/pmm.h"
#include "pmm/pool_private.h"
#include "pmm/ranges.h"

int pmm_window_create(uint64_t pages, struct pmm_window **out)
{
	struct pmm_window *w;
	int rc;

	if (pages == 0)
		pages = 1; /* a zero-sized resizable VMO still needs a base */
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	pthread_mutex_lock(&pool.lock);
	rc = ranges_alloc(pages, &w->base);
	if (rc == 0)
		pool.windows++;
	pthread_mutex_unlock(&pool.lock);
	if (rc < 0) {
		free(w);
		return rc;
	}
	w->pages = pages;
	w->refs = 1;
	*out = w;
	return 0;
}

void pmm_window_ref(struct pmm_window *w)
{
	w->refs++;
}

void pmm_window_unref(struct pmm_window *w)
{
	UVMO_ASSERT(w->refs > 0);
	if (--w->refs)
		return;
	/* Whoever dropped the last reference freed the last frame first. */
	UVMO_ASSERT(w->frames == 0);
	pthread_mutex_lock(&pool.lock);
	ranges_free(w->base, w->pages);
	pool.windows--;
	pthread_mutex_unlock(&pool.lock);
	free(w);
}

uint64_t pmm_window_pages(const struct pmm_window *w)
{
	return w->pages;
}

uint64_t pmm_window_frames(const struct pmm_window *w)
{
	return w->frames;
}

uint64_t pmm_window_file_offset(const struct pmm_window *w)
{
	return w->base << PAGE_SHIFT;
}

/* Copy every populated slot of [old_base, old_base + pages) to the same
 * slot of new_base.  SEEK_DATA finds the frames, so the cost follows the
 * frames, not the window size.  The old range is left intact, so that a
 * failure part-way loses nothing. */
static int move_frames(uint64_t old_base, uint64_t new_base, uint64_t pages)
{
	off_t start = (off_t)(old_base << PAGE_SHIFT);
	off_t end = (off_t)((old_base + pages) << PAGE_SHIFT);
	off_t delta = (off_t)((new_base - old_base) << PAGE_SHIFT);
	off_t pos = start;

	while (pos < end) {
		off_t data = lseek(pool.fd, pos, SEEK_DATA);
		if (data < 0 || data >= end)
			break;
		off_t hole = lseek(pool.fd, data, SEEK_HOLE);
		if (hole > end || hole < 0)
			hole = end;
		if (fallocate(pool.fd, 0, data + delta, hole - data) < 0)
			return -ENOMEM;
		memcpy(pool.physmap + data + delta, pool.physmap + data,
		       (size_t)(hole - data));
		pos = hole;
	}
	return 0;
}

int pmm_window_grow(struct pmm_window *w, uint64_t pages)
{
	uint64_t new_base;
	int rc;

	if (pages <= w->pages)
		return 0;
	pthread_mutex_lock(&pool.lock);
	rc = ranges_try_extend(w->base, w->pages, pages);
	if (rc == 0) {
		pthread_mutex_unlock(&pool.lock);
		w->pages = pages;
		return 0;
	}
	rc = ranges_alloc(pages, &new_base);
	pthread_mutex_unlock(&pool.lock);
	if (rc < 0)
		return rc;
	rc = move_frames(w->base, new_base, w->pages);
	pthread_mutex_lock(&pool.lock);
	if (rc < 0) {
		/* Undo: the old range is intact; drop the partial copy. */
		fallocate(pool.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)(new_base << PAGE_SHIFT),
			  (off_t)(w->pages << PAGE_SHIFT));
		ranges_free(new_base, pages);
	} else {
		fallocate(pool.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)(w->base << PAGE_SHIFT),
			  (off_t)(w->pages << PAGE_SHIFT));
		ranges_free(w->base, w->pages);
		w->base = new_base;
		w->pages = pages;
	}
	pthread_mutex_unlock(&pool.lock);
	return rc;
}

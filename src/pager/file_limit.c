/* SPDX-License-Identifier: MIT */
/*
 * file_limit.c — which pages of a file VMO are present, and eviction under
 * uvmo_file_vmo_set_memory_limit.
 *
 * Only the file pager puts pages into a file VMO (a write to a page not
 * present asks for it first), and only it evicts them, so a bitmap of
 * "supplied and not evicted since" counts the VMO's frames exactly.  The
 * bitmap is allocated zeroed with calloc: for a large file it is mostly
 * untouched zero pages.  Both supply and evict run under file_state.lock,
 * so no eviction slips between a supply and its count.
 *
 * While a limit is set, supplied runs are also queued in order (a FIFO of
 * runs of at most FILE_IO_CHUNK); when more than @high bytes are present,
 * runs are evicted from the head (oldest supplied first) until at most
 * @low remain.
 *
 * When: on the limit being set, after a sync, and when the next READ
 * request of the file arrives — never right after a supply.  A thread
 * waiting for pages retries its whole access once woken; evicting the
 * pages just supplied before it ran again would make an access larger
 * than the limit (one uvmo_vmo_read of more than @high bytes) retry for
 * ever.  So the frames of one request are let through whole, and the VMO
 * may hold @high plus one request (with its read-ahead) for a moment.  EVICT keeps Dirty and AwaitingClean pages: those are found
 * with a dirty-range query, stay counted, and go back to the tail so that
 * they are evicted once a sync has cleaned them.  Pages present when the
 * limit is first set are queued first, in file order (their supply order
 * was not recorded).
 */
#include <errno.h>
#include <stdlib.h>

#include "pager/file_private.h"

#define WORD_BITS 64

static uint64_t page_count(struct file_state *f)
{
	return f->vmo_size >> PAGE_SHIFT;
}

int file_limit_init(struct file_state *f)
{
	uint64_t words = (page_count(f) + WORD_BITS - 1) / WORD_BITS;
	f->present = calloc(words ? words : 1, sizeof(uint64_t));
	return f->present ? 0 : -ENOMEM;
}

static void fifo_clear(struct file_state *f)
{
	struct resident_run *r;
	while ((r = TAILQ_FIRST(&f->fifo))) {
		TAILQ_REMOVE(&f->fifo, r, link);
		free(r);
	}
}

void file_limit_fini(struct file_state *f)
{
	fifo_clear(f);
	free(f->present);
	f->present = NULL;
}

static bool bit_test(const uint64_t *map, uint64_t page)
{
	return map[page / WORD_BITS] >> (page % WORD_BITS) & 1;
}

/* Set (or clear) the bits of pages [first, first + n); returns how many
 * changed. */
static uint64_t bits_assign(uint64_t *map, uint64_t first, uint64_t n, bool set)
{
	uint64_t changed = 0;
	for (uint64_t p = first; p < first + n;) {
		uint64_t w = p / WORD_BITS, b = p % WORD_BITS;
		uint64_t span = min_u64(WORD_BITS - b, first + n - p);
		uint64_t mask = (span == WORD_BITS ? ~0ull : ((1ull << span) - 1)) << b;
		uint64_t old = map[w];
		map[w] = set ? old | mask : old & ~mask;
		changed += (uint64_t)__builtin_popcountll((old ^ map[w]) & mask);
		p += span;
	}
	return changed;
}

static uint64_t bits_count(const uint64_t *map, uint64_t first, uint64_t n)
{
	uint64_t count = 0;
	for (uint64_t p = first; p < first + n;) {
		uint64_t w = p / WORD_BITS, b = p % WORD_BITS;
		uint64_t span = min_u64(WORD_BITS - b, first + n - p);
		uint64_t mask = (span == WORD_BITS ? ~0ull : ((1ull << span) - 1)) << b;
		count += (uint64_t)__builtin_popcountll(map[w] & mask);
		p += span;
	}
	return count;
}

uint64_t file_first_present(struct file_state *f, uint64_t from, uint64_t to)
{
	pthread_mutex_lock(&f->lock);
	uint64_t p = from >> PAGE_SHIFT, end = to >> PAGE_SHIFT;
	while (p < end && !bit_test(f->present, p))
		p++;
	pthread_mutex_unlock(&f->lock);
	return p < end ? p << PAGE_SHIFT : to;
}

uint64_t file_absent_from(struct file_state *f, uint64_t lo, uint64_t off)
{
	pthread_mutex_lock(&f->lock);
	uint64_t p = off >> PAGE_SHIFT, first = lo >> PAGE_SHIFT;
	while (p > first && !bit_test(f->present, p - 1))
		p--;
	pthread_mutex_unlock(&f->lock);
	return p << PAGE_SHIFT;
}

/* Queue [off, off + len) at the tail, extending the tail run when it is
 * contiguous and still short.  Without memory the run is simply not
 * queued: its pages stay (they are only evicted later than they could). */
static void fifo_append(struct file_state *f, uint64_t off, uint64_t len)
{
	while (len) {
		struct resident_run *tail = TAILQ_LAST(&f->fifo, resident_fifo);
		if (tail && tail->offset + tail->length == off && tail->length < FILE_IO_CHUNK) {
			uint64_t n = min_u64(len, FILE_IO_CHUNK - tail->length);
			tail->length += n;
			off += n;
			len -= n;
			continue;
		}
		struct resident_run *r = malloc(sizeof(*r));
		if (!r)
			return;
		r->offset = off;
		r->length = min_u64(len, FILE_IO_CHUNK);
		TAILQ_INSERT_TAIL(&f->fifo, r, link);
		off += r->length;
		len -= r->length;
	}
}

/* Runs of pages in [off, off + len) that EVICT kept (not Clean): counted
 * present again and queued at the tail. */
static void keep_dirty(struct file_pager *fp, struct file_state *f, uint64_t off, uint64_t len)
{
	struct uvmo_dirty_range ranges[16];
	uint64_t end = off + len;
	while (off < end) {
		size_t actual = 0, avail = 0;
		int rc = uvmo_pager_query_dirty_ranges(fp->pager, f->vmo, off, end - off, ranges,
						       16, &actual, &avail);
		if (rc < 0 || actual == 0)
			return;
		for (size_t i = 0; i < actual; i++) {
			f->resident_pages += bits_assign(f->present, ranges[i].offset >> PAGE_SHIFT,
							 ranges[i].length >> PAGE_SHIFT, true);
			fifo_append(f, ranges[i].offset, ranges[i].length);
		}
		if (actual == avail)
			return;
		off = ranges[actual - 1].offset + ranges[actual - 1].length;
	}
}

/* Evict from the head of the FIFO; each run is looked at once per call. */
static void enforce_locked(struct file_pager *fp, struct file_state *f)
{
	if (!f->high_pages || f->resident_pages <= f->high_pages || !f->vmo)
		return;
	struct resident_run *last = TAILQ_LAST(&f->fifo, resident_fifo);
	struct resident_run *r;
	while (f->resident_pages > f->low_pages && (r = TAILQ_FIRST(&f->fifo))) {
		TAILQ_REMOVE(&f->fifo, r, link);
		bool was_last = r == last;
		uint64_t first = r->offset >> PAGE_SHIFT, n = r->length >> PAGE_SHIFT;
		uint64_t had = bits_count(f->present, first, n);
		if (had) {
			int evicted = uvmo_pager_op_range(fp->pager, UVMO_PAGER_OP_EVICT, f->vmo,
							  r->offset, r->length, 0);
			if (evicted < 0) {
				/* The VMO is gone or detached: nothing to evict. */
				free(r);
				fifo_clear(f);
				return;
			}
			f->resident_pages -= bits_assign(f->present, first, n, false);
			if ((uint64_t)evicted < had)
				keep_dirty(fp, f, r->offset, r->length);
		}
		free(r);
		if (was_last)
			break;
	}
}

int file_supply(struct file_pager *fp, struct file_state *f, uvmo_vmo_t *vmo, uint64_t off,
		uint64_t len, const void *data)
{
	pthread_mutex_lock(&f->lock);
	int rc = uvmo_pager_supply_pages(fp->pager, vmo, off, len, data);
	/* -ENOMEM leaves an unknown prefix supplied: count the whole range
	 * (counting too many only evicts earlier). */
	if (rc == 0 || rc == -ENOMEM) {
		uint64_t added = bits_assign(f->present, off >> PAGE_SHIFT, len >> PAGE_SHIFT, true);
		f->resident_pages += added;
		if (f->high_pages)
			fifo_append(f, off, len);
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

void file_limit_enforce(struct file_pager *fp, struct file_state *f)
{
	pthread_mutex_lock(&f->lock);
	enforce_locked(fp, f);
	pthread_mutex_unlock(&f->lock);
}

int file_limit_set(struct file_pager *fp, struct file_state *f, uint64_t high, uint64_t low)
{
	pthread_mutex_lock(&f->lock);
	bool was_limited = f->high_pages != 0;
	f->high_pages = high >> PAGE_SHIFT;
	f->low_pages = low >> PAGE_SHIFT;
	if (!f->high_pages) {
		fifo_clear(f);
	} else if (!was_limited) {
		/* Queue the pages present now, in file order, as the oldest. */
		uint64_t pages = page_count(f);
		for (uint64_t p = 0; p < pages;) {
			if (!bit_test(f->present, p)) {
				p++;
				continue;
			}
			uint64_t q = p;
			while (q < pages && bit_test(f->present, q))
				q++;
			fifo_append(f, p << PAGE_SHIFT, (q - p) << PAGE_SHIFT);
			p = q;
		}
	}
	enforce_locked(fp, f);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

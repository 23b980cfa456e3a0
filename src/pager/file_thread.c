/* SPDX-License-Identifier: MIT */
/*
 * file_thread.c — the file pager's thread.  One io_uring carries
 * everything it waits for: a POLL_ADD on the pager descriptor (requests),
 * a POLL_ADD on an eventfd (stop), and the reads it issued; so it sleeps in
 * one place and batches every submission.
 *
 * A READ request becomes reads of at most FILE_IO_CHUNK bytes into one of
 * FILE_READ_SLOTS buffers (registered with the ring when the kernel lets
 * us: READ_FIXED), plus read-ahead: a request that starts where the last
 * read of that file ended continues a sequential run, and the run's
 * read-ahead doubles from FILE_READAHEAD_MIN up to FILE_IO_CHUNK; a jump
 * resets it to none.  Read-ahead stops short of pages already present.
 * Supplying never overwrites a present page, so reading ahead (or twice)
 * is always safe.
 *
 * Every READ is answered: supplied, or failed with EIO (read error, or
 * pages wholly past a file truncated under the VMO), or ENOMEM (pool
 * exhausted).  The last partial page of the file reads zero past EOF.
 *
 * Everything here but file_thread_stop/abandon runs on the thread alone.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pager/file_private.h"
#include "pager/pager.h"

/* user_data of the two polls; jobs are heap pointers, never these. */
#define TAG_PAGER_POLL 1u
#define TAG_WAKE_POLL  2u

#define REQUEST_BATCH 32

static uint8_t *slot_buffer(struct file_pager *fp, int slot)
{
	return fp->buffers + (size_t)slot * FILE_IO_CHUNK;
}

static struct io_uring_sqe *get_sqe(struct file_pager *fp)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&fp->ring);
	if (!sqe) {
		/* Full: hand what is queued to the kernel and retry.  The
		 * ring is deeper than everything we ever have in flight, so
		 * this succeeds. */
		io_uring_submit(&fp->ring);
		sqe = io_uring_get_sqe(&fp->ring);
	}
	return sqe;
}

static void arm_polls(struct file_pager *fp)
{
	struct io_uring_sqe *sqe;
	if (!fp->pager_polled && !fp->stopping && (sqe = get_sqe(fp))) {
		io_uring_prep_poll_add(sqe, fp->pager_fd, POLLIN);
		io_uring_sqe_set_data64(sqe, TAG_PAGER_POLL);
		fp->pager_polled = true;
	}
	if (!fp->wake_polled && !fp->stopping && (sqe = get_sqe(fp))) {
		io_uring_prep_poll_add(sqe, fp->wake_fd, POLLIN);
		io_uring_sqe_set_data64(sqe, TAG_WAKE_POLL);
		fp->wake_polled = true;
	}
}

/* ---------------------------------------------------------------------- */
/* reads                                                                  */
/* ---------------------------------------------------------------------- */

static void submit_read(struct file_pager *fp, struct read_job *job)
{
	struct io_uring_sqe *sqe = get_sqe(fp);
	uint8_t *buf = slot_buffer(fp, job->slot) + job->done;
	unsigned len = (unsigned)(job->length - job->done);
	uint64_t off = job->offset + job->done;
	if (fp->fixed_buffers)
		io_uring_prep_read_fixed(sqe, job->file->fd, buf, len, off, job->slot);
	else
		io_uring_prep_read(sqe, job->file->fd, buf, len, off);
	io_uring_sqe_set_data(sqe, job);
}

/* Start waiting jobs while buffers are free. */
static void dispatch(struct file_pager *fp)
{
	struct read_job *job;
	while (fp->nr_free_slots > 0 && (job = TAILQ_FIRST(&fp->waiting))) {
		TAILQ_REMOVE(&fp->waiting, job, link);
		job->slot = fp->free_slots[--fp->nr_free_slots];
		fp->inflight++;
		submit_read(fp, job);
	}
}

static void fail_range(struct file_pager *fp, uvmo_vmo_t *vmo, uint64_t off, uint64_t len,
		       int err)
{
	if (len)
		(void)uvmo_pager_op_range(fp->pager, UVMO_PAGER_OP_FAIL, vmo, off, len,
					  (uint64_t)err);
}

/*
 * A read ended with @valid bytes read.  @eof: the file ended there, so the
 * page holding EOF is completed with zeros; otherwise (an error) only whole
 * pages read are supplied.  Pages not supplied fail with EIO (ENOMEM if the
 * pool ran out).
 */
static void finish_read(struct file_pager *fp, struct read_job *job, bool eof)
{
	uint8_t *buf = slot_buffer(fp, job->slot);
	uint64_t supply = eof ? page_round_up(job->done) : page_round_down(job->done);
	supply = min_u64(supply, job->length);
	if (supply > job->done)
		memset(buf + job->done, 0, supply - job->done);
	if (supply) {
		int rc = file_supply(fp, job->file, job->vmo, job->offset, supply, buf);
		if (rc == -ENOMEM)
			fail_range(fp, job->vmo, job->offset, supply, ENOMEM);
		/* -ENOENT / -EBADF: the VMO is gone or detached; nobody waits. */
	}
	fail_range(fp, job->vmo, job->offset + supply, job->length - supply, EIO);

	fp->free_slots[fp->nr_free_slots++] = job->slot;
	fp->inflight--;
	TAILQ_REMOVE(&fp->active, job, active_link);
	file_state_put(job->file);
	free(job);
}

static void read_completed(struct file_pager *fp, struct read_job *job, int res)
{
	if (res == -EINTR || res == -EAGAIN) {
		submit_read(fp, job);
	} else if (res < 0) {
		finish_read(fp, job, false);
	} else if (res == 0) {
		finish_read(fp, job, true);
	} else {
		job->done += (uint64_t)res;
		if (job->done < job->length)
			submit_read(fp, job); /* short read: the rest, or EOF next */
		else
			finish_read(fp, job, false);
	}
}

/* Is [off, off + len) of @f inside one read already issued or queued?
 * Then its supply answers this request too. */
static bool covered_by_a_job(struct file_pager *fp, struct file_state *f, uint64_t off,
			     uint64_t len)
{
	struct read_job *job;
	TAILQ_FOREACH(job, &fp->active, active_link)
		if (job->file == f && job->offset <= off &&
		    off + len <= job->offset + job->length)
			return true;
	return false;
}

static int queue_job(struct file_pager *fp, struct file_state *f, uvmo_vmo_t *vmo,
		     uint64_t off, uint64_t len)
{
	struct read_job *job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	file_state_get(f);
	job->file = f;
	job->vmo = vmo;
	job->offset = off;
	job->length = len;
	job->slot = -1;
	TAILQ_INSERT_TAIL(&fp->waiting, job, link);
	TAILQ_INSERT_TAIL(&fp->active, job, active_link);
	return 0;
}

/*
 * What to read for a request [off, off + len): a request continuing a
 * sequential run gets the run's read-ahead (32 KiB doubling up to 1 MiB).
 * Any other request (a jump) reads only itself, unless its
 * FILE_READAROUND-aligned block already holds pages: random access that
 * keeps coming back near pages read before then reads the absent pages
 * around it, up to the present ones and the block's edges.  (Reading the
 * block around every jump, as the kernel does for file mappings, was
 * measured: it doubles the cost of a sparse random fault — two 64 KiB
 * copies and 16 frames instead of one — where the kernel maps its page
 * cache without a copy.)  Everything stops at pages already present and at
 * the VMO's end; the result always covers the request.
 */
static void plan_read(struct file_state *f, uint64_t off, uint64_t len, uint64_t *start,
		      uint64_t *stop)
{
	uint64_t end = off + len;
	if (off >= f->run_start && off <= f->next_sequential) {
		f->readahead = f->readahead ? min_u64(f->readahead * 2, FILE_IO_CHUNK)
					    : FILE_READAHEAD_MIN;
		uint64_t want = min_u64(end + f->readahead, f->vmo_size);
		*start = off;
		*stop = want > end ? file_first_present(f, end, want) : end;
	} else {
		f->readahead = 0;
		uint64_t block = off & ~(FILE_READAROUND - 1);
		uint64_t block_end = min_u64((end + FILE_READAROUND - 1) & ~(FILE_READAROUND - 1),
					     f->vmo_size);
		uint64_t lo = file_absent_from(f, block, off);
		uint64_t hi = block_end > end ? file_first_present(f, end, block_end) : end;
		bool neighbours = lo > block || hi < block_end;
		*start = neighbours ? lo : off;
		*stop = neighbours ? hi : end;
	}
	f->run_start = *start;
	f->next_sequential = *stop;
}

/* Queue reads of [off, end) in chunks; on failure the rest fails (ENOMEM). */
static void queue_range(struct file_pager *fp, struct file_state *f, uvmo_vmo_t *vmo,
			uint64_t off, uint64_t end)
{
	for (uint64_t o = off; o < end; o += FILE_IO_CHUNK) {
		uint64_t n = min_u64(FILE_IO_CHUNK, end - o);
		if (queue_job(fp, f, vmo, o, n) < 0) {
			fail_range(fp, vmo, o, end - o, ENOMEM);
			return;
		}
	}
}

/*
 * A READ already inside a read issued (or queued) is answered by that
 * read's supply.  Otherwise read the request plus its read-ahead; once a
 * run's read-ahead is at its maximum, one more chunk is read beyond it
 * that nobody waits for yet, so the file is read while the reader consumes
 * the previous chunk (the reader's next request then finds it in flight).
 */
static void serve_read(struct file_pager *fp, const struct uvmo_page_request *req)
{
	struct file_state *f = file_lookup(fp, req->key);
	if (!f) {
		/* Not a file we opened (cannot happen: only we create VMOs
		 * on this pager); never leave a waiter hanging. */
		fail_range(fp, req->vmo, req->offset, req->length, EIO);
		return;
	}
	/* Evict now, not after the last supply: see file_limit.c. */
	file_limit_enforce(fp, f);
	uint64_t off = req->offset, end = min_u64(off + req->length, f->vmo_size);
	if (off < end && !covered_by_a_job(fp, f, off, end - off)) {
		uint64_t start;
		plan_read(f, off, end - off, &start, &end);
		queue_range(fp, f, req->vmo, start, end);
		if (f->readahead == FILE_IO_CHUNK && end < f->vmo_size) {
			uint64_t ahead = file_first_present(f, end, min_u64(end + FILE_IO_CHUNK,
									     f->vmo_size));
			queue_range(fp, f, req->vmo, end, ahead);
			f->next_sequential = ahead;
		}
	}
	file_state_put(f);
}

/* ---------------------------------------------------------------------- */
/* requests                                                               */
/* ---------------------------------------------------------------------- */

/* Acknowledge at once: the trap only tells us that changes wait for a
 * sync (see file_state.unsynced). */
static void serve_dirty(struct file_pager *fp, const struct uvmo_page_request *req)
{
	int rc = uvmo_pager_op_range(fp->pager, UVMO_PAGER_OP_DIRTY, req->vmo, req->offset,
				     req->length, 0);
	struct file_state *f = file_lookup(fp, req->key);
	if (f) {
		if (rc == 0)
			atomic_store(&f->unsynced, true);
		file_state_put(f);
	}
}

/* Every other reference to a WRITEBACK VMO is gone: its last close
 * writes the changes back (file_close.c). */
static void serve_unused(struct file_pager *fp, const struct uvmo_page_request *req)
{
	struct file_state *f = file_lookup(fp, req->key);
	if (!f)
		return;
	file_close_unused(fp, f);
	file_state_put(f);
}

/* The VMO is gone.  A WRITEBACK VMO dies only after its last-close
 * writeback, which says so itself if it failed; changes still unsynced
 * here escaped it (which should not happen): said too. */
static void serve_complete(struct file_pager *fp, const struct uvmo_page_request *req)
{
	struct file_state *f = file_lookup(fp, req->key);
	if (!f)
		return;
	if ((f->options & UVMO_FILE_WRITEBACK) && atomic_load(&f->unsynced))
		file_report_lost(f, "never synced");
	file_forget(fp, f);
	file_state_put(f); /* the last one unless a read or a sync still holds it */
}

static void take_requests(struct file_pager *fp)
{
	struct uvmo_page_request reqs[REQUEST_BATCH];
	int n;
	do {
		n = uvmo_pager_get_requests(fp->pager, reqs, REQUEST_BATCH, 0);
		for (int i = 0; i < n; i++) {
			switch (reqs[i].type) {
			case UVMO_PAGER_READ:
				serve_read(fp, &reqs[i]);
				break;
			case UVMO_PAGER_DIRTY:
				serve_dirty(fp, &reqs[i]);
				break;
			case UVMO_PAGER_COMPLETE:
				serve_complete(fp, &reqs[i]);
				break;
			case PAGER_REQUEST_UNUSED:
				serve_unused(fp, &reqs[i]);
				break;
			default:
				break;
			}
		}
	} while (n == REQUEST_BATCH);
	dispatch(fp);
}

static void wake_received(struct file_pager *fp)
{
	uint64_t v;
	while (read(fp->wake_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
	if (atomic_load(&fp->stop_requested))
		fp->stopping = true;
}

static void handle_cqe(struct file_pager *fp, struct io_uring_cqe *cqe)
{
	uint64_t tag = io_uring_cqe_get_data64(cqe);
	if (tag == TAG_PAGER_POLL) {
		fp->pager_polled = false;
		if (!fp->stopping)
			take_requests(fp);
	} else if (tag == TAG_WAKE_POLL) {
		fp->wake_polled = false;
		wake_received(fp);
	} else {
		read_completed(fp, (struct read_job *)(uintptr_t)tag, cqe->res);
	}
}

/* Jobs never started when the thread stops: drop them.  Their waiters are
 * failed when the pager is destroyed. */
static void drop_waiting(struct file_pager *fp)
{
	struct read_job *job;
	while ((job = TAILQ_FIRST(&fp->waiting))) {
		TAILQ_REMOVE(&fp->waiting, job, link);
		TAILQ_REMOVE(&fp->active, job, active_link);
		file_state_put(job->file);
		free(job);
	}
}

static void *file_thread_main(void *arg)
{
	struct file_pager *fp = arg;
	for (;;) {
		if (fp->stopping) {
			drop_waiting(fp);
			if (fp->inflight == 0)
				break;
		}
		arm_polls(fp);
		int rc = io_uring_submit_and_wait(&fp->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
			fprintf(stderr, "uvmo: file pager ring failed (%s); stopping it\n",
				strerror(-rc));
			fp->stopping = true;
			continue;
		}
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&fp->ring, head, cqe) {
			handle_cqe(fp, cqe);
			seen++;
		}
		io_uring_cq_advance(&fp->ring, seen);
		dispatch(fp);
	}
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* start and stop                                                         */
/* ---------------------------------------------------------------------- */

static void free_thread_resources(struct file_pager *fp)
{
	io_uring_queue_exit(&fp->ring);
	munmap(fp->buffers, (size_t)FILE_READ_SLOTS * FILE_IO_CHUNK);
	fp->buffers = NULL;
}

int file_thread_start(struct file_pager *fp)
{
	int rc = io_uring_queue_init(FILE_RING_DEPTH, &fp->ring, 0);
	if (rc < 0)
		return rc;
	size_t bytes = (size_t)FILE_READ_SLOTS * FILE_IO_CHUNK;
	fp->buffers = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fp->buffers == MAP_FAILED) {
		fp->buffers = NULL;
		io_uring_queue_exit(&fp->ring);
		return -ENOMEM;
	}
	/* Registered buffers save the kernel a page-table walk per read; they
	 * pin memory, which RLIMIT_MEMLOCK may refuse: plain reads then. */
	struct iovec iov[FILE_READ_SLOTS];
	for (int i = 0; i < FILE_READ_SLOTS; i++) {
		iov[i].iov_base = slot_buffer(fp, i);
		iov[i].iov_len = FILE_IO_CHUNK;
		fp->free_slots[i] = i;
	}
	fp->nr_free_slots = FILE_READ_SLOTS;
	fp->fixed_buffers = io_uring_register_buffers(&fp->ring, iov, FILE_READ_SLOTS) == 0;
	TAILQ_INIT(&fp->waiting);
	TAILQ_INIT(&fp->active);

	/* The thread takes no signals: they belong to the application's
	 * threads (and a handler must never run on the pager's stack). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&fp->thread, NULL, file_thread_main, fp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		free_thread_resources(fp);
		return rc;
	}
	pthread_setname_np(fp->thread, "uvmo-filepager");
	return 0;
}

void file_thread_stop(struct file_pager *fp)
{
	atomic_store(&fp->stop_requested, true);
	uint64_t one = 1;
	while (write(fp->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(fp->thread, NULL);
	free_thread_resources(fp);
}

void file_thread_abandon(struct file_pager *fp)
{
	/* Jobs hold references to file states; the states are freed with
	 * the table right after, so only the job memory matters here, and it
	 * is the parent's image: leaking the few of them is harmless. */
	free_thread_resources(fp);
}

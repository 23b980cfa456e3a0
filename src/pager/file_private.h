/* SPDX-License-Identifier: MIT */
/*
 * file_private.h — the io_uring file pager (uvmo_file_vmo_*), shared by
 * its five files:
 *
 *   file.c         the process-wide file pager (created on first open,
 *                  freed by uvmo_shutdown), the table of open files, the
 *                  public entry points uvmo_file_vmo_open / _set_memory_limit
 *   file_thread.c  the pager thread: one io_uring waiting on the pager
 *                  descriptor and on the reads it issued; READ requests
 *                  become batched reads with sequential read-ahead
 *   file_sync.c    uvmo_file_vmo_sync: writeback on the caller's thread
 *   file_close.c   the last close of a WRITEBACK VMO: its changes are
 *                  written back (on a worker thread) before it dies
 *   file_limit.c   which pages are present, and eviction under a limit
 *
 * The file pager is a pager like any user's: it talks to the VMOs only
 * through the public pager API, plus src/pager/pager.h for two things:
 * finding the pager key of a handle, and the handle it keeps of each
 * WRITEBACK VMO (pager_vmo_keep), with the PAGER_REQUEST_UNUSED request
 * that says every other reference is gone.
 *
 * Lock order: init_lock (runtime.c) → file_pager_lock → files_lock →
 * close_lock → file_state.sync_lock → file_state.lock → uvmo's own locks.
 * No uvmo call made under one of these locks waits for the pager thread
 * (supply and evict never wait for a READ; a writeback reads only pages
 * that are not Clean, which are present), so the pager thread can always
 * make progress.
 */
#ifndef UVMO_PAGER_FILE_PRIVATE_H
#define UVMO_PAGER_FILE_PRIVATE_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include <uvmo/uvmo.h>

#include "base.h"

/* Largest single read or write, and the most read-ahead ever grows to. */
#define FILE_IO_CHUNK (1ull << 20)
/* Read-ahead starts here after a jump and doubles while access is sequential. */
#define FILE_READAHEAD_MIN (32ull << 10)
/* A jump into an aligned block of this size that already holds pages
 * reads the block's absent pages around the request. */
#define FILE_READAROUND (64ull << 10)
/* Buffers (each FILE_IO_CHUNK bytes) the pager thread reads into: the most
 * reads it has in flight at once. */
#define FILE_READ_SLOTS 16
/* Submission queue entries: every read slot, plus the two polls. */
#define FILE_RING_DEPTH 64

/* A run of pages supplied, in the order supplied (oldest first), kept only
 * while a memory limit is set. */
struct resident_run {
	uint64_t offset, length;
	TAILQ_ENTRY(resident_run) link;
};
TAILQ_HEAD(resident_fifo, resident_run);

/*
 * One open file.  Lives from uvmo_file_vmo_open until the COMPLETE request
 * of its VMO *and* the last reference (an in-flight read, a sync, a
 * last-close writeback) are gone.
 */
struct file_state {
	_Atomic uint32_t refs;
	uint64_t key;           /* the VMO's pager key; the table's sort key */
	int fd;                 /* our duplicate of the caller's descriptor */
	uint32_t options;       /* UVMO_FILE_* */
	uint64_t file_size;     /* bytes, at open; writeback never writes past it */
	uint64_t vmo_size;      /* bytes: file_size rounded up to pages */
	uvmo_vmo_t *vmo;        /* the pager VMO's handle (may be closed: pager calls only) */
	/* WRITEBACK files are created with TRAP_DIRTY: a DIRTY request (the
	 * first write to a Clean page) sets this; a sync that leaves no page
	 * Dirty clears it, and so does a failed last-close writeback once it
	 * has said so.  Still set when the VMO dies: changes were lost, said
	 * on stderr — the VMO is gone by then, nothing can write them any
	 * more. */
	_Atomic bool unsynced;
	/* WRITEBACK files: the pager's own handle to the VMO (pager_vmo_keep),
	 * which keeps it alive after the user's last handle and mapping go
	 * until its changes are written back (file_close.c).  Under @lock;
	 * taken out (set NULL) by whoever closes it, exactly once. */
	uvmo_vmo_t *kept;
	RB_ENTRY(file_state) link;

	/* Read-ahead (pager thread only).  A READ starting inside
	 * [run_start, next_sequential] continues the sequential run. */
	uint64_t run_start;       /* start of the last read issued */
	uint64_t next_sequential; /* end of the last read issued */
	uint64_t readahead;       /* bytes read past a request in that run */

	/* Serialises syncs of this file, so one writeback's END never races
	 * another's BEGIN over the same pages. */
	pthread_mutex_t sync_lock;

	/* Residency and the memory limit (file_limit.c), under @lock, which is
	 * held across supply and evict so the count is exact. */
	pthread_mutex_t lock;
	uint64_t *present;        /* one bit per page: supplied, not evicted */
	uint64_t resident_pages;  /* bits set in @present */
	uint64_t high_pages, low_pages; /* 0: no limit */
	struct resident_fifo fifo;      /* only while a limit is set */
};

RB_HEAD(file_tree, file_state);
RB_PROTOTYPE(file_tree, file_state, link, file_state_cmp)

/* An outstanding read: one chunk of a READ request (plus read-ahead). */
struct read_job {
	struct file_state *file; /* one reference */
	uvmo_vmo_t *vmo;         /* as the request gave it */
	uint64_t offset, length; /* page-aligned */
	uint64_t done;           /* bytes read so far */
	int slot;                /* buffer index, -1 while waiting for one */
	TAILQ_ENTRY(read_job) link;        /* in waiting, until started */
	TAILQ_ENTRY(read_job) active_link; /* in active, until finished */
};
TAILQ_HEAD(read_queue, read_job);

/* A last close waiting for its writeback: the file and the kept handle
 * taken out of it (file_close.c). */
struct close_job {
	struct file_state *file; /* one reference */
	uvmo_vmo_t *kept;
	TAILQ_ENTRY(close_job) link;
};
TAILQ_HEAD(close_queue, close_job);

struct file_pager {
	uvmo_pager_t *pager;
	int pager_fd;
	pthread_t thread;
	int wake_fd;            /* eventfd: write 1 to stop the thread */

	/* Last-close writebacks (file_close.c).  One worker thread at a
	 * time drains @closing and exits when it is empty. */
	pthread_mutex_t close_lock; /* protects @closing and @closer_running */
	struct close_queue closing;
	bool closer_running;    /* a worker is draining @closing */
	bool closer_joinable;   /* @closer must be joined (pager thread, then shutdown) */
	pthread_t closer;

	pthread_mutex_t files_lock; /* protects @files and @next_key */
	struct file_tree files;
	uint64_t next_key;

	/* Pager thread only. */
	struct io_uring ring;
	uint8_t *buffers;        /* FILE_READ_SLOTS × FILE_IO_CHUNK */
	bool fixed_buffers;      /* registered with the ring: READ_FIXED */
	int free_slots[FILE_READ_SLOTS];
	int nr_free_slots;
	struct read_queue waiting; /* jobs waiting for a buffer */
	struct read_queue active;  /* every job not finished (waiting or reading) */
	unsigned inflight;         /* reads submitted, not completed */
	bool pager_polled, wake_polled;
	bool stopping;
	_Atomic bool stop_requested;
};

/* file.c */
void file_state_get(struct file_state *f);
void file_state_put(struct file_state *f);
/* The state of @key with a reference taken, or NULL. */
struct file_state *file_lookup(struct file_pager *fp, uint64_t key);
/* Remove @f from the table (COMPLETE) and drop the table's reference. */
void file_forget(struct file_pager *fp, struct file_state *f);
/* The state behind a user handle (the file VMO or a slice of it), with a
 * reference, plus the file pager; -EINVAL if it is not a file VMO, -EBADF
 * if the handle is closed. */
int file_from_handle(uvmo_vmo_t *vmo, struct file_pager **fp, struct file_state **f);

/* file_sync.c */
/* Write every page of @f that is not Clean back to the file, reading it
 * through @through (a handle of the whole VMO), then fsync; clears
 * f->unsynced if no page is left Dirty.  Syncs of one file are serialised.
 * 0 or a negative errno (-EIO: a write or the fsync failed; the pages stay
 * AwaitingClean). */
int file_writeback(struct file_pager *fp, struct file_state *f, uvmo_vmo_t *through);

/* file_close.c */
void file_close_init(struct file_pager *fp);
/* Pager thread, PAGER_REQUEST_UNUSED of @f: write its changes back (on
 * the worker) and then close the kept handle, or close it at once if
 * nothing is dirty. */
void file_close_unused(struct file_pager *fp, struct file_state *f);
/* uvmo_shutdown, the pager thread stopped: wait for the worker, then
 * write back every file still kept (the user's handles are about to be
 * closed too) and close the kept handles. */
void file_close_finish(struct file_pager *fp);
/* fork() child: close every kept handle without writing anything. */
void file_close_abandon(struct file_pager *fp);
/* Say on stderr that @f's changes are lost, and @why. */
void file_report_lost(struct file_state *f, const char *why);

/* file_thread.c */
int file_thread_start(struct file_pager *fp);
/* Stop the thread and wait for it (in-flight reads complete first), then
 * free the ring and the buffers. */
void file_thread_stop(struct file_pager *fp);
/* fork() child: the thread does not exist here; free the ring (without
 * touching its queues) and the buffers. */
void file_thread_abandon(struct file_pager *fp);

/* file_limit.c */
int file_limit_init(struct file_state *f);
void file_limit_fini(struct file_state *f);
/* Supply [off, off + len) from @data, counting new pages (and queueing
 * them for eviction while a limit is set).  Returns
 * uvmo_pager_supply_pages' result. */
int file_supply(struct file_pager *fp, struct file_state *f, uvmo_vmo_t *vmo,
		uint64_t off, uint64_t len, const void *data);
/* Evict down to the low mark if above the high mark. */
void file_limit_enforce(struct file_pager *fp, struct file_state *f);
int file_limit_set(struct file_pager *fp, struct file_state *f, uint64_t high, uint64_t low);
/* The first page present in [from, to) (page-aligned), or @to. */
uint64_t file_first_present(struct file_state *f, uint64_t from, uint64_t to);
/* The lowest s in [lo, off] with every page of [s, off) absent. */
uint64_t file_absent_from(struct file_state *f, uint64_t lo, uint64_t off);

#endif /* UVMO_PAGER_FILE_PRIVATE_H */

/* SPDX-License-Identifier: MIT */
/*
 * file_close.c — the last close of a WRITEBACK file VMO writes its changes
 * back to the file before the VMO dies.
 *
 * At open the file pager takes a handle of its own to each WRITEBACK VMO
 * (pager_vmo_keep; file_state.kept).  When every other reference is gone —
 * the user's last handle closed, its last mapping unmapped, its last child
 * closed, in any order — the core queues PAGER_REQUEST_UNUSED for it.  The
 * pager thread then asks whether any page is not Clean: if none, it closes
 * the kept handle at once (the VMO dies and COMPLETE follows, as for any
 * VMO); if some are, it hands the kept handle to a worker thread, which
 * writes them back through it (file_writeback: WRITEBACK_BEGIN, write,
 * fsync, WRITEBACK_END) and then closes it.
 *
 * Why deferred, and why on a worker:
 *  - the reference that goes last may be dropped inside uvmo_vmar_unmap
 *    (address-space lock held for writing) or uvmo_vmo_close (held for
 *    reading): a writeback there would wait on that lock.  The core only
 *    queues a request there (tree lock → pager lock, nothing more).
 *  - the pager thread must stay free to serve READs of every other file
 *    while a writeback waits on the disk.  The writeback itself never needs
 *    the pager thread: it reads only pages that are not Clean, which are
 *    present, and nothing can make them absent (only the file pager
 *    evicts, and only Clean pages; no user is left to write).  So when no
 *    worker can be had the pager thread runs the writeback itself.
 * A failed writeback is said on stderr, naming the file, and the VMO dies
 * anyway: no user is left to retry it.
 *
 * uvmo_shutdown (file_close_finish): once the pager thread has stopped, the
 * worker finishes its queue (it needs nothing from the pager thread), then
 * every file still kept is written back on the caller's thread: closes
 * whose UNUSED was not taken yet, and VMOs the user still holds (shutdown
 * closes their handles next: that is their last close too).
 *
 * fork(): the child has no pager thread and no worker, and the core has
 * detached the child's pager VMOs, so no UNUSED reaches it.
 * file_close_abandon closes the child's copies of the kept handles without
 * writing anything: the file's changes are the parent's to write.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pager/file_private.h"

void file_close_init(struct file_pager *fp)
{
	pthread_mutex_init(&fp->close_lock, NULL);
	TAILQ_INIT(&fp->closing);
}

void file_report_lost(struct file_state *f, const char *why)
{
	char proc[64], path[512];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
	ssize_t n = readlink(proc, path, sizeof(path) - 1);
	if (n < 0)
		n = snprintf(path, sizeof(path), "(descriptor %d)", f->fd);
	path[n] = 0;
	fprintf(stderr, "uvmo: file VMO of %s closed with changes not written back (%s): "
		"they are lost\n", path, why);
}

/* The kept handle, taken out of @f: whoever gets it closes it. */
static uvmo_vmo_t *take_kept(struct file_state *f)
{
	pthread_mutex_lock(&f->lock);
	uvmo_vmo_t *kept = f->kept;
	f->kept = NULL;
	pthread_mutex_unlock(&f->lock);
	return kept;
}

/* Is a page of @f not Clean?  A failed query (the VMO is not served any
 * more) counts as no: nothing could be written back then anyway. */
static bool has_changes(struct file_pager *fp, struct file_state *f)
{
	size_t avail = 0;
	int rc = uvmo_pager_query_dirty_ranges(fp->pager, f->vmo, 0, f->vmo_size, NULL, 0,
					       NULL, &avail);
	return rc == 0 && avail > 0;
}

/* Write @f's changes back through @kept, then close it: the VMO dies. */
static void write_back_and_close(struct file_pager *fp, struct file_state *f, uvmo_vmo_t *kept)
{
	int rc = file_writeback(fp, f, kept);
	if (rc < 0) {
		char why[128];
		snprintf(why, sizeof(why), "writing them back at the last close failed: %s",
			 strerror(-rc));
		file_report_lost(f, why);
		/* Said once: COMPLETE need not say it again. */
		atomic_store(&f->unsynced, false);
	}
	uvmo_vmo_close(kept);
}

/* Drain @closing.  The worker's body, and run in place when there is no
 * worker (closer_running set by the caller either way). */
static void *closer_main(void *arg)
{
	struct file_pager *fp = arg;
	struct close_job *job;
	pthread_mutex_lock(&fp->close_lock);
	while ((job = TAILQ_FIRST(&fp->closing))) {
		TAILQ_REMOVE(&fp->closing, job, link);
		pthread_mutex_unlock(&fp->close_lock);
		write_back_and_close(fp, job->file, job->kept);
		file_state_put(job->file);
		free(job);
		pthread_mutex_lock(&fp->close_lock);
	}
	fp->closer_running = false;
	pthread_mutex_unlock(&fp->close_lock);
	return NULL;
}

/* A worker for @closing (pager thread only).  The previous one, if any,
 * has cleared closer_running and touches nothing after: joining it is
 * immediate. */
static int start_closer(struct file_pager *fp)
{
	if (fp->closer_joinable) {
		pthread_join(fp->closer, NULL);
		fp->closer_joinable = false;
	}
	/* Signals belong to the application's threads, as for the pager
	 * thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = -pthread_create(&fp->closer, NULL, closer_main, fp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0) {
		fp->closer_joinable = true;
		pthread_setname_np(fp->closer, "uvmo-fileclose");
	}
	return rc;
}

/* Queue a writeback; run the queue here if no worker can be started. */
static void queue_close(struct file_pager *fp, struct file_state *f, uvmo_vmo_t *kept)
{
	struct close_job *job = malloc(sizeof(*job));
	if (!job) {
		write_back_and_close(fp, f, kept);
		return;
	}
	file_state_get(f);
	job->file = f;
	job->kept = kept;
	pthread_mutex_lock(&fp->close_lock);
	TAILQ_INSERT_TAIL(&fp->closing, job, link);
	bool start = !fp->closer_running;
	fp->closer_running = true;
	pthread_mutex_unlock(&fp->close_lock);
	if (start && start_closer(fp) < 0)
		closer_main(fp);
}

void file_close_unused(struct file_pager *fp, struct file_state *f)
{
	uvmo_vmo_t *kept = take_kept(f);
	if (!kept)
		return; /* already being closed */
	if (has_changes(fp, f)) {
		queue_close(fp, f, kept);
		return;
	}
	/* Every page Clean (a DIRTY acknowledged may have been undone since,
	 * by a decommit): nothing is lost. */
	atomic_store(&f->unsynced, false);
	uvmo_vmo_close(kept);
}

void file_close_finish(struct file_pager *fp)
{
	/* The pager thread has stopped: nobody starts a worker any more. */
	if (fp->closer_joinable) {
		pthread_join(fp->closer, NULL);
		fp->closer_joinable = false;
	}
	/* Queue every file still kept, then drain here, outside files_lock
	 * (a writeback takes the file's locks and uvmo's). */
	struct file_state *f;
	pthread_mutex_lock(&fp->close_lock);
	fp->closer_running = true;
	pthread_mutex_unlock(&fp->close_lock);
	pthread_mutex_lock(&fp->files_lock);
	RB_FOREACH(f, file_tree, &fp->files) {
		uvmo_vmo_t *kept = take_kept(f);
		if (!kept)
			continue;
		struct close_job *job = malloc(sizeof(*job));
		if (!job) {
			/* Closed without a writeback: pager destroy reports
			 * the pages lost. */
			uvmo_vmo_close(kept);
			continue;
		}
		file_state_get(f);
		*job = (struct close_job){ .file = f, .kept = kept };
		pthread_mutex_lock(&fp->close_lock);
		TAILQ_INSERT_TAIL(&fp->closing, job, link);
		pthread_mutex_unlock(&fp->close_lock);
	}
	pthread_mutex_unlock(&fp->files_lock);
	closer_main(fp);
}

void file_close_abandon(struct file_pager *fp)
{
	/* One thread here.  close_lock was held across fork() (the queue is
	 * consistent) and is made anew; the files' locks may have been held
	 * by threads the child does not have, so they are not touched. */
	pthread_mutex_init(&fp->close_lock, NULL);
	fp->closer_running = false;
	fp->closer_joinable = false;
	struct close_job *job;
	while ((job = TAILQ_FIRST(&fp->closing))) {
		TAILQ_REMOVE(&fp->closing, job, link);
		uvmo_vmo_close(job->kept);
		file_state_put(job->file);
		free(job);
	}
	/* A job the parent's worker had already taken out of the queue is
	 * not here: its kept handle stays open in the child (the VMO's memory
	 * lives until the child's uvmo_shutdown or exit). */
	struct file_state *f;
	RB_FOREACH(f, file_tree, &fp->files) {
		if (f->kept)
			uvmo_vmo_close(f->kept);
		f->kept = NULL;
	}
}

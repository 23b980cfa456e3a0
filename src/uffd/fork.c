/* SPDX-License-Identifier: MIT */
/*
 * fork.c — fork() of a process whose memory lives in uvmo mappings.
 *
 * The mappings are MAP_SHARED views of the pool memfd, so after a plain
 * fork() parent and child would write each other's frames.  uvmo gives the
 * child a private copy of the pool instead:
 *  - prepare (parent, before fork): take the address-space lock for
 *    writing (no uvmo call or fault is half-done) and write-protect every
 *    mapping, so that no thread of the parent can write a frame until the
 *    child has its copy — a write faults and waits for the lock;
 *  - child: copy every frame into a new memfd, remap every mapping onto it
 *    at the same offsets, start a userfaultfd and handlers of its own, then
 *    tell the parent;
 *  - parent: wait for that, release the lock; writes that were held up
 *    resolve as ordinary write-protect faults (own pages are simply
 *    unprotected — one fault per page written, like fork's own COW).
 * The cost is a copy of the pool's frames, paid by the child; fork() in the
 * parent returns once the copy is done.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "pmm/pmm.h"
#include "uffd/uffd_private.h"

static int done_pipe[2] = { -1, -1 };
static bool forking;

static void protect_mapping(struct mapping *m, void *arg)
{
	(void)arg;
	if (m->direct)
		return; /* read-only, and the child's is the same file */
	/* Held-up writes need write-protect faults: the async tier lets
	 * them through. */
	cow_tracking_leave_async(m->node);
	engine_write_protect(mapping_uffd(m), m->r.start, m->r.end - m->r.start, true);
}

void uffd_fork_prepare(void)
{
	if (root_vmar.r.end == 0)
		return; /* not initialised */
	pthread_rwlock_wrlock(&aspace_lock);
	if (pipe2(done_pipe, O_CLOEXEC) < 0)
		done_pipe[0] = done_pipe[1] = -1;
	space_for_each_mapping(protect_mapping, NULL);
	forking = true;
}

void uffd_fork_parent(void)
{
	if (!forking)
		return;
	if (done_pipe[0] >= 0) {
		close(done_pipe[1]);
		char c;
		/* EOF too: a child that died has no copy left to make. */
		while (read(done_pipe[0], &c, 1) < 0 && errno == EINTR)
			;
		close(done_pipe[0]);
	}
	done_pipe[0] = done_pipe[1] = -1;
	forking = false;
	pthread_rwlock_unlock(&aspace_lock);
}

static void reinstall(struct mapping *m, void *arg)
{
	int *rc = arg;
	if (*rc == 0)
		*rc = cow_mapping_reinstall(m->node, &m->cm);
	if (*rc < 0)
		space_release(m->r.start, m->r.end - m->r.start);
}

void uffd_fork_child(void)
{
	if (!forking)
		return;
	if (done_pipe[0] >= 0)
		close(done_pipe[0]);
	/* The lock was taken by the parent's thread: glibc tracks a writer by
	 * thread id, which differs here, so start the child's lock afresh.
	 * Nobody else runs in the child yet. */
	pthread_rwlock_init(&aspace_lock, NULL);
	pthread_rwlock_wrlock(&aspace_lock);
	engine_forget();
	int rc = pmm_fork_child();
	if (rc == 0)
		rc = engine_start(engine.config_threads, engine.config_tracking,
				  engine.config_rest_ms);
	/* On failure the mappings are taken away rather than left sharing
	 * the parent's frames: the child's accesses fault (SIGSEGV). */
	space_for_each_mapping(reinstall, &rc);
	if (rc < 0)
		fprintf(stderr, "uvmo: fork: the child has no copy of the pool (%d)\n", rc);
	if (done_pipe[1] >= 0) {
		ssize_t w = write(done_pipe[1], "x", 1);
		(void)w;
		close(done_pipe[1]);
	}
	done_pipe[0] = done_pipe[1] = -1;
	forking = false;
	pthread_rwlock_unlock(&aspace_lock);
}

/* SPDX-License-Identifier: MIT */
/*
 * file.c — the process-wide io_uring file pager: created on the first
 * uvmo_file_vmo_open, stopped and freed by uvmo_shutdown (through the
 * runtime's layer hooks), abandoned in a fork() child.  Also the table of
 * open files (keyed by pager key) and the public calls open and
 * set_memory_limit; sync lives in file_sync.c.
 *
 * A file VMO is a pager VMO of our pager whose key names a file_state.
 * READONLY hands out a NO_WRITE slice of it and closes the pager handle
 * (pager calls keep accepting that handle while the VMO lives); nothing
 * can write that VMO, so its read-only mappings may map the file itself
 * (pager_vmo_map_directly) unless UVMO_FILE_PAGED asks otherwise.
 *
 * WRITEBACK VMOs: the file pager keeps a handle of its own to each
 * (pager_vmo_keep), so that the VMO outlives the user's last handle and
 * mapping until its changes are written back (file_close.c); the VMO dies
 * when that handle closes.  They are created with TRAP_DIRTY, so that the
 * file pager knows whether changes wait for a sync (file_state.unsynced):
 * a VMO that dies with changes not written back (its last-close writeback
 * failed) is said on stderr.  The cost of the trap is one pager round trip
 * per first write of a clean page.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "api/api.h"
#include "pager/file_private.h"
#include "pager/pager.h"

#define FILE_OPTIONS (UVMO_FILE_READONLY | UVMO_FILE_WRITEBACK | UVMO_FILE_PAGED)
#define BOTH_MODES (UVMO_FILE_READONLY | UVMO_FILE_WRITEBACK)

/* Guards the creation and destruction of the file pager itself. */
static pthread_mutex_t file_pager_lock = PTHREAD_MUTEX_INITIALIZER;
static struct file_pager *file_pager;

static int file_state_cmp(struct file_state *a, struct file_state *b)
{
	return a->key < b->key ? -1 : a->key > b->key;
}

RB_GENERATE(file_tree, file_state, link, file_state_cmp)

/* ---------------------------------------------------------------------- */
/* file states                                                            */
/* ---------------------------------------------------------------------- */

void file_state_get(struct file_state *f)
{
	atomic_fetch_add(&f->refs, 1);
}

void file_state_put(struct file_state *f)
{
	if (atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	close(f->fd);
	file_limit_fini(f);
	pthread_mutex_destroy(&f->lock);
	pthread_mutex_destroy(&f->sync_lock);
	free(f);
}

struct file_state *file_lookup(struct file_pager *fp, uint64_t key)
{
	struct file_state probe = { .key = key };
	pthread_mutex_lock(&fp->files_lock);
	struct file_state *f = RB_FIND(file_tree, &fp->files, &probe);
	if (f)
		file_state_get(f);
	pthread_mutex_unlock(&fp->files_lock);
	return f;
}

void file_forget(struct file_pager *fp, struct file_state *f)
{
	pthread_mutex_lock(&fp->files_lock);
	bool present = RB_FIND(file_tree, &fp->files, f) == f;
	if (present)
		RB_REMOVE(file_tree, &fp->files, f);
	pthread_mutex_unlock(&fp->files_lock);
	if (present)
		file_state_put(f);
}

/* A state for @fd (already our duplicate), not yet in the table. */
static struct file_state *file_state_new(int fd, uint32_t options, uint64_t file_size)
{
	struct file_state *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	atomic_init(&f->refs, 1);
	f->fd = fd;
	f->options = options;
	f->file_size = file_size;
	f->vmo_size = page_round_up(file_size);
	TAILQ_INIT(&f->fifo);
	if (file_limit_init(f) < 0) {
		free(f);
		return NULL;
	}
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->sync_lock, NULL);
	return f;
}

/* Put @f in the table under a fresh key. */
static void file_insert(struct file_pager *fp, struct file_state *f)
{
	pthread_mutex_lock(&fp->files_lock);
	f->key = fp->next_key++;
	RB_INSERT(file_tree, &fp->files, f);
	pthread_mutex_unlock(&fp->files_lock);
}

int file_from_handle(uvmo_vmo_t *vmo, struct file_pager **fpp, struct file_state **fout)
{
	uvmo_pager_t *pager;
	uint64_t key, size;

	if (!vmo)
		return -EINVAL;
	/* A closed handle is -EBADF whatever it was. */
	int rc = uvmo_vmo_get_size(vmo, &size);
	if (rc < 0)
		return rc;
	rc = pager_vmo_key(vmo, &pager, &key);
	if (rc < 0)
		return rc == -EBADF ? rc : -EINVAL;
	pthread_mutex_lock(&file_pager_lock);
	struct file_pager *fp = file_pager;
	struct file_state *f = NULL;
	if (fp && fp->pager == pager)
		f = file_lookup(fp, key);
	pthread_mutex_unlock(&file_pager_lock);
	if (!f)
		return -EINVAL;
	/* fp lives until uvmo_shutdown, which no call may race with. */
	*fpp = fp;
	*fout = f;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* the file pager's life                                                  */
/* ---------------------------------------------------------------------- */

/* Free what file_pager_create built (thread not running). */
static void file_pager_free(struct file_pager *fp, bool destroy_pager)
{
	struct file_state *f, *next;
	RB_FOREACH_SAFE(f, file_tree, &fp->files, next) {
		RB_REMOVE(file_tree, &fp->files, f);
		file_state_put(f);
	}
	if (destroy_pager && fp->pager)
		uvmo_pager_destroy(fp->pager);
	if (fp->wake_fd >= 0)
		close(fp->wake_fd);
	pthread_mutex_destroy(&fp->close_lock);
	pthread_mutex_destroy(&fp->files_lock);
	free(fp);
}

static int file_pager_create(struct file_pager **out)
{
	struct file_pager *fp = calloc(1, sizeof(*fp));
	if (!fp)
		return -ENOMEM;
	pthread_mutex_init(&fp->files_lock, NULL);
	file_close_init(fp);
	RB_INIT(&fp->files);
	fp->next_key = 1;
	fp->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fp->wake_fd < 0) {
		int rc = -errno;
		file_pager_free(fp, false);
		return rc;
	}
	int rc = uvmo_pager_create(0, &fp->pager);
	if (rc == 0) {
		rc = uvmo_pager_fd(fp->pager);
		fp->pager_fd = rc;
	}
	if (rc >= 0)
		rc = file_thread_start(fp);
	if (rc < 0) {
		file_pager_free(fp, true);
		return rc;
	}
	*out = fp;
	return 0;
}

/* uvmo_shutdown: stop the thread, write back what WRITEBACK VMOs hold
 * (shutdown closes every handle: their last close), then detach and free
 * everything.  The pager's destroy reports dirty pages a failed writeback
 * left on stderr. */
static void file_pager_shutdown(void)
{
	pthread_mutex_lock(&file_pager_lock);
	struct file_pager *fp = file_pager;
	file_pager = NULL;
	pthread_mutex_unlock(&file_pager_lock);
	if (!fp)
		return;
	file_thread_stop(fp);
	file_close_finish(fp);
	file_pager_free(fp, true);
}

/* fork(): the child sees the table, the queue of last-close writebacks
 * and the pager consistent.  (close_lock is only ever held for list
 * operations, so taking it here waits for nothing else.) */
static void file_pager_fork_prepare(void)
{
	pthread_mutex_lock(&file_pager_lock);
	if (file_pager) {
		pthread_mutex_lock(&file_pager->files_lock);
		pthread_mutex_lock(&file_pager->close_lock);
	}
}

static void file_pager_fork_parent(void)
{
	if (file_pager) {
		pthread_mutex_unlock(&file_pager->close_lock);
		pthread_mutex_unlock(&file_pager->files_lock);
	}
	pthread_mutex_unlock(&file_pager_lock);
}

/*
 * The child has no pager thread, and the ring is the parent's (the child
 * must not touch its queues).  Destroying the pager detaches the inherited
 * file VMOs, so their pages not yet present fail (SIGBUS, -EBUSY) instead
 * of waiting for ever; pages present stay.  The kept handles of WRITEBACK
 * VMOs are closed without writing: the child never writes the parent's
 * changes to the file, not even at its last close.  A later open in the
 * child starts a file pager of its own.
 */
static void file_pager_fork_child(void)
{
	struct file_pager *fp = file_pager;
	file_pager = NULL;
	pthread_mutex_init(&file_pager_lock, NULL);
	if (!fp)
		return;
	pthread_mutex_init(&fp->files_lock, NULL);
	/* The thread's private state (jobs, buffers) is the parent's memory
	 * image; freeing the buffers is all it needs.  The ring's memory is
	 * unmapped and its descriptor closed, which leaves the parent's ring
	 * untouched. */
	file_thread_abandon(fp);
	file_close_abandon(fp);
	file_pager_free(fp, true);
}

static const struct api_layer_hooks file_pager_hooks = {
	.shutdown = file_pager_shutdown,
	.fork_prepare = file_pager_fork_prepare,
	.fork_parent = file_pager_fork_parent,
	.fork_child = file_pager_fork_child,
};

/* The file pager, created on first use. */
static int file_pager_get(struct file_pager **out)
{
	int rc = 0;
	pthread_mutex_lock(&file_pager_lock);
	if (!file_pager) {
		rc = file_pager_create(&file_pager);
		if (rc == 0)
			api_set_layer_hooks(&file_pager_hooks);
	}
	*out = file_pager;
	pthread_mutex_unlock(&file_pager_lock);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* public calls                                                           */
/* ---------------------------------------------------------------------- */

/*
 * Our own descriptor for the file.  A duplicate shares the caller's file
 * description, so an O_APPEND one would make every positioned write
 * append (pwrite ignores the offset under O_APPEND on Linux): writeback
 * then reopens the file through /proc without it.
 */
/* A new open file description of the file behind @fd, with @flags. */
static int reopen(int fd, int flags)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, flags | O_CLOEXEC);
}

static int own_descriptor(int fd, int flags, uint32_t options)
{
	int ours;
	if ((options & UVMO_FILE_WRITEBACK) && (flags & O_APPEND)) {
		ours = reopen(fd, O_RDWR | (flags & O_DIRECT));
	} else {
		ours = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	}
	if (ours < 0)
		return errno == EMFILE || errno == ENFILE ? -EMFILE
		       : errno == ENOMEM		    ? -ENOMEM
							    : -EACCES;
	return ours;
}

/*
 * The descriptor the core maps a READONLY VMO's mappings from, or -1 if it
 * should not (they then go through the pager, which always works): opened
 * anew read-only, so that not even an mprotect(2) from outside uvmo can
 * make such a mapping write the file; and not on hugetlbfs (a huge-page
 * mapping cannot be split into uvmo's 4 KiB pieces) nor on a noexec mount
 * (PROT_EXEC would be refused there, at map or protect time, where the
 * pager's frames allow it).
 */
static int direct_descriptor(int fd)
{
	int ro = reopen(fd, O_RDONLY);
	if (ro < 0)
		return -1;
	struct statfs fs;
	struct statvfs vfs;
	if (fstatfs(ro, &fs) < 0 || fs.f_type == HUGETLBFS_MAGIC || fstatvfs(ro, &vfs) < 0 ||
	    (vfs.f_flag & ST_NOEXEC)) {
		close(ro);
		return -1;
	}
	return ro;
}

/*
 * Arguments first (-EINVAL), then the descriptor (-EBADF), what it is
 * (-EINVAL), its access mode (-EACCES); nothing is created before all of
 * them pass.  An fd opened O_WRONLY cannot be read: -EACCES too.  An empty
 * file is -EINVAL: a zero-size pager VMO would have to be resizable, and a
 * file VMO never changes the file's size.
 */
UVMO_EXPORT int uvmo_file_vmo_open(int fd, uint32_t options, uvmo_vmo_t **out)
{
	struct stat st;

	if (!out || (options & ~FILE_OPTIONS) || (options & BOTH_MODES) == BOTH_MODES)
		return -EINVAL;
	if (fd < 0 || fstat(fd, &st) < 0)
		return -EBADF;
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || (flags & O_PATH))
		return -EBADF;
	if (!S_ISREG(st.st_mode) || st.st_size <= 0)
		return -EINVAL;
	if ((flags & O_ACCMODE) == O_WRONLY)
		return -EACCES;
	if ((options & UVMO_FILE_WRITEBACK) && (flags & O_ACCMODE) != O_RDWR)
		return -EACCES;
	if ((uint64_t)st.st_size > UVMO_VMO_MAX_SIZE)
		return -ERANGE;

	int rc = api_ensure_init();
	if (rc < 0)
		return rc;
	struct file_pager *fp;
	rc = file_pager_get(&fp);
	if (rc < 0)
		return rc;
	int ours = own_descriptor(fd, flags, options);
	if (ours < 0)
		return ours;
	struct file_state *f = file_state_new(ours, options, (uint64_t)st.st_size);
	if (!f) {
		close(ours);
		return -ENOMEM;
	}
	file_insert(fp, f);

	uvmo_vmo_t *vmo;
	uint32_t vmo_options = options & UVMO_FILE_WRITEBACK ? UVMO_VMO_TRAP_DIRTY : 0;
	rc = uvmo_pager_create_vmo(fp->pager, vmo_options, f->key, f->vmo_size, &vmo);
	if (rc < 0) {
		file_forget(fp, f);
		return rc;
	}
	/* From here the VMO owns the table's reference: its COMPLETE frees it. */
	uvmo_vmo_t *kept = NULL;
	if (options & UVMO_FILE_WRITEBACK) {
		/* Ours, so the last close can write back (file_close.c). */
		rc = pager_vmo_keep(vmo, &kept);
		if (rc < 0) {
			uvmo_vmo_close(vmo);
			return rc;
		}
	}
	pthread_mutex_lock(&f->lock);
	f->vmo = vmo;
	f->kept = kept;
	pthread_mutex_unlock(&f->lock);
	if (options & UVMO_FILE_READONLY) {
		/* Nobody will write it: its content is the file's. */
		if (!(options & UVMO_FILE_PAGED)) {
			int direct = direct_descriptor(f->fd);
			if (direct >= 0)
				pager_vmo_map_directly(vmo, direct); /* else: the pager serves */
		}
		uvmo_vmo_t *ro;
		rc = uvmo_vmo_create_child(vmo, UVMO_CHILD_SLICE | UVMO_CHILD_NO_WRITE, 0,
					   f->vmo_size, &ro);
		uvmo_vmo_close(vmo);
		if (rc < 0)
			return rc;
		vmo = ro;
	}
	*out = vmo;
	return 0;
}

UVMO_EXPORT int uvmo_file_vmo_set_memory_limit(uvmo_vmo_t *vmo, uint64_t high, uint64_t low)
{
	struct file_pager *fp;
	struct file_state *f;
	int rc = file_from_handle(vmo, &fp, &f);
	if (rc < 0)
		return rc;
	if (low > high || !page_aligned(high) || !page_aligned(low))
		rc = -EINVAL;
	else
		rc = file_limit_set(fp, f, high, low);
	file_state_put(f);
	return rc;
}

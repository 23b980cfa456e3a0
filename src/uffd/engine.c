/* SPDX-License-Identifier: MIT */
/*
 * engine.c — the userfaultfds, and serving the faults read from them.
 *
 * One userfaultfd serves every mapping; the handler threads that wait on
 * it (handlers.c) hand each fault message to engine_handle_fault.
 *
 * A second userfaultfd, opened with UFFD_FEATURE_WP_ASYNC where the kernel
 * has it, serves the mappings of VMOs on the async dirty-tracking tier
 * (see "Dirty tracking" in docs/design.md): its write-protect faults are
 * resolved by the kernel, which only records that the page was written;
 * PAGEMAP_SCAN reads (and re-arms) that record.  Its missing faults reach
 * the same handlers.  Every ioctl names the userfaultfd the range is
 * registered with: the mapping's (mapping_uffd), or the one a fault came
 * from.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "compat/linux_abi.h"
#include "uffd/uffd_private.h"

struct engine engine = { .fd = -1, .async_fd = -1, .pagemap_fd = -1 };

static const uint64_t required_features =
	UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
static const uint64_t wanted_features =
	UFFD_FEATURE_POISON | UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_THREAD_ID;

/* Not UFFD_USER_MODE_ONLY: faults taken inside system calls (read(2)
 * into a mapping) must be served too, not fail with EFAULT. */
static int uffd_syscall(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

/* A userfaultfd with the features uvmo uses, plus @extra (all required);
 * the features enabled are stored in *@features. */
static int open_uffd(uint64_t extra, uint64_t *features)
{
	int fd = uffd_syscall();
	if (fd < 0)
		return fd;

	/* Ask what the kernel has, then enable what we use of it. */
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		close(fd);
		return -ENOTSUP;
	}
	uint64_t have = api.features;
	close(fd);
	if ((have & (required_features | extra)) != (required_features | extra))
		return -ENOTSUP;

	fd = uffd_syscall();
	if (fd < 0)
		return fd;
	api = (struct uffdio_api){ .api = UFFD_API,
				   .features = required_features | extra | (have & wanted_features) };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		close(fd);
		return -ENOTSUP;
	}
	*features = api.features;
	return fd;
}

/*
 * The async tier needs WP_ASYNC on a userfaultfd of its own and a working
 * PAGEMAP_SCAN (probed on our own stack page: a kernel without it fails the
 * ioctl with ENOTTY or EINVAL).  UVMO_TRACKING_AUTO falls back to the sync
 * tier; UVMO_TRACKING_ASYNC insists.
 */
static int open_async_tracking(uint32_t tracking)
{
	uint64_t features;
	if (tracking == UVMO_TRACKING_SYNC)
		return 0;
	int fd = open_uffd(UFFD_FEATURE_WP_ASYNC, &features);
	int pagemap = fd < 0 ? -1 : open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pagemap >= 0) {
		char probe[64];
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.start = (uint64_t)(uintptr_t)probe & ~(PAGE_SIZE - 1),
			.end = ((uint64_t)(uintptr_t)probe & ~(PAGE_SIZE - 1)) + PAGE_SIZE,
			.category_anyof_mask = PAGE_IS_PRESENT,
			.return_mask = PAGE_IS_PRESENT,
		};
		if (ioctl(pagemap, PAGEMAP_SCAN, &arg) < 0) {
			close(pagemap);
			pagemap = -1;
		}
	}
	if (fd < 0 || pagemap < 0) {
		if (fd >= 0)
			close(fd);
		return tracking == UVMO_TRACKING_ASYNC ? -ENOTSUP : 0;
	}
	engine.async_fd = fd;
	engine.pagemap_fd = pagemap;
	return 0;
}

int engine_register(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	return ioctl(fd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

int engine_unregister(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };
	return ioctl(fd, UFFDIO_UNREGISTER, &r) < 0 ? -errno : 0;
}

/*
 * PAGEMAP_SCAN with PM_SCAN_WP_MATCHING: report the runs of pages of
 * [start, start + len) written since they were last protected, and protect
 * them again in the same pass (the kernel does both under the page table
 * lock, so a write is either reported now or faults — and is recorded —
 * after).  A full region buffer ends a call early: resume from walk_end.
 */
int engine_scan_written(uint64_t start, uint64_t len,
			void (*written)(void *arg, uint64_t addr, uint64_t len), void *arg)
{
	struct page_region regions[64];
	uint64_t end = start + len;
	struct timespec t0, t1;
	int rc = 0;

	atomic_fetch_add(&engine.dirty_scans, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (start < end && rc == 0) {
		struct pm_scan_arg scan = {
			.size = sizeof(scan),
			.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
			.start = start,
			.end = end,
			.vec = (uint64_t)(uintptr_t)regions,
			.vec_len = sizeof(regions) / sizeof(regions[0]),
			.category_mask = PAGE_IS_WRITTEN,
			.return_mask = PAGE_IS_WRITTEN,
		};
		long n = ioctl(engine.pagemap_fd, PAGEMAP_SCAN, &scan);
		if (n < 0) {
			rc = -errno;
			break;
		}
		for (long i = 0; i < n; i++)
			written(arg, regions[i].start, regions[i].end - regions[i].start);
		if (scan.walk_end <= start)
			rc = -EIO; /* no progress: never loop forever */
		start = scan.walk_end;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	atomic_fetch_add(&engine.dirty_scan_ns,
			 (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec)));
	return rc;
}

/* Set when an install has woken the faulting thread, so that the fault
 * is answered without a separate UFFDIO_WAKE; and the userfaultfd whose
 * waiters that woke (the mapping's, which is not always the one the fault
 * came from: see engine_handle_fault). */
static __thread bool fault_answered;
static __thread int answered_on = -1;

void engine_write_protect(int fd, uint64_t start, uint64_t len, bool protect)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = start, .len = len },
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	/* EAGAIN: the range changed under us (a concurrent unmap); the
	 * faulting thread retries and finds out for itself. */
	int rc;
	while ((rc = ioctl(fd, UFFDIO_WRITEPROTECT, &wp)) < 0 && errno == EAGAIN)
		;
	if (!protect && rc == 0)
		answered_on = fd; /* lifting a protection wakes its waiters */
}


int engine_install_zero(int fd, uint64_t addr, uint64_t len)
{
	struct uffdio_zeropage z = {
		.range = { .start = addr, .len = len },
		.mode = UFFDIO_ZEROPAGE_MODE_DONTWAKE,
	};
	if (ioctl(fd, UFFDIO_ZEROPAGE, &z) < 0 || (uint64_t)z.zeropage != len)
		return -EAGAIN; /* pmm fills what is left */
	return 0;
}

int engine_install_copy(int fd, uint64_t addr, const void *src, uint64_t len,
			bool wake_waiters)
{
	struct uffdio_copy c = {
		.dst = addr,
		.src = (uint64_t)(uintptr_t)src,
		.len = len,
		.mode = wake_waiters ? 0 : UFFDIO_COPY_MODE_DONTWAKE,
	};
	if (ioctl(fd, UFFDIO_COPY, &c) < 0 || (uint64_t)c.copy != len)
		return -EAGAIN;
	if (wake_waiters) {
		fault_answered = true;
		answered_on = fd;
	}
	return 0;
}

static void wake(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };
	ioctl(fd, UFFDIO_WAKE, &r);
}

/* Poisoned pages: SIGBUS for the thread that touches them.  They are
 * cleared (MADV_DONTNEED drops the marker) when the reason may be gone:
 * the pool has room again, or the VMO grew. */
static pthread_mutex_t poison_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *poisoned;
static size_t npoisoned, poison_cap;
static _Atomic bool poison_pending;

static void poison(int fd, uint64_t addr)
{
	/* Recorded before the poison is placed: the woken thread may free
	 * memory at once, and that must find the address to clear. */
	pthread_mutex_lock(&poison_lock);
	if (npoisoned == poison_cap) {
		size_t cap = poison_cap ? poison_cap * 2 : 64;
		uint64_t *p2 = realloc(poisoned, cap * sizeof(*p2));
		if (p2) {
			poisoned = p2;
			poison_cap = cap;
		}
	}
	if (npoisoned < poison_cap)
		poisoned[npoisoned++] = addr;
	atomic_store(&poison_pending, true);
	struct uffdio_poison p = { .range = { .start = addr, .len = PAGE_SIZE } };
	int rc = ioctl(fd, UFFDIO_POISON, &p);
	if (rc < 0 && errno == EEXIST) {
		/* A write-protect marker (a snapshot protected the hole) holds
		 * the entry; zapping would put it back, unprotecting clears
		 * it.  Without waking: the thread must find the poison. */
		struct uffdio_writeprotect wp = {
			.range = { .start = addr, .len = PAGE_SIZE },
			.mode = UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
		};
		ioctl(fd, UFFDIO_WRITEPROTECT, &wp);
		p.updated = 0;
		rc = ioctl(fd, UFFDIO_POISON, &p);
	}
	pthread_mutex_unlock(&poison_lock);
	if (rc < 0) {
		/* No poison support: nothing better than waking it, which
		 * faults again; only reached on kernels before 6.6. */
		wake(fd, addr, PAGE_SIZE);
	}
}

void engine_clear_poisons(void)
{
	if (!atomic_load(&poison_pending))
		return;
	pthread_mutex_lock(&poison_lock);
	for (size_t i = 0; i < npoisoned; i++)
		madvise((void *)(uintptr_t)poisoned[i], PAGE_SIZE, MADV_DONTNEED);
	npoisoned = 0;
	atomic_store(&poison_pending, false);
	pthread_mutex_unlock(&poison_lock);
}

bool engine_poisons_pending(void)
{
	return atomic_load(&poison_pending);
}

void engine_retry_poisons(void)
{
	if (atomic_load(&poison_pending) && space_pool_has_room())
		engine_clear_poisons();
}

/*
 * A fault that waits for a pager: the handler does not block (it serves
 * other faults meanwhile); the faulting thread stays asleep in the kernel
 * until the wait completes.  Then it is woken to fault again, or — the
 * pager failed the page — sent SIGBUS directly, with si_addr set: a poison
 * would outlive the failure, while later accesses must ask the pager again.
 * (The signal's si_code is SI_QUEUE: only the kernel may send BUS_ADRERR.)
 */
struct fault_wait {
	struct cow_wait w;
	uint64_t addr;
	int fd;    /* the userfaultfd the fault came from */
	pid_t tid; /* 0: unknown (no UFFD_FEATURE_THREAD_ID) */
};

static void fault_wait_complete(struct cow_wait *w)
{
	struct fault_wait *fw = (struct fault_wait *)w;
	if (w->result < 0 && fw->tid) {
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		si.si_signo = SIGBUS;
		si.si_code = SI_QUEUE;
		si.si_addr = (void *)(uintptr_t)fw->addr;
		if (syscall(SYS_rt_tgsigqueueinfo, getpid(), fw->tid, SIGBUS, &si) < 0)
			poison(fw->fd, fw->addr);
	} else if (w->result < 0) {
		poison(fw->fd, fw->addr);
	} else {
		wake(fw->fd, fw->addr, PAGE_SIZE);
	}
	free(fw);
}

/* One spare wait per handler thread, handed to cow for each fault and
 * replaced once a pager keeps it. */
static __thread struct fault_wait *spare_wait;

static int resolve_with_wait(int fd, uint64_t addr, bool wp, bool write, pid_t tid)
{
	if (!spare_wait)
		spare_wait = calloc(1, sizeof(*spare_wait));
	if (!spare_wait)
		return -ENOMEM;
	spare_wait->w.complete = fault_wait_complete;
	spare_wait->addr = addr;
	spare_wait->fd = fd;
	spare_wait->tid = tid;
	cow_wait_use(&spare_wait->w);
	int rc = space_resolve_fault(addr, wp, write);
	cow_wait_use(NULL);
	if (rc == -EINPROGRESS)
		spare_wait = NULL; /* the pager completes and frees it */
	return rc;
}

void engine_handler_exit(void)
{
	free(spare_wait);
	spare_wait = NULL;
}

void engine_handle_fault(int fd, const struct uffd_msg *msg)
{
	uint64_t addr = msg->arg.pagefault.address & ~(PAGE_SIZE - 1);
	bool wp = msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP;
	bool write = msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE;
	pid_t tid = (engine.features & UFFD_FEATURE_THREAD_ID)
			    ? (pid_t)msg->arg.pagefault.feat.ptid : 0;

	/* Counted on arrival: the faulting thread may run on (and read the
	 * counters) as soon as the fault is answered. */
	atomic_fetch_add(wp ? &engine.wp_faults : &engine.missing_faults, 1);

	/* Held until the fault is answered: the mapping stays put, and a
	 * fork() in progress (which holds it for writing) sees no fault
	 * half-served. */
	pthread_rwlock_rdlock(&aspace_lock);
	fault_answered = false;
	answered_on = -1;
	int rc = resolve_with_wait(fd, addr, wp, write, tid);

	/*
	 * The thread sleeps on @fd.  Installs and lifted protections wake the
	 * waiters of the mapping's userfaultfd, which is another one if the
	 * mapping moved between the two (tracking.c).  Moving it wakes the
	 * threads waiting then, but a fault can still reach the old one after
	 * that wake-up: the kernel wakes before it unregisters each VMA, and a
	 * fault under the per-VMA lock is not held off by the mmap lock the
	 * move holds.  So a fault answered on another userfaultfd is woken
	 * here too.
	 */
	bool woken_elsewhere = answered_on >= 0 && answered_on != fd;
	if (rc == -EINPROGRESS) {
		/* Asleep until the pager answers (fault_wait_complete). */
	} else if (rc == -ESRCH) {
		/* Unmapped meanwhile: the retry finds no mapping (SIGSEGV). */
		wake(fd, addr, PAGE_SIZE);
	} else if (rc < 0) {
		atomic_fetch_add(&engine.sigbus_faults, 1);
		poison(fd, addr);
	} else if ((!wp && !fault_answered) || (wp && answered_on < 0) || woken_elsewhere) {
		wake(fd, addr, PAGE_SIZE); /* a write-protect fault was lifted under the lock */
	}
	pthread_rwlock_unlock(&aspace_lock);
}

int engine_start(uint32_t threads, uint32_t tracking, uint32_t rest_ms)
{
	engine.config_threads = threads;
	engine.config_tracking = tracking;
	engine.config_rest_ms = rest_ms;
	int rc = open_uffd(0, &engine.features);
	if (rc < 0)
		return rc;
	engine.fd = rc;
	rc = open_async_tracking(tracking);
	if (rc == 0)
		rc = handlers_start(threads, rest_ms);
	if (rc < 0)
		engine_stop();
	return rc;
}

static void close_fds(void)
{
	int *fds[] = { &engine.fd, &engine.async_fd, &engine.pagemap_fd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

void engine_forget(void)
{
	/* After fork(): the threads are the parent's, and so is the
	 * userfaultfd context — reading it would steal the parent's faults. */
	handlers_forget();
	close_fds();
}

void engine_stop(void)
{
	handlers_stop();
	close_fds();
	pthread_mutex_lock(&poison_lock);
	free(poisoned);
	poisoned = NULL;
	npoisoned = poison_cap = 0;
	atomic_store(&poison_pending, false);
	pthread_mutex_unlock(&poison_lock);
}

void uffd_get_stats(struct uffd_stats *out)
{
	out->missing_faults = atomic_load(&engine.missing_faults);
	out->wp_faults = atomic_load(&engine.wp_faults);
	out->sigbus_faults = atomic_load(&engine.sigbus_faults);
	out->dirty_scans = atomic_load(&engine.dirty_scans);
	out->dirty_scan_ns = atomic_load(&engine.dirty_scan_ns);
	out->direct_file_mappings = mapping_direct_count();
	out->async_tracking = engine.async_fd >= 0;
	handlers_get_stats(out);
}

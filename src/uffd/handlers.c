/* SPDX-License-Identifier: MIT */
/*
 * handlers.c — the fault handler threads, and which of them wait.
 *
 * By default there is one handler per CPU, each pinned to its CPU, all
 * waiting on the userfaultfds.  When a fault arrives the one on the faulting
 * thread's CPU (now idle, since that thread sleeps) usually takes it: no
 * cross-CPU wake-up, which costs 36–50 µs here against 6 µs on the same
 * CPU (DESIGN.md §4).
 *
 * The herd.  The kernel wakes every thread waiting on a userfaultfd for
 * each fault.  Waking a handler on another, idle CPU costs the faulting
 * CPU an inter-processor interrupt (a VM exit here), and now and then that
 * handler wins the race and serves the fault from afar.  Measured with
 * random clone reads from one thread pinned to CPU 0: 16–19 µs per fault
 * with both handlers waiting, 13 µs with only CPU 0's.  And the losers
 * often cannot even tell: poll(2) looks again before it returns, finds the
 * fault taken and sleeps on, so a handler cannot judge its own use by the
 * wake-ups it sees.
 *
 * So the handlers judge each other by what they serve.  Every
 * JUDGE_EVERY faults, the handler that read the last one looks at how
 * many each waiting handler served since its last judgement; one that
 * served much less than an equal share is asked to rest (its own eventfd
 * wakes its poll).  A resting handler waits on a futex instead of the
 * userfaultfds, so faults no longer wake it.  It comes back:
 *   - when its rest is up (the faulting threads may have moved to its
 *     CPU); each rest that ends in another request to rest before it has
 *     earned its keep doubles the next one, up to REST_MAX_NS;
 *   - at once, when a handler sees a fault from another thread than the
 *     last (several threads are faulting, possibly on several CPUs, and
 *     each is best served on its own), at most once per RECALL_MIN_NS;
 *   - at once, when a sample of the faulting thread's CPU (every
 *     SAMPLE_EVERY faults while some handler rests) finds it on the
 *     resting handler's CPU;
 *   - within REST_CHECK_NS + STUCK_NS, when it finds a fault left unread
 *     and no fault read for STUCK_NS (the waiting handlers cannot run, say
 *     behind a busy thread on their CPU): resting never delays a fault by
 *     much more than that;
 *   - at once, when uvmo stops.
 * One handler always keeps waiting.
 *
 * Lock order: judge_lock is a leaf; it is only ever try-locked by
 * handlers, and taken by a handler coming back from rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "compat/linux_abi.h"
#include "uffd/uffd_private.h"
#include <uvmo/uvmo.h>

#define JUDGE_EVERY 128u
/* Resting is for handlers serving less than 1/SHARE_FRACTION of an equal
 * share (of the faults, among the handlers waiting): with 2 handlers, one
 * that served less than 1 in 8 (mostly races it won from afar). */
#define SHARE_FRACTION 4u
#define REST_MIN_NS 10000000ull  /* 10 ms */
#define REST_MAX_NS 160000000ull /* 160 ms */
#define RECALL_MIN_NS 1000000ull /* 1 ms */
#define SAMPLE_EVERY 256u
#define REST_CHECK_NS 10000000ull /* 10 ms */
#define STUCK_NS 1000000ull /* 1 ms */

struct handler {
	pthread_t thread;
	long cpu;               /* pinned to it, or -1 */
	int nudge_fd;           /* eventfd: stop, or rest_requested */
	_Atomic bool rest_requested;
	_Atomic bool resting;
	_Atomic uint32_t recall_word; /* a futex word: bumped to end a rest */
	_Atomic uint64_t served; /* faults it read */
	/* Under judge_lock: the fault count and its own count when it was
	 * last judged (or came back), and its next rest. */
	uint64_t judged_at, served_then;
	uint64_t rest_ns;
	bool judged_since_rest;
};

static struct handler *handlers;
static uint32_t nhandlers;
static _Atomic bool stopping;
static _Atomic bool running; /* for the counters: handlers exist */
static pthread_mutex_t judge_lock = PTHREAD_MUTEX_INITIALIZER;

/* Rests: from rest_min_ns, doubling up to rest_max_ns (handler_rest_ms);
 * never, without thread ids (several faulting threads could not be told
 * from one) or if so configured. */
static bool may_rest;
static uint64_t rest_min_ns, rest_max_ns;
static _Atomic uint64_t rests, recalls;

static _Atomic uint64_t faults_read;     /* by all handlers */
static _Atomic uint32_t waiting_handlers; /* not resting */
/* /proc/self/task, to see where a faulting thread runs; -1: unknown. */
static int task_dir = -1;
static _Atomic uint32_t last_faulting_thread;
static _Atomic uint64_t last_recall_ns;

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void nudge(struct handler *h)
{
	uint64_t one = 1;
	ssize_t w = write(h->nudge_fd, &one, sizeof(one));
	(void)w; /* a full counter still wakes it */
}

static void recall(struct handler *h)
{
	if (!atomic_load(&stopping))
		atomic_fetch_add_explicit(&recalls, 1, memory_order_relaxed);
	atomic_fetch_add(&h->recall_word, 1);
	syscall(SYS_futex, &h->recall_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void recall_resting_handlers(void)
{
	if (atomic_load_explicit(&waiting_handlers, memory_order_relaxed) >= nhandlers)
		return;
	for (uint32_t i = 0; i < nhandlers; i++)
		if (atomic_load(&handlers[i].resting))
			recall(&handlers[i]);
}

/* The CPU thread @tid last ran on — for a thread asleep in a fault, the
 * one it faulted on — or -1 (field 39 of /proc/<pid>/task/<tid>/stat). */
static long cpu_of_thread(uint32_t tid)
{
	char path[32], buf[1024];
	snprintf(path, sizeof(path), "%u/stat", tid);
	int fd = openat(task_dir, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
	for (int field = 2; p && field < 39; field++)
		p = strchr(p + 1, ' ');
	return p ? strtol(p + 1, NULL, 10) : -1;
}

/* Every SAMPLE_EVERY faults while some handler rests: if the faulting
 * thread @tid sits on a CPU whose handler rests, that handler is needed
 * there now (its thread moved), and every fault until its rest is up
 * would cross CPUs. */
static void check_faulting_cpu(const struct handler *self, uint32_t tid)
{
	long cpu = cpu_of_thread(tid);
	if (cpu < 0 || cpu == self->cpu)
		return;
	for (uint32_t i = 0; i < nhandlers; i++)
		if (handlers[i].cpu == cpu && atomic_load(&handlers[i].resting))
			recall(&handlers[i]);
}

/* The fault just read came from thread @tid. */
static void note_faulting_thread(uint32_t tid)
{
	if (atomic_load_explicit(&last_faulting_thread, memory_order_relaxed) == tid)
		return;
	atomic_store_explicit(&last_faulting_thread, tid, memory_order_relaxed);
	uint64_t now = monotonic_ns();
	if (now - atomic_load_explicit(&last_recall_ns, memory_order_relaxed) < RECALL_MIN_NS)
		return;
	atomic_store_explicit(&last_recall_ns, now, memory_order_relaxed);
	recall_resting_handlers();
}

/* Ask every waiting handler that served less than its share of the
 * faults since it was last judged to rest.  One judge at a time. */
static void judge_handlers(uint64_t count)
{
	if (atomic_load(&stopping) || pthread_mutex_trylock(&judge_lock) != 0)
		return;
	uint64_t waiting = atomic_load(&waiting_handlers);
	for (uint32_t i = 0; i < nhandlers; i++) {
		struct handler *h = &handlers[i];
		/* Another judge, or a handler back from rest, may have set
		 * judged_at past this judge's count. */
		if (atomic_load(&h->rest_requested) ||
		    (int64_t)(count - h->judged_at) < (int64_t)JUDGE_EVERY)
			continue;
		uint64_t served = atomic_load(&h->served);
		bool idle = (served - h->served_then) * SHARE_FRACTION * waiting <
			    count - h->judged_at;
		h->judged_at = count;
		h->served_then = served;
		if (!idle) {
			h->rest_ns = rest_min_ns; /* earned its keep */
			h->judged_since_rest = true;
			continue;
		}
		if (!h->judged_since_rest)
			h->rest_ns = h->rest_ns * 2 < rest_max_ns ? h->rest_ns * 2 : rest_max_ns;
		atomic_store(&h->rest_requested, true);
		nudge(h);
	}
	pthread_mutex_unlock(&judge_lock);
}

/* Whether a fault waits on a userfaultfd unread. */
static bool fault_pending(void)
{
	struct pollfd fds[2] = {
		{ .fd = engine.fd, .events = POLLIN },
		{ .fd = engine.async_fd, .events = POLLIN },
	};
	return poll(fds, 2, 0) > 0;
}

/* Sleep on @h's futex for @ns at most: true if recalled meanwhile. */
static bool sleep_unless_recalled(struct handler *h, uint32_t word, uint64_t ns);

/* Whether the waiting handlers are stuck: a fault waits unread, and no
 * fault at all is read for STUCK_NS.  (A fault is often unread for a
 * moment: its thread may fault again before the handler that woke it is
 * back on its poll.)  Sets *@recalled if recalled meanwhile. */
static bool handlers_stuck(struct handler *h, uint32_t word, bool *recalled)
{
	if (!fault_pending())
		return false;
	uint64_t count = atomic_load(&faults_read);
	*recalled = sleep_unless_recalled(h, word, STUCK_NS);
	return !*recalled && atomic_load(&faults_read) == count && fault_pending();
}

/* Sleep on @h's futex for @ns at most: true if recalled meanwhile. */
static bool sleep_unless_recalled(struct handler *h, uint32_t word, uint64_t ns)
{
	struct timespec timeout = { .tv_sec = (time_t)(ns / 1000000000ull),
				    .tv_nsec = (long)(ns % 1000000000ull) };
	syscall(SYS_futex, &h->recall_word, FUTEX_WAIT_PRIVATE, word, &timeout, NULL, 0);
	return atomic_load(&h->recall_word) != word;
}

/*
 * Rest, unless this is the last waiting handler: sleep until recalled or
 * until the rest is up.  Every REST_CHECK_NS it looks whether the waiting
 * handlers are stuck (handlers_stuck), and comes back if so.
 *
 * The handler shows itself resting before the count of waiting handlers
 * drops, so that anyone who acts on the lower count (a recall, the stop)
 * also sees it resting and bumps its futex word, read before either.
 */
static void rest(struct handler *h)
{
	uint32_t word = atomic_load(&h->recall_word);
	atomic_store(&h->resting, true);
	uint32_t waiting = atomic_load(&waiting_handlers);
	do {
		if (waiting <= 1) {
			atomic_store(&h->resting, false);
			goto back;
		}
	} while (!atomic_compare_exchange_weak(&waiting_handlers, &waiting, waiting - 1));
	atomic_fetch_add_explicit(&rests, 1, memory_order_relaxed);

	pthread_mutex_lock(&judge_lock);
	uint64_t end = monotonic_ns() + h->rest_ns;
	pthread_mutex_unlock(&judge_lock);
	for (;;) {
		uint64_t now = monotonic_ns();
		if (atomic_load(&stopping) || now >= end)
			break;
		uint64_t ns = end - now < REST_CHECK_NS ? end - now : REST_CHECK_NS;
		bool recalled = sleep_unless_recalled(h, word, ns);
		if (!recalled && handlers_stuck(h, word, &recalled))
			atomic_fetch_add_explicit(&recalls, 1, memory_order_relaxed);
		else if (!recalled)
			continue;
		break;
	}
	atomic_store(&h->resting, false);
	atomic_fetch_add(&waiting_handlers, 1);
back:
	pthread_mutex_lock(&judge_lock);
	h->judged_at = atomic_load(&faults_read);
	h->served_then = atomic_load(&h->served);
	h->judged_since_rest = false;
	pthread_mutex_unlock(&judge_lock);
	atomic_store(&h->rest_requested, false);
}

/* Read one message from userfaultfd @fd and serve it: false if another
 * handler took it first. */
static bool serve_one(struct handler *h, int fd)
{
	struct uffd_msg msg;
	if (read(fd, &msg, sizeof(msg)) != sizeof(msg))
		return false;
	if (msg.event != UFFD_EVENT_PAGEFAULT)
		return true;
	atomic_fetch_add_explicit(&h->served, 1, memory_order_relaxed);
	uint64_t count = atomic_fetch_add_explicit(&faults_read, 1, memory_order_relaxed) + 1;
	if (may_rest) {
		uint32_t tid = msg.arg.pagefault.feat.ptid;
		note_faulting_thread(tid);
		if (count % JUDGE_EVERY == 0)
			judge_handlers(count);
		if (count % SAMPLE_EVERY == 0 && task_dir >= 0 && h->cpu >= 0 &&
		    atomic_load_explicit(&waiting_handlers, memory_order_relaxed) < nhandlers)
			check_faulting_cpu(h, tid);
	}
	engine_handle_fault(fd, &msg);
	return true;
}

static void *handler_main(void *arg)
{
	struct handler *h = arg;
	/* A negative fd (no async userfaultfd) is ignored by poll. */
	struct pollfd fds[3] = {
		{ .fd = engine.fd, .events = POLLIN },
		{ .fd = engine.async_fd, .events = POLLIN },
		{ .fd = h->nudge_fd, .events = POLLIN },
	};

	if (h->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET((int)h->cpu, &set);
		pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	while (!atomic_load(&stopping)) {
		/* With poisons outstanding, look again now and then whether
		 * the pool has room for them to succeed. */
		int timeout = engine_poisons_pending() ? 50 : -1;
		int n = poll(fds, 3, timeout);
		if (n < 0 && errno != EINTR)
			usleep(1000); /* ENOMEM: try again; a handler never leaves */
		engine_retry_poisons();
		if (n <= 0)
			continue;
		if (fds[2].revents & POLLIN) {
			uint64_t count;
			ssize_t r = read(h->nudge_fd, &count, sizeof(count));
			(void)r;
			if (atomic_load(&h->rest_requested) && !atomic_load(&stopping))
				rest(h);
			continue;
		}
		if (fds[0].revents & POLLIN)
			serve_one(h, engine.fd);
		else if (fds[1].revents & POLLIN)
			serve_one(h, engine.async_fd);
	}
	engine_handler_exit();
	return NULL;
}

static void release(void)
{
	free(handlers);
	handlers = NULL;
	nhandlers = 0;
	if (task_dir >= 0)
		close(task_dir);
	task_dir = -1;
}

void handlers_stop(void)
{
	atomic_store(&running, false);
	atomic_store(&stopping, true);
	for (uint32_t i = 0; i < nhandlers; i++) {
		nudge(&handlers[i]);
		recall(&handlers[i]); /* resting or not: no ordering to get wrong */
	}
	/* All joined before any eventfd closes: a handler still serving a
	 * fault may nudge another until it sees the stop. */
	for (uint32_t i = 0; i < nhandlers; i++)
		if (handlers[i].thread)
			pthread_join(handlers[i].thread, NULL);
	for (uint32_t i = 0; i < nhandlers; i++)
		close(handlers[i].nudge_fd);
	release();
}

void handlers_forget(void)
{
	/* After fork(): the threads are the parent's, and /proc/self/task
	 * (opened then) names the parent's.  One of them may have held the
	 * judge's lock at the fork. */
	atomic_store(&running, false);
	for (uint32_t i = 0; i < nhandlers; i++)
		close(handlers[i].nudge_fd);
	release();
	pthread_mutex_init(&judge_lock, NULL);
}

int handlers_start(uint32_t threads, uint32_t rest_ms)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	rest_min_ns = rest_ms ? (uint64_t)rest_ms * 1000000ull : REST_MIN_NS;
	rest_max_ns = rest_ms ? rest_min_ns : REST_MAX_NS;
	bool pin = threads == 0;
	if (threads == 0)
		threads = cpus > 0 ? (uint32_t)cpus : 1;
	handlers = calloc(threads, sizeof(*handlers));
	if (!handlers)
		return -ENOMEM;
	for (uint32_t i = 0; i < threads; i++) {
		handlers[i].nudge_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (handlers[i].nudge_fd < 0) {
			int rc = -errno;
			while (i-- > 0)
				close(handlers[i].nudge_fd);
			free(handlers);
			handlers = NULL;
			return rc;
		}
		handlers[i].cpu = pin ? (long)i : -1;
		handlers[i].rest_ns = rest_min_ns;
		handlers[i].judged_since_rest = true; /* the first rest is not doubled */
	}
	nhandlers = threads;
	task_dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	may_rest = (engine.features & UFFD_FEATURE_THREAD_ID) &&
		   rest_ms != UVMO_HANDLERS_NEVER_REST;
	atomic_store(&rests, 0);
	atomic_store(&recalls, 0);
	atomic_store(&stopping, false);
	atomic_store(&faults_read, 0);
	atomic_store(&waiting_handlers, threads);
	for (uint32_t i = 0; i < threads; i++) {
		if (pthread_create(&handlers[i].thread, NULL, handler_main, &handlers[i]) != 0) {
			handlers[i].thread = 0;
			handlers_stop();
			return -EAGAIN;
		}
	}
	atomic_store(&running, true);
	return 0;
}

void handlers_get_stats(struct uffd_stats *out)
{
	out->handler_rests = atomic_load(&rests);
	out->handler_recalls = atomic_load(&recalls);
	out->handlers_waiting = atomic_load(&running) ? atomic_load(&waiting_handlers) : 0;
}

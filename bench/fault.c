// SPDX-License-Identifier: MIT
/*
 * bench/fault.c — cost of page faults on uvmo mappings.
 *
 * Measures, in one run, and prints one table of ratios against baselines
 * measured in the same run (issue 3, section 5):
 *
 *   baselines
 *     B1  kernel anonymous first-touch write fault (MAP_PRIVATE|MAP_ANONYMOUS,
 *         MADV_NOHUGEPAGE so every fault is a 4 KiB fault, like uvmo's);
 *     B2  a minimal userfaultfd MISSING round trip (own handler thread blocked
 *         in read(2), UFFDIO_COPY of one page), faulting thread and handler
 *         pinned to the same CPU;
 *     B3  the same, neither thread pinned;
 *     B4  a minimal write-protect round trip (WP mode on a populated anonymous
 *         mapping; the handler copies the 4 KiB page out with memcpy, then
 *         UFFDIO_WRITEPROTECT clears the protection), same CPU;
 *     B5  the same, unpinned;
 *     B6  4 KiB memcpy alone (pre-faulted buffers);
 *     B7  fork() + _exit + waitpid of a process with 256 MiB populated (run in
 *         a helper process forked before uvmo starts, so uvmo's threads and
 *         mappings do not weigh on it);
 *     B8  kernel anonymous faults from 2 threads: aggregate rate / 1 thread;
 *     B2s (for information) B2 on a MAP_SHARED memfd mapping, the kind of
 *         memory uvmo's mappings are: what shmem's UFFDIO_COPY costs over
 *         anonymous memory's.
 *
 *   uvmo (targets from the issue)
 *     1   first write to each page of a fresh VMO through a mapping: <= 1.5x B1
 *     2a  read (1 byte per page, sequential) of a fresh snapshot child's
 *         mapping, every page inherited from the parent:             <= 2x B1
 *     2b  the same in random page order:                              <= 1.3x B2
 *     3   first write to each page through the parent's mapping after a
 *         snapshot (copy-on-write):                                   <= 1.3x B4
 *     4   2 threads faulting disjoint halves of one fresh mapping: aggregate
 *         rate / the rate of 1 thread doing the same:                 >= 1.6x
 *     5   uvmo_vmo_create_child(SNAPSHOT) of a mapped VMO with 256 MiB
 *         populated through its mapping:                              <= 0.6x B7
 *
 * Every measurement runs once per round; rounds interleave baselines and
 * uvmo (the order rotates from round to round) and every figure is the
 * median over the rounds.  This machine is a noisy VM: only ratios of
 * figures from the same run mean anything.
 *
 * Environment: FAULT_BENCH_HANDLERS=n sets uvmo_config.fault_threads (0, the
 * default, is one pinned handler per CPU; n > 0 is n unpinned handlers), to
 * compare handler placements; FAULT_BENCH_REST_MS=n|never sets
 * uvmo_config.handler_rest_ms (never: every handler always waits, as
 * before handlers could rest).  The load average is printed before and after:
 * other work on the machine skews every figure, the 2-thread ones most.
 *
 * A benchmark is not an assertion: a MISS still exits 0, and so does a
 * failing uvmo call (its rows then read ERR and the reason is printed).
 * Only a hang (a watchdog fires after WATCHDOG_S seconds without progress;
 * the partial table is printed) exits 1, and a crash dies of its signal
 * after naming the measurement it happened in.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uvmo/uvmo.h>

#include "bench_util.h"

#define PAGE ((size_t)UVMO_PAGE_SIZE)

/* Pages per fault measurement (16 MiB): past the caches, and long enough
 * that one round's timer and thread start-up vanish in it. */
#define PAGES 4096u
/* The snapshot-vs-fork measurement: 256 MiB populated. */
#define SNAP_PAGES (65536u)
/* Rounds: as many as fit in the time budget, at least MIN_ROUNDS. */
#define MAX_ROUNDS 9
#define MIN_ROUNDS 3
#define BUDGET_S 45
/* No progress for this long is a hang. */
#define WATCHDOG_S 60
/* Seed of the random page order (row 2b). */
#define RANDOM_SEED 0x5eedf00du

/* Targets from the issue. */
#define TARGET_FIRST_TOUCH 1.5 /* x B1 */
#define TARGET_INHERIT_SEQ 2.0 /* x B1 */
#define TARGET_INHERIT_RND 1.3 /* x B2 */
#define TARGET_COW         1.3 /* x B4 */
#define TARGET_THREADS     1.6 /* rate ratio, at least */
#define TARGET_SNAPSHOT    0.6 /* x B7 */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void *xmalloc(size_t len)
{
	void *p = malloc(len);

	if (!p)
		die("out of memory (%zu bytes)", len);
	return p;
}

/* A private anonymous mapping of 4 KiB pages (no THP), not yet touched. */
static char *anon_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap of %zu bytes: %s", len, strerror(errno));
	madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

/* The byte page @i of a test VMO holds. */
static inline uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 131u + 7u);
}

/* One write of one byte per page: the first-touch loop. */
static void touch_write(char *base, size_t pages, uint8_t v)
{
	volatile char *p = base;

	for (size_t i = 0; i < pages; i++)
		p[i * PAGE] = (char)v;
}

/* Writes pattern(i) into page i. */
static void touch_write_pattern(char *base, size_t pages)
{
	volatile char *p = base;

	for (size_t i = 0; i < pages; i++)
		p[i * PAGE] = (char)pattern(i);
}

/* Reads byte 0 of page order[i] (or of page i without @order). */
static uint64_t touch_read(const char *base, size_t pages, const uint32_t *order)
{
	const volatile char *p = base;
	uint64_t sum = 0;

	for (size_t i = 0; i < pages; i++)
		sum += (uint8_t)p[(order ? order[i] : i) * PAGE];
	return sum;
}

/* ------------------------------------------------------------------------ */
/* CPUs                                                                      */
/* ------------------------------------------------------------------------ */

static cpu_set_t initial_cpus;
static int cpus[CPU_SETSIZE];
static int ncpus;

static void cpus_init(void)
{
	if (sched_getaffinity(0, sizeof initial_cpus, &initial_cpus) != 0)
		die("sched_getaffinity: %s", strerror(errno));
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &initial_cpus))
			cpus[ncpus++] = c;
	if (ncpus == 0)
		die("no CPU in the affinity mask");
}

/* Pins the calling thread to @cpu, or (cpu < 0) gives it every CPU back. */
static void pin_self(int cpu)
{
	cpu_set_t set;
	int rc;

	if (cpu < 0) {
		set = initial_cpus;
	} else {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
	}
	rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	if (rc != 0)
		die("pthread_setaffinity_np: %s", strerror(rc));
}

/* ------------------------------------------------------------------------ */
/* Samples, errors, the table                                                */
/* ------------------------------------------------------------------------ */

enum meas {
	M_ANON,      /* B1: ns per page */
	M_UFFD_PIN,  /* B2 */
	M_UFFD_FREE, /* B3 */
	M_UFFD_SHMEM, /* B2s */
	M_WP_PIN,    /* B4 */
	M_WP_FREE,   /* B5 */
	M_MEMCPY,    /* B6 */
	M_FORK,      /* B7: ns per call */
	M_ANON_T1,   /* B8: ns per page, 1 thread */
	M_ANON_T2,   /*     ns per page (aggregate), 2 threads */
	M_FIRST,     /* 1 */
	M_SEQ,       /* 2a */
	M_RAND,      /* 2b */
	M_RAND_PIN,  /*    the same, faulting thread pinned (information) */
	M_COW,       /* 3 */
	M_T1,        /* 4: ns per page, 1 thread */
	M_T2,        /*    ns per page (aggregate), 2 threads */
	M_POPULATE,  /* 5: ns per page, first touch of the 256 MiB */
	M_SNAP,      /*    ns per snapshot */
	M_COUNT
};

/* The table row each measurement feeds. */
static const char *const row_of[M_COUNT] = {
	[M_ANON] = "B1", [M_UFFD_PIN] = "B2", [M_UFFD_FREE] = "B3", [M_UFFD_SHMEM] = "B2s",
	[M_WP_PIN] = "B4",
	[M_WP_FREE] = "B5", [M_MEMCPY] = "B6", [M_FORK] = "B7", [M_ANON_T1] = "B8",
	[M_ANON_T2] = "B8", [M_FIRST] = "1", [M_SEQ] = "2a", [M_RAND] = "2b", [M_RAND_PIN] = "2b",
	[M_COW] = "3", [M_T1] = "4", [M_T2] = "4", [M_POPULATE] = "5", [M_SNAP] = "5",
};

static double samples[M_COUNT][MAX_ROUNDS];
static int nsamples[M_COUNT];
static char errors[M_COUNT][160];

static void record(enum meas m, double v)
{
	if (nsamples[m] < MAX_ROUNDS)
		samples[m][nsamples[m]++] = v;
}

/* Median, or a negative number when there is no sample. */
static double med(enum meas m)
{
	double tmp[MAX_ROUNDS];
	int n = nsamples[m];

	if (n == 0)
		return -1;
	memcpy(tmp, samples[m], (size_t)n * sizeof tmp[0]);
	return median(tmp, (size_t)n);
}

/* Library problems noticed on the way (wrong bytes read, ...). */
#define MAX_PROBLEMS 16
static char problems[MAX_PROBLEMS][200];
static int nproblems;

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void problem(const char *fmt, ...)
{
	va_list ap;

	if (nproblems == MAX_PROBLEMS)
		return;
	va_start(ap, fmt);
	vsnprintf(problems[nproblems], sizeof problems[0], fmt, ap);
	va_end(ap);
	/* The same complaint every round says nothing new. */
	for (int i = 0; i < nproblems; i++)
		if (strcmp(problems[i], problems[nproblems]) == 0)
			return;
	nproblems++;
}

static void fmt_time(char *buf, size_t len, double ns)
{
	if (ns < 0)
		snprintf(buf, len, "-");
	else if (ns < 1e3)
		snprintf(buf, len, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.2f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, len, "%.2f ms", ns / 1e6);
	else
		snprintf(buf, len, "%.2f s", ns / 1e9);
}

#define RULE_WIDTH 118

static void print_rule(void)
{
	for (int i = 0; i < RULE_WIDTH; i++)
		putchar('-');
	putchar('\n');
}

/* One line: @uvmo and @base in ns (negative: none); @ratio_kind: 0 no
 * ratio, 1 ratio = uvmo / base with target <= @target, 2 ratio = base / uvmo
 * (a rate ratio) with target >= @target, 3 informational uvmo / base,
 * 4 informational base / uvmo. */
static void line(const char *id, const char *what, double uvmo, const char *base_id,
		 double base, int ratio_kind, double target, const char *err)
{
	char u[64], b[128], r[64] = "", t[64] = "", v[8] = "";
	double ratio = -1;

	fmt_time(u, sizeof u, uvmo);
	if (base_id) {
		char bt[64];

		fmt_time(bt, sizeof bt, base);
		snprintf(b, sizeof b, "%s %s", base_id, bt);
	} else {
		snprintf(b, sizeof b, "%s", "");
	}
	if (ratio_kind && uvmo > 0 && base > 0) {
		ratio = ratio_kind == 2 || ratio_kind == 4 ? base / uvmo : uvmo / base;
		snprintf(r, sizeof r, "%.2fx", ratio);
	}
	if (ratio_kind == 1 || ratio_kind == 2)
		snprintf(t, sizeof t, "%s %gx", ratio_kind == 1 ? "<=" : ">=", target);
	if ((ratio_kind == 1 || ratio_kind == 2) && ratio > 0) {
		bool pass = ratio_kind == 1 ? ratio <= target : ratio >= target;

		snprintf(v, sizeof v, "%s", pass ? "PASS" : "MISS");
	} else if (ratio_kind == 1 || ratio_kind == 2) {
		snprintf(v, sizeof v, "%s", err ? "ERR" : "-");
	}
	printf("%-3s %-56s %11s  %-16s %8s  %-8s %s\n", id, what, u, b, r, t, v);
}

/* The first error of the measurements behind a row. */
static const char *err_of(enum meas a, enum meas b)
{
	if (errors[a][0])
		return errors[a];
	if (errors[b][0])
		return errors[b];
	return NULL;
}

static int rounds_done;
static char load_before[64], load_after[64];
static uint32_t handlers_cfg;
static uint32_t rest_cfg; /* uvmo_config.handler_rest_ms */

static void read_loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");
	double a = 0, b = 0, c = 0;

	if (!f || fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3)
		snprintf(buf, len, "?");
	else
		snprintf(buf, len, "%.2f %.2f %.2f", a, b, c);
	if (f)
		fclose(f);
}

static void print_table(void)
{
	double b1 = med(M_ANON), b2 = med(M_UFFD_PIN), b3 = med(M_UFFD_FREE);
	double b4 = med(M_WP_PIN), b5 = med(M_WP_FREE), b7 = med(M_FORK);
	const char *e;

	printf("\nfault_bench: medians of %d interleaved rounds; %u pages (%zu MiB) "
	       "per fault measurement, %u MiB for snapshot/fork; %d CPU%s\n",
	       rounds_done, PAGES, (size_t)PAGES * PAGE >> 20,
	       (unsigned)((size_t)SNAP_PAGES * PAGE >> 20), ncpus, ncpus == 1 ? "" : "s");
	printf("uvmo fault handlers: %s; load average before: %s, after: %s\n",
	       handlers_cfg ? "fault_threads set (unpinned)" : "default (one per CPU, pinned)",
	       load_before, load_after[0] ? load_after : "-");
	if (handlers_cfg)
		printf("  fault_threads = %u\n", handlers_cfg);
	if (rest_cfg == UVMO_HANDLERS_NEVER_REST)
		printf("  handler_rest_ms = never (every handler always waits)\n");
	else if (rest_cfg)
		printf("  handler_rest_ms = %u\n", rest_cfg);
	printf("times are per 4 KiB page unless marked 'per call'; "
	       "ratio = uvmo / baseline (row 4: rate ratio)\n\n");
	printf("%-3s %-56s %11s  %-16s %8s  %-8s %s\n", "#", "measurement", "time",
	       "baseline", "ratio", "TARGET", "RESULT");
	print_rule();
	line("B1", "kernel anon first-touch write fault", b1, NULL, -1, 0, 0, NULL);
	line("B2", "uffd MISSING round trip (UFFDIO_COPY), same CPU", b2, NULL, -1, 0, 0, NULL);
	line("B3", "uffd MISSING round trip, unpinned", b3, "B2", b2, 3, 0, NULL);
	line("B2s", "uffd MISSING round trip on shmem (memfd), same CPU", med(M_UFFD_SHMEM), "B2",
	     b2, 3, 0, NULL);
	line("B4", "uffd WP round trip + 4 KiB memcpy, same CPU", b4, NULL, -1, 0, 0, NULL);
	line("B5", "uffd WP round trip + 4 KiB memcpy, unpinned", b5, "B4", b4, 3, 0, NULL);
	line("B6", "4 KiB memcpy alone", med(M_MEMCPY), NULL, -1, 0, 0, NULL);
	line("B7", "fork()+exit+wait, 256 MiB populated (per call)", b7, NULL, -1, 0, 0, NULL);
	line("B8", "kernel anon faults, 2 threads (rate vs 1 thread)", med(M_ANON_T2),
	     "1 thr", med(M_ANON_T1), 4, 0, NULL);
	print_rule();
	e = err_of(M_FIRST, M_FIRST);
	line("1", "first touch (write) of a fresh VMO's pages", med(M_FIRST), "B1", b1, 1,
	     TARGET_FIRST_TOUCH, e);
	e = err_of(M_SEQ, M_SEQ);
	line("2a", "read inherited pages of a snapshot, sequential", med(M_SEQ), "B1", b1, 1,
	     TARGET_INHERIT_SEQ, e);
	e = err_of(M_RAND, M_RAND);
	line("2b", "read inherited pages of a snapshot, random order", med(M_RAND), "B2", b2, 1,
	     TARGET_INHERIT_RND, e);
	line("", "  (the same against the shmem uffd round trip)", med(M_RAND), "B2s",
	     med(M_UFFD_SHMEM), 3, 0, NULL);
	line("", "  (the same against the unpinned uffd round trip)", med(M_RAND), "B3", b3, 3,
	     0, NULL);
	line("", "  (the same, reader pinned to one CPU like B2's)", med(M_RAND_PIN), "B2", b2, 3,
	     0, err_of(M_RAND_PIN, M_RAND_PIN));
	e = err_of(M_COW, M_COW);
	line("3", "first write after a snapshot (copy-on-write)", med(M_COW), "B4", b4, 1,
	     TARGET_COW, e);
	line("", "  (the same against the unpinned WP round trip)", med(M_COW), "B5", b5, 3,
	     0, NULL);
	e = err_of(M_T1, M_T2);
	line("4", "2 threads, disjoint pages: aggregate rate vs 1 thread", med(M_T2), "1 thr",
	     med(M_T1), 2, TARGET_THREADS, e);
	e = err_of(M_SNAP, M_POPULATE);
	line("5", "snapshot of mapped VMO, 256 MiB populated (per call)", med(M_SNAP), "B7", b7, 1,
	     TARGET_SNAPSHOT, e);
	line("", "  (populating those 256 MiB by first touch, per page)", med(M_POPULATE), "B1",
	     b1, 3, 0, NULL);
	print_rule();

	for (int m = 0; m < M_COUNT; m++)
		if (errors[m][0])
			printf("ERR in row %s: %s\n", row_of[m], errors[m]);
	if (nproblems) {
		printf("library problems noticed:\n");
		for (int i = 0; i < nproblems; i++)
			printf("  - %s\n", problems[i]);
	}
	fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Watchdog and crash reports                                                */
/* ------------------------------------------------------------------------ */

static const char *volatile current = "start-up";
static _Atomic uint64_t last_progress;

static void progress(const char *what)
{
	current = what;
	atomic_store(&last_progress, now_ns());
}

static void *watchdog_main(void *arg)
{
	(void)arg;
	for (;;) {
		sleep(2);
		if (now_ns() - atomic_load(&last_progress) > (uint64_t)WATCHDOG_S * 1000000000u) {
			fprintf(stderr, "fault_bench: '%s' made no progress in %d s: "
				"hung, giving up\n", current, WATCHDOG_S);
			problem("'%s' hung (no progress in %d s)", current, WATCHDOG_S);
			print_table();
			_exit(1);
		}
	}
	return NULL;
}

static void crash_handler(int sig)
{
	static const char head[] = "fault_bench: crashed with ";
	const char *name = sig == SIGBUS ? "SIGBUS" : "SIGSEGV";
	const char *what = current;

	/* Async-signal-safe: write(2) only.  SA_RESETHAND restored the default
	 * action, so returning re-executes the access and dies of it. */
	if (write(2, head, sizeof head - 1) < 0 || write(2, name, strlen(name)) < 0 ||
	    write(2, " in '", 5) < 0 || write(2, what, strlen(what)) < 0 ||
	    write(2, "'\n", 2) < 0)
		return;
}

static void install_crash_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = crash_handler;
	sa.sa_flags = (int)SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

/* ------------------------------------------------------------------------ */
/* Baselines: kernel anonymous faults                                        */
/* ------------------------------------------------------------------------ */

static int run_anon(void)
{
	size_t len = (size_t)PAGES * PAGE;
	char *p = anon_map(len);
	uint64_t t0, t1;

	t0 = now_ns();
	touch_write(p, PAGES, 1);
	t1 = now_ns();
	munmap(p, len);
	record(M_ANON, (double)(t1 - t0) / PAGES);
	return 0;
}

/* Threads faulting disjoint parts of one range, each pinned to its own CPU. */
struct toucher {
	char *base;
	size_t pages;
	int cpu;
	pthread_barrier_t *bar;
	uint64_t t0, t1;
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;

	pin_self(t->cpu);
	pthread_barrier_wait(t->bar);
	t->t0 = now_ns();
	touch_write(t->base, t->pages, 3);
	t->t1 = now_ns();
	return NULL;
}

/* Wall time of @n threads each writing @pages_each pages of its own part
 * of @base: from the first start to the last finish. */
static uint64_t touch_parallel(char *base, size_t pages_each, int n)
{
	struct toucher tt[2];
	pthread_t th[2];
	pthread_barrier_t bar;
	uint64_t first = UINT64_MAX, last = 0;
	int rc;

	pthread_barrier_init(&bar, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		tt[i] = (struct toucher){ .base = base + (size_t)i * pages_each * PAGE,
					  .pages = pages_each, .cpu = cpus[i % ncpus],
					  .bar = &bar };
		rc = pthread_create(&th[i], NULL, toucher_main, &tt[i]);
		if (rc != 0)
			die("pthread_create: %s", strerror(rc));
	}
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		first = tt[i].t0 < first ? tt[i].t0 : first;
		last = tt[i].t1 > last ? tt[i].t1 : last;
	}
	pthread_barrier_destroy(&bar);
	return last - first;
}

static int run_anon_threads(void)
{
	size_t len = (size_t)2 * PAGES * PAGE;
	char *p;
	uint64_t ns;

	p = anon_map(len / 2);
	ns = touch_parallel(p, PAGES, 1);
	munmap(p, len / 2);
	record(M_ANON_T1, (double)ns / PAGES);

	p = anon_map(len);
	ns = touch_parallel(p, PAGES, 2);
	munmap(p, len);
	record(M_ANON_T2, (double)ns / (2.0 * PAGES));
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Baselines: a minimal userfaultfd handler                                  */
/* ------------------------------------------------------------------------ */

struct mini_uffd {
	int fd;
	bool wp;             /* WP mode (else MISSING) */
	int cpu;             /* handler's CPU, or -1 */
	char *area;          /* PAGES pages + 1 sentinel page */
	char *sentinel;
	char *src;           /* MISSING: the page UFFDIO_COPY copies */
	char *copies;        /* WP: where the handler copies pages out */
	pthread_barrier_t ready;
	const char *error;   /* set by the handler on failure */
	int error_errno;
};

static void *mini_handler(void *arg)
{
	struct mini_uffd *u = arg;

	if (u->cpu >= 0)
		pin_self(u->cpu);
	pthread_barrier_wait(&u->ready);
	for (;;) {
		struct uffd_msg msg;
		ssize_t n = read(u->fd, &msg, sizeof msg);
		uint64_t addr;

		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n != (ssize_t)sizeof msg) {
			u->error = "read(userfaultfd)";
			u->error_errno = n < 0 ? errno : EIO;
			return NULL;
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		addr = msg.arg.pagefault.address & ~(uint64_t)(PAGE - 1);
		if (u->wp) {
			struct uffdio_writeprotect wp = {
				.range = { .start = addr, .len = PAGE }, .mode = 0 };
			size_t idx = (addr - (uint64_t)(uintptr_t)u->area) / PAGE;

			memcpy(u->copies + idx * PAGE, (const void *)(uintptr_t)addr, PAGE);
			if (ioctl(u->fd, UFFDIO_WRITEPROTECT, &wp) != 0) {
				u->error = "UFFDIO_WRITEPROTECT (resolve)";
				u->error_errno = errno;
				return NULL;
			}
		} else {
			struct uffdio_copy cp = { .dst = addr,
						  .src = (uint64_t)(uintptr_t)u->src,
						  .len = PAGE, .mode = 0 };

			if (ioctl(u->fd, UFFDIO_COPY, &cp) != 0) {
				struct uffdio_range r = { .start = addr, .len = PAGE };

				if (errno != EEXIST || ioctl(u->fd, UFFDIO_WAKE, &r) != 0) {
					u->error = "UFFDIO_COPY";
					u->error_errno = errno;
					return NULL;
				}
			}
		}
		if (addr == (uint64_t)(uintptr_t)u->sentinel)
			return NULL;
	}
}

/* A MAP_SHARED mapping of a fresh memfd of @len bytes (shmem), untouched. */
static char *shmem_map(size_t len)
{
	int fd = memfd_create("fault-bench", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)len) != 0)
		die("memfd: %s", strerror(errno));
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		die("mmap(memfd): %s", strerror(errno));
	return p;
}

/* One round of the minimal handler: @wp selects WP mode, @pinned puts the
 * faulting thread and the handler on the same CPU, @shmem (MISSING only)
 * faults on a memfd mapping instead of anonymous memory. */
static int run_mini_uffd_on(bool wp, bool pinned, bool shmem, enum meas m)
{
	size_t len = ((size_t)PAGES + 1) * PAGE;
	struct mini_uffd u = { .wp = wp, .cpu = pinned ? cpus[0] : -1 };
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	struct uffdio_register reg;
	pthread_t th;
	uint64_t t0, t1;
	int rc;

	u.fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (u.fd < 0) {
		snprintf(errors[m], sizeof errors[m], "userfaultfd: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(u.fd, UFFDIO_API, &api) != 0)
		die("UFFDIO_API: %s", strerror(errno));
	u.area = shmem ? shmem_map(len) : anon_map(len);
	u.sentinel = u.area + (size_t)PAGES * PAGE;
	if (wp) {
		struct uffdio_writeprotect prot;

		u.copies = anon_map(len);
		touch_write(u.copies, PAGES + 1, 1);
		touch_write(u.area, PAGES + 1, 1);
		reg = (struct uffdio_register){
			.range = { .start = (uint64_t)(uintptr_t)u.area, .len = len },
			.mode = UFFDIO_REGISTER_MODE_WP };
		if (ioctl(u.fd, UFFDIO_REGISTER, &reg) != 0) {
			snprintf(errors[m], sizeof errors[m], "UFFDIO_REGISTER(WP): %s",
				 strerror(errno));
			rc = -errno;
			goto out;
		}
		prot = (struct uffdio_writeprotect){
			.range = { .start = (uint64_t)(uintptr_t)u.area, .len = len },
			.mode = UFFDIO_WRITEPROTECT_MODE_WP };
		if (ioctl(u.fd, UFFDIO_WRITEPROTECT, &prot) != 0)
			die("UFFDIO_WRITEPROTECT: %s", strerror(errno));
	} else {
		u.src = anon_map(PAGE);
		memset(u.src, 0x5a, PAGE);
		reg = (struct uffdio_register){
			.range = { .start = (uint64_t)(uintptr_t)u.area, .len = len },
			.mode = UFFDIO_REGISTER_MODE_MISSING };
		if (ioctl(u.fd, UFFDIO_REGISTER, &reg) != 0)
			die("UFFDIO_REGISTER(MISSING): %s", strerror(errno));
	}

	pthread_barrier_init(&u.ready, NULL, 2);
	rc = pthread_create(&th, NULL, mini_handler, &u);
	if (rc != 0)
		die("pthread_create: %s", strerror(rc));
	if (pinned)
		pin_self(cpus[0]);
	pthread_barrier_wait(&u.ready);
	t0 = now_ns();
	if (wp)
		touch_write(u.area, PAGES, 2);
	else
		(void)touch_read(u.area, PAGES, NULL);
	t1 = now_ns();
	/* The sentinel page tells the handler to stop once it has served it. */
	touch_write(u.sentinel, 1, 2);
	pthread_join(th, NULL);
	if (pinned)
		pin_self(-1);
	pthread_barrier_destroy(&u.ready);
	if (u.error)
		die("minimal handler: %s: %s", u.error, strerror(u.error_errno));
	record(m, (double)(t1 - t0) / PAGES);
	rc = 0;
out:
	close(u.fd);
	munmap(u.area, len);
	if (u.copies)
		munmap(u.copies, len);
	if (u.src)
		munmap(u.src, PAGE);
	return rc;
}

static int run_mini_uffd(bool wp, bool pinned, enum meas m)
{
	return run_mini_uffd_on(wp, pinned, false, m);
}

static int run_uffd_pinned(void) { return run_mini_uffd(false, true, M_UFFD_PIN); }
static int run_uffd_shmem(void) { return run_mini_uffd_on(false, true, true, M_UFFD_SHMEM); }
static int run_uffd_free(void) { return run_mini_uffd(false, false, M_UFFD_FREE); }
static int run_wp_pinned(void) { return run_mini_uffd(true, true, M_WP_PIN); }
static int run_wp_free(void) { return run_mini_uffd(true, false, M_WP_FREE); }

static char *memcpy_src, *memcpy_dst;

static int run_memcpy(void)
{
	uint64_t t0, t1;

	if (!memcpy_src) {
		memcpy_src = anon_map((size_t)PAGES * PAGE);
		memcpy_dst = anon_map((size_t)PAGES * PAGE);
		memset(memcpy_src, 0x33, (size_t)PAGES * PAGE);
		memset(memcpy_dst, 0x44, (size_t)PAGES * PAGE);
	}
	t0 = now_ns();
	for (size_t i = 0; i < PAGES; i++) {
		memcpy(memcpy_dst + i * PAGE, memcpy_src + i * PAGE, PAGE);
		__asm__ volatile("" ::: "memory");
	}
	t1 = now_ns();
	record(M_MEMCPY, (double)(t1 - t0) / PAGES);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Baseline: fork of a 256 MiB process, in a helper forked before uvmo      */
/* ------------------------------------------------------------------------ */

static int fork_cmd = -1, fork_res = -1;
static pid_t fork_helper;

static void fork_helper_main(int cmd, int res)
{
	size_t len = (size_t)SNAP_PAGES * PAGE;
	char *p = anon_map(len);
	uint64_t v = 0;
	char c;

	touch_write(p, SNAP_PAGES, 1);
	if (write(res, &v, sizeof v) != (ssize_t)sizeof v)
		_exit(1);
	while (read(cmd, &c, 1) == 1 && c == 'f') {
		uint64_t t0 = now_ns();
		pid_t pid = fork();
		int st;

		if (pid == 0)
			_exit(0);
		if (pid < 0 || waitpid(pid, &st, 0) != pid)
			v = UINT64_MAX;
		else
			v = now_ns() - t0;
		if (write(res, &v, sizeof v) != (ssize_t)sizeof v)
			_exit(1);
	}
	_exit(0);
}

static void fork_helper_start(void)
{
	int cmd[2], res[2];
	uint64_t v;

	if (pipe2(cmd, O_CLOEXEC) != 0 || pipe2(res, O_CLOEXEC) != 0)
		die("pipe2: %s", strerror(errno));
	fflush(NULL);
	fork_helper = fork();
	if (fork_helper < 0)
		die("fork: %s", strerror(errno));
	if (fork_helper == 0) {
		close(cmd[1]);
		close(res[0]);
		fork_helper_main(cmd[0], res[1]);
	}
	close(cmd[0]);
	close(res[1]);
	fork_cmd = cmd[1];
	fork_res = res[0];
	/* Wait until its 256 MiB are populated, so that does not weigh on the
	 * first round. */
	if (read(fork_res, &v, sizeof v) != (ssize_t)sizeof v)
		die("the fork helper died while populating its memory");
}

static void fork_helper_stop(void)
{
	if (fork_helper > 0) {
		close(fork_cmd);
		waitpid(fork_helper, NULL, 0);
		fork_helper = 0;
	}
}

static int run_fork(void)
{
	uint64_t v;

	if (write(fork_cmd, "f", 1) != 1 || read(fork_res, &v, sizeof v) != (ssize_t)sizeof v)
		die("the fork helper died");
	if (v == UINT64_MAX) {
		snprintf(errors[M_FORK], sizeof errors[M_FORK], "fork in the helper failed");
		return -EIO;
	}
	record(M_FORK, (double)v);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* uvmo                                                                      */
/* ------------------------------------------------------------------------ */

/* Records the failure of @what for measurement @m and returns @rc. */
static int fail(enum meas m, int rc, const char *what)
{
	snprintf(errors[m], sizeof errors[m], "%s: %s", what, strerror(-rc));
	return rc;
}

static int map_rw(uvmo_vmo_t *vmo, uint64_t len, char **addr)
{
	void *a = NULL;
	uvmo_vmar_t *root = uvmo_vmar_root();
	int rc;

	if (!root)
		return -ENODEV;
	rc = uvmo_vmar_map(root, UVMO_PERM_READ | UVMO_PERM_WRITE, 0, vmo, 0, len, &a);
	*addr = a;
	return rc;
}

static void unmap(char *addr, uint64_t len)
{
	int rc = uvmo_vmar_unmap(uvmo_vmar_root(), addr, len);

	if (rc < 0)
		problem("uvmo_vmar_unmap of %" PRIu64 " bytes: %s", len, strerror(-rc));
}

/* Checks one page of @vmo reads @want at byte 0 through uvmo_vmo_read. */
static void expect_byte(uvmo_vmo_t *vmo, size_t page, uint8_t want, const char *what)
{
	uint8_t got;
	int rc = uvmo_vmo_read(vmo, &got, (uint64_t)page * PAGE, 1);

	if (rc < 0)
		problem("%s: uvmo_vmo_read of page %zu: %s", what, page, strerror(-rc));
	else if (got != want)
		problem("%s: page %zu reads 0x%02x through uvmo_vmo_read, expected 0x%02x",
			what, page, got, want);
}

/* 1: first write to each page of a fresh VMO through a mapping. */
static int run_first(void)
{
	uint64_t len = (uint64_t)PAGES * PAGE, t0, t1;
	uvmo_vmo_t *vmo;
	char *p;
	int rc;

	rc = uvmo_vmo_create(len, 0, &vmo);
	if (rc < 0)
		return fail(M_FIRST, rc, "uvmo_vmo_create");
	rc = map_rw(vmo, len, &p);
	if (rc < 0) {
		uvmo_vmo_close(vmo);
		return fail(M_FIRST, rc, "uvmo_vmar_map");
	}
	t0 = now_ns();
	touch_write(p, PAGES, 0xa5);
	t1 = now_ns();
	record(M_FIRST, (double)(t1 - t0) / PAGES);
	expect_byte(vmo, PAGES - 1, 0xa5, "first touch");
	unmap(p, len);
	uvmo_vmo_close(vmo);
	return 0;
}

/* 2: the parent whose pages every snapshot inherits (written once). */
static uvmo_vmo_t *inherit_parent;
static uint64_t inherit_sum;
static uint32_t *random_order;

static int inherit_setup(enum meas m)
{
	size_t chunk = 256, len = chunk * PAGE;
	uint8_t *buf;
	int rc;

	if (inherit_parent)
		return 0;
	rc = uvmo_vmo_create((uint64_t)PAGES * PAGE, 0, &inherit_parent);
	if (rc < 0) {
		inherit_parent = NULL;
		return fail(m, rc, "uvmo_vmo_create");
	}
	buf = xmalloc(len);
	for (size_t first = 0; first < PAGES; first += chunk) {
		for (size_t i = 0; i < chunk; i++)
			memset(buf + i * PAGE, pattern(first + i), PAGE);
		rc = uvmo_vmo_write(inherit_parent, buf, (uint64_t)first * PAGE, len);
		if (rc < 0) {
			free(buf);
			uvmo_vmo_close(inherit_parent);
			inherit_parent = NULL;
			return fail(m, rc, "uvmo_vmo_write");
		}
	}
	free(buf);
	inherit_sum = 0;
	for (size_t i = 0; i < PAGES; i++)
		inherit_sum += pattern(i);

	/* A fixed random permutation (xorshift + Fisher-Yates). */
	random_order = xmalloc(PAGES * sizeof *random_order);
	for (uint32_t i = 0; i < PAGES; i++)
		random_order[i] = i;
	uint32_t x = RANDOM_SEED;
	for (uint32_t i = PAGES - 1; i > 0; i--) {
		uint32_t j, t;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		j = x % (i + 1);
		t = random_order[i];
		random_order[i] = random_order[j];
		random_order[j] = t;
	}
	return 0;
}

static int run_inherit(bool random, enum meas m)
{
	uint64_t len = (uint64_t)PAGES * PAGE, t0, t1, sum;
	struct uvmo_stats before, after;
	uvmo_vmo_t *child;
	char *p;
	int rc;

	rc = inherit_setup(m);
	if (rc < 0)
		return rc;
	rc = uvmo_vmo_create_child(inherit_parent, UVMO_CHILD_SNAPSHOT, 0, len, &child);
	if (rc < 0)
		return fail(m, rc, "uvmo_vmo_create_child(SNAPSHOT)");
	rc = map_rw(child, len, &p);
	if (rc < 0) {
		uvmo_vmo_close(child);
		return fail(m, rc, "uvmo_vmar_map");
	}
	uvmo_get_stats(&before);
	t0 = now_ns();
	sum = touch_read(p, PAGES, random ? random_order : NULL);
	t1 = now_ns();
	record(m, (double)(t1 - t0) / PAGES);
	uvmo_get_stats(&after);
	/* Reading shared pages should share them (DESIGN.md section 3: the
	 * ancestor's content installed write-protected), not copy them. */
	if (after.committed_bytes > before.committed_bytes + len / 2)
		problem("reading the inherited pages of a snapshot through a mapping "
			"commits memory: %" PRIu64 " KiB more committed after reading %"
			PRIu64 " KiB, cow_copies +%" PRIu64 " (reads copy instead of sharing)",
			(after.committed_bytes - before.committed_bytes) >> 10, len >> 10,
			after.cow_copies - before.cow_copies);
	if (sum != inherit_sum)
		problem("inherited read (%s): the bytes read through a snapshot's mapping "
			"sum to %" PRIu64 ", the parent's to %" PRIu64,
			random ? "random" : "sequential", sum, inherit_sum);
	unmap(p, len);
	uvmo_vmo_close(child);
	return 0;
}

static int run_seq(void) { return run_inherit(false, M_SEQ); }
static int run_rand(void) { return run_inherit(true, M_RAND); }

/* 2b with the reading thread pinned to one CPU, as B2's faulting thread is
 * (uvmo's handlers stay one per CPU): what migrations of the reader cost. */
static int run_rand_pinned(void)
{
	pin_self(cpus[0]);
	int rc = run_inherit(true, M_RAND_PIN);
	pin_self(-1);
	return rc;
}

/* 3: first write through the parent's mapping after a snapshot. */
static int run_cow(void)
{
	uint64_t len = (uint64_t)PAGES * PAGE, t0, t1;
	uvmo_vmo_t *vmo, *child = NULL;
	char *p;
	int rc;

	rc = uvmo_vmo_create(len, 0, &vmo);
	if (rc < 0)
		return fail(M_COW, rc, "uvmo_vmo_create");
	rc = map_rw(vmo, len, &p);
	if (rc < 0) {
		uvmo_vmo_close(vmo);
		return fail(M_COW, rc, "uvmo_vmar_map");
	}
	touch_write_pattern(p, PAGES);
	rc = uvmo_vmo_create_child(vmo, UVMO_CHILD_SNAPSHOT, 0, len, &child);
	if (rc < 0) {
		fail(M_COW, rc, "uvmo_vmo_create_child(SNAPSHOT) of a mapped VMO");
		goto out;
	}
	t0 = now_ns();
	touch_write(p, PAGES, 0xee);
	t1 = now_ns();
	record(M_COW, (double)(t1 - t0) / PAGES);
	expect_byte(child, 0, pattern(0), "copy-on-write: the snapshot");
	expect_byte(child, PAGES - 1, pattern(PAGES - 1), "copy-on-write: the snapshot");
	expect_byte(vmo, PAGES / 2, 0xee, "copy-on-write: the parent");
	rc = 0;
out:
	uvmo_vmo_close(child);
	unmap(p, len);
	uvmo_vmo_close(vmo);
	return rc;
}

/* 4: 1 thread, then 2 threads, faulting fresh VMO pages. */
static int run_threads(void)
{
	uint64_t len = (uint64_t)2 * PAGES * PAGE, ns;
	uvmo_vmo_t *vmo;
	char *p;
	int rc;

	for (int n = 1; n <= 2; n++) {
		uint64_t l = len / 2 * (uint64_t)n;

		rc = uvmo_vmo_create(l, 0, &vmo);
		if (rc < 0)
			return fail(M_T1, rc, "uvmo_vmo_create");
		rc = map_rw(vmo, l, &p);
		if (rc < 0) {
			uvmo_vmo_close(vmo);
			return fail(M_T1, rc, "uvmo_vmar_map");
		}
		ns = touch_parallel(p, PAGES, n);
		record(n == 1 ? M_T1 : M_T2, (double)ns / ((double)n * PAGES));
		expect_byte(vmo, (size_t)n * PAGES - 1, 3, "threads");
		unmap(p, l);
		uvmo_vmo_close(vmo);
	}
	return 0;
}

/* 5: snapshot of a mapped VMO with 256 MiB populated through the mapping. */
static int run_snapshot(void)
{
	uint64_t len = (uint64_t)SNAP_PAGES * PAGE, t0, t1, t2, t3;
	struct uvmo_stats before, after;
	uvmo_vmo_t *vmo, *child = NULL;
	char *p;
	int rc;

	rc = uvmo_vmo_create(len, 0, &vmo);
	if (rc < 0)
		return fail(M_SNAP, rc, "uvmo_vmo_create");
	rc = map_rw(vmo, len, &p);
	if (rc < 0) {
		uvmo_vmo_close(vmo);
		return fail(M_SNAP, rc, "uvmo_vmar_map");
	}
	t0 = now_ns();
	touch_write_pattern(p, SNAP_PAGES);
	t1 = now_ns();
	record(M_POPULATE, (double)(t1 - t0) / SNAP_PAGES);
	uvmo_get_stats(&before);
	t2 = now_ns();
	rc = uvmo_vmo_create_child(vmo, UVMO_CHILD_SNAPSHOT, 0, len, &child);
	t3 = now_ns();
	if (rc < 0) {
		fail(M_SNAP, rc, "uvmo_vmo_create_child(SNAPSHOT) of a mapped 256 MiB VMO");
		goto out;
	}
	record(M_SNAP, (double)(t3 - t2));
	uvmo_get_stats(&after);
	if (after.committed_bytes > before.committed_bytes)
		problem("a snapshot of a mapped VMO committed %" PRIu64 " KiB",
			(after.committed_bytes - before.committed_bytes) >> 10);
	/* The snapshot must not follow later writes. */
	p[(size_t)(SNAP_PAGES / 3) * PAGE] = (char)0x11;
	expect_byte(child, SNAP_PAGES / 3, pattern(SNAP_PAGES / 3), "snapshot of 256 MiB");
	expect_byte(child, SNAP_PAGES - 1, pattern(SNAP_PAGES - 1), "snapshot of 256 MiB");
	rc = 0;
out:
	uvmo_vmo_close(child);
	unmap(p, len);
	uvmo_vmo_close(vmo);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Driver                                                                    */
/* ------------------------------------------------------------------------ */

struct group {
	const char *name;
	int (*run)(void);
	bool failed;
};

static struct group groups[] = {
	{ "B1 kernel anon fault", run_anon, false },
	{ "B2 uffd MISSING, same CPU", run_uffd_pinned, false },
	{ "B3 uffd MISSING, unpinned", run_uffd_free, false },
	{ "B2s uffd MISSING on shmem, same CPU", run_uffd_shmem, false },
	{ "B4 uffd WP + memcpy, same CPU", run_wp_pinned, false },
	{ "B5 uffd WP + memcpy, unpinned", run_wp_free, false },
	{ "B6 memcpy", run_memcpy, false },
	{ "B7 fork 256 MiB", run_fork, false },
	{ "B8 kernel anon, 2 threads", run_anon_threads, false },
	{ "1 uvmo first touch", run_first, false },
	{ "2a uvmo inherited read, sequential", run_seq, false },
	{ "2b uvmo inherited read, random", run_rand, false },
	{ "2b uvmo inherited read, random, reader pinned", run_rand_pinned, false },
	{ "3 uvmo copy-on-write", run_cow, false },
	{ "4 uvmo 1 vs 2 threads", run_threads, false },
	{ "5 uvmo snapshot of 256 MiB", run_snapshot, false },
};
#define NUM_GROUPS (sizeof groups / sizeof groups[0])

int main(void)
{
	struct uvmo_config cfg;
	const char *env = getenv("FAULT_BENCH_HANDLERS");
	pthread_t wd;
	uint64_t start;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	cpus_init();
	/* Before any thread exists and before uvmo starts. */
	fork_helper_start();
	install_crash_handlers();

	progress("uvmo_init");
	memset(&cfg, 0, sizeof cfg);
	if (env)
		cfg.fault_threads = handlers_cfg = (uint32_t)strtoul(env, NULL, 10);
	env = getenv("FAULT_BENCH_REST_MS");
	if (env)
		cfg.handler_rest_ms = rest_cfg = strcmp(env, "never") == 0
						   ? UVMO_HANDLERS_NEVER_REST
						   : (uint32_t)strtoul(env, NULL, 10);
	read_loadavg(load_before, sizeof load_before);
	rc = uvmo_init(&cfg);
	if (rc < 0)
		fprintf(stderr, "fault_bench: uvmo_init: %s (uvmo rows will fail)\n",
			strerror(-rc));
	rc = pthread_create(&wd, NULL, watchdog_main, NULL);
	if (rc != 0)
		die("pthread_create: %s", strerror(rc));

	start = now_ns();
	for (int round = 0; round < MAX_ROUNDS; round++) {
		if (round >= MIN_ROUNDS && now_ns() - start > (uint64_t)BUDGET_S * 1000000000u)
			break;
		fprintf(stderr, "fault_bench: round %d/%d\n", round + 1, MAX_ROUNDS);
		for (size_t k = 0; k < NUM_GROUPS; k++) {
			struct group *g = &groups[(k + (size_t)round) % NUM_GROUPS];

			if (g->failed)
				continue;
			progress(g->name);
			if (g->run() < 0) {
				g->failed = true;
				fprintf(stderr, "fault_bench: %s failed; skipped from now on\n",
					g->name);
			}
			progress(g->name);
		}
		rounds_done = round + 1;
	}
	progress("shutdown");
	read_loadavg(load_after, sizeof load_after);
	fork_helper_stop();
	print_table();
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * bench/reset.c — fuzzing executions per second: uvmo reset vs fork server.
 *
 * One execution = "run" (write one word into each of K pages of an M MiB
 * state, the pages evenly spaced) followed by getting the state back to
 * pristine.  Measured in one run, for M in {64, 1024} MiB and K in {10,
 * 1000}:
 *
 *   fork server  the parent holds M MiB of private anonymous memory, every
 *                page populated (4 KiB pages, no THP); per execution it
 *                fork()s, the child writes the K pages and _exit()s, the
 *                parent waitpid()s.  The parent is a helper process forked
 *                at start-up, before uvmo is initialised (so no uvmo fork
 *                handler ever runs in it), that measures on request.
 *   uvmo         the state is a fuzz region (include/uvmo/fuzz.h) of M MiB,
 *                every page written before uvmo_fuzz_arm; per execution the
 *                K pages are written through the mapping, then
 *                uvmo_fuzz_reset() restores them.
 *
 * The two are measured alternately, ROUNDS times each, so that a change in
 * the machine's load affects both alike; a figure is the median of its
 * rounds' medians.
 *
 * Also timed alone: uvmo_fuzz_reset after the K writes ("reset"), and after
 * no write at all ("scan": what a reset costs before any page is copied).
 * The scan is measured right after the K-page measurement, in the state it
 * left: what a reset has to look at may grow with the pages written since
 * arm (uvmo keeps restored pages as the VMO's own), so the scan right
 * after arm is printed too but not used for the target.
 *
 * Targets (issue 5, section 5):
 *   - at K = 10, uvmo executions/s >= 20x the fork server's, for both M;
 *   - reset <= scan + 1 us per dirty page, for every M and K.
 *
 * A round's figure is the median of its iterations (at least
 * MIN_ITERATIONS, and as many as fit in about target_seconds), timed with
 * CLOCK_MONOTONIC; executions/s is 1 / median execution time.  The state
 * is verified after the uvmo measurements (the K pages read back pristine).
 * A benchmark is not an assertion: a MISS still exits 0; only a failing
 * call (the figures would be meaningless) exits 1.
 *
 *   reset_bench [--quick]     --quick: 0.1 s per round instead of 0.4 s
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uvmo/fuzz.h>
#include <uvmo/uvmo.h>

#include "bench_util.h"

#define PAGE UVMO_PAGE_SIZE

static const size_t state_mib[] = { 64, 1024 };
static const size_t dirty_counts[] = { 10, 1000 };
#define NUM_SIZES  (sizeof(state_mib) / sizeof(state_mib[0]))
#define NUM_DIRTY  (sizeof(dirty_counts) / sizeof(dirty_counts[0]))

#define MIN_ITERATIONS 15
#define MAX_ITERATIONS 20000
#define ROUNDS 3
static double target_seconds = 0.4; /* per round */

/* Targets from the brief. */
#define TARGET_RATE_RATIO     20.0 /* uvmo exec/s over fork server's, at K = 10 */
#define TARGET_RATIO_AT_DIRTY 10
#define TARGET_NS_PER_PAGE    1000.0 /* reset <= scan + this per dirty page */

struct result {
	double fork_exec_ns;   /* median fork-server execution */
	double fork_cpu_ns;    /* CPU time per fork-server execution, parent and child */
	double uvmo_cpu_ns;    /* CPU time per uvmo execution, every thread */
	double uvmo_exec_ns;   /* median uvmo execution (run + reset) */
	double uvmo_reset_ns;  /* median reset after K dirty pages */
	double uvmo_run_ns;    /* median of the K writes alone */
	double scan_ns;        /* median reset after no write, measured after these runs */
	double kernel_scan_ns; /* mean time in PAGEMAP_SCAN per reset after K writes */
};

static struct result results[NUM_SIZES][NUM_DIRTY];
static double fresh_scan_ns[NUM_SIZES]; /* median reset after no write, right after arm */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void check(int rc, const char *what)
{
	if (rc < 0)
		die("%s failed: %s", what, strerror(-rc));
}

/* Iterations so far allow another one? */
static bool keep_going(size_t done, uint64_t start)
{
	if (done < MIN_ITERATIONS)
		return true;
	return done < MAX_ITERATIONS && (double)(now_ns() - start) < target_seconds * 1e9;
}

/* The run: one word into each of @dirty pages of @state, evenly spaced. */
static void dirty_pages(uint8_t *state, size_t pages, size_t dirty, uint64_t value)
{
	size_t stride = pages / dirty;
	for (size_t i = 0; i < dirty; i++)
		*(volatile uint64_t *)(state + i * stride * PAGE + 8) = value;
}

/* Every page of @state written with its own pattern (the pristine state). */
static void populate(uint8_t *state, size_t pages)
{
	for (size_t page = 0; page < pages; page++)
		*(uint64_t *)(state + page * PAGE + 8) = 0x5eed0000u + page;
}

static void read_loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");
	double a, b, c;

	if (f && fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
		snprintf(buf, len, "%.2f %.2f %.2f", a, b, c);
	else
		snprintf(buf, len, "?");
	if (f)
		fclose(f);
}

/* ------------------------------------------------------------------------ */
/* Fork server                                                               */
/* ------------------------------------------------------------------------ */

static double *samples;

/* CPU time (user + system) of @who so far. */
static double cpu_ns(int who)
{
	struct rusage usage;
	getrusage(who, &usage);
	return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e9 +
	       (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e3;
}

struct fork_reply {
	double exec_ns; /* median */
	double cpu_ns;  /* mean CPU time per execution */
};

static struct fork_reply measure_fork_server(uint8_t *state, size_t pages, size_t dirty)
{
	size_t done = 0;
	double cpu_before = cpu_ns(RUSAGE_SELF) + cpu_ns(RUSAGE_CHILDREN);
	uint64_t start = now_ns();

	while (keep_going(done, start)) {
		uint64_t t0 = now_ns();
		pid_t child = fork();
		if (child < 0)
			die("fork: %s", strerror(errno));
		if (child == 0) {
			dirty_pages(state, pages, dirty, done + 1);
			_exit(0);
		}
		int status;
		if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			die("fork-server child failed");
		samples[done++] = (double)(now_ns() - t0);
	}
	double cpu_after = cpu_ns(RUSAGE_SELF) + cpu_ns(RUSAGE_CHILDREN);
	return (struct fork_reply){ median(samples, done), (cpu_after - cpu_before) / (double)done };
}

/* A request to the fork-server helper; mib = 0 ends it. */
struct fork_request {
	size_t mib;
	size_t dirty;
};

static int to_helper = -1, from_helper = -1;

static void helper_main(int requests, int replies)
{
	uint8_t *state = NULL;
	size_t state_bytes = 0;
	struct fork_request request;

	while (read(requests, &request, sizeof(request)) == (ssize_t)sizeof(request) &&
	       request.mib) {
		size_t bytes = request.mib << 20, pages = bytes / PAGE;
		if (bytes != state_bytes) {
			if (state)
				munmap(state, state_bytes);
			state = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (state == MAP_FAILED)
				die("mmap of %zu MiB: %s", request.mib, strerror(errno));
			madvise(state, bytes, MADV_NOHUGEPAGE);
			populate(state, pages);
			state_bytes = bytes;
		}
		struct fork_reply reply = measure_fork_server(state, pages, request.dirty);
		if (write(replies, &reply, sizeof(reply)) != (ssize_t)sizeof(reply))
			die("helper: reply lost");
	}
	_exit(0);
}

/* Fork the helper now, before anything initialises uvmo. */
static void start_fork_server_helper(void)
{
	int requests[2], replies[2];

	if (pipe(requests) < 0 || pipe(replies) < 0)
		die("pipe: %s", strerror(errno));
	pid_t helper = fork();
	if (helper < 0)
		die("fork: %s", strerror(errno));
	if (helper == 0) {
		close(requests[1]);
		close(replies[0]);
		helper_main(requests[0], replies[1]);
	}
	close(requests[0]);
	close(replies[1]);
	to_helper = requests[1];
	from_helper = replies[0];
}

static struct fork_reply fork_server_round(size_t mib, size_t dirty)
{
	struct fork_request request = { mib, dirty };
	struct fork_reply ns;

	if (write(to_helper, &request, sizeof(request)) != (ssize_t)sizeof(request) ||
	    read(from_helper, &ns, sizeof(ns)) != (ssize_t)sizeof(ns))
		die("the fork-server helper died");
	return ns;
}

static void stop_fork_server_helper(void)
{
	struct fork_request request = { 0, 0 };
	if (write(to_helper, &request, sizeof(request)) == (ssize_t)sizeof(request))
		wait(NULL);
}

/* ------------------------------------------------------------------------ */
/* uvmo                                                                      */
/* ------------------------------------------------------------------------ */

static double *reset_samples, *run_samples;

/* One round: medians of run + reset, run alone and reset alone. */
static void uvmo_round(uint8_t *state, size_t pages, size_t dirty, double *exec_ns,
		       double *run_ns, double *reset_ns, double *cpu_per_exec_ns,
		       double *kernel_scan_ns)
{
	/* Warm-up: the first resets after arm take the pages over. */
	for (int i = 0; i < 3; i++) {
		dirty_pages(state, pages, dirty, 1);
		check(uvmo_fuzz_reset(), "uvmo_fuzz_reset");
	}

	size_t done = 0;
	struct uvmo_stats st0, st1;
	check(uvmo_get_stats(&st0), "uvmo_get_stats");
	double cpu_before = cpu_ns(RUSAGE_SELF);
	uint64_t start = now_ns();
	while (keep_going(done, start)) {
		uint64_t t0 = now_ns();
		dirty_pages(state, pages, dirty, done + 2);
		uint64_t t1 = now_ns();
		check(uvmo_fuzz_reset(), "uvmo_fuzz_reset");
		uint64_t t2 = now_ns();
		samples[done] = (double)(t2 - t0);
		run_samples[done] = (double)(t1 - t0);
		reset_samples[done] = (double)(t2 - t1);
		done++;
	}
	*cpu_per_exec_ns = (cpu_ns(RUSAGE_SELF) - cpu_before) / (double)done;
	check(uvmo_get_stats(&st1), "uvmo_get_stats");
	*kernel_scan_ns = (double)(st1.dirty_scan_ns - st0.dirty_scan_ns) / (double)done;
	*exec_ns = median(samples, done);
	*run_ns = median(run_samples, done);
	*reset_ns = median(reset_samples, done);
}

/* A reset after no write at all. */
static double scan_round(void)
{
	size_t done = 0;
	uint64_t start = now_ns();

	while (keep_going(done, start)) {
		uint64_t t0 = now_ns();
		check(uvmo_fuzz_reset(), "uvmo_fuzz_reset");
		samples[done++] = (double)(now_ns() - t0);
	}
	return median(samples, done);
}

/* After the measurements the state must be exactly pristine. */
static void verify_pristine(const uint8_t *state, size_t pages)
{
	for (size_t page = 0; page < pages; page++)
		if (*(const uint64_t *)(state + page * PAGE + 8) != 0x5eed0000u + page)
			die("page %zu is not pristine after uvmo_fuzz_reset", page);
	size_t dirty = 1;
	check(uvmo_fuzz_dirty_pages(&dirty), "uvmo_fuzz_dirty_pages");
	if (dirty != 0)
		die("%zu pages differ from pristine after uvmo_fuzz_reset", dirty);
}

static double median_of_rounds(double *rounds)
{
	return median(rounds, ROUNDS);
}

/* Both sides, alternately, round by round. */
static void run_measurements(void)
{
	for (size_t s = 0; s < NUM_SIZES; s++) {
		size_t bytes = state_mib[s] << 20, pages = bytes / PAGE;
		uint8_t *state;

		check(uvmo_fuzz_region(bytes, (void **)&state), "uvmo_fuzz_region");
		populate(state, pages);
		check(uvmo_fuzz_arm(), "uvmo_fuzz_arm");
		double fresh[ROUNDS];
		for (int r = 0; r < ROUNDS; r++)
			fresh[r] = scan_round();
		fresh_scan_ns[s] = median_of_rounds(fresh);

		for (size_t d = 0; d < NUM_DIRTY; d++) {
			double fork_ns[ROUNDS], exec_ns[ROUNDS], run_ns[ROUNDS], reset_ns[ROUNDS],
				scan_ns[ROUNDS], fork_cpu[ROUNDS], uvmo_cpu[ROUNDS], kscan[ROUNDS];
			for (int r = 0; r < ROUNDS; r++) {
				fprintf(stderr, "  %zu MiB, K = %zu, round %d/%d\n", state_mib[s],
					dirty_counts[d], r + 1, ROUNDS);
				struct fork_reply fork = fork_server_round(state_mib[s], dirty_counts[d]);
				fork_ns[r] = fork.exec_ns;
				fork_cpu[r] = fork.cpu_ns;
				uvmo_round(state, pages, dirty_counts[d], &exec_ns[r], &run_ns[r],
					   &reset_ns[r], &uvmo_cpu[r], &kscan[r]);
				scan_ns[r] = scan_round();
			}
			struct result *out = &results[s][d];
			out->fork_exec_ns = median_of_rounds(fork_ns);
			out->uvmo_exec_ns = median_of_rounds(exec_ns);
			out->uvmo_run_ns = median_of_rounds(run_ns);
			out->uvmo_reset_ns = median_of_rounds(reset_ns);
			out->scan_ns = median_of_rounds(scan_ns);
			out->fork_cpu_ns = median_of_rounds(fork_cpu);
			out->uvmo_cpu_ns = median_of_rounds(uvmo_cpu);
			out->kernel_scan_ns = median_of_rounds(kscan);
		}
		verify_pristine(state, pages);
		uvmo_fuzz_release();
	}
}

/* ------------------------------------------------------------------------ */
/* Report                                                                    */
/* ------------------------------------------------------------------------ */

static void format_time(char *buf, size_t len, double ns)
{
	if (ns < 1e3)
		snprintf(buf, len, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.1f us", ns / 1e3);
	else
		snprintf(buf, len, "%.2f ms", ns / 1e6);
}

static void print_report(const char *load_before, const char *load_after)
{
	char a[32], b[32], c[32], e[32];

	printf("\nreset_bench: executions = write 1 word into each of K evenly spaced pages "
	       "of an M MiB state (every page populated), then back to pristine.\n");
	printf("median of %d interleaved rounds, each the median of >= %d iterations or %.1f s; "
	       "load average before: %s, after: %s\n\n", ROUNDS, MIN_ITERATIONS, target_seconds,
	       load_before, load_after);

	printf("%-8s %5s | %-22s | %-22s %9s %9s | %7s  %-9s %s\n", "state", "K",
	       "fork server", "uvmo run + reset", "run", "reset", "ratio", "target", "");
	printf("---------------+------------------------+----------------------------------"
	       "-----------+------------------------\n");
	for (size_t s = 0; s < NUM_SIZES; s++)
		for (size_t d = 0; d < NUM_DIRTY; d++) {
			const struct result *r = &results[s][d];
			double fork_rate = 1e9 / r->fork_exec_ns, uvmo_rate = 1e9 / r->uvmo_exec_ns;
			double ratio = uvmo_rate / fork_rate;
			bool targeted = dirty_counts[d] == TARGET_RATIO_AT_DIRTY;

			format_time(a, sizeof a, r->fork_exec_ns);
			format_time(b, sizeof b, r->uvmo_exec_ns);
			format_time(c, sizeof c, r->uvmo_run_ns);
			format_time(e, sizeof e, r->uvmo_reset_ns);
			char fork_cell[400], uvmo_cell[400];
			snprintf(fork_cell, sizeof fork_cell, "%9s %8.0f/s", a, fork_rate);
			snprintf(uvmo_cell, sizeof uvmo_cell, "%9s %8.0f/s", b, uvmo_rate);
			printf("%4zu MiB %5zu | %-22s | %-22s %9s %9s | %6.1fx  %-9s %s\n",
			       state_mib[s], dirty_counts[d], fork_cell, uvmo_cell, c, e, ratio,
			       targeted ? ">= 20x" : "", targeted ? (ratio >= TARGET_RATE_RATIO
								    ? "PASS" : "MISS") : "");
		}

	printf("\nCPU time per execution (user + system, every thread and child; what the "
	       "machine's load does not inflate):\n\n");
	printf("%-8s %5s | %12s %12s | %7s\n", "state", "K", "fork server", "uvmo", "ratio");
	printf("---------------+---------------------------+--------\n");
	for (size_t s = 0; s < NUM_SIZES; s++)
		for (size_t d = 0; d < NUM_DIRTY; d++) {
			const struct result *r = &results[s][d];
			format_time(a, sizeof a, r->fork_cpu_ns);
			format_time(b, sizeof b, r->uvmo_cpu_ns);
			printf("%4zu MiB %5zu | %12s %12s | %6.1fx\n", state_mib[s], dirty_counts[d], a,
			       b, r->fork_cpu_ns / r->uvmo_cpu_ns);
		}

	printf("\nreset alone: uvmo_fuzz_reset after K dirty pages vs the scan (a reset "
	       "after 0 dirty pages) + 1 us per dirty page\n\n");
	printf("%-8s %5s | %9s %9s %14s %13s | %s\n", "state", "K", "scan", "reset",
	       "scan + K x 1us", "per page", "target");
	printf("---------------+-------------------------------------------------------+--------\n");
	for (size_t s = 0; s < NUM_SIZES; s++)
		for (size_t d = 0; d < NUM_DIRTY; d++) {
			const struct result *r = &results[s][d];
			double bound = r->scan_ns + TARGET_NS_PER_PAGE * (double)dirty_counts[d];
			double per_page = (r->uvmo_reset_ns - r->scan_ns) / (double)dirty_counts[d];

			format_time(a, sizeof a, r->scan_ns);
			format_time(b, sizeof b, r->uvmo_reset_ns);
			format_time(c, sizeof c, bound);
			format_time(e, sizeof e, per_page > 0 ? per_page : 0);
			printf("%4zu MiB %5zu | %9s %9s %14s %13s | %s\n", state_mib[s],
			       dirty_counts[d], a, b, c, e,
			       r->uvmo_reset_ns <= bound ? "PASS" : "MISS");
		}
	printf("\n'run' is the K writes (the copy-on-write faults), 'reset' the restore; "
	       "'per page' = (reset - scan) / K.\n");

	/* For information: how much of a reset is the kernel's PAGEMAP_SCAN
	 * (which re-protects the K written pages too) and how much uvmo's
	 * own work on the pages it reported (uvmo_stats.dirty_scan_ns). */
	printf("\nwhere a reset goes (async tier; for information): the kernel's PAGEMAP_SCAN "
	       "with the K pages written,\nand uvmo's own work per dirty page beyond it\n\n");
	printf("%-8s %5s | %12s %12s %16s\n", "state", "K", "reset", "kernel scan",
	       "uvmo per page");
	printf("---------------+-------------------------------------------\n");
	for (size_t s = 0; s < NUM_SIZES; s++)
		for (size_t d = 0; d < NUM_DIRTY; d++) {
			const struct result *r = &results[s][d];
			if (r->kernel_scan_ns <= 0)
				continue; /* the sync tier: no scan */
			double own = (r->uvmo_reset_ns - r->kernel_scan_ns) / (double)dirty_counts[d];
			format_time(a, sizeof a, r->uvmo_reset_ns);
			format_time(b, sizeof b, r->kernel_scan_ns);
			format_time(c, sizeof c, own > 0 ? own : 0);
			printf("%4zu MiB %5zu | %12s %12s %16s\n", state_mib[s], dirty_counts[d], a, b,
			       c);
		}
	for (size_t s = 0; s < NUM_SIZES; s++) {
		format_time(a, sizeof a, fresh_scan_ns[s]);
		printf("scan right after arm, %zu MiB: %s\n", state_mib[s], a);
	}
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			target_seconds = 0.1;
		else
			die("usage: reset_bench [--quick]");
	}
	samples = malloc(MAX_ITERATIONS * sizeof(*samples));
	run_samples = malloc(MAX_ITERATIONS * sizeof(*run_samples));
	reset_samples = malloc(MAX_ITERATIONS * sizeof(*reset_samples));
	if (!samples || !run_samples || !reset_samples)
		die("out of memory");

	char load_before[64], load_after[64];
	read_loadavg(load_before, sizeof load_before);
	start_fork_server_helper();
	fprintf(stderr, "reset_bench: measuring, fork server and uvmo alternately\n");
	run_measurements();
	stop_fork_server_helper();
	read_loadavg(load_after, sizeof load_after);
	print_report(load_before, load_after);
	uvmo_shutdown();
	return 0;
}

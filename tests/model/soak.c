/* SPDX-License-Identifier: MIT */
/*
 * soak: run the differential test with fresh random seeds until time runs
 * out or a run fails; then shrink the failing run to a minimal sequence of
 * operations that still fails.
 *
 *   soak SECONDS [--seed BASE] [--nops N] [--flags F] [--or-flags F] [--no-shrink]
 *        (--or-flags adds DIFF_* flags to every run, e.g. 0x100 DIFF_NO_LEAK_CHECK)
 *   soak --replay SEED NOPS FLAGS [--trace]   one run, in this process
 *   soak --shrink SEED NOPS FLAGS             shrink a failing run to a minimal one
 *   soak --replay-file FILE [FLAGS] [--trace]  replay a saved recording (FLAGS: the
 *                                              run's DIFF_SMALL_WINDOW / DIFF_POOL_LIMIT)
 *
 * Every run happens in a child process, so a crash inside uvmo (a signal, an
 * assertion of the validation build) is reported with its seed like any
 * other failure, and shrinking can replay candidates without any state left
 * over from earlier attempts.  The parent never calls uvmo.
 */
#include "differential.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uvmo/uvmo.h>

#define ERR_LEN 2048

/* Shared with the children: their failure message. */
static char *shared_err;

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The last non-empty line a child wrote to its captured stderr. */
static void last_line(int fd, char *out, size_t len)
{
	char buf[4096];
	off_t size = lseek(fd, 0, SEEK_END);
	off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
	ssize_t n = size > 0 ? pread(fd, buf, (size_t)(size - from), from) : 0;

	out[0] = '\0';
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	const char *line = strrchr(buf, '\n');
	size_t n_line;

	line = line ? line + 1 : buf;
	n_line = strlen(line) < len - 1 ? strlen(line) : len - 1;
	memcpy(out, line, n_line);
	out[n_line] = '\0';
}

/*
 * Whether a child failed; if it left no divergence message (it crashed, in
 * uvmo or in an assertion of the validation build), describe the crash in
 * shared_err with the last line it printed.
 */
static bool child_failed(int status, int err_fd)
{
	char line[512];

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return false;
	last_line(err_fd, line, sizeof(line));
	if (shared_err[0] == '\0') {
		if (WIFSIGNALED(status))
			snprintf(shared_err, ERR_LEN, "crashed with signal %d (%s); last output: %s",
				 WTERMSIG(status), strsignal(WTERMSIG(status)), line);
		else
			snprintf(shared_err, ERR_LEN, "exited with status %d; last output: %s",
				 WIFEXITED(status) ? WEXITSTATUS(status) : -1, line);
	}
	return true;
}

/*
 * What kind of failure a message describes, to keep shrinking on the same
 * bug: the operation's name and the message with every number replaced by
 * '#' (the part before "op #N: " names the run, not the failure).
 */
static void signature(const char *msg, char *out, size_t len)
{
	const char *p = strstr(msg, "op #");
	size_t n = 0;

	if (p) {
		p = strstr(p, ": ");
		p = p ? p + 2 : msg;
	} else {
		p = msg;
	}
	/* The operation: keep its name only, its arguments vary. */
	const char *paren = strchr(p, '(');
	const char *colon = strstr(p, "): ");

	if (paren && colon && paren < colon) {
		for (const char *q = p; q < paren && n + 1 < len; q++)
			out[n++] = *q;
		p = colon + 1;
	}
	while (*p && n + 1 < len) {
		if (*p >= '0' && *p <= '9') {
			out[n++] = '#';
			if (p[0] == '0' && p[1] == 'x')
				p += 2;
			while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
				p++;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = '\0';
}

/* Runs @fn(arg) in a child with its stderr captured; returns true if it
 * failed (shared_err says how).  With @echo, the captured stderr is passed on. */
static bool in_child(int (*fn)(void *), void *arg, bool echo)
{
	int err_fd = memfd_create("soak-stderr", 0);
	pid_t pid;
	int status;
	bool failed;

	if (err_fd < 0) {
		perror("memfd_create");
		exit(2);
	}
	shared_err[0] = '\0';
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		exit(2);
	}
	if (pid == 0) {
		dup2(err_fd, STDERR_FILENO);
		_exit(fn(arg) ? 1 : 0);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			perror("waitpid");
			exit(2);
		}
	failed = child_failed(status, err_fd);
	if (echo) {
		char buf[4096];
		ssize_t n;
		off_t at = 0;

		while ((n = pread(err_fd, buf, sizeof(buf), at)) > 0) {
			fwrite(buf, 1, (size_t)n, stderr);
			at += n;
		}
	}
	close(err_fd);
	return failed;
}

struct run_args {
	uint64_t seed;
	unsigned nops, flags;
	int log_fd;
};

static int do_run(void *p)
{
	struct run_args *a = p;
	int rc;

	if (a->log_fd > 0) {
		struct diff_log log = { .fd = a->log_fd };

		rc = diff_run_logged(a->seed, a->nops, a->flags, &log, shared_err, ERR_LEN);
		diff_log_free(&log);
	} else {
		rc = diff_run(a->seed, a->nops, a->flags, shared_err, ERR_LEN);
	}
	return rc;
}

/* One run in a child.  If log_fd > 0 the child records every operation
 * there as it goes.  Returns true if the run failed. */
static bool run_child(uint64_t seed, unsigned nops, unsigned flags, int log_fd)
{
	struct run_args a = { seed, nops, flags, log_fd };

	return in_child(do_run, &a, true);
}

struct replay_args {
	const struct diff_op *ops;
	size_t count;
};

/* Run flags that change how a recording must be replayed. */
static unsigned replay_flags;

static int do_replay(void *p)
{
	struct replay_args *a = p;

	return diff_replay(a->ops, a->count, replay_flags, shared_err, ERR_LEN);
}

/* The signature shrinking preserves; empty: any failure will do. */
static char wanted[512];

/* Replays @ops in a child; true if it fails the same way as the original. */
static bool replay_child(const struct diff_op *ops, size_t count)
{
	struct replay_args a = { ops, count };
	char sig[512];

	if (!in_child(do_replay, &a, false))
		return false;
	signature(shared_err, sig, sizeof(sig));
	return wanted[0] == '\0' || strcmp(sig, wanted) == 0;
}

/*
 * Shrinks a failing recording: delta debugging by removing chunks, halving
 * the chunk size down to single operations, until no single operation can
 * go (or the time budget is spent).  Any failure counts as "still fails";
 * the final message says which one the minimal sequence shows.
 */
static size_t shrink(struct diff_op *ops, size_t count, double budget_seconds)
{
	double deadline = now_seconds() + budget_seconds;
	struct diff_op *trial = malloc(count * sizeof(*trial));
	size_t attempts = 0;
	bool progress = true;

	if (!trial)
		return count;
	while (progress && now_seconds() < deadline) {
		progress = false;
		for (size_t chunk = count / 2 ? count / 2 : 1; chunk >= 1; chunk /= 2) {
			size_t start = 0;

			while (start < count && now_seconds() < deadline) {
				size_t end = start + chunk < count ? start + chunk : count;
				size_t n = 0;

				for (size_t i = 0; i < count; i++)
					if (i < start || i >= end)
						trial[n++] = ops[i];
				attempts++;
				if (n < count && replay_child(trial, n)) {
					memcpy(ops, trial, n * sizeof(*ops));
					count = n;
					progress = true;
				} else {
					start = end;
				}
			}
			if (chunk == 1)
				break;
		}
	}
	/* Chains of clones shrink no further by removal (every link is needed
	 * by the next), so try turning each clone into a fresh root of the
	 * same size; then remove again. */
	bool reparented = false;

	for (size_t i = 0; i < count && now_seconds() < deadline; i++) {
		if (!diff_op_to_root(&ops[i], &trial[i]))
			continue;
		memcpy(trial, ops, count * sizeof(*ops));
		diff_op_to_root(&ops[i], &trial[i]);
		attempts++;
		if (replay_child(trial, count)) {
			ops[i] = trial[i];
			reparented = true;
		}
	}
	free(trial);
	fprintf(stderr, "soak: shrinking took %zu replays\n", attempts);
	if (reparented && now_seconds() < deadline)
		return shrink(ops, count, deadline - now_seconds());
	return count;
}

static void print_ops(FILE *f, const struct diff_op *ops, size_t count)
{
	char line[256];

	for (size_t i = 0; i < count; i++) {
		diff_op_format(&ops[i], line, sizeof(line));
		fprintf(f, "  [%zu] %s\n", i, line);
	}
}

static struct diff_op *read_ops(int fd, size_t *count)
{
	off_t end = lseek(fd, 0, SEEK_END);
	struct diff_op *ops;

	*count = 0;
	if (end < 0)
		return NULL;
	*count = (size_t)end / sizeof(*ops);
	ops = malloc((*count ? *count : 1) * sizeof(*ops));
	if (!ops || pread(fd, ops, *count * sizeof(*ops), 0) != (ssize_t)(*count * sizeof(*ops))) {
		free(ops);
		*count = 0;
		return NULL;
	}
	return ops;
}

/* Re-runs a failed seed with recording on, shrinks the recording, prints
 * and saves the minimal sequence. */
static void investigate(uint64_t seed, unsigned nops, unsigned flags)
{
	char path[64];
	int fd;
	size_t count;
	struct diff_op *ops;

	if (flags & DIFF_THREADS) {
		fprintf(stderr, "soak: threaded runs interleave nondeterministically; "
				"no shrinking.  Replay with --replay %" PRIu64 " %u 0x%x\n",
			seed, nops, flags);
		return;
	}
	replay_flags = flags & (DIFF_SMALL_WINDOW | DIFF_POOL_LIMIT);
	snprintf(path, sizeof(path), "soak-fail-%" PRIu64 ".ops", seed);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(path);
		return;
	}
	if (!run_child(seed, nops, flags, fd)) {
		fprintf(stderr, "soak: the seed passed when re-run with recording (flaky?)\n");
		close(fd);
		return;
	}
	ops = read_ops(fd, &count);
	if (!ops) {
		fprintf(stderr, "soak: could not read the recording %s\n", path);
		close(fd);
		return;
	}
	fprintf(stderr, "soak: recorded %zu operations up to the failure; shrinking...\n", count);
	wanted[0] = '\0';
	if (!replay_child(ops, count)) {
		fprintf(stderr, "soak: the recording does not fail on replay; not shrinking\n");
	} else {
		/* Shrink towards the failure the replay shows (the same as the
		 * run's, unless the run's depended on ops after it). */
		signature(shared_err, wanted, sizeof(wanted));
		fprintf(stderr, "soak: replay fails with: %s\n", shared_err);
		count = shrink(ops, count, 300.0);
		replay_child(ops, count); /* for the message of the minimal case */
		fprintf(stderr, "soak: minimal failing sequence (%zu operations):\n", count);
		print_ops(stderr, ops, count);
		fprintf(stderr, "soak: it fails with: %s\n", shared_err);
		if (ftruncate(fd, 0) == 0 &&
		    pwrite(fd, ops, count * sizeof(*ops), 0) == (ssize_t)(count * sizeof(*ops)))
			fprintf(stderr, "soak: saved to %s (replay: soak --replay-file %s 0x%x --trace)\n",
				path, path, replay_flags);
	}
	free(ops);
	close(fd);
}

static int replay_file(const char *path, unsigned flags)
{
	char err[ERR_LEN];
	size_t count;
	int fd = open(path, O_RDONLY);
	struct diff_op *ops;
	int rc;

	if (fd < 0) {
		perror(path);
		return 2;
	}
	ops = read_ops(fd, &count);
	close(fd);
	if (!ops) {
		fprintf(stderr, "%s: unreadable\n", path);
		return 2;
	}
	print_ops(stdout, ops, count);
	rc = diff_replay(ops, count, flags, err, sizeof(err));
	printf("%s\n", rc ? err : "replay passed");
	free(ops);
	return rc ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: soak SECONDS [--seed BASE] [--nops N] [--flags F] [--or-flags F] [--no-shrink]\n"
		"       soak --replay SEED NOPS FLAGS [--trace]\n"
		"       soak --replay-file FILE [FLAGS] [--trace]\n"
		"       soak --shrink SEED NOPS FLAGS\n");
	exit(2);
}

int main(int argc, char **argv)
{
	bool trace = false, do_shrink = true;
	uint64_t base = 0;
	long nops_fixed = -1, flags_fixed = -1;
	unsigned flags_or = 0;
	bool have_base = false;

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--trace") == 0)
			trace = true;
	if (argc >= 2 && strcmp(argv[1], "--replay") == 0) {
		char err[ERR_LEN];

		if (argc < 5)
			usage();
		uint64_t seed = strtoull(argv[2], NULL, 0);
		unsigned nops = (unsigned)strtoul(argv[3], NULL, 0);
		unsigned flags = (unsigned)strtoul(argv[4], NULL, 0) | (trace ? DIFF_TRACE : 0);
		int rc = diff_run(seed, nops, flags, err, sizeof(err));

		printf("%s\n", rc ? err : "run passed");
		return rc ? 1 : 0;
	}
	if (argc >= 5 && strcmp(argv[1], "--shrink") == 0) {
		shared_err = mmap(NULL, ERR_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
				  -1, 0);
		if (shared_err == MAP_FAILED) {
			perror("mmap");
			return 2;
		}
		investigate(strtoull(argv[2], NULL, 0), (unsigned)strtoul(argv[3], NULL, 0),
			    (unsigned)strtoul(argv[4], NULL, 0));
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "--replay-file") == 0) {
		unsigned flags = argc >= 4 && argv[3][0] != '-' ? (unsigned)strtoul(argv[3], NULL, 0) : 0;

		return replay_file(argv[2], flags | (trace ? DIFF_TRACE : 0));
	}
	if (argc < 2)
		usage();

	double seconds = strtod(argv[1], NULL);

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			base = strtoull(argv[++i], NULL, 0);
			have_base = true;
		} else if (strcmp(argv[i], "--nops") == 0 && i + 1 < argc) {
			nops_fixed = strtol(argv[++i], NULL, 0);
		} else if (strcmp(argv[i], "--flags") == 0 && i + 1 < argc) {
			flags_fixed = strtol(argv[++i], NULL, 0);
		} else if (strcmp(argv[i], "--or-flags") == 0 && i + 1 < argc) {
			flags_or = (unsigned)strtoul(argv[++i], NULL, 0);
		} else if (strcmp(argv[i], "--no-shrink") == 0) {
			do_shrink = false;
		} else if (strcmp(argv[i], "--trace") != 0) {
			usage();
		}
	}
	if (!have_base) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		base = mix(((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^
			   ((uint64_t)getpid() << 32));
	}
	shared_err = mmap(NULL, ERR_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared_err == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	printf("soak: %.0f s, base seed %" PRIu64 " (rerun this sequence with --seed %" PRIu64 ")\n",
	       seconds, base, base);

	/* The mix of run kinds: mostly the general generator. */
	static const unsigned kinds[] = {
		0, 0, 0, DIFF_CHURN, DIFF_SNAPSHOTS_ONLY, DIFF_NO_ERRORS, DIFF_THREADS,
		DIFF_SMALL_WINDOW, DIFF_SMALL_WINDOW | DIFF_THREADS, DIFF_POOL_LIMIT,
		DIFF_POOL_LIMIT | DIFF_THREADS, DIFF_POOL_LIMIT | DIFF_CHURN,
		DIFF_RESTORE, DIFF_RESTORE, DIFF_RESTORE | DIFF_CHURN, DIFF_RESTORE | DIFF_THREADS,
		DIFF_RESTORE | DIFF_SMALL_WINDOW, DIFF_RESTORE | DIFF_POOL_LIMIT,
	};
	double deadline = now_seconds() + seconds;
	unsigned long runs = 0, total_ops = 0;

	for (uint64_t i = 0; now_seconds() < deadline; i++) {
		uint64_t seed = mix(base + i);
		unsigned nops = nops_fixed > 0 ? (unsigned)nops_fixed
					       : 2000 + (unsigned)(mix(seed) % 18001);
		unsigned flags = flags_fixed >= 0 ? (unsigned)flags_fixed
						  : kinds[mix(seed ^ 1) % (sizeof(kinds) / sizeof(kinds[0]))];

		flags |= flags_or;

		printf("soak: run %" PRIu64 ": seed %" PRIu64 " nops %u flags 0x%x\n", i, seed, nops,
		       flags);
		if (run_child(seed, nops, flags, -1)) {
			fprintf(stderr, "soak: FAILED: seed %" PRIu64 " nops %u flags 0x%x: %s\n", seed,
				nops, flags, shared_err);
			fprintf(stderr, "soak: replay with: soak --replay %" PRIu64 " %u 0x%x --trace\n",
				seed, nops, flags);
			if (do_shrink)
				investigate(seed, nops, flags);
			return 1;
		}
		runs++;
		total_ops += nops;
	}
	printf("soak: %lu runs, %lu operations, no divergence\n", runs, total_ops);
	return 0;
}

// SPDX-License-Identifier: MIT
/*
 * kv_persistent — the kvstore harness as an AFL++ persistent-mode loop.
 *
 * The loop has the shape AFL++ expects (__AFL_FUZZ_INIT, __AFL_INIT after
 * the expensive set-up, while (__AFL_LOOP(n)) around one input), so it
 * builds unchanged with afl-clang-fast.  Built with a plain compiler the
 * macros below stand in for AFL: each __AFL_LOOP call loads the next input
 * from the files named on the command line (a directory: every file in
 * it, sorted) or from the deterministic generator.
 *
 *   kv_persistent [--no-reset] [--stats] [--abort] [--generate N[:SEED]] [PATH...]
 *
 * After each input the fuzz memory is reset (uvmo_fuzz_reset) unless
 * --no-reset is given.  A mismatch with the model is a crash for a fuzzer:
 * with --abort (always under AFL) the process aborts; otherwise it is
 * counted, the failing input is replayed alone on a freshly reset store to
 * see whether it reproduces, and the loop goes on.  --stats counts the
 * pages each input dirtied (uvmo_fuzz_dirty_pages; costs a diff per input).
 * Exit status: 0 if every input passed, 1 if any failed, 2 on a usage or
 * set-up error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uvmo/fuzz.h>

#include "kv_harness.h"

#define INPUT_CAPACITY (64u << 10)

#ifndef __AFL_FUZZ_TESTCASE_LEN
#define STANDALONE 1
/* ---- standalone stand-ins for the AFL++ persistent-mode macros -------- */

static uint8_t standalone_input[INPUT_CAPACITY];
static size_t standalone_length;
static bool standalone_next_input(void);

#define __AFL_FUZZ_INIT()          extern int standalone_needs_no_init
#define __AFL_INIT()               do { } while (0)
#define __AFL_FUZZ_TESTCASE_BUF    standalone_input
#define __AFL_FUZZ_TESTCASE_LEN    standalone_length
#define __AFL_LOOP(max_iterations) standalone_next_input()
#define RUNNING_UNDER_AFL          false
#else
#define RUNNING_UNDER_AFL          true
#endif

__AFL_FUZZ_INIT();

/* Where standalone inputs come from. */
static struct {
	char **paths;       /* files, in order */
	size_t path_count;
	size_t next_path;
	uint64_t generate;  /* inputs left to generate */
	uint64_t seed;
	uint64_t generated;
} source;

static int add_path(const char *path)
{
	char **grown = realloc(source.paths, (source.path_count + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	source.paths = grown;
	source.paths[source.path_count] = strdup(path);
	if (!source.paths[source.path_count])
		return -ENOMEM;
	source.path_count++;
	return 0;
}

static int skip_hidden(const struct dirent *entry)
{
	return entry->d_name[0] != '.';
}

/* A file is one input; a directory is each of its files, sorted. */
static int add_inputs(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return add_path(path);

	struct dirent **entries;
	int count = scandir(path, &entries, skip_hidden, alphasort);
	if (count < 0)
		return -errno;
	int rc = 0;
	for (int i = 0; i < count; i++) {
		char joined[4096];
		if (rc == 0 && snprintf(joined, sizeof(joined), "%s/%s", path, entries[i]->d_name) <
				       (int)sizeof(joined))
			rc = add_path(joined);
		free(entries[i]);
	}
	free(entries);
	return rc;
}

#ifdef STANDALONE
static bool standalone_next_input(void)
{
	while (source.next_path < source.path_count) {
		const char *path = source.paths[source.next_path++];
		int fd = open(path, O_RDONLY);
		if (fd < 0) {
			fprintf(stderr, "kv_persistent: %s: %s (skipped)\n", path, strerror(errno));
			continue;
		}
		ssize_t got = read(fd, standalone_input, sizeof(standalone_input));
		close(fd);
		if (got < 0) {
			fprintf(stderr, "kv_persistent: %s: %s (skipped)\n", path, strerror(errno));
			continue;
		}
		standalone_length = (size_t)got;
		return true;
	}
	if (source.generated < source.generate) {
		standalone_length = kv_corpus_input(source.seed, source.generated++,
						    standalone_input, sizeof(standalone_input));
		return true;
	}
	return false;
}
#endif

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr, "usage: kv_persistent [--no-reset] [--stats] [--abort] "
			"[--generate N[:SEED]] [PATH...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	bool reset = true, stats = false, abort_on_failure = RUNNING_UNDER_AFL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-reset") == 0) {
			reset = false;
		} else if (strcmp(argv[i], "--stats") == 0) {
			stats = true;
		} else if (strcmp(argv[i], "--abort") == 0) {
			abort_on_failure = true;
		} else if (strcmp(argv[i], "--generate") == 0 && i + 1 < argc) {
			char *end;
			source.generate = strtoull(argv[++i], &end, 10);
			source.seed = *end == ':' ? strtoull(end + 1, &end, 0) : 1;
			if (*end)
				usage();
		} else if (argv[i][0] == '-') {
			usage();
		} else {
			int rc = add_inputs(argv[i]);
			if (rc < 0) {
				fprintf(stderr, "kv_persistent: %s: %s\n", argv[i], strerror(-rc));
				return 2;
			}
		}
	}

	/* The expensive part, once: the store in fuzz memory, armed. */
	int rc = kv_harness_setup(KV_HARNESS_HEAP_BYTES);
	if (rc < 0) {
		fprintf(stderr, "kv_persistent: set-up: %s\n", strerror(-rc));
		return 2;
	}
	__AFL_INIT(); /* AFL's fork server starts here, after the set-up */

	const uint8_t *input = __AFL_FUZZ_TESTCASE_BUF;
	uint64_t runs = 0, failures = 0, reproducible = 0, dirty_total = 0, dirty_max = 0;
	uint64_t start = now_ns();

	while (__AFL_LOOP(1000)) {
		size_t length = (size_t)__AFL_FUZZ_TESTCASE_LEN;
		struct kv_verdict verdict;

		runs++;
		if (kv_harness_run(input, length, &verdict)) {
			if (abort_on_failure) {
				fprintf(stderr, "kv_persistent: input %" PRIu64 ": %s\n", runs - 1,
					verdict.what);
				abort();
			}
			/* Would this input fail on its own?  Replay it on a
			 * pristine store. */
			struct kv_verdict alone;
			bool reproduces = uvmo_fuzz_reset() == 0 &&
					  kv_harness_run(input, length, &alone) != 0;
			if (failures < 5)
				printf("input %" PRIu64 " (%zu bytes) failed at byte %zu: %s; "
				       "alone on a pristine store it %s\n",
				       runs - 1, length, verdict.op_offset, verdict.what,
				       reproduces ? "fails too" : "passes");
			failures++;
			reproducible += reproduces;
		}
		if (stats) {
			size_t dirty = 0;
			if (uvmo_fuzz_dirty_pages(&dirty) == 0) {
				dirty_total += dirty;
				dirty_max = dirty > dirty_max ? dirty : dirty_max;
			}
		}
		if (reset) {
			rc = uvmo_fuzz_reset();
			if (rc < 0) {
				fprintf(stderr, "kv_persistent: reset: %s\n", strerror(-rc));
				abort();
			}
		}
	}

	double seconds = (double)(now_ns() - start) / 1e9;
	printf("%" PRIu64 " inputs, reset %s: %" PRIu64 " failed (%" PRIu64
	       " of them also alone), %.0f exec/s",
	       runs, reset ? "after each" : "never", failures, reproducible,
	       seconds > 0 ? (double)runs / seconds : 0.0);
	if (stats && runs)
		printf(", dirty pages per input: mean %.1f, max %" PRIu64,
		       (double)dirty_total / (double)runs, dirty_max);
	printf("\n");
	uvmo_fuzz_release();
	for (size_t i = 0; i < source.path_count; i++)
		free(source.paths[i]);
	free(source.paths);
	return failures ? 1 : 0;
}

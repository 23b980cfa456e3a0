// SPDX-License-Identifier: MIT
/*
 * demo_uses.c — the demo's steps for the uses uvmo is built for, end to
 * end, each checking what it shows.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tools/demo.h"

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A small deterministic generator: the same "inputs" in both loops. */
static uint64_t next_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/* One fuzzing "run": write a few bytes into @dirty random pages. */
static void run_input(uint8_t *state, uint64_t pages, unsigned dirty, uint64_t *rng)
{
	for (unsigned i = 0; i < dirty; i++) {
		uint64_t pg = next_random(rng) % pages;
		state[pg * PAGE + (next_random(rng) % PAGE)] ^= 0x5a;
	}
}

/* The same loop as a fork server runs it: the child runs, the parent
 * waits.  Returns executions per second. */
double fork_server_rate(uint64_t bytes, unsigned dirty, unsigned runs)
{
	uint8_t *state = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (state == MAP_FAILED)
		return 0;
	memset(state, 1, bytes);
	uint64_t rng = 42;
	double t0 = now_seconds();
	for (unsigned i = 0; i < runs; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			run_input(state, bytes / PAGE, dirty, &rng);
			_exit(0);
		}
		next_random(&rng);
		waitpid(pid, NULL, 0);
	}
	double rate = runs / (now_seconds() - t0);
	munmap(state, bytes);
	return rate;
}

/*
 * Step 9: fuzzing-harness memory.  A target's 64 MiB state lives in a
 * mapped VMO; after initialisation it is snapshotted, and after every input
 * restored — at a cost proportional to the pages the input dirtied.
 */
void demo_fuzz_reset(double fork_rate)
{
	const uint64_t bytes = 64ull << 20, pages = bytes / PAGE;
	const unsigned dirty = 10, runs = 2000;
	uvmo_vmo_t *vmo, *pristine;
	void *addr;
	char buf[32];

	step(9, "Fuzzing: reset a 64 MiB target state after every input.");

	must(uvmo_vmo_create(bytes, 0, &vmo), "uvmo_vmo_create");
	must(uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ | UVMO_PERM_WRITE, 0, vmo, 0,
			   bytes, &addr), "uvmo_vmar_map");
	uint8_t *state = addr;
	memset(state, 1, bytes);
	printf("   the target initialised its state: %s, every page written\n",
	       fmt_bytes(buf, sizeof buf, bytes));
	must(uvmo_vmo_snapshot(vmo, &pristine), "uvmo_vmo_snapshot");

	struct uvmo_stats st0, st1;
	uint64_t rng = 42, left_dirty = 0, restore_copies = 0;
	double t0 = now_seconds();
	for (unsigned i = 0; i < runs; i++) {
		run_input(state, pages, dirty, &rng);
		must(uvmo_get_stats(&st0), "uvmo_get_stats");
		must(uvmo_vmo_restore(vmo, pristine), "uvmo_vmo_restore");
		must(uvmo_get_stats(&st1), "uvmo_get_stats");
		restore_copies += st1.cow_copies - st0.cow_copies;
	}
	double rate = runs / (now_seconds() - t0);

	size_t ranges = 0;
	must(uvmo_vmo_diff(vmo, pristine, 0, bytes, NULL, 0, NULL, &ranges), "uvmo_vmo_diff");
	for (uint64_t off = 0; off < bytes; off += PAGE)
		left_dirty += state[off] != 1 || state[off + PAGE - 1] != 1;
	printf("   %u inputs, each writing %u random pages, each followed by a restore\n",
	       runs, dirty);
	expect_figure("pages that differ from the pristine state after the last restore "
		      "(uvmo_vmo_diff runs)", ranges, 0);
	expect_figure("pages whose bytes differ from the pristine state", left_dirty, 0);
	expect_at_most("pages copied back per restore (on average, rounded up)",
		       (restore_copies + runs - 1) / runs, dirty);
	expect_at_most("frames in the pool (the state, its pristine copies of written pages)",
		       st1.committed_bytes / PAGE, pages + (uint64_t)runs * dirty);
	printf("   executions per second: %.0f with uvmo_vmo_restore, %.0f with a fork server"
	       " (same state, same inputs) — %.1fx\n", rate, fork_rate,
	       fork_rate > 0 ? rate / fork_rate : 0.0);

	must(uvmo_vmar_unmap(uvmo_vmar_root(), addr, bytes), "uvmo_vmar_unmap");
	uvmo_vmo_close(pristine);
	uvmo_vmo_close(vmo);
	must(uvmo_get_stats(&st1), "uvmo_get_stats");
	expect_figure("frames in the pool after closing both", st1.committed_bytes / PAGE, 0);
}

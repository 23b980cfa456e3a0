// SPDX-License-Identifier: MIT
/*
 * demo_uses.c — the demo's steps for the uses uvmo is built for, end to
 * end, each checking what it shows.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
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

	/* The second restore finds a reset loop and, on the async tier,
	 * gives the state its own copy of every page once (uvmo.h): that
	 * restore is counted apart from the steady state. */
	struct uvmo_stats st0, st1;
	uint64_t rng = 42, left_dirty = 0, restore_copies = 0, move_copies = 0;
	unsigned steady_runs = 0;
	double t0 = now_seconds();
	for (unsigned i = 0; i < runs; i++) {
		run_input(state, pages, dirty, &rng);
		must(uvmo_get_stats(&st0), "uvmo_get_stats");
		must(uvmo_vmo_restore(vmo, pristine), "uvmo_vmo_restore");
		must(uvmo_get_stats(&st1), "uvmo_get_stats");
		if (st1.async_tracked_vmos > st0.async_tracked_vmos) {
			move_copies += st1.cow_copies - st0.cow_copies;
		} else {
			restore_copies += st1.cow_copies - st0.cow_copies;
			steady_runs++;
		}
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
	if (st1.dirty_tracking == UVMO_DIRTY_TRACKING_ASYNC)
		printf("   dirty tracking: async (UFFD_FEATURE_WP_ASYNC + PAGEMAP_SCAN); the second"
		       " restore moved the state there, copying %llu shared pages once\n",
		       (unsigned long long)move_copies);
	else
		printf("   dirty tracking: sync (write-protect faults)\n");
	expect_at_most("pages copied back per restore (on average, rounded up)",
		       (restore_copies + steady_runs - 1) / steady_runs, dirty);
	expect_at_most("frames in the pool (the state, its pristine copy, the pages written)",
		       st1.committed_bytes / PAGE, 2 * pages + (uint64_t)runs * dirty);
	printf("   executions per second: %.0f with uvmo_vmo_restore, %.0f with a fork server"
	       " (same state, same inputs) — %.1fx\n", rate, fork_rate,
	       fork_rate > 0 ? rate / fork_rate : 0.0);

	must(uvmo_vmar_unmap(uvmo_vmar_root(), addr, bytes), "uvmo_vmar_unmap");
	uvmo_vmo_close(pristine);
	uvmo_vmo_close(vmo);
	must(uvmo_get_stats(&st1), "uvmo_get_stats");
	expect_figure("frames in the pool after closing both", st1.committed_bytes / PAGE, 0);
}

struct checkpoint_writer {
	uvmo_vmo_t *frozen;
	uint64_t bytes;
	int fd;
	int rc;
};

/* The background writer: streams the frozen image to the file while the
 * program keeps running and writing its live memory. */
static void *write_checkpoint(void *arg)
{
	struct checkpoint_writer *w = arg;
	static uint8_t chunk[1 << 20];
	w->rc = 0;
	for (uint64_t off = 0; off < w->bytes && w->rc == 0; off += sizeof chunk) {
		size_t len = (size_t)(w->bytes - off < sizeof chunk ? w->bytes - off : sizeof chunk);
		w->rc = uvmo_vmo_read(w->frozen, chunk, off, len);
		if (w->rc == 0 && pwrite(w->fd, chunk, len, (off_t)off) != (ssize_t)len)
			w->rc = -EIO;
	}
	if (w->rc == 0 && fsync(w->fd) < 0)
		w->rc = -EIO;
	return NULL;
}

/*
 * Step 10: fork-free checkpointing.  A running program's 16 MiB heap is
 * snapshotted while it keeps writing; a background thread writes the
 * frozen image to a file; then the checkpoint is restored lazily: viewed
 * read-only (a READONLY file VMO maps the file itself), and restored
 * writable as an at-least-on-write child, whose pages come in on first
 * touch through the io_uring file pager.
 */
void demo_checkpoint(void)
{
	const uint64_t bytes = 16ull << 20, pages = bytes / PAGE;
	uvmo_vmo_t *heap, *frozen, *restored, *resumed;
	void *addr, *raddr, *waddr;
	pthread_t writer;
	char path[] = "/tmp/uvmo-demo-checkpoint-XXXXXX";

	step(10, "Checkpoint a running program without fork(), restore it lazily.");
	must(uvmo_vmo_create(bytes, 0, &heap), "uvmo_vmo_create");
	must(uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ | UVMO_PERM_WRITE, 0, heap, 0,
			   bytes, &addr), "uvmo_vmar_map");
	uint64_t *mem = addr;
	for (uint64_t p = 0; p < pages; p++)
		mem[p * (PAGE / 8)] = p * 7 + 1; /* the program's state */

	int fd = mkstemp(path);
	must(fd < 0 ? -errno : 0, "mkstemp");
	unlink(path);
	must(uvmo_vmo_snapshot(heap, &frozen), "uvmo_vmo_snapshot");
	struct checkpoint_writer w = { .frozen = frozen, .bytes = bytes, .fd = fd };
	must(-pthread_create(&writer, NULL, write_checkpoint, &w), "pthread_create");
	/* The program runs on at once: it rewrites its state meanwhile. */
	for (uint64_t p = 0; p < pages; p += 3)
		mem[p * (PAGE / 8)] = 0xdead;
	pthread_join(writer, NULL);
	must(w.rc, "the checkpoint writer");
	printf("   snapshot taken, the program kept writing (a third of its pages) while\n"
	       "   a background thread wrote the frozen 16 MiB to a file and fsync'ed it\n");
	uvmo_vmo_close(frozen);

	struct uvmo_stats st0, st1;
	must(uvmo_get_stats(&st0), "uvmo_get_stats");
	must(uvmo_file_vmo_open(fd, UVMO_FILE_READONLY, &restored), "uvmo_file_vmo_open");
	must(uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ, 0, restored, 0, bytes, &raddr),
	     "uvmo_vmar_map");
	const uint64_t *img = raddr;
	uint64_t touched = 0, wrong = 0;
	for (uint64_t p = 0; p < pages; p += 16, touched++)
		wrong += img[p * (PAGE / 8)] != p * 7 + 1;
	must(uvmo_get_stats(&st1), "uvmo_get_stats");
	printf("   viewed lazily: the READONLY file VMO mapped (a mapping of the file\n"
	       "   itself, served by the page cache), every 16th page touched (%" PRIu64
	       " of %" PRIu64 ")\n", touched, pages);
	expect_figure("touched pages of the read-only view that differ from the state at the "
		      "snapshot", wrong, 0);
	expect_figure("direct file mappings", st1.direct_file_mappings, 1);
	expect_figure("frames the read-only view holds",
		      (st1.committed_bytes - st0.committed_bytes) / PAGE, 0);

	/* Resuming needs writable memory: an at-least-on-write child of the
	 * file VMO, whose untouched pages come from the file pager. */
	must(uvmo_vmo_create_child(restored, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, bytes,
				   &resumed), "uvmo_vmo_create_child");
	must(uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ | UVMO_PERM_WRITE, 0, resumed, 0,
			   bytes, &waddr), "uvmo_vmar_map");
	uint64_t *live = waddr;
	wrong = 0;
	for (uint64_t p = 0; p < pages; p += 16) {
		wrong += live[p * (PAGE / 8)] != p * 7 + 1;
		live[p * (PAGE / 8) + 1] = 0xbeef; /* it runs on */
	}
	struct uvmo_stats st2;
	must(uvmo_get_stats(&st2), "uvmo_get_stats");
	printf("   restored lazily and writable: a child of it mapped read-write, every\n"
	       "   16th page read and written, pages read from the file by the file pager\n"
	       "   on first touch (%" PRIu64 " faults)\n",
	       st2.missing_faults - st1.missing_faults);
	expect_figure("touched pages of the resumed image that differ from the state at the "
		      "snapshot", wrong, 0);
	expect_at_most("frames the resumed image holds (read-ahead included)",
		       (st2.committed_bytes - st1.committed_bytes) / PAGE, 2 * pages);
	uint8_t byte;
	must(uvmo_vmo_read(restored, &byte, 8, 1), "uvmo_vmo_read");
	expect_figure("resumed writes seen in the checkpoint file's VMO", byte == 0xef, 0);
	uint64_t live_changed = 0;
	for (uint64_t p = 0; p < pages; p += 3)
		live_changed += mem[p * (PAGE / 8)] == 0xdead;
	expect_figure("live pages still holding what the program wrote after the snapshot",
		      live_changed, (pages + 2) / 3);

	must(uvmo_vmar_unmap(uvmo_vmar_root(), raddr, bytes), "uvmo_vmar_unmap");
	must(uvmo_vmar_unmap(uvmo_vmar_root(), waddr, bytes), "uvmo_vmar_unmap");
	uvmo_vmo_close(resumed);
	must(uvmo_vmar_unmap(uvmo_vmar_root(), addr, bytes), "uvmo_vmar_unmap");
	uvmo_vmo_close(restored);
	uvmo_vmo_close(heap);
	close(fd);
}

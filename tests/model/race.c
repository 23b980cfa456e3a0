/* SPDX-License-Identifier: MIT */
/*
 * race: the threaded differential runs, one after another in this process,
 * for a ThreadSanitizer build (DESIGN.md §7).
 *
 * Criterion cannot run under ThreadSanitizer (its inheritable arena wants
 * a fixed address range TSan keeps for itself: Snaipe/Criterion#274), so
 * this driver runs the same engines the `model` and `model_mapped` suites
 * run, without criterion: several threads faulting through mappings while
 * others snapshot, restore, map and unmap; pager-backed roots served by a
 * pager thread; both dirty-tracking tiers; and a mapped WRITEBACK file
 * VMO under a memory limit, read and written by threads while another
 * syncs, closed last by an unmap (the io_uring file pager's thread, its
 * sync and its last-close worker).  Any report from TSan fails the
 * run (TSAN_OPTIONS=halt_on_error=1 exitcode=66, as .ci/run sets it); a
 * divergence from the model fails it too.
 *
 *   race [SCALE]   SCALE (default 1) multiplies the operations per run
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uvmo/uvmo.h>

#include "differential.h"
#include "mapped.h"

struct mapped_case {
	const char *name;
	uint64_t seed;
	unsigned nops, threads, flags;
};

static const struct mapped_case mapped_cases[] = {
	{ "own trees", 11, 1500, 4, 0 },
	{ "snapshots of a shared base", 12, 1500, 4, MAPPED_SHARED_BASE },
	{ "system calls and MAP_RANGE", 23, 1500, 4,
	  MAPPED_SYSCALLS | MAPPED_MAP_RANGE | MAPPED_SHARED_BASE | MAPPED_NO_PAST_END },
	{ "restores", 43, 1500, 4, MAPPED_RESTORE | MAPPED_SHARED_BASE },
	{ "pager-backed roots", 53, 1500, 4, MAPPED_PAGER | MAPPED_SHARED_BASE },
};

struct diff_case {
	const char *name;
	uint64_t seed;
	unsigned nops, flags;
};

static const struct diff_case diff_cases[] = {
	{ "calls, two threads", 61, 4000, DIFF_THREADS },
	{ "calls, two threads, pager", 62, 4000, DIFF_THREADS | DIFF_PAGER },
	{ "calls, two threads, churn", 63, 4000, DIFF_THREADS | DIFF_CHURN },
};

static char err[8192];

/* ---- the file pager ---------------------------------------------------- */

#define FILE_PAGES 512
#define PG 4096u

struct file_run {
	uint8_t *map;
	uvmo_vmo_t *vmo;
	_Atomic bool stop;
	_Atomic int failures;
};

/* Byte @i of page @pg before any write: what the file starts with. */
static uint8_t initial_byte(unsigned pg, unsigned i)
{
	return (uint8_t)(pg * 7 + i);
}

/* Readers see either the file's byte or the one writer's mark (page
 * number + 1 at offset 0 of even pages). */
static void *file_reader(void *arg)
{
	struct file_run *r = arg;
	while (!atomic_load(&r->stop)) {
		for (unsigned pg = 0; pg < FILE_PAGES; pg++) {
			uint8_t b = r->map[pg * PG + 1];
			if (b != initial_byte(pg, 1))
				atomic_fetch_add(&r->failures, 1);
		}
	}
	return NULL;
}

static void *file_writer(void *arg)
{
	struct file_run *r = arg;
	for (unsigned round = 0; round < 20; round++)
		for (unsigned pg = 0; pg < FILE_PAGES; pg += 2)
			r->map[pg * PG] = (uint8_t)(pg + 1);
	return NULL;
}

static void *file_syncer(void *arg)
{
	struct file_run *r = arg;
	uint8_t buf[PG];
	while (!atomic_load(&r->stop)) {
		if (uvmo_file_vmo_sync(r->vmo) < 0)
			atomic_fetch_add(&r->failures, 1);
		if (uvmo_vmo_read(r->vmo, buf, 3 * PG, PG) < 0 || buf[5] != initial_byte(3, 5))
			atomic_fetch_add(&r->failures, 1);
	}
	return NULL;
}

static int file_pager_run(void)
{
	char path[] = "/tmp/uvmo-race-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unlink(path);
	static uint8_t page[PG];
	for (unsigned pg = 0; pg < FILE_PAGES; pg++) {
		for (unsigned i = 0; i < PG; i++)
			page[i] = initial_byte(pg, i);
		if (pwrite(fd, page, PG, (off_t)pg * PG) != PG)
			return -1;
	}
	struct file_run r = { 0 };
	void *addr;
	if (uvmo_file_vmo_open(fd, UVMO_FILE_WRITEBACK, &r.vmo) < 0 ||
	    uvmo_file_vmo_set_memory_limit(r.vmo, FILE_PAGES / 4 * PG, FILE_PAGES / 8 * PG) < 0 ||
	    uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ | UVMO_PERM_WRITE, 0, r.vmo, 0,
			  FILE_PAGES * PG, &addr) < 0)
		return -1;
	r.map = addr;
	pthread_t t[4];
	pthread_create(&t[0], NULL, file_reader, &r);
	pthread_create(&t[1], NULL, file_reader, &r);
	pthread_create(&t[2], NULL, file_syncer, &r);
	pthread_create(&t[3], NULL, file_writer, &r);
	pthread_join(t[3], NULL);
	atomic_store(&r.stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	/* The last reference is the mapping: its unmap writes back. */
	uvmo_vmo_close(r.vmo);
	uvmo_vmar_unmap(uvmo_vmar_root(), addr, FILE_PAGES * PG);
	uvmo_shutdown(); /* waits for the last-close writeback */
	int bad = atomic_load(&r.failures);
	for (unsigned pg = 0; pg < FILE_PAGES; pg++) {
		if (pread(fd, page, PG, (off_t)pg * PG) != PG)
			return -1;
		uint8_t want0 = pg % 2 ? initial_byte(pg, 0) : (uint8_t)(pg + 1);
		if (page[0] != want0 || page[1] != initial_byte(pg, 1))
			bad++;
	}
	close(fd);
	if (bad)
		snprintf(err, sizeof(err), "file pager: %d wrong bytes", bad);
	return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
	unsigned scale = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1;
	if (scale == 0)
		scale = 1;
	int failed = 0;

	for (size_t i = 0; i < sizeof(mapped_cases) / sizeof(mapped_cases[0]); i++) {
		const struct mapped_case *c = &mapped_cases[i];
		int rc = mapped_run(c->seed, c->nops * scale, c->threads, c->flags, err,
				    sizeof(err));
		printf("race: mapped, %-40s %s\n", c->name, rc == 0 ? "ok" : "FAILED");
		if (rc != 0) {
			fprintf(stderr, "%s\n", err);
			failed++;
		}
		fflush(stdout);
	}
	for (size_t i = 0; i < sizeof(diff_cases) / sizeof(diff_cases[0]); i++) {
		const struct diff_case *c = &diff_cases[i];
		int rc = diff_run(c->seed, c->nops * scale, c->flags, err, sizeof(err));
		printf("race: model,  %-40s %s\n", c->name, rc == 0 ? "ok" : "FAILED");
		if (rc != 0) {
			fprintf(stderr, "%s\n", err);
			failed++;
		}
		fflush(stdout);
	}
	uvmo_shutdown();
	int rc = file_pager_run();
	printf("race: file,   %-40s %s\n", "WRITEBACK file VMO under a limit", rc == 0 ? "ok" : "FAILED");
	if (rc != 0) {
		fprintf(stderr, "%s\n", err);
		failed++;
	}
	printf("race: %d of %zu runs failed\n", failed,
	       sizeof(mapped_cases) / sizeof(mapped_cases[0]) +
		       sizeof(diff_cases) / sizeof(diff_cases[0]) + 1);
	return failed ? 1 : 0;
}

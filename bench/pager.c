// SPDX-License-Identifier: MIT
/*
 * bench/pager.c — the io_uring file pager against the kernel's own ways of
 * reading and writing a file (issue 4 §2).
 *
 * One file (1 GiB, or less if /tmp is short of space: a note says so) is
 * read three ways, cold (page cache dropped: `sync; echo 3 >
 * /proc/sys/vm/drop_caches` when root, plus posix_fadvise DONTNEED) and
 * warm (file in the page cache):
 *   uvmo   a fresh READONLY file VMO (uvmo_file_vmo_open) mapped read-only
 *          into the root VMAR: a mapping of the file itself, served by the
 *          kernel's page cache (checked: uvmo_stats.direct_file_mappings);
 *   uvmo-P (for information) the same with UVMO_FILE_PAGED: every access
 *          faults pages in through the pager into the VMO's own frames;
 *   mmap   mmap(MAP_SHARED, PROT_READ) of the file;
 *   pread  a pread(2) loop (1 MiB buffers sequentially, 4 KiB at random);
 *   mmap-R (random only, for information) mmap with MADV_RANDOM: the
 *          kernel reads only the faulting page, no read-around.
 * "seq" reads every 64-byte line of the file in order; "rand" reads the
 * 64 lines of RANDOM_PAGES pages picked at random (the same pages, in the
 * same order, for all three).  Targets: uvmo ≥ 0.8× mmap's throughput
 * sequential, ≥ 0.7× random.
 *
 * Writeback: WRITEBACK_BYTES of a file VMO dirtied through a mapping, then
 * uvmo_file_vmo_sync (timed), against `dd conv=fsync,notrunc bs=1M` of the
 * same bytes (from a file in the page cache) into the same kind of file,
 * run as a child process.  Target ≥ 0.8× dd's throughput.
 *
 * Baselines are measured in the same run; every figure is the median of
 * ROUNDS rounds that interleave uvmo and its baselines ("VMO frames
 * present": the best of ROUNDS; writeback: the best of two).  A benchmark is not an assertion: a MISS still exits 0.
 * Run from a release build: bench/run.sh pager [size_mib].
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uvmo/uvmo.h>

#include "bench_util.h"

extern char **environ;

#define MIB ((uint64_t)1 << 20)
#define PAGE ((uint64_t)4096)
#define DEFAULT_SIZE (1024 * MIB)
#define WRITEBACK_BYTES (256 * MIB)
#define RANDOM_PAGES 32768
#define ROUNDS 3

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die_err(const char *what, int err)
{
	fprintf(stderr, "pager_bench: %s: %s\n", what, strerror(err));
	exit(2);
}

/* Volatile sink so the compiler keeps every load. */
static volatile uint64_t sink;

static uint64_t sum_lines(const uint8_t *p, uint64_t len)
{
	uint64_t s = 0;
	for (uint64_t i = 0; i < len; i += 64)
		s += *(const volatile uint64_t *)(p + i);
	return s;
}

/* ---------------------------------------------------------------------- */
/* files                                                                  */
/* ---------------------------------------------------------------------- */

static char dir[] = "/tmp";

static int make_file(uint64_t size, char *path_out, size_t path_len)
{
	snprintf(path_out, path_len, "%s/uvmo-pager-bench-XXXXXX", dir);
	int fd = mkstemp(path_out);
	if (fd < 0)
		die_err("mkstemp", errno);
	uint64_t *buf = malloc(MIB);
	for (uint64_t off = 0; off < size; off += MIB) {
		for (size_t i = 0; i < MIB / 8; i++)
			buf[i] = (off + i * 8) * 0x9e3779b97f4a7c15ull;
		if (pwrite(fd, buf, MIB, (off_t)off) != (ssize_t)MIB)
			die_err("writing the test file", errno);
	}
	free(buf);
	fsync(fd);
	return fd;
}

static bool can_drop_caches;

static void drop_caches(int fd)
{
	sync();
	if (can_drop_caches) {
		int p = open("/proc/sys/vm/drop_caches", O_WRONLY);
		if (p >= 0) {
			if (write(p, "3", 1) != 1)
				can_drop_caches = false;
			close(p);
		} else {
			can_drop_caches = false;
		}
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

static void warm_up(int fd, uint64_t size)
{
	uint8_t *buf = malloc(MIB);
	for (uint64_t off = 0; off < size; off += MIB)
		if (pread(fd, buf, MIB, (off_t)off) < 0)
			die_err("pread", errno);
	free(buf);
}

/* ---------------------------------------------------------------------- */
/* readers: each returns seconds                                          */
/* ---------------------------------------------------------------------- */

enum pattern { SEQUENTIAL, RANDOM };

static uint64_t *random_pages;

static double scan(const uint8_t *p, uint64_t size, enum pattern pat)
{
	uint64_t s = 0;
	double t0 = now();
	if (pat == SEQUENTIAL) {
		s = sum_lines(p, size);
	} else {
		for (int i = 0; i < RANDOM_PAGES; i++)
			s += sum_lines(p + random_pages[i] * PAGE, PAGE);
	}
	double t = now() - t0;
	sink += s;
	return t;
}

static double read_uvmo_with(int fd, uint64_t size, enum pattern pat, uint32_t options)
{
	uvmo_vmo_t *vmo;
	int rc = uvmo_file_vmo_open(fd, UVMO_FILE_READONLY | options, &vmo);
	if (rc < 0)
		die_err("uvmo_file_vmo_open", -rc);
	void *addr;
	rc = uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ, 0, vmo, 0, size, &addr);
	if (rc < 0)
		die_err("uvmo_vmar_map", -rc);
	struct uvmo_stats st;
	uvmo_get_stats(&st);
	if ((st.direct_file_mappings == 1) != !(options & UVMO_FILE_PAGED)) {
		fprintf(stderr, "pager_bench: the mapping is %sa direct one\n",
			st.direct_file_mappings ? "" : "not ");
		exit(2);
	}
	double t = scan(addr, size, pat);
	uvmo_vmar_unmap(uvmo_vmar_root(), addr, size);
	uvmo_vmo_close(vmo);
	return t;
}

static double read_mmap(int fd, uint64_t size, enum pattern pat)
{
	void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die_err("mmap", errno);
	double t = scan(p, size, pat);
	munmap(p, size);
	return t;
}

static double read_uvmo(int fd, uint64_t size, enum pattern pat)
{
	return read_uvmo_with(fd, size, pat, 0);
}

static double read_uvmo_paged(int fd, uint64_t size, enum pattern pat)
{
	return read_uvmo_with(fd, size, pat, UVMO_FILE_PAGED);
}

/* mmap told MADV_RANDOM: the kernel then reads no more than it faults. */
static double read_mmap_madv_random(int fd, uint64_t size, enum pattern pat)
{
	void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die_err("mmap", errno);
	madvise(p, size, MADV_RANDOM);
	double t = scan(p, size, pat);
	munmap(p, size);
	return t;
}

static double read_pread(int fd, uint64_t size, enum pattern pat)
{
	uint8_t *buf = aligned_alloc(PAGE, MIB);
	uint64_t s = 0;
	double t0 = now();
	if (pat == SEQUENTIAL) {
		for (uint64_t off = 0; off < size; off += MIB) {
			if (pread(fd, buf, MIB, (off_t)off) != (ssize_t)MIB)
				die_err("pread", errno);
			s += sum_lines(buf, MIB);
		}
	} else {
		for (int i = 0; i < RANDOM_PAGES; i++) {
			if (pread(fd, buf, PAGE, (off_t)(random_pages[i] * PAGE)) != (ssize_t)PAGE)
				die_err("pread", errno);
			s += sum_lines(buf, PAGE);
		}
	}
	double t = now() - t0;
	sink += s;
	free(buf);
	return t;
}

/* Frames already in the VMO (uvmo's own cache, like the page cache for
 * mmap): a fresh mapping of a PAGED file VMO read once before.  Best of
 * rounds. */
static double read_uvmo_present(int fd, uint64_t size, enum pattern pat)
{
	uvmo_vmo_t *vmo;
	int rc = uvmo_file_vmo_open(fd, UVMO_FILE_READONLY | UVMO_FILE_PAGED, &vmo);
	if (rc < 0)
		die_err("uvmo_file_vmo_open", -rc);
	void *addr;
	double best = 1e30;
	for (int r = 0; r <= ROUNDS; r++) {
		rc = uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ, 0, vmo, 0, size, &addr);
		if (rc < 0)
			die_err("uvmo_vmar_map", -rc);
		double t = scan(addr, size, pat);
		if (r > 0 && t < best) /* round 0 brings the frames in */
			best = t;
		uvmo_vmar_unmap(uvmo_vmar_root(), addr, size);
	}
	uvmo_vmo_close(vmo);
	return best;
}

typedef double (*reader_fn)(int fd, uint64_t size, enum pattern pat);

/* One measurement: cold (caches dropped first) or warm (file read first). */
static double measure(reader_fn fn, int fd, uint64_t size, enum pattern pat, bool cold)
{
	if (cold)
		drop_caches(fd);
	else
		warm_up(fd, size);
	return fn(fd, size, pat);
}

/* ---------------------------------------------------------------------- */
/* writeback                                                              */
/* ---------------------------------------------------------------------- */

static double sync_uvmo(int fd, uint64_t size)
{
	uvmo_vmo_t *vmo;
	int rc = uvmo_file_vmo_open(fd, UVMO_FILE_WRITEBACK, &vmo);
	if (rc < 0)
		die_err("uvmo_file_vmo_open(WRITEBACK)", -rc);
	void *addr;
	rc = uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ | UVMO_PERM_WRITE, 0, vmo, 0, size,
			   &addr);
	if (rc < 0)
		die_err("uvmo_vmar_map", -rc);
	uint64_t *w = addr;
	for (uint64_t i = 0; i < size / 8; i += 8)
		w[i] = i * 0x2545f4914f6cdd1dull; /* every page dirty */
	double t0 = now();
	rc = uvmo_file_vmo_sync(vmo);
	double t = now() - t0;
	if (rc < 0)
		die_err("uvmo_file_vmo_sync", -rc);
	uvmo_vmar_unmap(uvmo_vmar_root(), addr, size);
	uvmo_vmo_close(vmo);
	return t;
}

static double dd_copy(const char *src, const char *dst, uint64_t size)
{
	char ifarg[300], ofarg[300], count[64];
	snprintf(ifarg, sizeof ifarg, "if=%s", src);
	snprintf(ofarg, sizeof ofarg, "of=%s", dst);
	snprintf(count, sizeof count, "count=%" PRIu64, size / MIB);
	/* posix_spawn, not fork(): uvmo's fork handlers would copy the pool
	 * into the child, which would be timed as part of dd. */
	char *args[] = { "dd", ifarg, ofarg, "bs=1M", count, "conv=fsync,notrunc", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	double t0 = now();
	pid_t pid;
	int rc = posix_spawnp(&pid, "dd", &fa, NULL, args, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		die_err("posix_spawnp(dd)", rc);
	int status;
	waitpid(pid, &status, 0);
	double t = now() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "pager_bench: dd failed (status %d)\n", status);
		return -1;
	}
	return t;
}

/* ---------------------------------------------------------------------- */
/* table                                                                  */
/* ---------------------------------------------------------------------- */

static void row(const char *name, uint64_t bytes, double t_uvmo, double t_base,
		const char *base, double target)
{
	double mb_u = (double)bytes / MIB / t_uvmo, mb_b = (double)bytes / MIB / t_base;
	double ratio = t_base / t_uvmo; /* throughput ratio */
	char verdict[16] = "";
	if (target > 0)
		snprintf(verdict, sizeof verdict, "%s", ratio >= target ? "PASS" : "MISS");
	char tgt[16] = "-";
	if (target > 0)
		snprintf(tgt, sizeof tgt, ">= %.1fx", target);
	printf("%-24s %10.1f %-6s %10.1f %8.2fx %8s  %s\n", name, mb_u, base, mb_b, ratio, tgt,
	       verdict);
}

int main(int argc, char **argv)
{
	uint64_t size = DEFAULT_SIZE;
	if (argc > 1)
		size = strtoull(argv[1], NULL, 10) * MIB;
	struct statvfs vfs;
	if (statvfs(dir, &vfs) == 0) {
		uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		uint64_t need = size + 2 * WRITEBACK_BYTES + 256 * MIB;
		if (avail < need) {
			uint64_t fit = avail > 2 * WRITEBACK_BYTES + 512 * MIB
					       ? (avail - 2 * WRITEBACK_BYTES - 256 * MIB) / 2
					       : 64 * MIB;
			fit &= ~(MIB - 1);
			printf("note: %s has %" PRIu64 " MiB free; reading a %" PRIu64
			       " MiB file instead of %" PRIu64 " MiB\n",
			       dir, avail / MIB, fit / MIB, size / MIB);
			size = fit;
		}
	}
	can_drop_caches = geteuid() == 0;

	char path[256], src_path[256], dst_path[256];
	int fd = make_file(size, path, sizeof path);
	unlink(path); /* the descriptor keeps it; nothing is left behind */
	random_pages = malloc(RANDOM_PAGES * sizeof(*random_pages));
	srand(42);
	for (int i = 0; i < RANDOM_PAGES; i++)
		random_pages[i] = ((uint64_t)rand() * 65537u + (uint64_t)rand()) % (size / PAGE);

	printf("file pager: %" PRIu64 " MiB file in %s; random: %d pages of 4 KiB; median of %d "
	       "interleaved rounds\n",
	       size / MIB, dir, RANDOM_PAGES, ROUNDS);
	if (!can_drop_caches)
		printf("note: not root: cold runs only use posix_fadvise(DONTNEED)\n");

	struct {
		const char *name;
		enum pattern pat;
		bool cold;
		double target;
	} cases[] = {
		{ "seq cold", SEQUENTIAL, true, 0.8 },
		{ "seq warm", SEQUENTIAL, false, 0.8 },
		{ "rand 4K cold", RANDOM, true, 0.7 },
		{ "rand 4K warm", RANDOM, false, 0.7 },
	};
	double t_u[4], t_up[4], t_m[4], t_p[4], t_present[2], t_mr[2];
	/* Rounds interleave uvmo and its baselines, so load from the rest of
	 * the machine weighs on all of them alike; each figure is the median. */
	for (int c = 0; c < 4; c++) {
		double m[ROUNDS], u[ROUNDS], up[ROUNDS], p[ROUNDS], mr[ROUNDS];
		for (int r = 0; r < ROUNDS; r++) {
			m[r] = measure(read_mmap, fd, size, cases[c].pat, cases[c].cold);
			u[r] = measure(read_uvmo, fd, size, cases[c].pat, cases[c].cold);
			up[r] = measure(read_uvmo_paged, fd, size, cases[c].pat, cases[c].cold);
			p[r] = measure(read_pread, fd, size, cases[c].pat, cases[c].cold);
			if (cases[c].pat == RANDOM)
				mr[r] = measure(read_mmap_madv_random, fd, size, RANDOM,
						cases[c].cold);
		}
		t_m[c] = median(m, ROUNDS);
		t_u[c] = median(u, ROUNDS);
		t_up[c] = median(up, ROUNDS);
		t_p[c] = median(p, ROUNDS);
		if (cases[c].pat == RANDOM)
			t_mr[cases[c].cold ? 0 : 1] = median(mr, ROUNDS);
	}
	t_present[0] = read_uvmo_present(fd, size, SEQUENTIAL);
	t_present[1] = read_uvmo_present(fd, size, RANDOM);

	/* Writeback: the source holds the bytes the VMO will hold, warm;
	 * both targets are allocated files of the same size. */
	int src = make_file(WRITEBACK_BYTES, src_path, sizeof src_path);
	int dst = make_file(WRITEBACK_BYTES, dst_path, sizeof dst_path);
	int wb = make_file(WRITEBACK_BYTES, path, sizeof path);
	unlink(path);
	warm_up(src, WRITEBACK_BYTES);
	double t_dd = dd_copy(src_path, dst_path, WRITEBACK_BYTES);
	double t_sync = sync_uvmo(wb, WRITEBACK_BYTES);
	double t_dd2 = dd_copy(src_path, dst_path, WRITEBACK_BYTES);
	double t_sync2 = sync_uvmo(wb, WRITEBACK_BYTES);
	if (t_dd2 > 0 && (t_dd < 0 || t_dd2 < t_dd))
		t_dd = t_dd2;
	if (t_sync2 < t_sync)
		t_sync = t_sync2;

	printf("\n%-24s %10s %-6s %10s %9s %8s  %s\n", "case", "uvmo MB/s", "vs", "MB/s",
	       "ratio", "target", "");
	for (int c = 0; c < 4; c++) {
		uint64_t bytes = cases[c].pat == SEQUENTIAL ? size : RANDOM_PAGES * PAGE;
		char name[64];
		snprintf(name, sizeof name, "%s", cases[c].name);
		row(name, bytes, t_u[c], t_m[c], "mmap", cases[c].target);
		snprintf(name, sizeof name, "%s (info)", cases[c].name);
		row(name, bytes, t_u[c], t_p[c], "pread", 0);
		if (cases[c].pat == RANDOM) {
			snprintf(name, sizeof name, "%s (info)", cases[c].name);
			row(name, bytes, t_u[c], t_mr[cases[c].cold ? 0 : 1], "mmap-R", 0);
		}
	}
	printf("pager path (UVMO_FILE_PAGED), for information:\n");
	for (int c = 0; c < 4; c++) {
		uint64_t bytes = cases[c].pat == SEQUENTIAL ? size : RANDOM_PAGES * PAGE;
		char name[64];
		snprintf(name, sizeof name, "P %s", cases[c].name);
		row(name, bytes, t_up[c], t_m[c], "mmap", 0);
		snprintf(name, sizeof name, "P %s", cases[c].name);
		row(name, bytes, t_up[c], t_p[c], "pread", 0);
	}
	row("P seq, frames present", size, t_present[0], t_m[1], "mmap", 0);
	row("P rand, frames present", RANDOM_PAGES * PAGE, t_present[1], t_m[3], "mmap", 0);
	if (t_dd > 0)
		row("writeback 256M + fsync", WRITEBACK_BYTES, t_sync, t_dd, "dd", 0.8);
	else
		printf("writeback: dd did not run; uvmo %.1f MB/s\n",
		       (double)WRITEBACK_BYTES / MIB / t_sync);
	printf("\nratio = uvmo throughput / baseline throughput (baselines from this run);\n"
	       "a MISS is a finding, not a failure (exit 0).\n");

	close(fd);
	close(src);
	close(dst);
	close(wb);
	unlink(src_path);
	unlink(dst_path);
	uvmo_shutdown();
	return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * The io_uring file pager (issue 4 §2): a file VMO shows the file byte for
 * byte (calls and mappings, the last partial page zero past EOF), writes
 * reach the file only with UVMO_FILE_WRITEBACK and only through sync, a
 * page written during a sync stays dirty for the next one, a failed write
 * keeps pages dirty, READONLY refuses writes, a memory limit bounds the
 * frames of a file larger than it, a file truncated under its VMO gives
 * SIGBUS and -EIO (never a hang), bad arguments change nothing, and many
 * threads faulting at once all see the file.
 *
 * Files are real files in /tmp (mkstemp, unlinked at once: the descriptor
 * keeps them alive and nothing is left behind).
 */
#include "map_test_util.h"

#include <criterion/redirect.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* files                                                                  */
/* ---------------------------------------------------------------------- */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* A new file of @size bytes holding pattern_byte(@seed, position), open
 * with @flags (O_RDWR, O_RDONLY, ...). */
static int make_file(uint64_t size, uint64_t seed, int flags)
{
	char path[] = "/tmp/uvmo-file-pager-XXXXXX";
	int fd = mkstemp(path);
	cr_assert(fd >= 0, "mkstemp: %s", strerror(errno));
	uint8_t *buf = malloc(1 << 20);
	cr_assert_not_null(buf);
	for (uint64_t off = 0; off < size; off += 1 << 20) {
		size_t n = (size_t)min_u64(1 << 20, size - off);
		fill_pattern(buf, n, seed, off);
		cr_assert_eq(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
	}
	free(buf);
	int ret = fd;
	if ((flags & O_ACCMODE) != O_RDWR || (flags & ~O_ACCMODE)) {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		ret = open(proc, flags);
		cr_assert(ret >= 0, "reopen: %s", strerror(errno));
		close(fd);
	}
	unlink(path);
	return ret;
}

/* The whole file, read with pread(2). */
static uint8_t *file_bytes(int fd, uint64_t *size_out)
{
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	uint64_t size = (uint64_t)st.st_size;
	uint8_t *buf = malloc(size ? size : 1);
	cr_assert_not_null(buf);
	for (uint64_t off = 0; off < size;) {
		ssize_t n = pread(fd, buf + off, size - off, (off_t)off);
		cr_assert(n > 0, "pread at %llu: %zd", (unsigned long long)off, n);
		off += (uint64_t)n;
	}
	if (size_out)
		*size_out = size;
	return buf;
}

static uvmo_vmo_t *open_file_vmo(int fd, uint32_t options)
{
	uvmo_vmo_t *v = NULL;
	expect_ok(uvmo_file_vmo_open(fd, options, &v));
	cr_assert_not_null(v);
	return v;
}

/* Assert @len bytes at @a equal those at @b, naming the first difference. */
#define expect_same_bytes(a, b, len, what)                                    \
	do {                                                                  \
		const uint8_t *a_ = (a), *b_ = (b);                           \
		uint64_t l_ = (len);                                          \
		for (uint64_t i_ = 0; i_ < l_; i_++)                          \
			if (a_[i_] != b_[i_])                                 \
				cr_assert_fail("%s: byte %llu is 0x%02x, the file has 0x%02x", \
					       (what), (unsigned long long)i_, a_[i_], b_[i_]); \
	} while (0)

/* The file must hold exactly what @v holds over its first @size bytes. */
static void expect_file_matches_vmo(int fd, uvmo_vmo_t *v, uint64_t size)
{
	uint64_t fsize;
	uint8_t *f = file_bytes(fd, &fsize);
	cr_assert_eq(fsize, size, "the file is %llu bytes, expected %llu",
		     (unsigned long long)fsize, (unsigned long long)size);
	uint8_t *m = malloc(size);
	cr_assert_not_null(m);
	/* In pieces: a file VMO under a memory limit smaller than @size
	 * could not hold all of it for one call. */
	for (uint64_t off = 0; off < size; off += 256 << 10)
		expect_ok(uvmo_vmo_read(v, m + off, off, min_u64(256 << 10, size - off)));
	expect_same_bytes(m, f, size, "VMO vs file");
	free(m);
	free(f);
}

static int open_descriptors(void)
{
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Wait (up to 5 s) until the process has @want descriptors open: the file
 * pager closes its duplicate when the COMPLETE request arrives. */
static bool descriptors_become(int want)
{
	for (int i = 0; i < 500; i++) {
		if (open_descriptors() == want)
			return true;
		usleep(10000);
	}
	return false;
}

/* Page @page of @v, read by call, holds the file's pattern @seed. */
#define expect_page_of_file(v, page, seed)                                    \
	do {                                                                  \
		uint8_t pb_[PG];                                              \
		expect_ok(uvmo_vmo_read((v), pb_, (page) * PG, PG));          \
		expect_mem_pattern(pb_, PG, (seed), (page) * PG);             \
	} while (0)

#define FILE_SIZE (37 * PG + 123)

/* ---------------------------------------------------------------------- */
/* reads                                                                  */
/* ---------------------------------------------------------------------- */

Test(file_pager, vmo_size_is_the_file_size_rounded_up_to_pages)
{
	int fd = make_file(FILE_SIZE, 1, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, 0);
	cr_assert_eq(size_of(v), 38 * PG);
	int fd2 = make_file(8 * PG, 2, O_RDWR);
	uvmo_vmo_t *v2 = open_file_vmo(fd2, 0);
	cr_assert_eq(size_of(v2), 8 * PG);
}

Test(file_pager, reads_through_calls_match_pread_byte_for_byte)
{
	int fd = make_file(FILE_SIZE, 3, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, 0);
	uint64_t size;
	uint8_t *f = file_bytes(fd, &size);
	/* Unaligned pieces first (from the middle, so not in file order),
	 * then the whole. */
	uint8_t buf[3 * PG];
	expect_ok(uvmo_vmo_read(v, buf, 20 * PG + 17, sizeof(buf)));
	expect_same_bytes(buf, f + 20 * PG + 17, sizeof(buf), "piece at page 20");
	expect_ok(uvmo_vmo_read(v, buf, 1, 100));
	expect_same_bytes(buf, f + 1, 100, "piece at byte 1");
	uint8_t *all = malloc(size);
	expect_ok(uvmo_vmo_read(v, all, 0, size));
	expect_same_bytes(all, f, size, "whole file");
	free(all);
	free(f);
}

Test(file_pager, reads_through_a_mapping_match_pread_byte_for_byte)
{
	int fd = make_file(FILE_SIZE, 4, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, 0);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, size_of(v));
	uint64_t size;
	uint8_t *f = file_bytes(fd, &size);
	/* Back to front, so read-ahead does not serve it all. */
	for (uint64_t p = 38; p-- > 0;) {
		uint64_t n = min_u64(PG, size - p * PG);
		expect_same_bytes(m + p * PG, f + p * PG, n, "mapped page");
	}
	free(f);
}

Test(file_pager, last_partial_page_reads_zero_past_eof)
{
	int fd = make_file(FILE_SIZE, 5, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, 0);
	uint8_t buf[PG];
	expect_ok(uvmo_vmo_read(v, buf, 37 * PG, PG));
	expect_mem_pattern(buf, 123, 5, 37 * PG);
	expect_mem_val(buf + 123, PG - 123, 0);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, size_of(v));
	expect_mem_pattern(m + 37 * PG, 123, 5, 37 * PG);
	expect_mem_val(m + 37 * PG + 123, PG - 123, 0);
}

Test(file_pager, a_vmo_read_larger_than_the_read_ahead_matches_the_file)
{
	uint64_t size = 5 * (1 << 20) + 3 * PG;
	int fd = make_file(size, 6, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, 0);
	uint8_t *f = file_bytes(fd, NULL);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, size);
	/* Sequential through the mapping: read-ahead grows to its maximum. */
	expect_same_bytes(m, f, size, "sequential mapping");
	free(f);
}

Test(file_pager, sequential_access_reads_ahead_and_a_jump_reads_around_only_near_present_pages)
{
	int fd = make_file(256 * PG, 7, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, 0);
	uint8_t buf[PG];
	expect_ok(uvmo_vmo_read(v, buf, 0, PG));
	uint64_t after_first = info_of(v).committed_bytes;
	cr_assert_gt(after_first, PG, "reading page 0 brought in %llu bytes: no read-ahead",
		     (unsigned long long)after_first);
	/* Continue where the read-ahead ended: it grows. */
	expect_ok(uvmo_vmo_read(v, buf, after_first, PG));
	uint64_t after_second = info_of(v).committed_bytes;
	cr_assert_gt(after_second - after_first, after_first,
		     "the sequential read brought %llu bytes after %llu: read-ahead did not grow",
		     (unsigned long long)(after_second - after_first),
		     (unsigned long long)after_first);
	/* A jump far away, into an empty 64 KiB block, reads only itself. */
	expect_ok(uvmo_vmo_read(v, buf, 200 * PG + 5, 10));
	cr_assert_eq(info_of(v).committed_bytes - after_second, PG);
	/* A jump into a block that holds pages reads the absent pages
	 * around it, up to the present ones and the block's edges:
	 * page 203 of block [192, 208) with page 200 present reads 201..207. */
	uint64_t before = info_of(v).committed_bytes;
	expect_ok(uvmo_vmo_read(v, buf, 203 * PG, PG));
	cr_assert_eq(info_of(v).committed_bytes - before, 7 * PG);
	before = info_of(v).committed_bytes;
	expect_ok(uvmo_vmo_read(v, buf, 196 * PG, PG));
	cr_assert_eq(info_of(v).committed_bytes - before, 8 * PG, "192..199 expected");
	uint8_t *all = read_all(v, NULL);
	expect_mem_pattern(all, 256 * PG, 7, 0);
	free(all);
}

/* ---------------------------------------------------------------------- */
/* writes and writeback                                                   */
/* ---------------------------------------------------------------------- */

Test(file_pager, writes_through_calls_reach_the_file_after_sync)
{
	int fd = make_file(FILE_SIZE, 8, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	srand(8);
	for (int i = 0; i < 64; i++) {
		uint64_t off = (uint64_t)rand() % FILE_SIZE;
		uint64_t len = 1 + (uint64_t)rand() % (3 * PG);
		len = min_u64(len, FILE_SIZE - off);
		write_pattern(v, 100 + (uint64_t)i, off, len);
	}
	expect_ok(uvmo_file_vmo_sync(v));
	expect_file_matches_vmo(fd, v, FILE_SIZE);
}

Test(file_pager, writes_through_a_mapping_reach_the_file_after_sync)
{
	int fd = make_file(FILE_SIZE, 9, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	uint8_t *m = map_rw(v);
	srand(9);
	for (int i = 0; i < 200; i++) {
		uint64_t off = (uint64_t)rand() % FILE_SIZE;
		m[off] = (uint8_t)rand();
	}
	fill_pattern(m + 3 * PG + 5, 2 * PG, 77, 0);
	expect_ok(uvmo_file_vmo_sync(v));
	uint8_t *f = file_bytes(fd, NULL);
	expect_same_bytes(m, f, FILE_SIZE, "mapping vs file");
	free(f);
	/* Written past EOF in the last page: the file keeps its size. */
	m[FILE_SIZE + 10] = 0xee;
	expect_ok(uvmo_file_vmo_sync(v));
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, FILE_SIZE);
}

Test(file_pager, repeated_syncs_write_only_what_changed_since)
{
	int fd = make_file(64 * PG, 10, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	fill_page(v, 3, 0x33);
	expect_ok(uvmo_file_vmo_sync(v));
	expect_file_matches_vmo(fd, v, 64 * PG);
	/* Change the file behind the VMO's back at page 3: a sync that does
	 * not rewrite clean pages leaves it alone. */
	uint8_t other[PG];
	memset(other, 0x44, sizeof(other));
	cr_assert_eq(pwrite(fd, other, PG, 3 * PG), (ssize_t)PG);
	fill_page(v, 9, 0x99);
	expect_ok(uvmo_file_vmo_sync(v));
	uint8_t *f = file_bytes(fd, NULL);
	expect_mem_val(f + 3 * PG, PG, 0x44);
	expect_mem_val(f + 9 * PG, PG, 0x99);
	free(f);
}

Test(file_pager, writes_without_writeback_never_reach_the_file)
{
	int fd = make_file(FILE_SIZE, 11, O_RDWR);
	uint8_t *before = file_bytes(fd, NULL);
	uvmo_vmo_t *v = open_file_vmo(fd, 0);
	fill_pages(v, 0, 10, 0xab);
	uint8_t *m = map_rw(v);
	memset(m + 20 * PG, 0xcd, 5 * PG);
	expect_page(v, 20, 0xcd);
	expect_rc(-EINVAL, uvmo_file_vmo_sync(v));
	uvmo_vmar_unmap(root_vmar(), m, size_of(v));
	uvmo_vmo_close(v);
	uvmo_shutdown();
	uint8_t *after = file_bytes(fd, NULL);
	expect_same_bytes(after, before, FILE_SIZE, "file after writes without writeback");
	free(before);
	free(after);
}

Test(file_pager, readonly_refuses_writes)
{
	int fd = make_file(FILE_SIZE, 12, O_RDONLY);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY);
	uint8_t buf[PG];
	memset(buf, 1, sizeof(buf));
	expect_rc(-EACCES, uvmo_vmo_write(v, buf, 0, PG));
	expect_rc(-EACCES, uvmo_vmo_op_range(v, UVMO_OP_ZERO, 0, PG));
	void *addr = NULL;
	expect_rc(-EACCES, uvmo_vmar_map(root_vmar(), PERM_RW, 0, v, 0, PG, &addr));
	cr_assert(info_of(v).flags & UVMO_INFO_NO_WRITE);
	/* Reads work, through calls and a read-only mapping. */
	expect_ok(uvmo_vmo_read(v, buf, 0, PG));
	expect_mem_pattern(buf, PG, 12, 0);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, size_of(v));
	expect_mem_pattern(m + 30 * PG, PG, 12, 30 * PG);
	expect_write_signal(SIGSEGV, m + 30 * PG);
	expect_rc(-EINVAL, uvmo_file_vmo_sync(v));
}

Test(file_pager, sync_with_nothing_dirty_succeeds_and_leaves_the_file_alone)
{
	int fd = make_file(FILE_SIZE, 13, O_RDWR);
	uint8_t *before = file_bytes(fd, NULL);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	expect_ok(uvmo_file_vmo_sync(v));
	uint8_t buf[PG];
	expect_ok(uvmo_vmo_read(v, buf, 5 * PG, PG)); /* present, clean */
	/* Change the file behind the VMO: a sync with nothing dirty must not
	 * write the clean page back over it. */
	uint8_t other[PG];
	memset(other, 0x5c, sizeof(other));
	cr_assert_eq(pwrite(fd, other, PG, 5 * PG), (ssize_t)PG);
	memcpy(before + 5 * PG, other, PG);
	expect_ok(uvmo_file_vmo_sync(v));
	uint8_t *after = file_bytes(fd, NULL);
	expect_same_bytes(after, before, FILE_SIZE, "file after an empty sync");
	free(before);
	free(after);
}

Test(file_pager, sync_through_a_duplicate_handle_writes_back)
{
	int fd = make_file(16 * PG, 14, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	uvmo_vmo_t *d = NULL;
	expect_ok(uvmo_vmo_duplicate(v, &d));
	uvmo_vmo_close(v);
	fill_page(d, 7, 0x77);
	expect_ok(uvmo_file_vmo_sync(d));
	expect_file_matches_vmo(fd, d, 16 * PG);
}

struct writer_arg {
	uvmo_vmo_t *vmo;
	uint8_t *map;          /* write through the mapping if set, else by call */
	uint64_t page;
	uint64_t value;
	double delay;          /* seconds after the sync starts */
	double sync_start;     /* set by the test thread just before the sync */
	atomic_bool go;
	double written_at;     /* when the write had completed */
};

static void *write_during_sync(void *p)
{
	struct writer_arg *a = p;
	while (!atomic_load(&a->go))
		sched_yield();
	while (now_seconds() < a->sync_start + a->delay)
		;
	uint64_t buf[PG / 8];
	for (size_t k = 0; k < PG / 8; k++)
		buf[k] = a->value;
	if (a->map)
		memcpy(a->map + a->page * PG, buf, PG);
	else
		tcheck(uvmo_vmo_write(a->vmo, buf, a->page * PG, PG) == 0, "write failed");
	a->written_at = now_seconds();
	return NULL;
}

/*
 * A page written while a sync runs must reach the file by the next sync,
 * wherever in the sync the write lands: before WRITEBACK_BEGIN (then this
 * sync may write it), between BEGIN and END (the page is Dirty again),
 * after END.  One write per round, at a delay spread over the sync's
 * duration; a round counts only if the write completed before the sync
 * returned.  A sync that read a page before BEGIN, or a core that let END
 * clean a page written after BEGIN, leaves the file with the older bytes.
 */
static void page_written_during_a_sync_stays_dirty(bool through_mapping)
{
	const uint64_t pages = 1024; /* 4 MiB dirty: a sync takes a while */
	const int rounds = 12, max_rounds = 60;
	int fd = make_file(pages * PG, 15, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	uint8_t *m = map_rw(v);
	memset(m, 0xff, pages * PG);
	double t0 = now_seconds();
	expect_ok(uvmo_file_vmo_sync(v));
	double sync_time = now_seconds() - t0;
	int counted = 0;
	/* Rounds go on (delays cycling over the sync) until enough writes
	 * landed during a sync: on a loaded machine many may miss it. */
	int round;
	for (round = 0; round < max_rounds && (round < rounds || counted < 2); round++) {
		memset(m, round, pages * PG); /* everything dirty */
		struct writer_arg a = { .vmo = v, .map = through_mapping ? m : NULL,
					.page = 300 + (uint64_t)(round % 16) * 37,
					.value = 0x1000 + (uint64_t)round,
					.delay = 0.75 * sync_time * (round % rounds) / rounds };
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, write_during_sync, &a), 0);
		a.sync_start = now_seconds();
		atomic_store(&a.go, true);
		expect_ok(uvmo_file_vmo_sync(v));
		double sync_end = now_seconds();
		cr_assert_eq(pthread_join(t, NULL), 0);
		expect_no_thread_failure();
		if (a.written_at < sync_end)
			counted++;
		expect_ok(uvmo_file_vmo_sync(v));
		uint64_t word;
		cr_assert_eq(pread(fd, &word, sizeof(word), (off_t)(a.page * PG + PG - 8)),
			     (ssize_t)sizeof(word));
		cr_assert_eq(word, a.value,
			     "round %d: the file has 0x%llx where the write during the sync put 0x%llx",
			     round, (unsigned long long)word, (unsigned long long)a.value);
	}
	/* Timing on a loaded machine varies: a few rounds are enough, none
	 * would mean the test tested nothing. */
	cr_assert_geq(counted, 2, "only %d of %d writes landed during a sync", counted, round);
	expect_file_matches_vmo(fd, v, pages * PG);
}

Test(file_pager, a_page_written_by_call_during_a_sync_stays_dirty, .timeout = 120)
{
	page_written_during_a_sync_stays_dirty(false);
}

Test(file_pager, a_page_written_through_a_mapping_during_a_sync_stays_dirty, .timeout = 120)
{
	page_written_during_a_sync_stays_dirty(true);
}

Test(file_pager, a_failed_write_returns_eio_and_keeps_the_pages_dirty)
{
	int fd = make_file(32 * PG, 16, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	fill_page(v, 2, 0x22);
	fill_page(v, 20, 0x20);
	/* Writes past 8 pages now fail (EFBIG; SIGXFSZ ignored). */
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit old, small = { .rlim_cur = 8 * PG, .rlim_max = RLIM_INFINITY };
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
	expect_rc(-EIO, uvmo_file_vmo_sync(v));
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	/* Nothing was marked clean: the next sync writes both pages. */
	expect_ok(uvmo_file_vmo_sync(v));
	expect_file_matches_vmo(fd, v, 32 * PG);
}

/* ---------------------------------------------------------------------- */
/* memory limit                                                           */
/* ---------------------------------------------------------------------- */

#define LIMIT_HIGH (4ull << 20)
#define LIMIT_LOW (2ull << 20)
/* Frames beyond @high a file VMO may hold for a moment: one request with
 * its read-ahead (up to 1 MiB, plus 1 MiB read beyond it), let through
 * whole before the next request evicts. */
#define LIMIT_SLACK (3ull << 20)

Test(file_pager, a_file_four_times_the_memory_limit_reads_fully_with_bounded_memory, .timeout = 120)
{
	uint64_t size = 4 * LIMIT_HIGH;
	int fd = make_file(size, 17, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, 0);
	expect_ok(uvmo_file_vmo_set_memory_limit(v, LIMIT_HIGH, LIMIT_LOW));
	uint64_t base = stats_now().committed_bytes;
	uint8_t *chunk = malloc(256 << 10), *want = malloc(256 << 10);
	for (int pass = 0; pass < 2; pass++) {
		for (uint64_t off = 0; off < size; off += 256 << 10) {
			expect_ok(uvmo_vmo_read(v, chunk, off, 256 << 10));
			cr_assert_eq(read(fd, want, 256 << 10), 256 << 10);
			expect_same_bytes(chunk, want, 256 << 10, "chunk");
			uint64_t held = info_of(v).committed_bytes;
			cr_assert_leq(held, LIMIT_HIGH + LIMIT_SLACK,
				      "pass %d at %llu MiB the VMO holds %llu bytes", pass,
				      (unsigned long long)(off >> 20), (unsigned long long)held);
		}
		cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	}
	struct uvmo_stats s = stats_now();
	cr_assert_leq(s.peak_committed_bytes - base, LIMIT_HIGH + LIMIT_SLACK,
		      "the pool peaked at %llu bytes", (unsigned long long)s.peak_committed_bytes);
	free(chunk);
	free(want);
}

Test(file_pager, a_mapped_file_four_times_the_memory_limit_reads_fully_with_bounded_memory,
     .timeout = 120)
{
	uint64_t size = 4 * LIMIT_HIGH;
	int fd = make_file(size, 18, O_RDWR);
	/* PAGED: the mapping goes through the pager (a direct one holds
	 * no frames at all; see the direct mapping tests). */
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY | UVMO_FILE_PAGED);
	expect_ok(uvmo_file_vmo_set_memory_limit(v, LIMIT_HIGH, LIMIT_LOW));
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, size);
	cr_assert_eq(stats_now().direct_file_mappings, 0);
	uint8_t *f = file_bytes(fd, NULL);
	for (uint64_t off = 0; off < size; off += PG) {
		expect_same_bytes(m + off, f + off, PG, "mapped page");
		if (off % (1 << 20) == 0)
			cr_assert_leq(stats_now().committed_bytes, LIMIT_HIGH + LIMIT_SLACK);
	}
	cr_assert_leq(stats_now().peak_committed_bytes, LIMIT_HIGH + LIMIT_SLACK);
	free(f);
}

Test(file_pager, eviction_keeps_dirty_pages_until_synced)
{
	uint64_t size = 4 * LIMIT_HIGH;
	int fd = make_file(size, 19, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	fill_pages(v, 0, 16, 0x61); /* dirty, oldest */
	expect_ok(uvmo_file_vmo_set_memory_limit(v, LIMIT_HIGH, LIMIT_LOW));
	uint8_t *buf = malloc(256 << 10);
	for (uint64_t off = 0; off < size; off += 256 << 10)
		expect_ok(uvmo_vmo_read(v, buf, off, 256 << 10));
	free(buf);
	expect_pages(v, 0, 16, 0x61); /* dirty pages were not dropped */
	expect_ok(uvmo_file_vmo_sync(v));
	expect_file_matches_vmo(fd, v, size);
	cr_assert_leq(info_of(v).committed_bytes, LIMIT_HIGH + LIMIT_SLACK);
}

Test(file_pager, lowering_the_limit_evicts_at_once_and_zero_removes_it)
{
	int fd = make_file(512 * PG, 20, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, 0);
	uint8_t *all = read_all(v, NULL);
	free(all);
	cr_assert_eq(info_of(v).committed_bytes, 512 * PG);
	expect_ok(uvmo_file_vmo_set_memory_limit(v, 256 * PG, 64 * PG));
	cr_assert_leq(info_of(v).committed_bytes, 64 * PG);
	expect_ok(uvmo_file_vmo_set_memory_limit(v, 0, 0));
	all = read_all(v, NULL);
	expect_mem_pattern(all, 512 * PG, 20, 0);
	free(all);
	cr_assert_eq(info_of(v).committed_bytes, 512 * PG);
}

/* ---------------------------------------------------------------------- */
/* truncation and errors                                                  */
/* ---------------------------------------------------------------------- */

Test(file_pager, a_file_truncated_under_the_vmo_gives_sigbus_and_eio_past_the_new_end,
     .timeout = 30)
{
	int fd = make_file(64 * PG, 21, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, 0);
	uint8_t buf[PG];
	/* Page 40 is present before the truncation (read first, away from
	 * page 0, so no read-ahead brings anything else in). */
	expect_ok(uvmo_vmo_read(v, buf, 40 * PG, PG));
	cr_assert_eq(ftruncate(fd, 4 * PG + 100), 0);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 64 * PG);
	expect_read_signal(SIGBUS, m + 12 * PG);
	expect_rc(-EIO, uvmo_vmo_read(v, buf, 12 * PG, PG));
	expect_rc(-EIO, uvmo_vmo_read(v, buf, 10 * PG, 4 * PG));
	/* Still failing when asked again (not a hang, not zeros). */
	expect_read_signal(SIGBUS, m + 13 * PG + 5);
	expect_rc(-EIO, uvmo_vmo_read(v, buf, 12 * PG, PG));
	/* The page holding the new EOF reads zero past it. */
	expect_ok(uvmo_vmo_read(v, buf, 4 * PG, PG));
	expect_mem_pattern(buf, 100, 21, 4 * PG);
	expect_mem_val(buf + 100, PG - 100, 0);
	/* Pages before it read the file; the page present before keeps
	 * its content. */
	expect_mem_pattern(m + 2 * PG, PG, 21, 2 * PG);
	expect_mem_pattern(m, PG, 21, 0);
	expect_mem_pattern(m + 40 * PG, PG, 21, 40 * PG);
}

Test(file_pager, bad_arguments_to_open_change_nothing)
{
	int fd = make_file(8 * PG, 22, O_RDWR);
	int ro = make_file(8 * PG, 22, O_RDONLY);
	int wo = make_file(8 * PG, 22, O_WRONLY);
	int empty = make_file(0, 22, O_RDWR);
	int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
	int pipefd[2];
	cr_assert_eq(pipe(pipefd), 0);
	uvmo_vmo_t *sentinel = (uvmo_vmo_t *)(uintptr_t)0x5a5a;
	uvmo_vmo_t *out = sentinel;
	uint64_t vmos = stats_now().vmos;
	int fds = open_descriptors();

	expect_rc(-EINVAL, uvmo_file_vmo_open(fd, 0, NULL));
	expect_rc(-EINVAL, uvmo_file_vmo_open(fd, 1u << 5, &out));
	expect_rc(-EINVAL, uvmo_file_vmo_open(fd, UVMO_FILE_READONLY | UVMO_FILE_WRITEBACK, &out));
	expect_rc(-EBADF, uvmo_file_vmo_open(-1, 0, &out));
	int closed = dup(fd); /* a number nothing else holds now */
	close(closed);
	expect_rc(-EBADF, uvmo_file_vmo_open(closed, 0, &out));
	expect_rc(-EINVAL, uvmo_file_vmo_open(dir, 0, &out));
	expect_rc(-EINVAL, uvmo_file_vmo_open(pipefd[0], 0, &out));
	expect_rc(-EINVAL, uvmo_file_vmo_open(empty, 0, &out));
	expect_rc(-EACCES, uvmo_file_vmo_open(ro, UVMO_FILE_WRITEBACK, &out));
	expect_rc(-EACCES, uvmo_file_vmo_open(wo, 0, &out));

	cr_assert_eq(out, sentinel, "a failed open wrote *out");
	cr_assert_eq(stats_now().vmos, vmos, "a failed open left a VMO");
	cr_assert_eq(open_descriptors(), fds, "a failed open left a descriptor");
	/* The good ones still open. */
	uvmo_vmo_t *v = open_file_vmo(ro, UVMO_FILE_READONLY);
	expect_page_of_file(v, 0, 22);
}

Test(file_pager, bad_arguments_to_sync_and_set_memory_limit_change_nothing)
{
	int fd = make_file(64 * PG, 23, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	uvmo_vmo_t *plain = open_file_vmo(fd, 0);
	uvmo_vmo_t *anon = make_vmo(16 * PG, 0);
	uvmo_vmo_t *closed = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	uvmo_vmo_close(closed);
	uvmo_vmo_t *part = make_child(v, UVMO_CHILD_SLICE, 4 * PG, 8 * PG);
	/* A VMO of a pager that is not the file pager. */
	uvmo_pager_t *other = NULL;
	uvmo_vmo_t *foreign = NULL;
	expect_ok(uvmo_pager_create(0, &other));
	expect_ok(uvmo_pager_create_vmo(other, 0, 1, 16 * PG, &foreign));

	fill_page(v, 1, 0x11);
	expect_rc(-EINVAL, uvmo_file_vmo_sync(NULL));
	expect_rc(-EINVAL, uvmo_file_vmo_sync(anon));
	expect_rc(-EINVAL, uvmo_file_vmo_sync(plain));
	expect_rc(-EINVAL, uvmo_file_vmo_sync(part));
	expect_rc(-EINVAL, uvmo_file_vmo_sync(foreign));
	expect_rc(-EBADF, uvmo_file_vmo_sync(closed));
	/* Nothing was written by the refused syncs. */
	uint8_t word;
	cr_assert_eq(pread(fd, &word, 1, PG), 1);
	cr_assert_eq(word, pattern_byte(23, PG));

	uint8_t *all = read_all(v, NULL);
	free(all);
	uint64_t held = info_of(v).committed_bytes;
	expect_rc(-EINVAL, uvmo_file_vmo_set_memory_limit(NULL, 8 * PG, 4 * PG));
	expect_rc(-EINVAL, uvmo_file_vmo_set_memory_limit(anon, 8 * PG, 4 * PG));
	expect_rc(-EINVAL, uvmo_file_vmo_set_memory_limit(foreign, 8 * PG, 4 * PG));
	expect_rc(-EINVAL, uvmo_file_vmo_set_memory_limit(v, 4 * PG, 8 * PG));
	expect_rc(-EINVAL, uvmo_file_vmo_set_memory_limit(v, 8 * PG + 1, 4 * PG));
	expect_rc(-EINVAL, uvmo_file_vmo_set_memory_limit(v, 8 * PG, 4 * PG + 1));
	expect_rc(-EINVAL, uvmo_file_vmo_set_memory_limit(v, 0, PG));
	expect_rc(-EBADF, uvmo_file_vmo_set_memory_limit(closed, 8 * PG, 4 * PG));
	cr_assert_eq(info_of(v).committed_bytes, held, "a refused limit evicted pages");
	expect_ok(uvmo_file_vmo_sync(v));
	cr_assert_eq(pread(fd, &word, 1, PG), 1);
	cr_assert_eq(word, 0x11);
	uvmo_vmo_close(foreign);
	uvmo_pager_destroy(other);
}

/* ---------------------------------------------------------------------- */
/* concurrency and lifetime                                               */
/* ---------------------------------------------------------------------- */

#define CROWD 8
#define CROWD_PAGES 512

struct crowd_arg {
	uint8_t *map;
	uvmo_vmo_t *vmo;
	int index;
};

static void *crowd_reader(void *p)
{
	struct crowd_arg *a = p;
	uint64_t seed = 24;
	/* Even threads walk the same order (same pages at once), odd ones a
	 * stride of their own; every other thread reads by call. */
	for (uint64_t i = 0; i < CROWD_PAGES; i++) {
		uint64_t page = a->index % 2 ? (i * (uint64_t)(2 * a->index + 1)) % CROWD_PAGES
					      : CROWD_PAGES - 1 - i;
		uint8_t buf[64];
		const uint8_t *src = a->map + page * PG + (i % 60) * 64;
		if (a->index % 4 == 3) {
			if (uvmo_vmo_read(a->vmo, buf, page * PG + (i % 60) * 64, 64) != 0) {
				thread_fail("thread %d: uvmo_vmo_read of page %llu failed", a->index,
					    (unsigned long long)page);
				return NULL;
			}
			src = buf;
		}
		for (int k = 0; k < 64; k++)
			if (src[k] != pattern_byte(seed, page * PG + (i % 60) * 64 + (uint64_t)k)) {
				thread_fail("thread %d: page %llu byte %d wrong", a->index,
					    (unsigned long long)page, k);
				return NULL;
			}
	}
	return NULL;
}

Test(file_pager, many_threads_faulting_the_same_and_different_pages_see_the_file, .timeout = 60)
{
	for (int round = 0; round < 4; round++) {
		int fd = make_file(CROWD_PAGES * PG, 24, O_RDWR);
		uvmo_vmo_t *v = open_file_vmo(fd, 0);
		uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, CROWD_PAGES * PG);
		pthread_t t[CROWD];
		struct crowd_arg args[CROWD];
		for (int i = 0; i < CROWD; i++)
			args[i] = (struct crowd_arg){ .map = m, .vmo = v, .index = i };
		start_workers(t, CROWD, crowd_reader, args, sizeof(args[0]));
		join_workers(t, CROWD);
		expect_no_thread_failure();
		expect_ok(uvmo_vmar_unmap(root_vmar(), m, CROWD_PAGES * PG));
		uvmo_vmo_close(v);
		close(fd);
	}
}

Test(file_pager, closing_the_vmo_closes_the_pagers_descriptor)
{
	int fd = make_file(8 * PG, 25, O_RDWR);
	uvmo_vmo_t *warm = open_file_vmo(fd, 0); /* starts the file pager */
	int before = open_descriptors();
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	expect_page_of_file(v, 0, 25);
	cr_assert_eq(open_descriptors(), before + 1);
	uvmo_vmo_close(v);
	cr_assert(descriptors_become(before), "the file's descriptor stayed open after close");
	uvmo_vmo_close(warm);
}

Test(file_pager, a_mapping_keeps_the_file_vmo_alive_after_close)
{
	int fd = make_file(32 * PG, 26, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 32 * PG);
	uvmo_vmo_close(v);
	expect_mem_pattern(m + 20 * PG, PG, 26, 20 * PG);
}

Test(file_pager, shutdown_stops_the_file_pager_and_a_later_open_starts_again)
{
	int fd = make_file(32 * PG, 27, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, 0);
	expect_page_of_file(v, 3, 27);
	uvmo_shutdown();
	v = open_file_vmo(fd, 0);
	uint8_t *all = read_all(v, NULL);
	expect_mem_pattern(all, 32 * PG, 27, 0);
	free(all);
	uvmo_shutdown();
}

static void capture_stderr(void)
{
	cr_redirect_stderr();
}

/* ---------------------------------------------------------------------- */
/* the last close of a WRITEBACK VMO writes its changes back              */
/* ---------------------------------------------------------------------- */

/* The whole of stderr captured so far (cr_redirect_stderr), for searching. */
static char *captured_stderr(void)
{
	fflush(stderr);
	FILE *err = cr_get_redirected_stderr();
	cr_assert_not_null(err);
	size_t cap = 4096, len = 0;
	char *text = malloc(cap);
	cr_assert_not_null(text);
	size_t n;
	while ((n = fread(text + len, 1, cap - len - 1, err)) > 0) {
		len += n;
		if (len + 1 == cap) {
			cap *= 2;
			text = realloc(text, cap);
			cr_assert_not_null(text);
		}
	}
	text[len] = 0;
	return text;
}

/* A file of @size bytes (pattern @seed) and a WRITEBACK VMO of it, opened
 * once the file pager runs: @warm, a plain VMO of the same file, started
 * it (close it at the end).  @before counts the descriptors open before
 * the VMO, so descriptors_become(@before) says the VMO died (the file
 * pager closes its duplicate at COMPLETE, after the last-close
 * writeback). */
struct writeback_file {
	int fd;
	uvmo_vmo_t *vmo, *warm;
	int before;
};

static struct writeback_file open_writeback_file(uint64_t size, uint64_t seed)
{
	struct writeback_file w = { .fd = make_file(size, seed, O_RDWR) };
	w.warm = open_file_vmo(w.fd, 0);
	w.before = open_descriptors();
	w.vmo = open_file_vmo(w.fd, UVMO_FILE_WRITEBACK);
	return w;
}

/* Write through calls and a mapping of a WRITEBACK VMO, then drop the
 * handle and the mapping in the order asked; never sync.  Once the file
 * pager has closed its descriptor (the VMO died), read(2) must find every
 * byte written, and nothing said on stderr. */
static void last_close_writes_back(bool unmap_first)
{
	const uint64_t size = 40 * PG + 77;
	struct writeback_file w = open_writeback_file(size, 31);
	uint8_t *want = file_bytes(w.fd, NULL);
	write_pattern(w.vmo, 131, 3 * PG + 9, 2 * PG);
	fill_pattern(want + 3 * PG + 9, 2 * PG, 131, 3 * PG + 9);
	write_pattern(w.vmo, 132, 39 * PG, size - 39 * PG); /* up to EOF, mid-page */
	fill_pattern(want + 39 * PG, size - 39 * PG, 132, 39 * PG);
	uint64_t mapped = size_of(w.vmo);
	uint8_t *m = map_rw(w.vmo);
	fill_pattern(m + 20 * PG + 100, 3 * PG, 133, 0);
	fill_pattern(want + 20 * PG + 100, 3 * PG, 133, 0);
	m[7 * PG + 1] = 0x5e;
	want[7 * PG + 1] = 0x5e;
	memset(m + 4 * PG, 0x4c, 10); /* over bytes the call wrote */
	memset(want + 4 * PG, 0x4c, 10);
	if (unmap_first) {
		expect_ok(uvmo_vmar_unmap(root_vmar(), m, mapped));
		uvmo_vmo_close(w.vmo);
	} else {
		uvmo_vmo_close(w.vmo);
		expect_ok(uvmo_vmar_unmap(root_vmar(), m, mapped));
	}
	cr_assert(descriptors_become(w.before), "the file VMO did not die after its last close");
	uint64_t got_size;
	uint8_t *got = file_bytes(w.fd, &got_size);
	cr_assert_eq(got_size, size, "the last close changed the file's size");
	expect_same_bytes(got, want, size, "file after the last close");
	free(got);
	free(want);
	char *err = captured_stderr();
	cr_assert_str_empty(err, "a successful last close said: %s", err);
	free(err);
	uvmo_vmo_close(w.warm);
}

Test(file_pager, closing_the_handle_then_unmapping_writes_the_changes_to_the_file,
     .init = capture_stderr, .timeout = 30)
{
	last_close_writes_back(false);
}

Test(file_pager, unmapping_then_closing_the_handle_writes_the_changes_to_the_file,
     .init = capture_stderr, .timeout = 30)
{
	last_close_writes_back(true);
}

/* A last close with every page Clean (written, then synced; others only
 * read) writes nothing: bytes changed behind the VMO stay, and the file's
 * modification time (set far in the past) does not move. */
Test(file_pager, a_last_close_with_nothing_dirty_writes_nothing, .timeout = 30)
{
	struct writeback_file w = open_writeback_file(16 * PG, 32);
	fill_page(w.vmo, 2, 0x32);
	expect_ok(uvmo_file_vmo_sync(w.vmo));
	expect_page_of_file(w.vmo, 9, 32); /* present, Clean */
	uint8_t other[PG];
	memset(other, 0x6b, sizeof(other));
	cr_assert_eq(pwrite(w.fd, other, PG, 9 * PG), (ssize_t)PG);
	cr_assert_eq(pwrite(w.fd, other, PG, 2 * PG), (ssize_t)PG);
	uint8_t *want = file_bytes(w.fd, NULL);
	const struct timespec old[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };
	cr_assert_eq(futimens(w.fd, old), 0);
	uvmo_vmo_close(w.vmo);
	cr_assert(descriptors_become(w.before), "the file VMO did not die after its last close");
	struct stat st;
	cr_assert_eq(fstat(w.fd, &st), 0);
	cr_assert_eq(st.st_mtim.tv_sec, old[1].tv_sec, "the last close wrote to the file");
	uint8_t *got = file_bytes(w.fd, NULL);
	expect_same_bytes(got, want, 16 * PG, "file after a clean last close");
	free(got);
	free(want);
	uvmo_vmo_close(w.warm);
}

/* The last close's writes fail (the file may not grow past 8 pages): the
 * changes are lost, said on stderr naming the file, and the VMO still
 * dies (the file pager does not hang on it). */
Test(file_pager, a_last_close_whose_writes_fail_reports_the_file_and_does_not_hang,
     .init = capture_stderr, .timeout = 30)
{
	struct writeback_file w = open_writeback_file(32 * PG, 33);
	fill_page(w.vmo, 20, 0x33);
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit old, small = { .rlim_cur = 8 * PG, .rlim_max = RLIM_INFINITY };
	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &small), 0);
	uvmo_vmo_close(w.vmo);
	bool died = descriptors_become(w.before);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
	cr_assert(died, "the file VMO did not die after a failed last close");
	char *err = captured_stderr();
	cr_assert(strstr(err, "uvmo-file-pager-") && strstr(err, "failed"),
		  "the failed writeback was not reported naming the file: \"%s\"", err);
	free(err);
	expect_page_of_file(w.warm, 20, 33); /* the file kept its bytes */
	uvmo_vmo_close(w.warm);
}

/* uvmo_shutdown right after a last close (its writeback maybe not started,
 * maybe under way) finishes that writeback before it returns. */
Test(file_pager, shutdown_right_after_a_last_close_leaves_the_changes_in_the_file,
     .timeout = 60)
{
	const uint64_t size = 2048 * PG; /* 8 MiB dirty: the writeback takes a while */
	int fd = make_file(size, 34, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	uint8_t *m = map_rw(v);
	fill_pattern(m, size, 134, 0);
	expect_ok(uvmo_vmar_unmap(root_vmar(), m, size));
	uvmo_vmo_close(v);
	uvmo_shutdown();
	uint8_t *got = file_bytes(fd, NULL);
	uint8_t *want = malloc(size);
	cr_assert_not_null(want);
	fill_pattern(want, size, 134, 0);
	expect_same_bytes(got, want, size, "file after close and shutdown");
	free(got);
	free(want);
}

/* uvmo_shutdown closes every handle: for a WRITEBACK VMO still open and
 * mapped, that is its last close, which writes the changes back. */
Test(file_pager, shutdown_writes_back_a_writeback_vmo_still_open, .timeout = 30)
{
	int fd = make_file(64 * PG, 35, O_RDWR);
	uint8_t *want = file_bytes(fd, NULL);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	uint8_t *m = map_rw(v);
	fill_pattern(m + 10 * PG, 5 * PG, 135, 0);
	fill_pattern(want + 10 * PG, 5 * PG, 135, 0);
	write_pattern(v, 136, 50 * PG, PG);
	fill_pattern(want + 50 * PG, PG, 136, 50 * PG);
	uvmo_shutdown();
	uint8_t *got = file_bytes(fd, NULL);
	expect_same_bytes(got, want, 64 * PG, "file after shutdown");
	free(got);
	free(want);
}

/* A fork() child's last close of a WRITEBACK VMO it inherited writes
 * nothing (its file pager is abandoned; the changes are the parent's),
 * and the parent's own last close still does. */
Test(file_pager, a_forked_childs_last_close_writes_nothing, .timeout = 60)
{
	struct writeback_file w = open_writeback_file(16 * PG, 36);
	fill_page(w.vmo, 5, 0x36);
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		uvmo_vmo_close(w.vmo);
		usleep(200000); /* time for a (wrong) writeback to land */
		uvmo_shutdown();
		_exit(0);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the child failed (status 0x%x)", status);
	uint8_t page[PG];
	cr_assert_eq(pread(w.fd, page, PG, 5 * PG), (ssize_t)PG);
	expect_mem_pattern(page, PG, 36, 5 * PG);
	uvmo_vmo_close(w.vmo);
	cr_assert(descriptors_become(w.before), "the file VMO did not die after its last close");
	cr_assert_eq(pread(w.fd, page, PG, 5 * PG), (ssize_t)PG);
	expect_mem_val(page, PG, 0x36);
	uvmo_vmo_close(w.warm);
}

Test(file_pager, closing_a_synced_writeback_vmo_says_nothing, .init = capture_stderr)
{
	struct writeback_file w = open_writeback_file(8 * PG, 29);
	fill_page(w.vmo, 2, 0x29);
	expect_ok(uvmo_file_vmo_sync(w.vmo));
	uvmo_vmo_close(w.vmo);
	cr_assert(descriptors_become(w.before));
	fflush(stderr);
	cr_assert_stderr_eq_str("");
	uvmo_vmo_close(w.warm);
}

/* fork(); the child runs @checks (an int expression: 0, or the number of
 * the check that failed) and exits with it; the parent asserts 0. */
#define expect_child_passes(checks)                                           \
	do {                                                                  \
		fflush(NULL);                                                 \
		pid_t pid_ = fork();                                          \
		cr_assert(pid_ >= 0);                                         \
		if (pid_ == 0)                                                \
			_exit(checks);                                        \
		int status_;                                                  \
		cr_assert_eq(waitpid(pid_, &status_, 0), pid_);               \
		cr_assert(WIFEXITED(status_), "the child died (status 0x%x)", status_); \
		cr_assert_eq(WEXITSTATUS(status_), 0, "child check %d failed", \
			     WEXITSTATUS(status_));                           \
	} while (0)

/* fork(): the child has no file pager thread.  Pages present at fork read
 * the file; absent ones fail (the core detaches the child's pager VMOs)
 * instead of waiting for ever; a new open in the child starts a file pager
 * of its own; the parent is still served. */
static int child_checks(int fd, uvmo_vmo_t *v, uint8_t *m)
{
	uint8_t b = 0;
	if (probe_read(m, &b) != 0 || b != pattern_byte(30, 0))
		return 1;
	if (uvmo_vmo_read(v, &b, 200 * PG, 1) >= 0)
		return 2;
	if (probe_read(m + 210 * PG, &b) != SIGBUS)
		return 3;
	uvmo_vmo_t *again = NULL;
	if (uvmo_file_vmo_open(fd, 0, &again) != 0)
		return 4;
	if (uvmo_vmo_read(again, &b, 220 * PG + 9, 1) != 0 || b != pattern_byte(30, 220 * PG + 9))
		return 5;
	return 0;
}

Test(file_pager, a_forked_child_fails_absent_pages_and_can_open_files_again, .timeout = 60)
{
	int fd = make_file(256 * PG, 30, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, 0);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 256 * PG);
	cr_assert_eq(m[0], pattern_byte(30, 0));
	expect_child_passes(child_checks(fd, v, m));
	expect_mem_pattern(m + 230 * PG, PG, 30, 230 * PG);
}

/* ---------------------------------------------------------------------- */
/* read-only mappings of the file itself                                  */
/* ---------------------------------------------------------------------- */

/* What a read of every page through a mapping of @v cost uvmo. */
struct mapped_read_cost {
	uint64_t missing_faults, frames;
};

static uint64_t page_round_up(uint64_t x)
{
	return (x + PG - 1) & ~(uint64_t)(PG - 1);
}

static struct mapped_read_cost read_all_mapped(uvmo_vmo_t *v, int fd, uint64_t size,
					       uint32_t *direct_out)
{
	struct uvmo_stats before = stats_now();
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, page_round_up(size));
	*direct_out = (uint32_t)(stats_now().direct_file_mappings - before.direct_file_mappings);
	uint8_t *f = file_bytes(fd, NULL);
	expect_same_bytes(m, f, size, "mapped byte");
	expect_mem_val(m + size, page_round_up(size) - size, 0);
	struct uvmo_stats after = stats_now();
	expect_ok(uvmo_vmar_unmap(root_vmar(), m, page_round_up(size)));
	free(f);
	return (struct mapped_read_cost){
		after.missing_faults - before.missing_faults,
		(after.committed_bytes - before.committed_bytes) / PG,
	};
}

Test(file_pager, a_readonly_mapping_maps_the_file_itself_and_costs_uvmo_nothing)
{
	int fd = make_file(64 * PG + 77, 40, O_RDONLY);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY);
	uint32_t direct;
	struct mapped_read_cost c = read_all_mapped(v, fd, 64 * PG + 77, &direct);
	cr_assert_eq(direct, 1, "the mapping is not a direct one");
	cr_assert_eq(c.missing_faults, 0, "%llu faults reached uvmo",
		     (unsigned long long)c.missing_faults);
	cr_assert_eq(c.frames, 0);
	cr_assert_eq(stats_now().direct_file_mappings, 0, "the unmap was not counted");
}

Test(file_pager, the_paged_option_serves_readonly_mappings_through_the_pager)
{
	int fd = make_file(64 * PG + 77, 41, O_RDONLY);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY | UVMO_FILE_PAGED);
	uint32_t direct;
	struct mapped_read_cost c = read_all_mapped(v, fd, 64 * PG + 77, &direct);
	cr_assert_eq(direct, 0);
	cr_assert_gt(c.missing_faults, 0);
	cr_assert_eq(c.frames, 65);
}

Test(file_pager, only_readonly_vmos_are_mapped_directly)
{
	int fd = make_file(16 * PG, 42, O_RDWR);
	uvmo_vmo_t *plain = open_file_vmo(fd, 0);
	uvmo_vmo_t *wb = open_file_vmo(fd, UVMO_FILE_WRITEBACK);
	uvmo_vmo_t *ro = open_file_vmo(fd, UVMO_FILE_READONLY);
	uvmo_vmo_t *child = NULL;
	expect_ok(uvmo_vmo_create_child(ro, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 16 * PG,
					&child));
	map_vmo(root_vmar(), PERM_R, plain, 0, 16 * PG);
	map_vmo(root_vmar(), PERM_R, wb, 0, 16 * PG);
	map_vmo(root_vmar(), PERM_R, child, 0, 16 * PG);
	cr_assert_eq(stats_now().direct_file_mappings, 0);
	map_vmo(root_vmar(), PERM_R, ro, 0, 16 * PG);
	cr_assert_eq(stats_now().direct_file_mappings, 1);
}

/* Calls, a direct mapping, a pager-served mapping and an at-least-on-write
 * child all show the same bytes; the child's writes stay its own. */
Test(file_pager, a_direct_mapping_agrees_with_calls_children_and_paged_mappings)
{
	int fd = make_file(32 * PG, 43, O_RDONLY);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY);
	uint8_t *direct = map_vmo(root_vmar(), PERM_R, v, 0, 32 * PG);
	uvmo_vmo_t *child = NULL;
	expect_ok(uvmo_vmo_create_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 4 * PG,
					16 * PG, &child));
	uint8_t *cm = map_vmo(root_vmar(), PERM_RW, child, 0, 16 * PG);
	memset(cm + 3 * PG, 0xc3, PG);
	uint8_t buf[PG];
	for (uint64_t pg = 0; pg < 32; pg++) {
		expect_ok(uvmo_vmo_read(v, buf, pg * PG, PG));
		expect_same_bytes(direct + pg * PG, buf, PG, "direct vs call");
		expect_mem_pattern(buf, PG, 43, pg * PG);
		if (pg >= 4 && pg < 20 && pg != 7)
			expect_same_bytes(cm + (pg - 4) * PG, buf, PG, "child vs call");
	}
	expect_mem_val(cm + 3 * PG, PG, 0xc3);
	expect_mem_pattern(direct + 7 * PG, PG, 43, 7 * PG);
	/* A snapshot of the slice the user holds reads the same too. */
	uvmo_vmo_t *snap = NULL;
	expect_ok(uvmo_vmo_create_child(v, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, 0, 32 * PG,
					&snap));
	expect_ok(uvmo_vmo_read(snap, buf, 30 * PG, PG));
	expect_same_bytes(direct + 30 * PG, buf, PG, "direct vs snapshot");
}

Test(file_pager, a_direct_mapping_refuses_writes_and_follows_protect_and_unmap)
{
	int fd = make_file(16 * PG, 44, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 16 * PG);
	expect_write_signal(SIGSEGV, m + 2 * PG);
	expect_rc(-EACCES, uvmo_vmar_protect(root_vmar(), PERM_RW, m, 16 * PG));
	/* Protect the middle to nothing, unmap a page: the mapping splits,
	 * and every piece still shows the file (and is counted). */
	expect_ok(uvmo_vmar_protect(root_vmar(), 0, m + 4 * PG, 4 * PG));
	expect_read_signal(SIGSEGV, m + 5 * PG);
	expect_ok(uvmo_vmar_unmap(root_vmar(), m + 10 * PG, PG));
	cr_assert_eq(stats_now().direct_file_mappings, 4); /* [0,4) [4,8) [8,10) [11,16) */
	expect_mem_pattern(m + 2 * PG, PG, 44, 2 * PG);
	expect_mem_pattern(m + 9 * PG, PG, 44, 9 * PG);
	expect_mem_pattern(m + 12 * PG, PG, 44, 12 * PG);
	expect_read_signal(SIGSEGV, m + 10 * PG);
	expect_ok(uvmo_vmar_protect(root_vmar(), PERM_R, m + 4 * PG, 4 * PG));
	expect_mem_pattern(m + 5 * PG, PG, 44, 5 * PG);
	/* The file is unchanged. */
	uint8_t page[PG];
	cr_assert_eq(pread(fd, page, PG, 2 * PG), (ssize_t)PG);
	expect_mem_pattern(page, PG, 44, 2 * PG);
	expect_ok(uvmo_vmar_unmap(root_vmar(), m, 16 * PG));
	cr_assert_eq(stats_now().direct_file_mappings, 0);
}

Test(file_pager, map_range_populates_a_direct_mapping)
{
	int fd = make_file(16 * PG, 45, O_RDONLY);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY);
	void *addr = NULL;
	expect_ok(uvmo_vmar_map(root_vmar(), PERM_R | UVMO_VMAR_MAP_RANGE, 0, v, 0, 16 * PG, &addr));
	unsigned char vec[16];
	cr_assert_eq(mincore(addr, 16 * PG, vec), 0);
	for (int i = 0; i < 16; i++)
		cr_assert(vec[i] & 1, "page %d is not resident", i);
	expect_mem_pattern((uint8_t *)addr + 15 * PG, PG, 45, 15 * PG);
	expect_rc(-EACCES, uvmo_vmar_op_range(root_vmar(), UVMO_OP_DECOMMIT, addr, 16 * PG));
}

/* The VMO keeps the file's size at open: a READONLY handle is a slice,
 * which no mapping reaches past, so a file that grew shows no more. */
Test(file_pager, a_readonly_vmo_is_never_mapped_past_its_end_even_when_the_file_grows,
     .timeout = 30)
{
	int fd = make_file(4 * PG, 46, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY);
	void *addr = NULL;
	/* A READONLY handle is a slice, which never shows past its end. */
	expect_rc(-ERANGE, uvmo_vmar_map(root_vmar(), PERM_R | UVMO_VMAR_ALLOW_FAULTS, 0, v, 0,
					 8 * PG, &addr));
	cr_assert_eq(ftruncate(fd, 8 * PG), 0);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 4 * PG);
	expect_mem_pattern(m + 3 * PG, PG, 46, 3 * PG);
	uint64_t size = 0;
	expect_ok(uvmo_vmo_get_size(v, &size));
	cr_assert_eq(size, 4 * PG, "the VMO's size follows the file");
}

/* What a direct mapping promises about the file changing underneath (see
 * uvmo_file_vmo_open): like mmap, it shows another writer's bytes. */
Test(file_pager, a_direct_mapping_shows_later_writes_to_the_file_like_mmap)
{
	int fd = make_file(8 * PG, 47, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 8 * PG);
	expect_mem_pattern(m + PG, PG, 47, PG);
	uint8_t page[PG];
	memset(page, 0x47, PG);
	cr_assert_eq(pwrite(fd, page, PG, PG), (ssize_t)PG);
	expect_mem_val(m + PG, PG, 0x47);
}

static int direct_child_checks(uint8_t *m)
{
	uint8_t b = 0;
	if (probe_read(m + 200 * PG, &b) != 0 || b != pattern_byte(48, 200 * PG))
		return 1;
	if (probe_write(m + 3 * PG, 1) != SIGSEGV)
		return 2;
	return 0;
}

/* A fork() child keeps its direct mappings whole: they need no pager (the
 * child has none) — even pages never touched before the fork read. */
Test(file_pager, a_forked_child_reads_its_direct_mappings, .timeout = 60)
{
	int fd = make_file(256 * PG, 48, O_RDONLY);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 256 * PG);
	cr_assert_eq(m[0], pattern_byte(48, 0));
	expect_child_passes(direct_child_checks(m));
	expect_mem_pattern(m + 230 * PG, PG, 48, 230 * PG);
}

Test(file_pager, the_paged_option_is_accepted_with_every_mode_and_nothing_else_new)
{
	int fd = make_file(4 * PG, 49, O_RDWR);
	uvmo_vmo_t *out = NULL;
	expect_ok(uvmo_file_vmo_open(fd, UVMO_FILE_PAGED, &out));
	uvmo_vmo_close(out);
	expect_ok(uvmo_file_vmo_open(fd, UVMO_FILE_WRITEBACK | UVMO_FILE_PAGED, &out));
	uvmo_vmo_close(out);
	expect_rc(-EINVAL, uvmo_file_vmo_open(fd, UVMO_FILE_READONLY | UVMO_FILE_WRITEBACK |
							  UVMO_FILE_PAGED, &out));
	expect_rc(-EINVAL, uvmo_file_vmo_open(fd, 1u << 3, &out));
}

/* The core maps a READONLY VMO from a read-only descriptor of its own: even
 * an mprotect(2) from outside uvmo cannot make the mapping write the file,
 * whatever the caller's descriptor allows. */
Test(file_pager, a_direct_mapping_cannot_be_made_to_write_the_file)
{
	int fd = make_file(8 * PG, 50, O_RDWR);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 8 * PG);
	cr_assert_eq(stats_now().direct_file_mappings, 1);
	cr_assert_eq(mprotect(m, 8 * PG, PROT_READ | PROT_WRITE), -1);
	cr_assert_eq(errno, EACCES);
	expect_write_signal(SIGSEGV, m + PG);
	uint8_t page[PG];
	cr_assert_eq(pread(fd, page, PG, PG), (ssize_t)PG);
	expect_mem_pattern(page, PG, 50, PG);
}

/* The highest descriptor number open now. */
static int highest_descriptor(void)
{
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	int hi = -1;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) > hi)
			hi = atoi(e->d_name);
	closedir(d);
	return hi;
}

/* Mapping directly needs a second descriptor; without one to spare a
 * READONLY open still succeeds, and its mappings go through the pager. */
Test(file_pager, a_readonly_open_with_one_descriptor_to_spare_maps_through_the_pager)
{
	int fd = make_file(8 * PG, 51, O_RDONLY);
	uvmo_vmo_t *warm = open_file_vmo(fd, 0); /* the file pager's own descriptors */
	/* Fill every free number below the highest, then allow one more. */
	int hi = highest_descriptor(), fill[1024], nfill = 0, x;
	while ((x = open("/dev/null", O_RDONLY)) >= 0 && x < hi && nfill < 1024)
		fill[nfill++] = x;
	cr_assert(x >= hi, "could not fill the descriptor table below %d", hi);
	close(x); /* every number below x is taken: x is the only one left */
	struct rlimit old, one_more;
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
	one_more = old;
	one_more.rlim_cur = (rlim_t)x + 1;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &one_more), 0);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, 8 * PG);
	cr_assert_eq(stats_now().direct_file_mappings, 0);
	expect_mem_pattern(m + 5 * PG, PG, 51, 5 * PG);
	for (int i = 0; i < nfill; i++)
		close(fill[i]);
	uvmo_vmo_close(warm);
}

/* On a noexec mount a mapping of the file could never be made executable,
 * while the pager's frames can: such files are not mapped directly.  Needs
 * a mount namespace of its own (root); skipped otherwise. */
Test(file_pager, a_file_on_a_noexec_mount_maps_through_the_pager_and_may_execute)
{
	char dir[] = "/tmp/uvmo-noexec-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", dir, "tmpfs", MS_NOEXEC, "size=1m") < 0) {
		rmdir(dir);
		cr_skip_test("no mount namespace here (%s)", strerror(errno));
	}
	char path[64];
	snprintf(path, sizeof(path), "%s/f", dir);
	int fd = open(path, O_RDWR | O_CREAT, 0600);
	cr_assert(fd >= 0);
	uint8_t page[PG];
	fill_pattern(page, PG, 52, 0);
	cr_assert_eq(pwrite(fd, page, PG, 0), (ssize_t)PG);
	uvmo_vmo_t *v = open_file_vmo(fd, UVMO_FILE_READONLY);
	uint8_t *m = map_vmo(root_vmar(), PERM_R, v, 0, PG);
	cr_assert_eq(stats_now().direct_file_mappings, 0);
	expect_ok(uvmo_vmar_protect(root_vmar(), UVMO_PERM_READ | UVMO_PERM_EXECUTE, m, PG));
	expect_mem_pattern(m, PG, 52, 0);
	expect_ok(uvmo_vmar_unmap(root_vmar(), m, PG));
	uvmo_vmo_close(v);
	close(fd);
	umount2(dir, MNT_DETACH);
	rmdir(dir);
}

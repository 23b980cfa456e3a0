/* SPDX-License-Identifier: MIT */
/*
 * Multi-threaded stress through the public API.  Worker threads never call
 * criterion asserts (they are not thread-safe there): they record the first
 * failure, and the test thread asserts on it after joining them.
 *
 * Page contents are self-describing: every 64-bit word of a page holds
 * (sequence << 20) | page, so a torn, misplaced or stale page is detected.
 */
#include "vmo_test_util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

#define WORDS (UVMO_PAGE_SIZE / sizeof(uint64_t))

/* ---------------------------------------------------------------------- */
/* failure recording                                                      */
/* ---------------------------------------------------------------------- */

static atomic_bool failed;
static char fail_msg[1024];
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	pthread_mutex_lock(&fail_lock);
	if (!atomic_load(&failed)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(fail_msg, sizeof(fail_msg), fmt, ap);
		va_end(ap);
		atomic_store(&failed, true);
	}
	pthread_mutex_unlock(&fail_lock);
}

#define check(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond))                                                  \
			fail(__VA_ARGS__);                                    \
	} while (0)

#define expect_no_thread_failure() cr_assert(!atomic_load(&failed), "%s", fail_msg)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void start_threads(pthread_t *t, int n, void *(*fn)(void *), void *args, size_t argsz)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * argsz), 0);
}

static void join_threads(pthread_t *t, int n)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
}

/* ---------------------------------------------------------------------- */
/* self-describing pages                                                  */
/* ---------------------------------------------------------------------- */

static void make_page(uint64_t *words, uint64_t page, uint64_t seq)
{
	for (size_t i = 0; i < WORDS; i++)
		words[i] = (seq << 20) | page;
}

/* The sequence number page @page holds, or -1 if torn or misplaced. */
static int64_t page_seq(const uint64_t *words, uint64_t page)
{
	uint64_t w = words[0];
	if ((w & 0xfffff) != page)
		return -1;
	for (size_t i = 1; i < WORDS; i++)
		if (words[i] != w)
			return -1;
	return (int64_t)(w >> 20);
}

/* ---------------------------------------------------------------------- */
/* snapshots during writes                                                */
/* ---------------------------------------------------------------------- */

enum { NPAGES = 64, WRITERS = 2, BLOCK = 4, RING = 3 };

struct shared {
	uvmo_vmo_t *vmo;
	uint64_t block;           /* pages per write call */
	atomic_uint_fast64_t started[NPAGES];
	atomic_uint_fast64_t done[NPAGES];
	atomic_bool stop;
	atomic_uint_fast64_t snapshots;
	atomic_uint_fast64_t reads;
};

struct worker {
	struct shared *sh;
	int id;
};

/* Writer @id owns blocks b with b % WRITERS == id, and rewrites them with
 * increasing sequence numbers, one call per block. */
static void *writer_main(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	uint64_t nblocks = NPAGES / sh->block;
	uint64_t *buf = malloc(sh->block * UVMO_PAGE_SIZE);
	uint64_t seq = 0;
	while (!atomic_load(&sh->stop) && !atomic_load(&failed)) {
		seq++;
		for (uint64_t b = (uint64_t)w->id; b < nblocks; b += WRITERS) {
			uint64_t first = b * sh->block;
			for (uint64_t k = 0; k < sh->block; k++) {
				make_page(buf + k * WORDS, first + k, seq);
				atomic_store(&sh->started[first + k], seq);
			}
			int rc = uvmo_vmo_write(sh->vmo, buf, first * PG, sh->block * PG);
			check(rc == 0, "writer %d: write of block %llu: %s", w->id,
			      (unsigned long long)b, rc_name(rc));
			for (uint64_t k = 0; k < sh->block; k++)
				atomic_store(&sh->done[first + k], seq);
		}
	}
	free(buf);
	return NULL;
}

/* Reads blocks of the live VMO: every page whole, every block from one
 * write, and no page ever going back in time. */
static void *reader_main(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	uint64_t *buf = malloc(sh->block * UVMO_PAGE_SIZE);
	int64_t last[NPAGES] = { 0 };
	uint64_t nblocks = NPAGES / sh->block;
	unsigned seed = 12345u + (unsigned)w->id;
	while (!atomic_load(&sh->stop) && !atomic_load(&failed)) {
		uint64_t b = (uint64_t)rand_r(&seed) % nblocks, first = b * sh->block;
		int rc = uvmo_vmo_read(sh->vmo, buf, first * PG, sh->block * PG);
		check(rc == 0, "reader: read: %s", rc_name(rc));
		int64_t s0 = page_seq(buf, first);
		for (uint64_t k = 0; k < sh->block; k++) {
			int64_t s = page_seq(buf + k * WORDS, first + k);
			check(s >= 0, "reader: page %llu torn", (unsigned long long)(first + k));
			check(s == s0, "reader: block %llu mixes writes %lld and %lld",
			      (unsigned long long)b, (long long)s0, (long long)s);
			check(s >= last[first + k], "reader: page %llu went back from %lld to %lld",
			      (unsigned long long)(first + k), (long long)last[first + k],
			      (long long)s);
			last[first + k] = s;
		}
		atomic_fetch_add(&sh->reads, 1);
	}
	free(buf);
	return NULL;
}

struct snapshot_rec {
	uvmo_vmo_t *vmo;
	uint64_t lo[NPAGES]; /* writes finished before the snapshot call */
	uint64_t hi[NPAGES]; /* writes started before it returned */
};

/* Verify that @r saw, for every page, a write between lo and hi, and for
 * every block a single write.  Returns false on failure. */
static bool verify_snapshot(struct shared *sh, struct snapshot_rec *r, const char *when,
			    int64_t *seen)
{
	uint64_t *buf = malloc(NPAGES * UVMO_PAGE_SIZE);
	int rc = uvmo_vmo_read(r->vmo, buf, 0, NPAGES * PG);
	check(rc == 0, "snapshot read (%s): %s", when, rc_name(rc));
	bool ok = rc == 0;
	for (uint64_t p = 0; ok && p < NPAGES; p++) {
		int64_t s = page_seq(buf + p * WORDS, p);
		if (s < 0) {
			fail("snapshot (%s): page %llu torn or misplaced", when, (unsigned long long)p);
			ok = false;
			break;
		}
		if ((uint64_t)s < r->lo[p] || (uint64_t)s > r->hi[p]) {
			fail("snapshot (%s): page %llu holds write %lld, outside [%llu, %llu] "
			     "of the moment it was taken",
			     when, (unsigned long long)p, (long long)s,
			     (unsigned long long)r->lo[p], (unsigned long long)r->hi[p]);
			ok = false;
		}
		uint64_t first = p - p % sh->block;
		int64_t s0 = page_seq(buf + first * WORDS, first);
		if (s != s0) {
			fail("snapshot (%s): block at page %llu mixes writes %lld and %lld", when,
			     (unsigned long long)first, (long long)s0, (long long)s);
			ok = false;
		}
		if (seen)
			seen[p] = s;
	}
	free(buf);
	return ok;
}

static void *snapshotter_main(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	struct snapshot_rec *ring[RING] = { NULL };
	int64_t prev[NPAGES] = { 0 }, cur[NPAGES];
	int slot = 0;
	while (!atomic_load(&sh->stop) && !atomic_load(&failed)) {
		struct snapshot_rec *r = malloc(sizeof(*r));
		for (int p = 0; p < NPAGES; p++)
			r->lo[p] = atomic_load(&sh->done[p]);
		int rc = uvmo_vmo_create_child(sh->vmo, UVMO_CHILD_SNAPSHOT, 0, NPAGES * PG,
					       &r->vmo);
		for (int p = 0; p < NPAGES; p++)
			r->hi[p] = atomic_load(&sh->started[p]);
		if (rc != 0) {
			fail("snapshotter %d: create_child: %s", w->id, rc_name(rc));
			free(r);
			break;
		}
		/* Right away, then again just before it is closed, after more
		 * writes, snapshots and merges have happened around it. */
		if (verify_snapshot(sh, r, "when taken", cur)) {
			for (int p = 0; p < NPAGES; p++) {
				check(cur[p] >= prev[p],
				      "snapshotter %d: page %d went back from %lld to %lld", w->id,
				      p, (long long)prev[p], (long long)cur[p]);
				prev[p] = cur[p];
			}
		}
		if (ring[slot]) {
			verify_snapshot(sh, ring[slot], "before close", NULL);
			uvmo_vmo_close(ring[slot]->vmo);
			free(ring[slot]);
		}
		ring[slot] = r;
		slot = (slot + 1) % RING;
		atomic_fetch_add(&sh->snapshots, 1);
	}
	/* Close the rest out of order, checking each survivor. */
	for (int i = RING - 1; i >= 0; i--) {
		int k = (slot + i) % RING;
		if (!ring[k])
			continue;
		verify_snapshot(sh, ring[k], "final", NULL);
		uvmo_vmo_close(ring[k]->vmo);
		free(ring[k]);
	}
	return NULL;
}

static void run_snapshot_stress(uint64_t block, int snapshotters, double seconds)
{
	static struct shared sh;
	memset(&sh, 0, sizeof(sh));
	sh.block = block;
	sh.vmo = make_vmo(NPAGES * PG, 0);
	uint64_t words[WORDS];
	for (uint64_t p = 0; p < NPAGES; p++) {
		make_page(words, p, 0);
		expect_ok(uvmo_vmo_write(sh.vmo, words, p * PG, PG));
	}
	struct uvmo_stats base = stats_now();

	enum { MAXT = 8 };
	pthread_t wt[MAXT], rt[1], st[MAXT];
	struct worker wa[MAXT], ra[1], sa[MAXT];
	for (int i = 0; i < MAXT; i++) {
		wa[i] = (struct worker){ &sh, i };
		sa[i] = (struct worker){ &sh, i };
	}
	ra[0] = (struct worker){ &sh, 0 };
	start_threads(wt, WRITERS, writer_main, wa, sizeof(wa[0]));
	start_threads(rt, 1, reader_main, ra, sizeof(ra[0]));
	start_threads(st, snapshotters, snapshotter_main, sa, sizeof(sa[0]));
	double end = now_s() + seconds;
	while (now_s() < end && !atomic_load(&failed)) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	atomic_store(&sh.stop, true);
	join_threads(wt, WRITERS);
	join_threads(rt, 1);
	join_threads(st, snapshotters);
	expect_no_thread_failure();
	cr_log_info("%llu snapshots, %llu live reads, last write of page 0: %llu",
		    (unsigned long long)atomic_load(&sh.snapshots),
		    (unsigned long long)atomic_load(&sh.reads),
		    (unsigned long long)atomic_load(&sh.done[0]));
	cr_assert_geq(atomic_load(&sh.snapshots), 5, "only %llu snapshots taken",
		      (unsigned long long)atomic_load(&sh.snapshots));

	/* The live VMO holds the last write of every page. */
	for (uint64_t p = 0; p < NPAGES; p++) {
		expect_ok(uvmo_vmo_read(sh.vmo, words, p * PG, PG));
		int64_t s = page_seq(words, p);
		cr_assert_eq(s, (int64_t)atomic_load(&sh.done[p]), "page %llu holds %lld",
			     (unsigned long long)p, (long long)s);
	}
	/* Every snapshot is closed: the memory is back to one copy. */
	struct uvmo_stats after = stats_now();
	cr_assert_eq(after.committed_bytes, base.committed_bytes,
		     "committed %llu pages after all snapshots closed, expected %llu",
		     (unsigned long long)(after.committed_bytes / PG),
		     (unsigned long long)(base.committed_bytes / PG));
	cr_assert_eq(after.host_bytes, base.host_bytes);
	cr_assert_eq(after.hidden_nodes, 0);
	cr_assert_eq(info_of(sh.vmo).num_children, 0);
}

Test(threads, snapshots_taken_during_writes_are_consistent_points_in_time, .timeout = 60)
{
	run_snapshot_stress(1, 1, 2.0);
}

Test(threads, concurrent_snapshotters_each_see_consistent_points_in_time, .timeout = 60)
{
	run_snapshot_stress(1, 2, 2.0);
}

Test(threads, multi_page_writes_are_seen_whole_or_not_at_all, .timeout = 60)
{
	run_snapshot_stress(BLOCK, 1, 2.0);
}

/* ---------------------------------------------------------------------- */
/* disjoint writers without snapshots                                     */
/* ---------------------------------------------------------------------- */

struct disjoint_arg {
	uvmo_vmo_t *vmo;
	int id, nthreads;
	uint64_t pages;
};

static void *disjoint_writer(void *arg)
{
	struct disjoint_arg *a = arg;
	uint64_t words[WORDS];
	for (uint64_t round = 1; round <= 20; round++) {
		for (uint64_t p = (uint64_t)a->id; p < a->pages; p += (uint64_t)a->nthreads) {
			make_page(words, p, round);
			int rc = uvmo_vmo_write(a->vmo, words, p * PG, PG);
			check(rc == 0, "write page %llu: %s", (unsigned long long)p, rc_name(rc));
			rc = uvmo_vmo_read(a->vmo, words, p * PG, PG);
			check(rc == 0 && page_seq(words, p) == (int64_t)round,
			      "thread %d read back page %llu wrong", a->id, (unsigned long long)p);
		}
	}
	return NULL;
}

Test(threads, writers_of_disjoint_pages_do_not_disturb_each_other, .timeout = 60)
{
	enum { T = 4, P = 256 };
	uvmo_vmo_t *v = make_vmo(P * PG, 0);
	pthread_t t[T];
	struct disjoint_arg a[T];
	for (int i = 0; i < T; i++)
		a[i] = (struct disjoint_arg){ v, i, T, P };
	start_threads(t, T, disjoint_writer, a, sizeof(a[0]));
	join_threads(t, T);
	expect_no_thread_failure();
	uint64_t words[WORDS];
	for (uint64_t p = 0; p < P; p++) {
		expect_ok(uvmo_vmo_read(v, words, p * PG, PG));
		cr_assert_eq(page_seq(words, p), 20, "page %llu", (unsigned long long)p);
	}
	cr_assert_eq(info_of(v).committed_bytes, P * PG);
}

/* ---------------------------------------------------------------------- */
/* cloning and closing in separate trees                                  */
/* ---------------------------------------------------------------------- */

enum { TREE_PAGES = 8, TREE_MAX = 6 };

struct tree_arg {
	int id;
	double seconds;
	uint64_t rounds;
};

/* A thread's own model of one VMO: the page tags it should read. */
struct modelled {
	uvmo_vmo_t *v;
	uint8_t tag[TREE_PAGES];
};

static bool model_check(const struct modelled *m, int id, const char *what)
{
	uint8_t buf[UVMO_PAGE_SIZE];
	for (uint64_t p = 0; p < TREE_PAGES; p++) {
		int rc = uvmo_vmo_read(m->v, buf, p * PG, PG);
		if (rc != 0) {
			fail("thread %d %s: read: %s", id, what, rc_name(rc));
			return false;
		}
		long bad = first_other_byte(buf, PG, m->tag[p]);
		if (bad >= 0) {
			fail("thread %d %s: page %llu byte %ld is 0x%02x, expected 0x%02x", id, what,
			     (unsigned long long)p, bad, buf[bad], m->tag[p]);
			return false;
		}
	}
	return true;
}

static bool model_write(struct modelled *m, uint64_t p, uint8_t tag, int id)
{
	uint8_t buf[UVMO_PAGE_SIZE];
	memset(buf, tag, sizeof(buf));
	int rc = uvmo_vmo_write(m->v, buf, p * PG, PG);
	if (rc != 0) {
		fail("thread %d: write: %s", id, rc_name(rc));
		return false;
	}
	m->tag[p] = tag;
	return true;
}

/* Random clone / write / close operations on a tree only this thread
 * uses, checked against a flat model after every step. */
static void *tree_worker(void *arg)
{
	struct tree_arg *a = arg;
	unsigned seed = 777u * (unsigned)(a->id + 1);
	struct modelled live[TREE_MAX];
	int n = 0;
	uint8_t tag = 1;
	int rc = uvmo_vmo_create(TREE_PAGES * PG, 0, &live[0].v);
	if (rc) {
		fail("create: %s", rc_name(rc));
		return NULL;
	}
	memset(live[0].tag, 0, sizeof(live[0].tag));
	n = 1;
	double end = now_s() + a->seconds;
	while (now_s() < end && !atomic_load(&failed)) {
		int op = rand_r(&seed) % 4;
		int k = rand_r(&seed) % n;
		if (op == 0 && n < TREE_MAX) {
			struct modelled c;
			uint32_t type = (rand_r(&seed) % 2) ? UVMO_CHILD_SNAPSHOT
							   : UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE;
			rc = uvmo_vmo_create_child(live[k].v, type, 0, TREE_PAGES * PG, &c.v);
			if (rc) {
				fail("thread %d: create_child: %s", a->id, rc_name(rc));
				break;
			}
			memcpy(c.tag, live[k].tag, sizeof(c.tag));
			live[n++] = c;
		} else if (op == 1 && n > 1) {
			uvmo_vmo_close(live[k].v);
			live[k] = live[--n];
		} else {
			uint64_t p = (uint64_t)rand_r(&seed) % TREE_PAGES;
			tag = (uint8_t)(tag == 255 ? 1 : tag + 1);
			if (!model_write(&live[k], p, tag, a->id))
				break;
		}
		bool ok = true;
		for (int i = 0; i < n && ok; i++)
			ok = model_check(&live[i], a->id, "after a step");
		a->rounds++;
	}
	for (int i = 0; i < n; i++)
		uvmo_vmo_close(live[i].v);
	return NULL;
}

Test(threads, threads_cloning_and_closing_in_separate_trees_keep_their_content, .timeout = 60)
{
	enum { T = 4 };
	struct uvmo_stats base = stats_now();
	pthread_t t[T];
	struct tree_arg a[T];
	for (int i = 0; i < T; i++)
		a[i] = (struct tree_arg){ .id = i, .seconds = 2.0 };
	start_threads(t, T, tree_worker, a, sizeof(a[0]));
	join_threads(t, T);
	expect_no_thread_failure();
	for (int i = 0; i < T; i++)
		cr_assert_geq(a[i].rounds, 50, "thread %d did only %llu steps", i,
			      (unsigned long long)a[i].rounds);
	struct uvmo_stats s = stats_now();
	cr_assert_eq(s.vmos, base.vmos);
	cr_assert_eq(s.committed_bytes, base.committed_bytes);
	cr_assert_eq(s.host_bytes, base.host_bytes);
	cr_assert_eq(s.nodes, base.nodes);
	cr_assert_eq(s.hidden_nodes, 0);
}

/* ---------------------------------------------------------------------- */
/* cloning and closing in one shared tree                                 */
/* ---------------------------------------------------------------------- */

struct one_tree_arg {
	uvmo_vmo_t *root;
	int id;
	uint64_t rounds;
};

static void *one_tree_worker(void *arg)
{
	struct one_tree_arg *a = arg;
	double end = now_s() + 1.5;
	uint8_t buf[UVMO_PAGE_SIZE];
	while (now_s() < end && !atomic_load(&failed)) {
		uvmo_vmo_t *c, *g;
		int rc = uvmo_vmo_create_child(a->root, UVMO_CHILD_SNAPSHOT, 0, TREE_PAGES * PG, &c);
		if (rc) {
			fail("thread %d: snapshot of root: %s", a->id, rc_name(rc));
			break;
		}
		rc = uvmo_vmo_create_child(c, UVMO_CHILD_SNAPSHOT, 0, TREE_PAGES * PG, &g);
		if (rc) {
			fail("thread %d: snapshot of child: %s", a->id, rc_name(rc));
			uvmo_vmo_close(c);
			break;
		}
		uint64_t p = a->rounds % TREE_PAGES;
		memset(buf, 0x80 + a->id, sizeof(buf));
		check(uvmo_vmo_write(g, buf, p * PG, PG) == 0, "thread %d: write g", a->id);
		memset(buf, 0x40 + a->id, sizeof(buf));
		check(uvmo_vmo_write(c, buf, ((p + 1) % TREE_PAGES) * PG, PG) == 0,
		      "thread %d: write c", a->id);
		/* c: root content except its own page; g: root except its own. */
		for (uint64_t q = 0; q < TREE_PAGES; q++) {
			uint8_t want_c = q == (p + 1) % TREE_PAGES ? 0x40 + a->id : (uint8_t)(q + 1);
			uint8_t want_g = q == p ? 0x80 + a->id : (uint8_t)(q + 1);
			check(uvmo_vmo_read(c, buf, q * PG, PG) == 0 &&
				      first_other_byte(buf, PG, want_c) < 0,
			      "thread %d: child page %llu wrong", a->id, (unsigned long long)q);
			check(uvmo_vmo_read(g, buf, q * PG, PG) == 0 &&
				      first_other_byte(buf, PG, want_g) < 0,
			      "thread %d: grandchild page %llu wrong", a->id, (unsigned long long)q);
		}
		if (a->rounds & 1) {
			uvmo_vmo_close(c);
			uvmo_vmo_close(g);
		} else {
			uvmo_vmo_close(g);
			uvmo_vmo_close(c);
		}
		a->rounds++;
	}
	return NULL;
}

Test(threads, threads_cloning_and_closing_in_one_tree_leave_the_root_intact, .timeout = 60)
{
	enum { T = 4 };
	uvmo_vmo_t *root = make_vmo(TREE_PAGES * PG, 0);
	for (uint64_t p = 0; p < TREE_PAGES; p++)
		fill_page(root, p, (uint8_t)(p + 1));
	struct uvmo_stats base = stats_now();
	pthread_t t[T];
	struct one_tree_arg a[T];
	for (int i = 0; i < T; i++)
		a[i] = (struct one_tree_arg){ root, i, 0 };
	start_threads(t, T, one_tree_worker, a, sizeof(a[0]));
	join_threads(t, T);
	expect_no_thread_failure();
	for (int i = 0; i < T; i++)
		cr_assert_geq(a[i].rounds, 10, "thread %d did only %llu rounds", i,
			      (unsigned long long)a[i].rounds);
	for (uint64_t p = 0; p < TREE_PAGES; p++)
		expect_page(root, p, p + 1);
	struct uvmo_stats s = stats_now();
	cr_assert_eq(s.committed_bytes, base.committed_bytes);
	cr_assert_eq(s.host_bytes, base.host_bytes);
	cr_assert_eq(s.hidden_nodes, 0);
	cr_assert_eq(info_of(root).num_children, 0);
}

/* ---------------------------------------------------------------------- */
/* create / close hammering                                               */
/* ---------------------------------------------------------------------- */

struct hammer_arg {
	int id;
	uint64_t rounds;
};

static void *hammer_worker(void *arg)
{
	struct hammer_arg *a = arg;
	unsigned seed = 99u + (unsigned)a->id;
	double end = now_s() + 1.5;
	uint8_t buf[64];
	while (now_s() < end && !atomic_load(&failed)) {
		uint64_t pages = 1 + (uint64_t)rand_r(&seed) % 16;
		uint32_t opts = (rand_r(&seed) % 3 == 0) ? UVMO_VMO_RESIZABLE : 0;
		uvmo_vmo_t *v;
		int rc = uvmo_vmo_create(pages * PG, opts, &v);
		if (rc) {
			fail("thread %d: create: %s", a->id, rc_name(rc));
			break;
		}
		uint64_t off = ((uint64_t)rand_r(&seed) % pages) * PG + 100;
		memset(buf, (int)(a->rounds & 0xff), sizeof(buf));
		check(uvmo_vmo_write(v, buf, off, sizeof(buf)) == 0, "thread %d: write", a->id);
		memset(buf, 0xff, sizeof(buf));
		check(uvmo_vmo_read(v, buf, off, sizeof(buf)) == 0 &&
			      first_other_byte(buf, sizeof(buf), (uint8_t)(a->rounds & 0xff)) < 0,
		      "thread %d: read back", a->id);
		if (rand_r(&seed) % 4 == 0) {
			uvmo_vmo_t *c;
			rc = uvmo_vmo_create_child(v, UVMO_CHILD_SNAPSHOT, 0, pages * PG, &c);
			check(rc == 0, "thread %d: child: %s", a->id, rc_name(rc));
			if (rc == 0) {
				uvmo_vmo_close(v);
				v = c;
			}
		}
		uvmo_vmo_close(v);
		a->rounds++;
	}
	return NULL;
}

Test(threads, threads_hammering_create_and_close_leak_nothing, .timeout = 60)
{
	enum { T = 4 };
	struct uvmo_stats base = stats_now();
	pthread_t t[T];
	struct hammer_arg a[T];
	for (int i = 0; i < T; i++)
		a[i] = (struct hammer_arg){ i, 0 };
	start_threads(t, T, hammer_worker, a, sizeof(a[0]));
	join_threads(t, T);
	expect_no_thread_failure();
	for (int i = 0; i < T; i++)
		cr_assert_geq(a[i].rounds, 100, "thread %d did only %llu rounds", i,
			      (unsigned long long)a[i].rounds);
	struct uvmo_stats s = stats_now();
	cr_assert_eq(s.vmos, base.vmos);
	cr_assert_eq(s.nodes, base.nodes);
	cr_assert_eq(s.hidden_nodes, 0);
	cr_assert_eq(s.committed_bytes, base.committed_bytes);
	cr_assert_eq(s.host_bytes, base.host_bytes);
}

/* ---------------------------------------------------------------------- */
/* calls racing with close of the same handle                            */
/* ---------------------------------------------------------------------- */

struct race_arg {
	uvmo_vmo_t *_Atomic vmo;
	atomic_bool go;
	atomic_bool stop;
	atomic_uint_fast64_t ok, badf;
};

static void *race_worker(void *arg)
{
	struct race_arg *a = arg;
	uint8_t buf[256];
	while (!atomic_load(&a->go))
		;
	bool closed = false;
	while (!atomic_load(&a->stop)) {
		uvmo_vmo_t *v = atomic_load(&a->vmo);
		memset(buf, 0x5c, sizeof(buf));
		int rc = uvmo_vmo_write(v, buf, 10, sizeof(buf));
		int rc2 = uvmo_vmo_read(v, buf, 10, sizeof(buf));
		uvmo_vmo_t *c = NULL;
		int rc3 = uvmo_vmo_create_child(v, UVMO_CHILD_SNAPSHOT, 0, PG, &c);
		if (rc3 == 0)
			uvmo_vmo_close(c);
		check((rc == 0 || rc == -EBADF) && (rc2 == 0 || rc2 == -EBADF) &&
			      (rc3 == 0 || rc3 == -EBADF),
		      "racing calls returned %s / %s / %s", rc_name(rc), rc_name(rc2),
		      rc_name(rc3));
		check(!closed || (rc == -EBADF && rc2 == -EBADF && rc3 == -EBADF),
		      "a call succeeded on a handle already seen closed");
		if (rc2 == 0)
			check(first_other_byte(buf, sizeof(buf), 0x5c) < 0 || rc != 0,
			      "read after write returned other bytes");
		if (rc == -EBADF || rc2 == -EBADF || rc3 == -EBADF)
			closed = true;
		if (rc == 0)
			atomic_fetch_add(&a->ok, 1);
		else
			atomic_fetch_add(&a->badf, 1);
	}
	return NULL;
}

Test(threads, calls_racing_with_close_of_the_same_handle_complete_or_return_ebadf,
     .timeout = 60)
{
	enum { ROUNDS = 100 };
	struct uvmo_stats base = stats_now();
	for (int r = 0; r < ROUNDS && !atomic_load(&failed); r++) {
		static struct race_arg a;
		memset(&a, 0, sizeof(a));
		uvmo_vmo_t *v = make_vmo(2 * PG, 0);
		atomic_store(&a.vmo, v);
		pthread_t t[2];
		cr_assert_eq(pthread_create(&t[0], NULL, race_worker, &a), 0);
		cr_assert_eq(pthread_create(&t[1], NULL, race_worker, &a), 0);
		atomic_store(&a.go, true);
		struct timespec ts = { 0, 200 * 1000 };
		nanosleep(&ts, NULL);
		uvmo_vmo_close(v);
		nanosleep(&ts, NULL);
		atomic_store(&a.stop, true);
		join_threads(t, 2);
	}
	expect_no_thread_failure();
	struct uvmo_stats s = stats_now();
	cr_assert_eq(s.vmos, base.vmos);
	cr_assert_eq(s.committed_bytes, base.committed_bytes);
	cr_assert_eq(s.hidden_nodes, 0);
}

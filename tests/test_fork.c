/* SPDX-License-Identifier: MIT */
/*
 * fork() of a process with uvmo mappings (issue 3, section 3): parent and
 * child each keep correct, isolated memory afterwards — a write in one is
 * never seen in the other, in either direction, through mappings or
 * through uvmo_vmo_read/_write — and both keep using uvmo.
 *
 * Children report through their exit status: 0 for success; on failure
 * they print what went wrong to stderr and exit with 1.  They never call
 * criterion (its asserts belong to the test process) and leave with
 * _exit.  Pipes order parent and child where a test needs it.
 */
#include "map_test_util.h"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(fork, .timeout = 60);

#define WORDS (UVMO_PAGE_SIZE / sizeof(uint64_t))

/* ---------------------------------------------------------------------- */
/* child side                                                             */
/* ---------------------------------------------------------------------- */

#define CHILD_CHECK(cond, ...)                                                \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "child %d, %s:%d: ", (int)getpid(),   \
				__FILE__, __LINE__);                          \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
			_exit(1);                                             \
		}                                                             \
	} while (0)

#define CHILD_OK(expr)                                                        \
	do {                                                                  \
		int rc_ = (expr);                                             \
		CHILD_CHECK(rc_ == 0, "%s returned %d (%s)", #expr, rc_, rc_name(rc_)); \
	} while (0)

/* Every byte of [p, p + len) equals @val. */
static void child_expect_val(const uint8_t *p, size_t len, uint8_t val, const char *what)
{
	long bad = first_other_byte(p, len, val);
	CHILD_CHECK(bad < 0, "%s: byte %ld is 0x%02x, expected 0x%02x", what, bad,
		    bad < 0 ? 0 : p[bad], val);
}

/* Bytes [off, off + len) of @vmo, read by call, equal @val. */
static void child_expect_vmo_val(uvmo_vmo_t *vmo, uint64_t off, size_t len, uint8_t val,
				 const char *what)
{
	uint8_t *buf = malloc(len);
	CHILD_CHECK(buf, "malloc");
	CHILD_OK(uvmo_vmo_read(vmo, buf, off, len));
	child_expect_val(buf, len, val, what);
	free(buf);
}

static void child_fill_page(uvmo_vmo_t *v, uint64_t page, uint8_t val)
{
	static uint8_t buf[UVMO_PAGE_SIZE];
	memset(buf, val, sizeof(buf));
	CHILD_OK(uvmo_vmo_write(v, buf, page * PG, PG));
}

/* ---------------------------------------------------------------------- */
/* parent side                                                            */
/* ---------------------------------------------------------------------- */

/* Wait for @pid and assert it exited with status 0. */
static void expect_child_ok(pid_t pid)
{
	int status = 0;
	pid_t got;
	while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	cr_assert_eq(got, pid, "waitpid failed");
	cr_assert(!WIFSIGNALED(status), "the child died of signal %d", WTERMSIG(status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the child failed (exit status %d; its message is on stderr)",
		  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* Fork; the child runs @fn(@arg) and exits with its result. */
static pid_t spawn(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0, "fork failed");
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

static void run_child(int (*fn)(void *), void *arg)
{
	expect_child_ok(spawn(fn, arg));
}

/* One-byte messages over a pipe, in either direction. */
static void send_byte(int fd)
{
	char c = 1;
	while (write(fd, &c, 1) != 1 && errno == EINTR)
		;
}

static bool recv_byte(int fd)
{
	char c;
	ssize_t n;
	while ((n = read(fd, &c, 1)) < 0 && errno == EINTR)
		;
	return n == 1;
}

/* ---------------------------------------------------------------------- */
/* a VMO in four states at fork time                                      */
/* ---------------------------------------------------------------------- */

/*
 * Pages of the standard VMO (8 pages, mapped read-write once):
 *   0..2  written through the mapping (faulted in, writable)         0x11
 *   3..4  written by uvmo_vmo_write, never touched through the map   0x22
 *   5     written by uvmo_vmo_write, then faulted in by a read       0x33
 *   6..7  never written: zero, never faulted                         0x00
 */
struct world {
	uvmo_vmo_t *v;
	uint8_t *m;
};

static uint8_t world_val(uint64_t page)
{
	if (page <= 2)
		return 0x11;
	if (page <= 4)
		return 0x22;
	if (page == 5)
		return 0x33;
	return 0;
}

static struct world make_world(void)
{
	struct world w;
	w.v = make_vmo(8 * PG, 0);
	w.m = map_rw(w.v);
	memset(w.m, 0x11, 3 * PG);
	fill_pages(w.v, 3, 2, 0x22);
	fill_page(w.v, 5, 0x33);
	cr_assert_eq(w.m[5 * PG], 0x33); /* page 5 faulted in by a read */
	return w;
}

static void child_expect_world(const struct world *w, const char *when)
{
	char what[96];
	for (uint64_t pg = 0; pg < 8; pg++) {
		snprintf(what, sizeof(what), "%s: page %llu through the mapping", when,
			 (unsigned long long)pg);
		child_expect_val(w->m + pg * PG, PG, world_val(pg), what);
		snprintf(what, sizeof(what), "%s: page %llu by uvmo_vmo_read", when,
			 (unsigned long long)pg);
		child_expect_vmo_val(w->v, pg * PG, PG, world_val(pg), what);
	}
}

static void expect_world(const struct world *w)
{
	for (uint64_t pg = 0; pg < 8; pg++) {
		expect_mem_val(w->m + pg * PG, PG, world_val(pg));
		expect_page(w->v, pg, world_val(pg));
	}
}

/* ---------------------------------------------------------------------- */
/* the child's view                                                       */
/* ---------------------------------------------------------------------- */

static int child_checks_world(void *arg)
{
	child_expect_world(arg, "in the child");
	return 0;
}

Test(fork, child_sees_the_memory_as_it_was_at_fork)
{
	struct world w = make_world();
	run_child(child_checks_world, &w);
	expect_world(&w);
}

static int child_writes_through_the_mapping(void *arg)
{
	struct world *w = arg;
	memset(w->m, 0xc1, 8 * PG);
	child_expect_val(w->m, 8 * PG, 0xc1, "the child's own writes through its mapping");
	child_expect_vmo_val(w->v, 0, 8 * PG, 0xc1, "the child's own writes by call");
	return 0;
}

Test(fork, child_writes_through_a_mapping_are_not_seen_by_the_parent)
{
	struct world w = make_world();
	run_child(child_writes_through_the_mapping, &w);
	expect_world(&w);
	/* And the parent's mapping keeps working: a never-faulted page too. */
	memset(w.m + 6 * PG, 0x66, PG);
	expect_page(w.v, 6, 0x66);
}

static int child_writes_by_call(void *arg)
{
	struct world *w = arg;
	for (uint64_t pg = 0; pg < 8; pg++)
		child_fill_page(w->v, pg, 0xc2);
	child_expect_val(w->m, 8 * PG, 0xc2, "the child's call writes through its mapping");
	child_expect_vmo_val(w->v, 0, 8 * PG, 0xc2, "the child's call writes by call");
	return 0;
}

Test(fork, child_vmo_writes_are_not_seen_by_the_parent)
{
	struct world w = make_world();
	run_child(child_writes_by_call, &w);
	expect_world(&w);
}

static int child_decommits(void *arg)
{
	struct world *w = arg;
	CHILD_OK(uvmo_vmo_op_range(w->v, UVMO_OP_DECOMMIT, 0, 8 * PG));
	child_expect_val(w->m, 8 * PG, 0, "after the child's decommit");
	return 0;
}

Test(fork, child_decommit_is_not_seen_by_the_parent)
{
	struct world w = make_world();
	run_child(child_decommits, &w);
	expect_world(&w);
}

/* ---------------------------------------------------------------------- */
/* the parent writing while the child lives                               */
/* ---------------------------------------------------------------------- */

struct duo {
	struct world w;
	int to_child[2];
	int to_parent[2];
};

static int child_waits_then_checks(void *arg)
{
	struct duo *d = arg;
	close(d->to_child[1]);
	close(d->to_parent[0]);
	/* Touch part of it before the parent writes, part only after. */
	child_expect_val(d->w.m, 2 * PG, 0x11, "before the parent's writes");
	send_byte(d->to_parent[1]);
	CHILD_CHECK(recv_byte(d->to_child[0]), "the parent went away");
	child_expect_world(&d->w, "after the parent wrote");
	return 0;
}

static void duo_pipes(struct duo *d)
{
	cr_assert_eq(pipe(d->to_child), 0);
	cr_assert_eq(pipe(d->to_parent), 0);
}

static void parent_side(struct duo *d)
{
	close(d->to_child[0]);
	close(d->to_parent[1]);
}

Test(fork, parent_writes_after_fork_are_not_seen_by_the_child)
{
	struct duo d;
	d.w = make_world();
	duo_pipes(&d);
	pid_t pid = spawn(child_waits_then_checks, &d);
	parent_side(&d);
	cr_assert(recv_byte(d.to_parent[0]), "the child died early");
	memset(d.w.m, 0xa1, 8 * PG);
	for (uint64_t pg = 0; pg < 8; pg += 2)
		fill_page(d.w.v, pg, 0xa2);
	send_byte(d.to_child[1]);
	expect_child_ok(pid);
	for (uint64_t pg = 0; pg < 8; pg++)
		expect_mem_val(d.w.m + pg * PG, PG, pg % 2 ? 0xa1 : 0xa2);
}

struct race_duo {
	struct world w;
	int go[2];
};

static int child_writes_alongside(void *arg)
{
	struct race_duo *r = arg;
	close(r->go[1]);
	CHILD_CHECK(recv_byte(r->go[0]), "no go");
	for (int round = 0; round < 200; round++) {
		uint8_t val = (uint8_t)(0x80 | round);
		for (uint64_t pg = 0; pg < 8; pg++) {
			memset(r->w.m + pg * PG, val, PG);
			child_expect_val(r->w.m + pg * PG, PG, val, "child, while the parent writes");
		}
	}
	child_expect_vmo_val(r->w.v, 0, 8 * PG, (uint8_t)(0x80 | 199), "child, at the end");
	return 0;
}

Test(fork, parent_and_child_writing_at_once_stay_isolated)
{
	struct race_duo r;
	r.w = make_world();
	cr_assert_eq(pipe(r.go), 0);
	pid_t pid = spawn(child_writes_alongside, &r);
	close(r.go[0]);
	send_byte(r.go[1]);
	for (int round = 0; round < 200; round++) {
		uint8_t val = (uint8_t)(0x40 | (round & 0x3f));
		for (uint64_t pg = 0; pg < 8; pg++) {
			memset(r.w.m + pg * PG, val, PG);
			expect_mem_val(r.w.m + pg * PG, PG, val);
		}
	}
	expect_child_ok(pid);
	expect_mem_val(r.w.m, 8 * PG, 0x40 | (199 & 0x3f));
	expect_pages(r.w.v, 0, 8, 0x40 | (199 & 0x3f));
}

/* ---------------------------------------------------------------------- */
/* clones across fork                                                     */
/* ---------------------------------------------------------------------- */

struct clones {
	uvmo_vmo_t *p, *c;
	uint8_t *mp, *mc;
};

static struct clones make_clones(void)
{
	struct clones k;
	k.p = make_vmo(4 * PG, 0);
	k.mp = map_rw(k.p);
	memset(k.mp, 0x51, 4 * PG);
	k.c = snap(k.p);
	k.mc = map_rw(k.c);
	memset(k.mp + PG, 0x52, PG); /* the parent VMO moved on at page 1 */
	memset(k.mc + 2 * PG, 0x53, PG); /* the clone wrote page 2 */
	return k;
}

static void expect_clones(const struct clones *k)
{
	expect_mem_val(k->mp, PG, 0x51);
	expect_mem_val(k->mp + PG, PG, 0x52);
	expect_mem_val(k->mp + 2 * PG, 2 * PG, 0x51);
	expect_mem_val(k->mc, 2 * PG, 0x51);
	expect_mem_val(k->mc + 2 * PG, PG, 0x53);
	expect_mem_val(k->mc + 3 * PG, PG, 0x51);
	expect_page(k->c, 3, 0x51);
	expect_page(k->p, 2, 0x51);
}

static int child_writes_the_clone(void *arg)
{
	struct clones *k = arg;
	child_expect_val(k->mc, 2 * PG, 0x51, "the clone in the child");
	child_expect_val(k->mc + 2 * PG, PG, 0x53, "the clone's own page in the child");
	memset(k->mc, 0xc3, 4 * PG);
	child_expect_val(k->mp, PG, 0x51, "the parent VMO after the child wrote its clone");
	child_expect_val(k->mp + PG, PG, 0x52, "the parent VMO's page 1 in the child");
	child_expect_vmo_val(k->p, 2 * PG, 2 * PG, 0x51, "the parent VMO by call");
	child_expect_vmo_val(k->c, 0, 4 * PG, 0xc3, "the clone by call");
	return 0;
}

Test(fork, mapped_clones_stay_isolated_across_fork)
{
	struct clones k = make_clones();
	run_child(child_writes_the_clone, &k);
	expect_clones(&k);
}

static int child_snapshots_an_inherited_vmo(void *arg)
{
	struct world *w = arg;
	uvmo_vmo_t *s = NULL;
	CHILD_OK(uvmo_vmo_create_child(w->v, UVMO_CHILD_SNAPSHOT, 0, 8 * PG, &s));
	memset(w->m, 0xc4, 8 * PG);
	child_expect_vmo_val(w->v, 0, 8 * PG, 0xc4, "the inherited VMO after writing");
	for (uint64_t pg = 0; pg < 8; pg++)
		child_expect_vmo_val(s, pg * PG, PG, world_val(pg), "the child's snapshot");
	void *a = NULL;
	CHILD_OK(uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ, 0, s, 0, 8 * PG, &a));
	for (uint64_t pg = 0; pg < 8; pg++)
		child_expect_val((uint8_t *)a + pg * PG, PG, world_val(pg),
				 "the child's snapshot through a mapping");
	uvmo_vmo_close(s);
	child_expect_val(w->m, 8 * PG, 0xc4, "the inherited mapping after the snapshot closed");
	return 0;
}

Test(fork, child_can_snapshot_an_inherited_mapped_vmo)
{
	struct world w = make_world();
	run_child(child_snapshots_an_inherited_vmo, &w);
	expect_world(&w);
}

/* ---------------------------------------------------------------------- */
/* both keep using uvmo                                                   */
/* ---------------------------------------------------------------------- */

static int child_uses_uvmo(void *arg)
{
	(void)arg;
	uvmo_vmo_t *v = NULL, *s = NULL;
	CHILD_OK(uvmo_vmo_create(16 * PG, 0, &v));
	uvmo_vmar_t *sub = NULL;
	void *base = NULL, *a = NULL, *b = NULL;
	CHILD_OK(uvmo_vmar_allocate(uvmo_vmar_root(), CAN_MAP_ALL, 0, 64 * PG, &sub, &base));
	CHILD_OK(uvmo_vmar_map(sub, PERM_RW, 0, v, 0, 16 * PG, &a));
	uint8_t *m = a;
	child_expect_val(m, 16 * PG, 0, "a new VMO in the child");
	memset(m, 0x71, 16 * PG);
	CHILD_OK(uvmo_vmo_create_child(v, UVMO_CHILD_SNAPSHOT, 0, 16 * PG, &s));
	memset(m, 0x72, 8 * PG);
	CHILD_OK(uvmo_vmar_map(sub, PERM_RW, 0, s, 0, 16 * PG, &b));
	uint8_t *ms = b;
	child_expect_val(ms, 16 * PG, 0x71, "the child's snapshot");
	memset(ms + 8 * PG, 0x73, 8 * PG);
	child_expect_val(m, 8 * PG, 0x72, "the child's VMO");
	child_expect_val(m + 8 * PG, 8 * PG, 0x71, "the child's VMO after its snapshot wrote");
	CHILD_OK(uvmo_vmar_protect(sub, PERM_R, a, 16 * PG));
	CHILD_OK(uvmo_vmar_unmap(sub, b, 16 * PG));
	CHILD_OK(uvmo_vmar_destroy(sub));
	uvmo_vmar_close(sub);
	uvmo_vmo_close(s);
	uvmo_vmo_close(v);
	return 0;
}

Test(fork, child_can_keep_using_uvmo)
{
	struct world w = make_world();
	run_child(child_uses_uvmo, NULL);
	expect_world(&w);
}

Test(fork, child_can_use_uvmo_without_any_mapping_at_fork)
{
	uvmo_vmo_t *v = make_vmo(PG, 0); /* initialised, nothing mapped */
	run_child(child_uses_uvmo, NULL);
	uvmo_vmo_close(v);
}

Test(fork, parent_keeps_using_uvmo_after_the_child_exits)
{
	struct world w = make_world();
	run_child(child_writes_through_the_mapping, &w);
	uvmo_vmo_t *v = make_vmo(8 * PG, 0);
	uint8_t *m = map_rw(v);
	memset(m, 0x91, 8 * PG);
	uvmo_vmo_t *s = snap(v);
	memset(m, 0x92, 4 * PG);
	expect_pages(s, 0, 8, 0x91);
	uint8_t *ms = map_vmo(root_vmar(), PERM_R, s, 0, 8 * PG);
	expect_mem_val(ms, 8 * PG, 0x91);
	expect_mem_val(m, 4 * PG, 0x92);
	/* The old mapping: its never-faulted pages fault in the parent too. */
	memset(w.m + 7 * PG, 0x93, PG);
	expect_page(w.v, 7, 0x93);
	expect_mem_val(w.m, 3 * PG, 0x11);
}

static int child_unmaps_and_protects(void *arg)
{
	struct world *w = arg;
	CHILD_OK(uvmo_vmar_protect(uvmo_vmar_root(), PERM_R, w->m, 4 * PG));
	CHILD_OK(uvmo_vmar_unmap(uvmo_vmar_root(), w->m + 4 * PG, 4 * PG));
	return 0;
}

Test(fork, child_unmap_and_protect_do_not_reach_the_parent)
{
	struct world w = make_world();
	run_child(child_unmaps_and_protects, &w);
	for (uint64_t pg = 0; pg < 8; pg++)
		expect_write_ok(w.m + pg * PG + 1, world_val(pg));
	expect_world(&w);
}

/* ---------------------------------------------------------------------- */
/* nested forks, many children                                            */
/* ---------------------------------------------------------------------- */

static int grandchild_writes(void *arg)
{
	struct world *w = arg;
	memset(w->m, 0xe1, 8 * PG);
	child_expect_vmo_val(w->v, 0, 8 * PG, 0xe1, "the grandchild's writes");
	return 0;
}

static int child_forks_again(void *arg)
{
	struct world *w = arg;
	memset(w->m + 6 * PG, 0xd1, 2 * PG); /* the child's own change */
	fflush(NULL);
	pid_t pid = fork();
	CHILD_CHECK(pid >= 0, "fork in the child failed");
	if (pid == 0)
		_exit(grandchild_writes(w));
	int status;
	CHILD_CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
	CHILD_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the grandchild failed");
	for (uint64_t pg = 0; pg < 6; pg++) {
		char what[64];
		snprintf(what, sizeof(what), "the child's page %llu after the grandchild",
			 (unsigned long long)pg);
		child_expect_val(w->m + pg * PG, PG, world_val(pg), what);
	}
	child_expect_val(w->m + 6 * PG, 2 * PG, 0xd1, "the child's own pages");
	return 0;
}

Test(fork, grandchild_writes_reach_neither_child_nor_parent)
{
	struct world w = make_world();
	run_child(child_forks_again, &w);
	expect_world(&w);
}

struct numbered {
	struct world *w;
	uint8_t n;
};

static int child_writes_its_number(void *arg)
{
	struct numbered *k = arg;
	/* Every child starts from the parent's state, whatever its siblings do. */
	child_expect_world(k->w, "a sibling child");
	memset(k->w->m, k->n, 8 * PG);
	usleep(1000);
	child_expect_val(k->w->m, 8 * PG, k->n, "a sibling child's own writes");
	return 0;
}

Test(fork, sibling_children_are_isolated_from_each_other)
{
	struct world w = make_world();
	enum { KIDS = 4 };
	struct numbered k[KIDS];
	pid_t pid[KIDS];
	for (int i = 0; i < KIDS; i++) {
		k[i] = (struct numbered){ .w = &w, .n = (uint8_t)(0xf0 + i) };
		pid[i] = spawn(child_writes_its_number, &k[i]);
	}
	for (int i = 0; i < KIDS; i++)
		expect_child_ok(pid[i]);
	expect_world(&w);
}

/* ---------------------------------------------------------------------- */
/* fork while another thread of the parent writes                         */
/* ---------------------------------------------------------------------- */

struct busy {
	volatile uint64_t *page;
	atomic_bool stop;
	atomic_ulong rounds;
};

static void *busy_writer(void *arg)
{
	struct busy *b = arg;
	for (uint64_t seq = 1; !atomic_load(&b->stop); seq++) {
		for (size_t i = 0; i < WORDS; i++)
			b->page[i] = seq;
		for (size_t i = 0; i < WORDS; i++)
			if (b->page[i] != seq) {
				thread_fail("the writer's page word %zu reads %llu after writing %llu",
					    i, (unsigned long long)b->page[i],
					    (unsigned long long)seq);
				return NULL;
			}
		atomic_fetch_add(&b->rounds, 1);
	}
	return NULL;
}

static int child_checks_busy_page(void *arg)
{
	struct busy *b = arg;
	/* Only the forking thread exists here.  The page is whatever it was at
	 * fork (a write may have been in progress: non-increasing sequence
	 * numbers differing by at most one), and it stays that way. */
	uint64_t first = b->page[0];
	for (size_t i = 1; i < WORDS; i++)
		CHILD_CHECK(b->page[i] <= first && first - b->page[i] <= 1,
			    "word %zu is %llu, word 0 %llu", i, (unsigned long long)b->page[i],
			    (unsigned long long)first);
	uint64_t copy[WORDS];
	for (size_t i = 0; i < WORDS; i++)
		copy[i] = b->page[i];
	usleep(20000);
	for (size_t i = 0; i < WORDS; i++)
		CHILD_CHECK(b->page[i] == copy[i], "the parent's writer reached the child (word %zu)", i);
	for (size_t i = 0; i < WORDS; i++)
		b->page[i] = 0xdeadbeef;
	return 0;
}

Test(fork, fork_while_another_thread_writes_keeps_both_sides_right)
{
	uvmo_vmo_t *v = make_vmo(PG, 0);
	struct busy *b = calloc(1, sizeof(*b));
	b->page = (volatile uint64_t *)map_rw(v);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, busy_writer, b), 0);
	while (atomic_load(&b->rounds) < 100)
		sched_yield();
	for (int i = 0; i < 5; i++)
		run_child(child_checks_busy_page, b);
	unsigned long before = atomic_load(&b->rounds);
	usleep(20000);
	atomic_store(&b->stop, true);
	cr_assert_eq(pthread_join(t, NULL), 0);
	expect_no_thread_failure();
	cr_assert_gt(atomic_load(&b->rounds), before, "the writer stopped making progress");
	for (size_t i = 0; i < WORDS; i++)
		cr_assert_neq(b->page[i], 0xdeadbeef, "a child's write reached the parent");
	free(b);
}

/* ---------------------------------------------------------------------- */
/* pager-backed VMOs: the child has no pager thread                        */
/* ---------------------------------------------------------------------- */

struct paged_world {
	uvmo_pager_t *pager;
	uvmo_vmo_t *vmo;
	uint8_t *map;
	pthread_t server;
};

/* A pager thread that supplies page i filled with i + 1. */
static void *supply_pattern(void *arg)
{
	struct paged_world *w = arg;
	static uint8_t buf[16 * UVMO_PAGE_SIZE];
	struct uvmo_page_request req[4];
	int n;
	while ((n = uvmo_pager_get_requests(w->pager, req, 4, -1)) >= 0) {
		for (int i = 0; i < n; i++) {
			if (req[i].type != UVMO_PAGER_READ)
				continue;
			for (uint64_t o = 0; o < req[i].length; o += UVMO_PAGE_SIZE)
				memset(buf + o, (int)((req[i].offset + o) / UVMO_PAGE_SIZE + 1),
				       UVMO_PAGE_SIZE);
			uvmo_pager_supply_pages(w->pager, req[i].vmo, req[i].offset,
						req[i].length, buf);
		}
	}
	return NULL;
}

static int child_sees_pager_pages_fail(void *arg)
{
	struct paged_world *w = arg;
	uint8_t b = 0;
	CHILD_CHECK(probe_read(w->map, &b) == 0 && b == 1,
		    "a page present at fork reads %u", b);
	int rc = uvmo_vmo_read(w->vmo, &b, 5 * UVMO_PAGE_SIZE, 1);
	CHILD_CHECK(rc == -EBUSY, "read of an absent page returned %d", rc);
	CHILD_CHECK(probe_read(w->map + 6 * UVMO_PAGE_SIZE, &b) == SIGBUS,
		    "a fault on an absent page did not raise SIGBUS");
	return 0;
}

Test(fork, child_fails_absent_pager_pages_instead_of_waiting_for_ever)
{
	struct paged_world w = { 0 };
	expect_ok(uvmo_pager_create(0, &w.pager));
	cr_assert_eq(pthread_create(&w.server, NULL, supply_pattern, &w), 0);
	expect_ok(uvmo_pager_create_vmo(w.pager, 0, 7, 8 * PG, &w.vmo));
	void *addr;
	expect_ok(uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ | UVMO_PERM_WRITE, 0, w.vmo,
				0, 8 * PG, &addr));
	w.map = addr;
	cr_assert_eq(w.map[0], 1);
	run_child(child_sees_pager_pages_fail, &w);
	/* The parent is still served. */
	cr_assert_eq(w.map[6 * PG], 7);
	uvmo_pager_destroy(w.pager);
	pthread_join(w.server, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the pager protocol suite (test_pager.c): pagers and pager
 * VMOs, taking and checking requests, supplying position-dependent
 * content, accesses run in their own thread (so that the test thread can
 * play the pager while they wait), and an automatic test pager: a thread
 * that loops on uvmo_pager_get_requests and answers by a policy the test
 * sets (supply a pattern, fail with an errno, delay, acknowledge DIRTY),
 * counting and recording what it saw.  Public API only.
 *
 * Content convention: a page supplied with seed S holds, at VMO offset o,
 * pattern_byte(S, o) (vmo_test_util.h), so any byte says where it came from.
 */
#ifndef UVMO_TESTS_PAGER_TEST_UTIL_H
#define UVMO_TESTS_PAGER_TEST_UTIL_H

#include "map_test_util.h"

#include <poll.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* pagers, VMOs, content                                                  */
/* ---------------------------------------------------------------------- */

static inline uvmo_pager_t *make_pager(void)
{
	uvmo_pager_t *p = NULL;
	expect_ok(uvmo_pager_create(0, &p));
	cr_assert_not_null(p);
	return p;
}

static inline uvmo_vmo_t *make_pager_vmo(uvmo_pager_t *p, uint32_t options, uint64_t key,
					 uint64_t size)
{
	uvmo_vmo_t *v = NULL;
	expect_ok(uvmo_pager_create_vmo(p, options, key, size, &v));
	cr_assert_not_null(v);
	return v;
}

/* Supply [off, off + len) of @v with the pattern of @seed. */
static inline void supply_pattern(uvmo_pager_t *p, uvmo_vmo_t *v, uint64_t off, uint64_t len,
				  uint64_t seed)
{
	uint8_t *buf = malloc(len);
	cr_assert_not_null(buf);
	fill_pattern(buf, len, seed, off);
	expect_ok(uvmo_pager_supply_pages(p, v, off, len, buf));
	free(buf);
}

/* Assert that [off, off + len) of @v, read by call, holds the pattern of
 * @seed.  Only for ranges that are present (or served by a pager thread). */
#define expect_vmo_pattern(v, off, len, seed)                                 \
	do {                                                                  \
		uint64_t eo_ = (off), el_ = (len);                            \
		uint8_t *eb_ = malloc(el_);                                   \
		cr_assert_not_null(eb_);                                      \
		expect_ok(uvmo_vmo_read((v), eb_, eo_, el_));                 \
		expect_mem_pattern(eb_, el_, (seed), eo_);                    \
		free(eb_);                                                    \
	} while (0)

/* Assert that [off, off + len) of @v, read by call, holds the byte @val. */
#define expect_vmo_val(v, off, len, val)                                      \
	do {                                                                  \
		uint64_t eo_ = (off), el_ = (len);                            \
		uint8_t *eb_ = malloc(el_);                                   \
		cr_assert_not_null(eb_);                                      \
		expect_ok(uvmo_vmo_read((v), eb_, eo_, el_));                 \
		expect_mem_val(eb_, el_, (val));                              \
		free(eb_);                                                    \
	} while (0)

static inline void write_val(uvmo_vmo_t *v, uint64_t off, uint64_t len, uint8_t val)
{
	uint8_t *buf = malloc(len);
	cr_assert_not_null(buf);
	memset(buf, val, len);
	expect_ok(uvmo_vmo_write(v, buf, off, len));
	free(buf);
}

/* ---------------------------------------------------------------------- */
/* requests                                                               */
/* ---------------------------------------------------------------------- */

static inline const char *req_type_name(uint32_t t)
{
	switch (t) {
	case UVMO_PAGER_READ: return "READ";
	case UVMO_PAGER_DIRTY: return "DIRTY";
	case UVMO_PAGER_COMPLETE: return "COMPLETE";
	default: return "unknown";
	}
}

/* Take exactly one request, waiting up to @ms; fails the test if none. */
static inline struct uvmo_page_request take_request(uvmo_pager_t *p, int ms)
{
	struct uvmo_page_request r;
	memset(&r, 0, sizeof(r));
	int n = uvmo_pager_get_requests(p, &r, 1, ms);
	cr_assert_eq(n, 1, "uvmo_pager_get_requests(max 1, %d ms) returned %d (%s), expected one request",
		     ms, n, rc_name(n));
	return r;
}

/* Take every request that arrives within @ms of the last one (at most @max). */
static inline int take_all_requests(uvmo_pager_t *p, struct uvmo_page_request *out, int max,
				    int ms)
{
	int n = 0;
	while (n < max) {
		int rc = uvmo_pager_get_requests(p, out + n, (size_t)(max - n), ms);
		cr_assert_geq(rc, 0, "uvmo_pager_get_requests returned %d (%s)", rc, rc_name(rc));
		if (rc == 0)
			break;
		n += rc;
	}
	return n;
}

#define expect_no_request(p, ms)                                              \
	do {                                                                  \
		struct uvmo_page_request nr_;                                 \
		int n_ = uvmo_pager_get_requests((p), &nr_, 1, (ms));         \
		cr_assert_eq(n_, 0, "expected no request, got %d (first: %s key %llu offset %llu length %llu)", \
			     n_, n_ > 0 ? req_type_name(nr_.type) : "-",      \
			     n_ > 0 ? (unsigned long long)nr_.key : 0ull,     \
			     n_ > 0 ? (unsigned long long)nr_.offset : 0ull,  \
			     n_ > 0 ? (unsigned long long)nr_.length : 0ull); \
	} while (0)

/* Assert that @r is a request of @type about @vmo/@key whose range is
 * page-aligned, non-empty, inside [0, size) and covers [off, off + len). */
#define expect_request_covers(r, type_, key_, vmo_, off, len)                 \
	do {                                                                  \
		struct uvmo_page_request rq_ = (r);                           \
		uint64_t o_ = (off), l_ = (len);                              \
		cr_assert_eq(rq_.type, (type_), "request type %s, expected %s", \
			     req_type_name(rq_.type), req_type_name(type_));  \
		cr_assert_eq(rq_.key, (uint64_t)(key_), "request key %llu, expected %llu", \
			     (unsigned long long)rq_.key, (unsigned long long)(key_)); \
		cr_assert_eq(rq_.vmo, (vmo_), "request vmo %p, expected %p",  \
			     (void *)rq_.vmo, (void *)(vmo_));                \
		cr_assert_eq(rq_.offset % PG, 0, "request offset %llu not page-aligned", \
			     (unsigned long long)rq_.offset);                 \
		cr_assert_eq(rq_.length % PG, 0, "request length %llu not page-aligned", \
			     (unsigned long long)rq_.length);                 \
		cr_assert_gt(rq_.length, 0, "empty request");                 \
		cr_assert(rq_.offset <= o_ && rq_.offset + rq_.length >= o_ + l_, \
			  "request [%llu, +%llu) does not cover [%llu, +%llu)", \
			  (unsigned long long)rq_.offset, (unsigned long long)rq_.length, \
			  (unsigned long long)o_, (unsigned long long)l_);    \
	} while (0)

/* Take requests (waiting up to @ms in all) until the ranges of out[0, n)
 * cover every page of [off, off + len), where out[0, @have) were taken
 * before; returns n (at most @max). */
static inline int take_requests_covering(uvmo_pager_t *p, struct uvmo_page_request *out,
					 int have, int max, uint64_t off, uint64_t len, int ms)
{
	double deadline = now_seconds() + ms / 1000.0;
	int n = have;
	for (;;) {
		bool covered = true;
		for (uint64_t o = off; o < off + len && covered; o += PG) {
			bool hit = false;
			for (int i = 0; i < n && !hit; i++)
				hit = out[i].type != UVMO_PAGER_COMPLETE && out[i].offset <= o &&
				      o < out[i].offset + out[i].length;
			covered = hit;
		}
		if (covered)
			return n;
		cr_assert(n < max && now_seconds() < deadline,
			  "%d requests taken in %d ms do not cover [%llu, +%llu)", n, ms,
			  (unsigned long long)off, (unsigned long long)len);
		int rc = uvmo_pager_get_requests(p, out + n, (size_t)(max - n), 50);
		cr_assert_geq(rc, 0, "uvmo_pager_get_requests returned %d (%s)", rc, rc_name(rc));
		n += rc;
	}
}

/* Poll the pager descriptor for @ms; true if readable. */
static inline bool pager_fd_readable(uvmo_pager_t *p, int ms)
{
	int fd = uvmo_pager_fd(p);
	cr_assert_geq(fd, 0, "uvmo_pager_fd returned %d (%s)", fd, rc_name(fd));
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int rc = poll(&pfd, 1, ms);
	cr_assert_geq(rc, 0, "poll failed");
	return rc == 1 && (pfd.revents & POLLIN);
}

/* ---------------------------------------------------------------------- */
/* dirty ranges                                                           */
/* ---------------------------------------------------------------------- */

#define MAX_RUNS 64

/* All runs of [off, off + len) (asserting they fit); returns the count. */
static inline size_t dirty_runs(uvmo_pager_t *p, uvmo_vmo_t *v, uint64_t off, uint64_t len,
				struct uvmo_dirty_range *out)
{
	size_t actual = ~(size_t)0, avail = ~(size_t)0;
	memset(out, 0xa5, sizeof(*out) * MAX_RUNS);
	expect_ok(uvmo_pager_query_dirty_ranges(p, v, off, len, out, MAX_RUNS, &actual, &avail));
	cr_assert_eq(actual, avail, "query stored %zu runs of %zu", actual, avail);
	cr_assert_leq(actual, MAX_RUNS);
	return actual;
}

#define expect_clean(p, v, off, len)                                          \
	do {                                                                  \
		struct uvmo_dirty_range cr_[MAX_RUNS];                        \
		size_t n_ = dirty_runs((p), (v), (off), (len), cr_);          \
		cr_assert_eq(n_, 0, "expected no dirty run, got %zu (first [%llu, +%llu) options %llu)", \
			     n_, n_ ? (unsigned long long)cr_[0].offset : 0ull, \
			     n_ ? (unsigned long long)cr_[0].length : 0ull,   \
			     n_ ? (unsigned long long)cr_[0].options : 0ull); \
	} while (0)

/* Assert that the runs of the whole of @v are exactly @n given as
 * {offset, length, options} triples (in pages for offset/length). */
static inline void expect_runs_impl(uvmo_pager_t *p, uvmo_vmo_t *v, uint64_t size,
				    const char *what, size_t n, const uint64_t (*want)[3])
{
	struct uvmo_dirty_range r[MAX_RUNS];
	size_t got = dirty_runs(p, v, 0, size, r);
	char desc[512] = "";
	size_t used = 0;
	for (size_t i = 0; i < got && used < sizeof(desc) - 64; i++)
		used += (size_t)snprintf(desc + used, sizeof(desc) - used, " [p%llu,+%llu,%llu]",
					 (unsigned long long)(r[i].offset / PG),
					 (unsigned long long)(r[i].length / PG),
					 (unsigned long long)r[i].options);
	cr_assert_eq(got, n, "%s: %zu dirty runs (%s), expected %zu", what, got, desc, n);
	for (size_t i = 0; i < n; i++)
		cr_assert(r[i].offset == want[i][0] * PG && r[i].length == want[i][1] * PG &&
				  r[i].options == want[i][2],
			  "%s: run %zu is [page %llu, +%llu pages, options %llu], expected [page %llu, +%llu, %llu] (all:%s)",
			  what, i, (unsigned long long)(r[i].offset / PG),
			  (unsigned long long)(r[i].length / PG), (unsigned long long)r[i].options,
			  (unsigned long long)want[i][0], (unsigned long long)want[i][1],
			  (unsigned long long)want[i][2], desc);
}

#define expect_runs(p, v, what, ...)                                          \
	do {                                                                  \
		static const uint64_t w_[][3] = { __VA_ARGS__ };              \
		expect_runs_impl((p), (v), size_of(v), (what), sizeof(w_) / sizeof(w_[0]), w_); \
	} while (0)

/* The same for a VMO of @size bytes whose handle may be closed (pager calls
 * accept the create handle; uvmo_vmo_get_size does not). */
#define expect_runs_sized(p, v, size, what, ...)                              \
	do {                                                                  \
		static const uint64_t w_[][3] = { __VA_ARGS__ };              \
		expect_runs_impl((p), (v), (size), (what), sizeof(w_) / sizeof(w_[0]), w_); \
	} while (0)

/* ---------------------------------------------------------------------- */
/* accesses in their own thread                                           */
/* ---------------------------------------------------------------------- */

enum access_kind { ACC_VMO_READ, ACC_VMO_WRITE, ACC_MAP_READ, ACC_MAP_WRITE };

struct access {
	enum access_kind kind;
	uvmo_vmo_t *vmo;      /* ACC_VMO_* */
	uint8_t *map;         /* ACC_MAP_*: base of a mapping of the VMO from offset 0 */
	uint64_t offset, len;
	uint8_t val;          /* byte written by the write kinds */
	uint8_t *buf;         /* what was read (len bytes) */
	int rc;               /* ACC_VMO_*: the call's return */
	int sig;              /* ACC_MAP_*: 0 or the signal raised */
	atomic_bool done;
	bool joined;
	pthread_t t;
};

static void *access_thread(void *arg)
{
	struct access *a = arg;
	switch (a->kind) {
	case ACC_VMO_READ:
		a->rc = uvmo_vmo_read(a->vmo, a->buf, a->offset, a->len);
		break;
	case ACC_VMO_WRITE:
		memset(a->buf, a->val, a->len);
		a->rc = uvmo_vmo_write(a->vmo, a->buf, a->offset, a->len);
		break;
	case ACC_MAP_READ:
		a->sig = probe_copy(a->buf, a->map + a->offset, a->len);
		break;
	case ACC_MAP_WRITE:
		memset(a->buf, a->val, a->len);
		a->sig = probe_copy(a->map + a->offset, a->buf, a->len);
		break;
	}
	atomic_store(&a->done, true);
	return NULL;
}

static inline void access_start(struct access *a)
{
	a->buf = calloc(1, a->len);
	cr_assert_not_null(a->buf);
	a->rc = 1;
	a->sig = -1;
	atomic_store(&a->done, false);
	a->joined = false;
	probe_init();
	cr_assert_eq(pthread_create(&a->t, NULL, access_thread, a), 0);
}

static inline struct access *start_vmo_read(struct access *a, uvmo_vmo_t *v, uint64_t off,
					    uint64_t len)
{
	*a = (struct access){ .kind = ACC_VMO_READ, .vmo = v, .offset = off, .len = len };
	access_start(a);
	return a;
}

static inline struct access *start_vmo_write(struct access *a, uvmo_vmo_t *v, uint64_t off,
					     uint64_t len, uint8_t val)
{
	*a = (struct access){ .kind = ACC_VMO_WRITE, .vmo = v, .offset = off, .len = len,
			      .val = val };
	access_start(a);
	return a;
}

static inline struct access *start_map_read(struct access *a, uint8_t *map, uint64_t off,
					    uint64_t len)
{
	*a = (struct access){ .kind = ACC_MAP_READ, .map = map, .offset = off, .len = len };
	access_start(a);
	return a;
}

static inline struct access *start_map_write(struct access *a, uint8_t *map, uint64_t off,
					     uint64_t len, uint8_t val)
{
	*a = (struct access){ .kind = ACC_MAP_WRITE, .map = map, .offset = off, .len = len,
			      .val = val };
	access_start(a);
	return a;
}

/* Join within @ms; false (thread left running) if it did not finish. */
static inline bool access_join(struct access *a, int ms)
{
	if (a->joined)
		return true;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (pthread_timedjoin_np(a->t, NULL, &ts) != 0)
		return false;
	a->joined = true;
	return true;
}

#define expect_access_done(a, ms)                                             \
	cr_assert(access_join((a), (ms)),                                     \
		  "%s: the access did not finish within %d ms (hang?)", #a, (ms))

/* The access is still waiting after @ms. */
#define expect_access_waiting(a, ms)                                          \
	do {                                                                  \
		usleep((useconds_t)(ms) * 1000);                              \
		cr_assert(!atomic_load(&(a)->done), "%s finished without the pager answering (rc %d, sig %d)", \
			  #a, (a)->rc, (a)->sig);                             \
	} while (0)

static inline void access_free(struct access *a)
{
	free(a->buf);
	a->buf = NULL;
}

/* ---------------------------------------------------------------------- */
/* the automatic test pager                                               */
/* ---------------------------------------------------------------------- */

#define TP_LOG_MAX 1024

struct test_pager {
	uvmo_pager_t *pager;
	pthread_t thread;
	bool running;
	atomic_bool stop;
	/* policy: READ is supplied with pattern_byte(seed, offset) unless
	 * read_errno is set (then FAILed with it); DIRTY is acknowledged
	 * when ack_dirty; every answer waits delay_us first. */
	_Atomic uint64_t seed;
	atomic_int read_errno;
	atomic_bool ack_dirty;
	atomic_int delay_us;
	/* what it saw */
	atomic_uint reads, read_pages, dirties, completes, errors;
	pthread_mutex_t lock;
	struct uvmo_page_request log[TP_LOG_MAX];
	size_t nlog;
};

static void tp_answer(struct test_pager *tp, const struct uvmo_page_request *r)
{
	pthread_mutex_lock(&tp->lock);
	if (tp->nlog < TP_LOG_MAX)
		tp->log[tp->nlog++] = *r;
	pthread_mutex_unlock(&tp->lock);
	int delay = atomic_load(&tp->delay_us);
	if (delay > 0 && r->type != UVMO_PAGER_COMPLETE)
		usleep((useconds_t)delay);
	int rc = 0;
	switch (r->type) {
	case UVMO_PAGER_READ: {
		atomic_fetch_add(&tp->reads, 1);
		atomic_fetch_add(&tp->read_pages, (unsigned)(r->length / PG));
		int e = atomic_load(&tp->read_errno);
		if (e) {
			rc = uvmo_pager_op_range(tp->pager, UVMO_PAGER_OP_FAIL, r->vmo, r->offset,
						 r->length, (uint64_t)e);
			break;
		}
		uint8_t *buf = malloc(r->length);
		if (!buf) {
			thread_fail("test pager: out of memory");
			return;
		}
		fill_pattern(buf, r->length, atomic_load(&tp->seed), r->offset);
		rc = uvmo_pager_supply_pages(tp->pager, r->vmo, r->offset, r->length, buf);
		free(buf);
		break;
	}
	case UVMO_PAGER_DIRTY:
		atomic_fetch_add(&tp->dirties, 1);
		if (atomic_load(&tp->ack_dirty))
			rc = uvmo_pager_op_range(tp->pager, UVMO_PAGER_OP_DIRTY, r->vmo, r->offset,
						 r->length, 0);
		break;
	case UVMO_PAGER_COMPLETE:
		atomic_fetch_add(&tp->completes, 1);
		break;
	default:
		thread_fail("test pager: request of unknown type %u", r->type);
		return;
	}
	/* -ENOENT: the VMO died or was detached since; -ERANGE: it shrank. */
	if (rc < 0 && rc != -ENOENT && rc != -ERANGE) {
		atomic_fetch_add(&tp->errors, 1);
		thread_fail("test pager: answering %s [%llu, +%llu) failed: %d (%s)",
			    req_type_name(r->type), (unsigned long long)r->offset,
			    (unsigned long long)r->length, rc, rc_name(rc));
	}
}

static void *tp_thread(void *arg)
{
	struct test_pager *tp = arg;
	struct uvmo_page_request reqs[16];
	while (!atomic_load(&tp->stop)) {
		int n = uvmo_pager_get_requests(tp->pager, reqs, 16, 20);
		if (n < 0) {
			thread_fail("test pager: get_requests returned %d (%s)", n, rc_name(n));
			return NULL;
		}
		for (int i = 0; i < n; i++)
			tp_answer(tp, &reqs[i]);
	}
	return NULL;
}

/* Start the automatic pager on a new pager; supplies the pattern of @seed. */
static inline void tp_start(struct test_pager *tp, uint64_t seed)
{
	memset(tp, 0, sizeof(*tp));
	pthread_mutex_init(&tp->lock, NULL);
	tp->pager = make_pager();
	atomic_store(&tp->seed, seed);
	atomic_store(&tp->ack_dirty, true);
	cr_assert_eq(pthread_create(&tp->thread, NULL, tp_thread, tp), 0);
	tp->running = true;
}

/* Stop the thread (the pager stays). */
static inline void tp_stop(struct test_pager *tp)
{
	if (!tp->running)
		return;
	atomic_store(&tp->stop, true);
	cr_assert_eq(pthread_join(tp->thread, NULL), 0);
	tp->running = false;
}

/* Number of logged requests of @type about @vmo. */
static inline size_t tp_count(struct test_pager *tp, uint32_t type, uvmo_vmo_t *vmo)
{
	size_t n = 0;
	pthread_mutex_lock(&tp->lock);
	for (size_t i = 0; i < tp->nlog; i++)
		if (tp->log[i].type == type && (!vmo || tp->log[i].vmo == vmo))
			n++;
	pthread_mutex_unlock(&tp->lock);
	return n;
}

#endif /* UVMO_TESTS_PAGER_TEST_UTIL_H */

/* SPDX-License-Identifier: MIT */
/*
 * The differential engine through mappings: see mapped.h.
 *
 * Each thread keeps its own pool of VMOs (a uvmo handle and its model twin)
 * and its own list of mapping records.  A record is one contiguous piece of
 * a mapping with one permission: unmapping or protecting part of a mapping
 * splits its record exactly as uvmo must split the mapping, so for every
 * surviving page va - addr + off stays the VMO offset it shows.  A VMO whose
 * handle was closed lives on (in the model too) while a record maps it.
 *
 * Only valid calls are generated (the per-call error cases are covered by
 * test_vmar.c and the VMO differential engine); the few faults generated
 * on purpose (SIGSEGV for a write to a read-only mapping, SIGBUS past the
 * end of a VMO) are caught with a per-thread sigsetjmp probe.
 */
#include "mapped.h"

#include "model.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uvmo/uvmo.h>

#define PAGE        ((uint64_t)UVMO_PAGE_SIZE)
#define MAX_PAGES   16u   /* VMOs are at most this large */
#define PAST_END    2u    /* ALLOW_FAULTS mappings reach this far past the end */
#define MAX_OBJS    12u   /* live handles a thread keeps at most */
#define MAX_RECS    24u   /* mapping records before new maps stop */
#define REC_CAP     96u   /* records including the pieces of splits */
#define SUB_PAGES   256u  /* each thread's own sub-VMAR */
#define RING        12u   /* last operations kept for failure reports */
#define BUF_BYTES   ((MAX_PAGES + PAST_END + 1) * PAGE)
#define MAX_THREADS 16u
#define RS_PAGES    4u    /* MAPPED_RESTORE: each thread's part of the shared VMO */
#define RS_BYTES    (RS_PAGES * PAGE)
#define RS_EVERY    64u   /* operations between two shared rounds */
#define DIFF_RUNS   16u

#define PERM_R  UVMO_PERM_READ
#define PERM_RW (UVMO_PERM_READ | UVMO_PERM_WRITE)

/* ---------------------------------------------------------------------- */
/* signal probes                                                          */
/* ---------------------------------------------------------------------- */

static _Thread_local sigjmp_buf probe_env;
static _Thread_local volatile sig_atomic_t probe_armed;
static _Thread_local timer_t probe_timer;
static _Thread_local bool probe_timer_made;

/* A probe that has not finished after this long is reported as hung (the
 * watchdog signal interrupts the thread's wait for its fault). */
#define PROBE_WATCHDOG_S 3
#define SIG_WATCHDOG SIGUSR1

static void probe_handler(int sig)
{
	if (probe_armed) {
		probe_armed = 0;
		siglongjmp(probe_env, sig);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static void probe_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = probe_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIG_WATCHDOG, &sa, NULL);
}

static void watchdog(bool on)
{
	if (!probe_timer_made) {
		struct sigevent ev;
		memset(&ev, 0, sizeof(ev));
		ev.sigev_notify = SIGEV_THREAD_ID;
		ev.sigev_signo = SIG_WATCHDOG;
		ev._sigev_un._tid = gettid();
		if (timer_create(CLOCK_MONOTONIC, &ev, &probe_timer) != 0)
			return;
		probe_timer_made = true;
	}
	struct itimerspec its;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = on ? PROBE_WATCHDOG_S : 0;
	timer_settime(probe_timer, 0, &its, NULL);
}

/* One access at @p: a read, or a write of @val.  0, the signal raised, or
 * SIG_WATCHDOG if the access did not complete in PROBE_WATCHDOG_S. */
static int probe(uint8_t *p, bool write, uint8_t val)
{
	int sig = sigsetjmp(probe_env, 1);
	if (sig) {
		watchdog(false);
		return sig;
	}
	watchdog(true);
	probe_armed = 1;
	if (write)
		*(volatile uint8_t *)p = val;
	else
		(void)*(volatile uint8_t *)p;
	probe_armed = 0;
	watchdog(false);
	return 0;
}

static const char *signame(int sig)
{
	switch (sig) {
	case 0: return "none (the access succeeded)";
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIG_WATCHDOG: return "none: the access hung (no answer in " "3 s)";
	default: return "another signal";
	}
}

/* ---------------------------------------------------------------------- */
/* state                                                                  */
/* ---------------------------------------------------------------------- */

struct obj {
	uvmo_vmo_t *h;        /* NULL once the handle is closed */
	struct model_vmo *m;
	unsigned maps;        /* records that keep it alive */
	unsigned serial;
	bool writable;
	bool resizable;
};

struct rec {
	uint8_t *addr;
	uint64_t len;
	struct obj *o;
	uint64_t off;         /* VMO offset shown at addr */
	uint32_t perms;
	bool in_sub;          /* in the thread's sub-VMAR, else in the root */
};

struct shared {
	uint64_t seed;
	unsigned nops, flags;
	uvmo_vmo_t *base_h;   /* MAPPED_SHARED_BASE: never written after set-up */
	struct model_vmo *base_m;
	atomic_bool stop;
	pthread_mutex_t err_lock;
	char *err;
	size_t errlen;
	bool failed;
	/* MAPPED_RESTORE: the VMO every thread writes a part of through one
	 * mapping, its current snapshot and that snapshot's bytes, and a
	 * barrier that gives up once a thread has failed. */
	uvmo_vmo_t *rs_h, *rs_snap;
	uint8_t *rs_map;
	uint8_t *rs_img;
	uint64_t rs_size;
	int rs_restored;          /* what thread 0 did in this round */
	unsigned long rs_rounds, rs_restores;
	pthread_mutex_t bar_lock;
	pthread_cond_t bar_cond;
	unsigned bar_n, bar_arrived;
	unsigned long bar_gen;
	/* MAPPED_PAGER: the pager of every thread's pager-backed roots, and
	 * the thread that answers it. */
	uvmo_pager_t *pager;
	pthread_t pager_thread;
	atomic_bool pager_stop;
	atomic_bool pager_failed;
	char pager_err[200];
};

struct ctx {
	struct shared *sh;
	unsigned thread;
	uint64_t rng;
	struct obj *objs[MAX_OBJS * 4];
	unsigned nobjs;
	struct rec recs[REC_CAP];
	unsigned nrecs;
	uvmo_vmar_t *sub;
	uint8_t *sub_base;
	unsigned next_serial;
	unsigned long op;
	char desc[240];
	char ring[RING][280];
	unsigned ring_next;
	int pipe_fd[2];
	unsigned long count_map, count_unmap, count_protect, count_mwrite, count_mcheck,
		count_faults, count_snap, count_restore, count_diff;
	uint8_t rs_want[RS_BYTES];   /* MAPPED_RESTORE: this thread's part of the shared VMO */
	uint8_t buf[BUF_BYTES];
	uint8_t want[BUF_BYTES];
};

static uint64_t rnd(struct ctx *c, uint64_t n)
{
	uint64_t x = c->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	c->rng = x;
	return n ? x % n : 0;
}

__attribute__((format(printf, 2, 3))) static void note(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->desc, sizeof(c->desc), fmt, ap);
	va_end(ap);
	snprintf(c->ring[c->ring_next % RING], sizeof(c->ring[0]), "#%lu %s", c->op, c->desc);
	c->ring_next++;
	if (c->sh->flags & MAPPED_TRACE)
		fprintf(stderr, "[t%u #%lu] %s\n", c->thread, c->op, c->desc);
}

__attribute__((format(printf, 2, 3))) static bool fail(struct ctx *c, const char *fmt, ...)
{
	struct shared *sh = c->sh;
	pthread_mutex_lock(&sh->err_lock);
	if (!sh->failed) {
		char what[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(what, sizeof(what), fmt, ap);
		va_end(ap);
		int n = snprintf(sh->err, sh->errlen,
				 "seed %" PRIu64 " thread %u op %lu (%s): %s\nlast operations:",
				 sh->seed, c->thread, c->op, c->desc, what);
		unsigned first = c->ring_next > RING ? c->ring_next - RING : 0;
		for (unsigned i = first; i < c->ring_next && n > 0 && (size_t)n < sh->errlen; i++)
			n += snprintf(sh->err + n, sh->errlen - (size_t)n, "\n  %s",
				      c->ring[i % RING]);
		sh->failed = true;
	}
	pthread_mutex_unlock(&sh->err_lock);
	atomic_store(&sh->stop, true);
	/* Threads waiting at the shared round's barrier give up. */
	pthread_mutex_lock(&sh->bar_lock);
	pthread_cond_broadcast(&sh->bar_cond);
	pthread_mutex_unlock(&sh->bar_lock);
	return false;
}

#define CHECK(c, cond, ...) ((cond) ? true : fail((c), __VA_ARGS__))

#define CALL_OK(c, expr)                                                      \
	({                                                                    \
		int rc_ = (expr);                                             \
		CHECK((c), rc_ == 0, "%s returned %d", #expr, rc_);           \
	})

/* MAPPED_PAGER: READ is answered with model_pager_byte(key, offset), so the
 * content never depends on when a page is supplied. */
static void *pager_main(void *arg)
{
	struct shared *sh = arg;
	struct uvmo_page_request reqs[8];
	static _Thread_local uint8_t buf[(MAX_PAGES + PAST_END + 1) * 4096];

	while (!atomic_load(&sh->pager_stop)) {
		int n = uvmo_pager_get_requests(sh->pager, reqs, 8, 20);
		if (n < 0) {
			snprintf(sh->pager_err, sizeof(sh->pager_err), "pager thread: get_requests returned %d", n);
			atomic_store(&sh->pager_failed, true);
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			const struct uvmo_page_request *r = &reqs[i];
			int rc = 0;
			if (r->type == UVMO_PAGER_READ) {
				if (r->length > sizeof(buf)) {
					rc = -E2BIG;
				} else {
					for (uint64_t j = 0; j < r->length; j++)
						buf[j] = model_pager_byte(r->key, r->offset + j);
					rc = uvmo_pager_supply_pages(sh->pager, r->vmo, r->offset, r->length, buf);
				}
			} else if (r->type == UVMO_PAGER_DIRTY) {
				rc = uvmo_pager_op_range(sh->pager, UVMO_PAGER_OP_DIRTY, r->vmo, r->offset,
							 r->length, 0);
			}
			/* -ENOENT / -ERANGE: the VMO died or shrank meanwhile. */
			if (rc < 0 && rc != -ENOENT && rc != -ERANGE && !atomic_load(&sh->pager_failed)) {
				snprintf(sh->pager_err, sizeof(sh->pager_err),
					 "pager thread: answering type %u key %" PRIu64 " [%" PRIu64 ", +%" PRIu64
					 ") returned %d", r->type, r->key, r->offset, r->length, rc);
				atomic_store(&sh->pager_failed, true);
			}
		}
	}
	return NULL;
}

static uint64_t osize(const struct obj *o)
{
	return model_size(o->m);
}

/* ---------------------------------------------------------------------- */
/* objects                                                                */
/* ---------------------------------------------------------------------- */

static struct obj *obj_add(struct ctx *c, uvmo_vmo_t *h, struct model_vmo *m, bool writable,
			   bool resizable)
{
	struct obj *o = calloc(1, sizeof(*o));
	if (!o)
		abort();
	o->h = h;
	o->m = m;
	o->writable = writable;
	o->resizable = resizable;
	o->serial = ++c->next_serial;
	c->objs[c->nobjs++] = o;
	return o;
}

/* Drop @o from the books once neither its handle nor a mapping needs it. */
static void obj_maybe_release(struct ctx *c, struct obj *o)
{
	if (o->h || o->maps)
		return;
	for (unsigned i = 0; i < c->nobjs; i++)
		if (c->objs[i] == o) {
			c->objs[i] = c->objs[--c->nobjs];
			break;
		}
	model_close(o->m);
	free(o);
}

static unsigned live_count(struct ctx *c)
{
	unsigned n = 0;
	for (unsigned i = 0; i < c->nobjs; i++)
		n += c->objs[i]->h != NULL;
	return n;
}

/* A random object with an open handle (optionally writable), or NULL. */
static struct obj *pick_live(struct ctx *c, bool need_write)
{
	struct obj *cand[MAX_OBJS * 4];
	unsigned n = 0;
	for (unsigned i = 0; i < c->nobjs; i++)
		if (c->objs[i]->h && (!need_write || c->objs[i]->writable))
			cand[n++] = c->objs[i];
	return n ? cand[rnd(c, n)] : NULL;
}

/* ---------------------------------------------------------------------- */
/* records                                                                */
/* ---------------------------------------------------------------------- */

static uvmo_vmar_t *rec_vmar(struct ctx *c, const struct rec *r)
{
	return r->in_sub ? c->sub : uvmo_vmar_root();
}

static void rec_add(struct ctx *c, struct rec r)
{
	c->recs[c->nrecs++] = r;
	r.o->maps++;
}

static void rec_remove(struct ctx *c, unsigned i)
{
	struct obj *o = c->recs[i].o;
	c->recs[i] = c->recs[--c->nrecs];
	o->maps--;
	obj_maybe_release(c, o);
}

/* The records of one region (the sub-VMAR, or this thread's part of the
 * root) lose [a, a + len): pieces left of and right of it survive, each
 * still showing va - addr + off. */
static void cut_range(struct ctx *c, bool in_sub, uint8_t *a, uint64_t len)
{
	uint8_t *e = a + len;
	for (unsigned i = 0; i < c->nrecs;) {
		struct rec r = c->recs[i];
		uint8_t *re = r.addr + r.len;
		if (r.in_sub != in_sub || re <= a || r.addr >= e) {
			i++;
			continue;
		}
		/* Add the surviving pieces before dropping the record, so the
		 * object never looks unmapped in between. */
		if (r.addr < a) {
			struct rec left = r;
			left.len = (uint64_t)(a - r.addr);
			rec_add(c, left);
		}
		if (re > e) {
			struct rec right = r;
			right.addr = e;
			right.len = (uint64_t)(re - e);
			right.off = r.off + (uint64_t)(e - r.addr);
			rec_add(c, right);
		}
		rec_remove(c, i);
	}
}

static bool overlaps_recs(struct ctx *c, bool in_sub, uint8_t *a, uint64_t len)
{
	for (unsigned i = 0; i < c->nrecs; i++) {
		const struct rec *r = &c->recs[i];
		if (r->in_sub == in_sub && r->addr < a + len && a < r->addr + r->len)
			return true;
	}
	return false;
}

/* Is there a free run of @pages pages in the sub-VMAR, by our books? */
static bool sub_has_room(struct ctx *c, uint64_t pages)
{
	uint64_t run = 0;
	for (uint64_t p = 0; p < SUB_PAGES; p++) {
		run = overlaps_recs(c, true, c->sub_base + p * PAGE, PAGE) ? 0 : run + 1;
		if (run >= pages)
			return true;
	}
	return false;
}

/* A random record (optionally writable, optionally showing at least one
 * byte inside its VMO), or -1. */
static int pick_rec(struct ctx *c, bool need_write, bool need_valid)
{
	unsigned cand[REC_CAP], n = 0;
	for (unsigned i = 0; i < c->nrecs; i++) {
		const struct rec *r = &c->recs[i];
		if (need_write && !(r->perms & UVMO_PERM_WRITE))
			continue;
		if (need_valid && r->off >= osize(r->o))
			continue;
		cand[n++] = i;
	}
	return n ? (int)cand[rnd(c, n)] : -1;
}

/* Bytes of @r that lie inside its VMO. */
static uint64_t rec_valid(const struct rec *r)
{
	uint64_t size = osize(r->o);
	if (r->off >= size)
		return 0;
	return size - r->off < r->len ? size - r->off : r->len;
}

/* ---------------------------------------------------------------------- */
/* checks                                                                 */
/* ---------------------------------------------------------------------- */

static bool compare(struct ctx *c, const uint8_t *got, const uint8_t *want, uint64_t len,
		    const char *what, uint64_t base_off)
{
	if (memcmp(got, want, len) == 0)
		return true;
	uint64_t i = 0;
	while (i + 1 < len && got[i] == want[i])
		i++;
	return fail(c, "%s: VMO offset %" PRIu64 " (page %" PRIu64 " + %" PRIu64
		    ") is 0x%02x, the model says 0x%02x", what, base_off + i,
		    (base_off + i) / PAGE, (base_off + i) % PAGE, got[i], want[i]);
}

/* Mapped bytes == model, and (handle open) uvmo_vmo_read == model; the
 * first page past the VMO's end, if mapped, raises SIGBUS. */
static bool check_rec(struct ctx *c, const struct rec *r)
{
	uint64_t valid = rec_valid(r);
	c->count_mcheck++;
	if (valid) {
		model_read(r->o->m, r->off, c->want, valid);
		if (!compare(c, r->addr, c->want, valid, "mapped byte", r->off))
			return false;
		if (r->o->h) {
			if (!CALL_OK(c, uvmo_vmo_read(r->o->h, c->buf, r->off, valid)))
				return false;
			if (!compare(c, c->buf, c->want, valid, "uvmo_vmo_read", r->off))
				return false;
		}
	}
	if (valid < r->len && !(c->sh->flags & MAPPED_NO_PAST_END)) {
		uint64_t at = (valid + PAGE - 1) / PAGE * PAGE;
		if (at < r->len) {
			c->count_faults++;
			/* Writes only where the mapping may write: elsewhere
			 * they raise SIGSEGV, not SIGBUS. */
			bool wr = (r->perms & UVMO_PERM_WRITE) && rnd(c, 2);
			uint64_t in = rnd(c, PAGE);
			int sig = probe(r->addr + at + in, wr, 0x5a);
			return CHECK(c, sig == SIGBUS,
				     "a %s through the mapping at VMO offset %" PRIu64
				     " (the VMO is %" PRIu64 " bytes) gave %s, expected SIGBUS",
				     wr ? "write" : "read", r->off + at + in, osize(r->o),
				     signame(sig));
		}
	}
	return true;
}

static bool check_obj(struct ctx *c, const struct obj *o)
{
	uint64_t size = osize(o);
	uint64_t got = ~0ull;
	if (!CALL_OK(c, uvmo_vmo_get_size(o->h, &got)))
		return false;
	if (!CHECK(c, got == size, "size %" PRIu64 ", the model says %" PRIu64, got, size))
		return false;
	if (!size)
		return true;
	if (!CALL_OK(c, uvmo_vmo_read(o->h, c->buf, 0, size)))
		return false;
	model_read(o->m, 0, c->want, size);
	char what[64];
	snprintf(what, sizeof(what), "uvmo_vmo_read of vmo %u", o->serial);
	return compare(c, c->buf, c->want, size, what, 0);
}

static bool check_all(struct ctx *c)
{
	for (unsigned i = 0; i < c->nrecs; i++)
		if (!check_rec(c, &c->recs[i]))
			return false;
	for (unsigned i = 0; i < c->nobjs; i++)
		if (c->objs[i]->h && !check_obj(c, c->objs[i]))
			return false;
	return true;
}

/* ---------------------------------------------------------------------- */
/* operations                                                             */
/* ---------------------------------------------------------------------- */

static bool op_create(struct ctx *c)
{
	if (live_count(c) >= MAX_OBJS)
		return true;
	uint64_t size = (1 + rnd(c, MAX_PAGES)) * PAGE;
	bool resizable = rnd(c, 4) == 0;
	bool paged = (c->sh->flags & MAPPED_PAGER) && rnd(c, 3) == 0;
	note(c, "create %" PRIu64 " pages%s%s", size / PAGE, resizable ? " resizable" : "",
	     paged ? " pager-backed" : "");
	uvmo_vmo_t *h = NULL;
	struct obj *o;
	if (paged) {
		/* The key names the VMO across threads: thread and serial. */
		uint64_t key = ((uint64_t)c->thread << 32) | (c->next_serial + 1);
		if (!CALL_OK(c, uvmo_pager_create_vmo(c->sh->pager, resizable ? UVMO_VMO_RESIZABLE : 0,
						      key, size, &h)))
			return false;
		o = obj_add(c, h, model_pager_create(size, resizable, key), true, resizable);
	} else {
		if (!CALL_OK(c, uvmo_vmo_create(size, resizable ? UVMO_VMO_RESIZABLE : 0, &h)))
			return false;
		o = obj_add(c, h, model_create(size, resizable), true, resizable);
	}
	/* Start most VMOs with content. */
	if (rnd(c, 3)) {
		for (uint64_t i = 0; i < size; i++)
			c->buf[i] = (uint8_t)rnd(c, 256);
		if (!CALL_OK(c, uvmo_vmo_write(h, c->buf, 0, size)))
			return false;
		model_write(o->m, 0, c->buf, size);
	}
	return true;
}

static bool op_child(struct ctx *c)
{
	struct obj *p = pick_live(c, true);
	if (!p || live_count(c) >= MAX_OBJS || osize(p) == 0)
		return true;
	uint64_t psize = osize(p);
	uvmo_vmo_t *h = NULL;
	/* Pager-backed trees: no clone of an at-least-on-write child (the
	 * contract allows slices of one; the model does not state them). */
	if (p->m->follow)
		return true;
	bool nowrite = rnd(c, 6) == 0;
	if (!p->resizable && rnd(c, 4) == 0) {
		uint64_t off = rnd(c, psize / PAGE) * PAGE;
		uint64_t size = (1 + rnd(c, (psize - off) / PAGE)) * PAGE;
		uint32_t opts = UVMO_CHILD_SLICE | (nowrite ? UVMO_CHILD_NO_WRITE : 0);
		note(c, "slice of vmo %u at page %" PRIu64 ", %" PRIu64 " pages%s", p->serial,
		     off / PAGE, size / PAGE, nowrite ? " no-write" : "");
		if (!CALL_OK(c, uvmo_vmo_create_child(p->h, opts, off, size, &h)))
			return false;
		struct obj *o = obj_add(c, h, model_slice(p->m, off, size), !nowrite, false);
		o->m->pager = p->m->pager;
		return true;
	}
	if (p->m->pager) {
		/* At-least-on-write, of a parent that never changes size. */
		if (p->resizable)
			return true;
		uint64_t off = rnd(c, psize / PAGE) * PAGE;
		uint64_t size = (1 + rnd(c, MAX_PAGES)) * PAGE;
		bool resizable = rnd(c, 4) == 0;
		uint32_t opts = UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE |
				(resizable ? UVMO_CHILD_RESIZABLE : 0) | (nowrite ? UVMO_CHILD_NO_WRITE : 0);
		note(c, "at-least-on-write child of pager-backed vmo %u at page %" PRIu64 ", %" PRIu64
		     " pages%s%s", p->serial, off / PAGE, size / PAGE, resizable ? " resizable" : "",
		     nowrite ? " no-write" : "");
		if (!CALL_OK(c, uvmo_vmo_create_child(p->h, opts, off, size, &h)))
			return false;
		struct model_vmo *m = model_follow(p->m, off, size);
		m->resizable = resizable;
		m->no_write = nowrite;
		obj_add(c, h, m, !nowrite, resizable);
		return true;
	}
	uint64_t off = rnd(c, psize / PAGE) * PAGE;
	uint64_t size = (1 + rnd(c, MAX_PAGES)) * PAGE;
	bool resizable = rnd(c, 4) == 0;
	uint32_t opts = (rnd(c, 2) ? UVMO_CHILD_SNAPSHOT : UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE) |
			(resizable ? UVMO_CHILD_RESIZABLE : 0) | (nowrite ? UVMO_CHILD_NO_WRITE : 0);
	note(c, "snapshot of vmo %u at page %" PRIu64 ", %" PRIu64 " pages%s%s", p->serial,
	     off / PAGE, size / PAGE, resizable ? " resizable" : "", nowrite ? " no-write" : "");
	if (!CALL_OK(c, uvmo_vmo_create_child(p->h, opts, off, size, &h)))
		return false;
	struct model_vmo *m = model_snapshot(p->m, off, size);
	m->resizable = resizable;
	m->no_write = nowrite;
	obj_add(c, h, m, !nowrite, resizable);
	return true;
}

static bool op_base_snapshot(struct ctx *c)
{
	struct shared *sh = c->sh;
	if (!sh->base_h || live_count(c) >= MAX_OBJS)
		return true;
	uint64_t bsize = model_size(sh->base_m);
	uint64_t off = rnd(c, bsize / PAGE) * PAGE;
	uint64_t size = (1 + rnd(c, MAX_PAGES)) * PAGE;
	note(c, "snapshot of the shared base at page %" PRIu64 ", %" PRIu64 " pages", off / PAGE,
	     size / PAGE);
	uvmo_vmo_t *h = NULL;
	if (!CALL_OK(c, uvmo_vmo_create_child(sh->base_h, UVMO_CHILD_SNAPSHOT, off, size, &h)))
		return false;
	obj_add(c, h, model_snapshot(sh->base_m, off, size), true, false);
	return true;
}

static bool op_map(struct ctx *c)
{
	struct obj *o = pick_live(c, false);
	if (!o || c->nrecs >= MAX_RECS)
		return true;
	uint64_t pages = osize(o) / PAGE;
	if (!pages && !o->resizable)
		return true;
	uint64_t offp = pages ? rnd(c, pages) : 0;
	uint64_t reach = pages - offp + (o->resizable ? PAST_END : 0);
	if (!reach)
		return true;
	uint64_t len = (1 + rnd(c, reach)) * PAGE;
	uint64_t off = offp * PAGE;
	uint32_t perms = o->writable && rnd(c, 3) ? PERM_RW : PERM_R;
	uint32_t opts = perms;
	if (o->resizable || rnd(c, 4) == 0)
		opts |= UVMO_VMAR_ALLOW_FAULTS;
	unsigned where = (unsigned)rnd(c, 8); /* 0-3 root, 4-5 sub, 6 specific, 7 overwrite */
	if (where < 6 && (c->sh->flags & MAPPED_MAP_RANGE) && rnd(c, 4) == 0)
		opts |= UVMO_VMAR_MAP_RANGE;
	bool in_sub = where >= 4;
	uint64_t vmar_off = 0;
	if (where == 6) {
		/* A free spot by our books, if one turns up. */
		uint64_t at = rnd(c, SUB_PAGES - len / PAGE + 1) * PAGE;
		if (overlaps_recs(c, true, c->sub_base + at, len))
			return true;
		vmar_off = at;
		opts |= UVMO_VMAR_SPECIFIC;
	} else if (where == 7) {
		vmar_off = rnd(c, SUB_PAGES - len / PAGE + 1) * PAGE;
		opts |= UVMO_VMAR_SPECIFIC_OVERWRITE;
	}
	static const char *const wname[] = { "root", "root", "root", "root", "sub", "sub",
					     "sub specific", "sub overwrite" };
	note(c, "map vmo %u pages %" PRIu64 "..+%" PRIu64 " %s%s%s in %s (+%" PRIu64 ")",
	     o->serial, off / PAGE, len / PAGE, perms & UVMO_PERM_WRITE ? "rw" : "r",
	     opts & UVMO_VMAR_ALLOW_FAULTS ? " allow-faults" : "",
	     opts & UVMO_VMAR_MAP_RANGE ? " map-range" : "", wname[where], vmar_off / PAGE);
	void *addr = NULL;
	int rc = uvmo_vmar_map(in_sub ? c->sub : uvmo_vmar_root(), opts, vmar_off, o->h, off, len,
			       &addr);
	if (rc == -ENOMEM && (where == 4 || where == 5) && !sub_has_room(c, len / PAGE))
		return true; /* the sub-VMAR is full, honestly */
	if (!CHECK(c, rc == 0, "uvmo_vmar_map returned %d", rc))
		return false;
	uint8_t *a = addr;
	if (!CHECK(c, (uintptr_t)a % PAGE == 0, "unaligned mapping %p", addr))
		return false;
	if (in_sub) {
		if (!CHECK(c, a >= c->sub_base && a + len <= c->sub_base + SUB_PAGES * PAGE,
			   "mapping %p lies outside the sub-VMAR %p", addr, (void *)c->sub_base))
			return false;
		if (where >= 6 &&
		    !CHECK(c, a == c->sub_base + vmar_off, "SPECIFIC mapping at %p, asked +%" PRIu64,
			   addr, vmar_off))
			return false;
		if (where == 7)
			cut_range(c, true, a, len);
	}
	if (!CHECK(c, !overlaps_recs(c, in_sub, a, len), "mapping %p overlaps a live one", addr))
		return false;
	if (in_sub == false &&
	    !CHECK(c, a + len <= c->sub_base || a >= c->sub_base + SUB_PAGES * PAGE,
		   "root mapping %p lies inside a sub-VMAR", addr))
		return false;
	rec_add(c, (struct rec){ .addr = a, .len = len, .o = o, .off = off, .perms = perms,
				 .in_sub = in_sub });
	c->count_map++;
	/* Half the time look at it at once; otherwise its pages stay
	 * untouched until a later access (or system call) faults them. */
	return rnd(c, 2) ? check_rec(c, &c->recs[c->nrecs - 1]) : true;
}

/* A random page-aligned piece of @r: whole (half the time) or part. */
static void piece_of(struct ctx *c, const struct rec *r, uint8_t **a, uint64_t *len)
{
	uint64_t pages = r->len / PAGE;
	if (rnd(c, 2) || pages == 1) {
		*a = r->addr;
		*len = r->len;
		return;
	}
	uint64_t first = rnd(c, pages);
	*a = r->addr + first * PAGE;
	*len = (1 + rnd(c, pages - first)) * PAGE;
}

static bool op_unmap(struct ctx *c)
{
	if (!c->nrecs)
		return true;
	uint8_t *a;
	uint64_t len;
	bool in_sub;
	if (rnd(c, 4) == 0) {
		/* Any range of the sub-VMAR: several mappings and holes. */
		uint64_t first = rnd(c, SUB_PAGES);
		len = (1 + rnd(c, (SUB_PAGES - first) < 48 ? SUB_PAGES - first : 48)) * PAGE;
		a = c->sub_base + first * PAGE;
		in_sub = true;
	} else {
		const struct rec *r = &c->recs[rnd(c, c->nrecs)];
		piece_of(c, r, &a, &len);
		in_sub = r->in_sub;
	}
	if (c->nrecs + 2 > REC_CAP)
		return true;
	note(c, "unmap %p..+%" PRIu64 " pages in %s", (void *)a, len / PAGE,
	     in_sub ? "sub" : "root");
	if (!CALL_OK(c, uvmo_vmar_unmap(in_sub ? c->sub : uvmo_vmar_root(), a, len)))
		return false;
	cut_range(c, in_sub, a, len);
	c->count_unmap++;
	if (!in_sub)
		return true; /* another thread may map the root range again at once */
	/* The range is gone from our own sub-VMAR: a touch raises SIGSEGV. */
	c->count_faults++;
	int sig = probe(a + rnd(c, len), rnd(c, 2), 1);
	return CHECK(c, sig == SIGSEGV, "an access to an unmapped page gave %s", signame(sig));
}

static bool op_protect(struct ctx *c)
{
	if (!c->nrecs || c->nrecs + 2 > REC_CAP)
		return true;
	unsigned i = (unsigned)rnd(c, c->nrecs);
	struct rec r = c->recs[i];
	uint8_t *a;
	uint64_t len;
	piece_of(c, &r, &a, &len);
	uint32_t perms = r.o->writable && rnd(c, 2) ? PERM_RW : PERM_R;
	note(c, "protect %p..+%" PRIu64 " pages of a mapping of vmo %u to %s", (void *)a,
	     len / PAGE, r.o->serial, perms & UVMO_PERM_WRITE ? "rw" : "r");
	if (!CALL_OK(c, uvmo_vmar_protect(rec_vmar(c, &r), perms, a, len)))
		return false;
	/* Split the record: [addr, a) keeps its perms, [a, a + len) takes the
	 * new ones, the rest keeps its perms. */
	struct rec mid = r;
	mid.addr = a;
	mid.len = len;
	mid.off = r.off + (uint64_t)(a - r.addr);
	mid.perms = perms;
	/* Count the new piece first: the cut must not release the object. */
	mid.o->maps++;
	cut_range(c, r.in_sub, a, len);
	c->recs[c->nrecs++] = mid;
	c->count_protect++;
	return true;
}

static bool op_write_map(struct ctx *c)
{
	int i = pick_rec(c, true, true);
	if (i < 0)
		return true;
	struct rec *r = &c->recs[i];
	uint64_t valid = rec_valid(r);
	uint64_t start = rnd(c, valid);
	uint64_t n = 1 + rnd(c, valid - start);
	if (rnd(c, 3) == 0 && valid - start >= PAGE) /* often a whole page or more */
		n = PAGE + rnd(c, valid - start - PAGE + 1);
	note(c, "write %" PRIu64 " bytes through a mapping of vmo %u at vmo offset %" PRIu64, n,
	     r->o->serial, r->off + start);
	for (uint64_t k = 0; k < n; k++)
		c->buf[k] = (uint8_t)rnd(c, 256);
	memcpy(r->addr + start, c->buf, n);
	model_write(r->o->m, r->off + start, c->buf, n);
	c->count_mwrite++;
	/* Read it straight back through the mapping. */
	return compare(c, r->addr + start, c->buf, n, "mapped byte right after writing it",
		       r->off + start);
}

static bool op_write_call(struct ctx *c)
{
	struct obj *o = pick_live(c, true);
	if (!o || !osize(o))
		return true;
	uint64_t size = osize(o);
	uint64_t start = rnd(c, size);
	uint64_t n = 1 + rnd(c, size - start);
	note(c, "uvmo_vmo_write %" PRIu64 " bytes to vmo %u at %" PRIu64, n, o->serial, start);
	for (uint64_t k = 0; k < n; k++)
		c->buf[k] = (uint8_t)rnd(c, 256);
	if (!CALL_OK(c, uvmo_vmo_write(o->h, c->buf, start, n)))
		return false;
	model_write(o->m, start, c->buf, n);
	return true;
}

static bool op_check_rec(struct ctx *c)
{
	if (!c->nrecs)
		return true;
	const struct rec *r = &c->recs[rnd(c, c->nrecs)];
	note(c, "check a mapping of vmo %u (pages %" PRIu64 "..+%" PRIu64 ")", r->o->serial,
	     r->off / PAGE, r->len / PAGE);
	return check_rec(c, r);
}

static bool op_check_obj(struct ctx *c)
{
	struct obj *o = pick_live(c, false);
	if (!o)
		return true;
	note(c, "check vmo %u by call", o->serial);
	return check_obj(c, o);
}

static bool op_zero(struct ctx *c)
{
	struct obj *o = pick_live(c, true);
	if (!o || !osize(o))
		return true;
	uint64_t size = osize(o);
	/* DECOMMIT of a pager-backed VMO itself: not in the contract. */
	if (rnd(c, 2) && !(o->m->pager && !o->m->follow)) {
		uint64_t first = rnd(c, size / PAGE);
		uint64_t n = 1 + rnd(c, size / PAGE - first);
		note(c, "decommit vmo %u pages %" PRIu64 "..+%" PRIu64, o->serial, first, n);
		if (!CALL_OK(c, uvmo_vmo_op_range(o->h, UVMO_OP_DECOMMIT, first * PAGE, n * PAGE)))
			return false;
		model_decommit(o->m, first * PAGE, n * PAGE);
	} else {
		uint64_t start = rnd(c, size);
		uint64_t n = 1 + rnd(c, size - start);
		note(c, "zero vmo %u bytes %" PRIu64 "..+%" PRIu64, o->serial, start, n);
		if (!CALL_OK(c, uvmo_vmo_op_range(o->h, UVMO_OP_ZERO, start, n)))
			return false;
		model_zero(o->m, start, n);
	}
	return true;
}

static bool op_vmar_range(struct ctx *c)
{
	int i = pick_rec(c, true, true);
	if (i < 0)
		return true;
	const struct rec *r = &c->recs[i];
	if (!r->o->writable)
		return true;
	uint64_t pages = rec_valid(r) / PAGE; /* whole pages inside the VMO */
	if (!pages)
		return true;
	uint64_t first = rnd(c, pages);
	uint64_t n = 1 + rnd(c, pages - first);
	unsigned kind = (unsigned)rnd(c, (c->sh->flags & MAPPED_MAP_RANGE) ? 3 : 2);
	static const uint32_t ops[] = { UVMO_OP_COMMIT, UVMO_OP_DECOMMIT, UVMO_OP_MAP_RANGE };
	static const char *const names[] = { "commit", "decommit", "map-range" };
	if (ops[kind] == UVMO_OP_DECOMMIT && r->o->m->pager && !r->o->m->follow)
		return true; /* not in the contract for the pager-backed VMO itself */
	note(c, "vmar op_range %s of a mapping of vmo %u, vmo pages %" PRIu64 "..+%" PRIu64,
	     names[kind], r->o->serial, r->off / PAGE + first, n);
	if (!CALL_OK(c, uvmo_vmar_op_range(rec_vmar(c, r), ops[kind], r->addr + first * PAGE,
					    n * PAGE)))
		return false;
	if (ops[kind] == UVMO_OP_DECOMMIT)
		model_decommit(r->o->m, r->off + first * PAGE, n * PAGE);
	/* An at-least-on-write child owns committed pages: it stops following. */
	if (ops[kind] == UVMO_OP_COMMIT)
		model_commit(r->o->m, r->off + first * PAGE, n * PAGE);
	return check_rec(c, r);
}

static bool op_resize(struct ctx *c)
{
	struct obj *cand[MAX_OBJS * 4];
	unsigned n = 0;
	for (unsigned i = 0; i < c->nobjs; i++)
		if (c->objs[i]->h && c->objs[i]->resizable && c->objs[i]->writable)
			cand[n++] = c->objs[i];
	if (!n)
		return true;
	struct obj *o = cand[rnd(c, n)];
	uint64_t size = rnd(c, MAX_PAGES + 1) * PAGE;
	note(c, "resize vmo %u from %" PRIu64 " to %" PRIu64 " pages", o->serial, osize(o) / PAGE,
	     size / PAGE);
	if (!CALL_OK(c, uvmo_vmo_set_size(o->h, size)))
		return false;
	model_resize(o->m, size);
	/* Every mapping of it sees the new end at once. */
	for (unsigned i = 0; i < c->nrecs; i++)
		if (c->recs[i].o == o && !check_rec(c, &c->recs[i]))
			return false;
	return true;
}

static bool op_close(struct ctx *c)
{
	struct obj *o = pick_live(c, false);
	if (!o || live_count(c) <= 2)
		return true;
	note(c, "close vmo %u (%u mapping pieces keep it)", o->serial, o->maps);
	uvmo_vmo_close(o->h);
	o->h = NULL;
	obj_maybe_release(c, o);
	return true;
}

static bool op_write_read_only(struct ctx *c)
{
	unsigned cand[REC_CAP], n = 0;
	for (unsigned i = 0; i < c->nrecs; i++)
		if (!(c->recs[i].perms & UVMO_PERM_WRITE) && rec_valid(&c->recs[i]))
			cand[n++] = i;
	if (!n)
		return true;
	const struct rec *r = &c->recs[cand[rnd(c, n)]];
	uint64_t at = rnd(c, rec_valid(r));
	note(c, "write to a read-only mapping of vmo %u at vmo offset %" PRIu64, r->o->serial,
	     r->off + at);
	uint8_t was;
	model_read(r->o->m, r->off + at, &was, 1);
	c->count_faults++;
	int sig = probe(r->addr + at, true, (uint8_t)~was);
	if (!CHECK(c, sig == SIGSEGV, "the write gave %s, expected SIGSEGV", signame(sig)))
		return false;
	return compare(c, r->addr + at, &was, 1, "byte after a refused write", r->off + at);
}

static bool op_syscall(struct ctx *c)
{
	int i = pick_rec(c, true, true);
	if (i < 0)
		return true;
	struct rec *r = &c->recs[i];
	uint64_t valid = rec_valid(r);
	uint64_t start = rnd(c, valid);
	uint64_t n = 1 + rnd(c, (valid - start) < 8192 ? valid - start : 8192);
	bool in = rnd(c, 2);
	note(c, "%s %" PRIu64 " bytes %s a mapping of vmo %u at vmo offset %" PRIu64,
	     in ? "read(2)" : "write(2)", n, in ? "into" : "out of", r->o->serial, r->off + start);
	if (in) {
		for (uint64_t k = 0; k < n; k++)
			c->buf[k] = (uint8_t)rnd(c, 256);
		if (!CHECK(c, write(c->pipe_fd[1], c->buf, n) == (ssize_t)n, "pipe write"))
			return false;
		uint64_t done = 0;
		while (done < n) {
			ssize_t got = read(c->pipe_fd[0], r->addr + start + done, n - done);
			if (!CHECK(c, got > 0, "read(2) into the mapping returned %zd (errno %d)", got,
				   got < 0 ? errno : 0))
				return false;
			done += (uint64_t)got;
		}
		model_write(r->o->m, r->off + start, c->buf, n);
		return compare(c, r->addr + start, c->buf, n, "mapped byte after read(2)",
			       r->off + start);
	}
	ssize_t put = write(c->pipe_fd[1], r->addr + start, n);
	if (!CHECK(c, put == (ssize_t)n, "write(2) out of the mapping returned %zd (errno %d)", put,
		   put < 0 ? errno : 0))
		return false;
	uint64_t done = 0;
	while (done < n) {
		ssize_t got = read(c->pipe_fd[0], c->buf + done, n - done);
		if (!CHECK(c, got > 0, "pipe read"))
			return false;
		done += (uint64_t)got;
	}
	model_read(r->o->m, r->off + start, c->want, n);
	return compare(c, c->buf, c->want, n, "byte written out by write(2)", r->off + start);
}

/* ---------------------------------------------------------------------- */
/* live snapshots, restore, diff (MAPPED_RESTORE)                         */
/* ---------------------------------------------------------------------- */

static bool op_snapshot_live(struct ctx *c)
{
	struct obj *o = pick_live(c, false);
	if (!o || live_count(c) >= MAX_OBJS || o->m->slice)
		return true;
	note(c, "live snapshot of vmo %u (%" PRIu64 " pages)", o->serial, osize(o) / PAGE);
	uvmo_vmo_t *h = NULL;
	struct model_vmo *m = NULL;
	if (!CALL_OK(c, uvmo_vmo_snapshot(o->h, &h)))
		return false;
	if (!CHECK(c, model_api_snapshot(o->m, &m) == 0, "the model refuses the snapshot")) {
		uvmo_vmo_close(h);
		return false;
	}
	obj_add(c, h, m, false, m->resizable);
	c->count_snap++;
	return true;
}

/* A VMO with an open handle and one of its live snapshots (open too) that
 * it may be restored to, or diffed against (@diff: same size, not empty). */
static bool pick_snap_pair(struct ctx *c, bool diff, struct obj **v, struct obj **s)
{
	struct obj *cv[64], *cs[64];
	unsigned n = 0;
	for (unsigned i = 0; i < c->nobjs; i++) {
		struct obj *a = c->objs[i];
		if (!a->h || (!diff && !a->writable))
			continue;
		for (unsigned j = 0; j < c->nobjs && n < 64; j++) {
			struct obj *b = c->objs[j];
			if (!b->h || !model_is_snapshot_of(b->m, a->m))
				continue;
			bool same = osize(a) == osize(b);
			if (diff ? (!same || !osize(a)) : (!same && !a->resizable))
				continue;
			cv[n] = a;
			cs[n++] = b;
		}
	}
	if (!n)
		return false;
	unsigned k = (unsigned)rnd(c, n);
	*v = cv[k];
	*s = cs[k];
	return true;
}

/* Every record showing @o's bytes (its own and its slices'), and @o. */
static bool check_store(struct ctx *c, const struct obj *o)
{
	for (unsigned i = 0; i < c->nrecs; i++)
		if (c->recs[i].o->m->store == o->m->store && !check_rec(c, &c->recs[i]))
			return false;
	for (unsigned i = 0; i < c->nobjs; i++)
		if (c->objs[i]->h && c->objs[i]->m->store == o->m->store &&
		    !check_obj(c, c->objs[i]))
			return false;
	return true;
}

static bool op_restore(struct ctx *c)
{
	struct obj *v, *s;
	if (!pick_snap_pair(c, false, &v, &s))
		return true;
	note(c, "restore vmo %u (%" PRIu64 " pages) to its snapshot %u (%" PRIu64 " pages)",
	     v->serial, osize(v) / PAGE, s->serial, osize(s) / PAGE);
	if (!CALL_OK(c, uvmo_vmo_restore(v->h, s->h)))
		return false;
	if (!CHECK(c, model_api_restore(v->m, s->m) == 0, "the model refuses the restore"))
		return false;
	c->count_restore++;
	/* Every mapping shows the restored bytes at once. */
	return check_store(c, v);
}

static bool op_diff(struct ctx *c)
{
	struct obj *v, *s;
	if (!pick_snap_pair(c, true, &v, &s))
		return true;
	uint64_t pages = osize(v) / PAGE;
	uint64_t first = rnd(c, 2) ? 0 : rnd(c, pages);
	uint64_t end = first + 1 + rnd(c, pages - first);
	size_t max = 1 + (size_t)rnd(c, DIFF_RUNS);
	note(c, "diff vmo %u against its snapshot %u, pages %" PRIu64 "..%" PRIu64 ", max %zu",
	     v->serial, s->serial, first, end, max);
	struct uvmo_dirty_range runs[DIFF_RUNS];
	bool covered[MAX_PAGES + PAST_END + 1] = { false };
	uint64_t cur = first * PAGE, stop = end * PAGE, prev = 0;
	size_t total = 0, first_avail = 0;
	for (unsigned call = 0;; call++) {
		size_t actual = 0, avail = 0;
		if (!CALL_OK(c, uvmo_vmo_diff(v->h, s->h, cur, stop - cur, runs, max, &actual,
					      &avail)))
			return false;
		if (call == 0)
			first_avail = avail;
		if (!CHECK(c, actual <= max && actual <= avail && (actual || !avail) &&
			   call <= pages + 1,
			   "diff call %u: actual %zu, avail %zu, max %zu", call, actual, avail, max))
			return false;
		for (size_t i = 0; i < actual; i++) {
			const struct uvmo_dirty_range *r = &runs[i];
			if (!CHECK(c, r->offset % PAGE == 0 && r->length % PAGE == 0 && r->length &&
				   r->offset >= cur && r->length <= stop - r->offset &&
				   (!total || r->offset > prev),
				   "diff run [%" PRIu64 ", +%" PRIu64 ") is not whole pages inside"
				   " [%" PRIu64 ", %" PRIu64 "), in order and merged", r->offset,
				   r->length, cur, stop))
				return false;
			for (uint64_t p = r->offset / PAGE; p < (r->offset + r->length) / PAGE; p++)
				covered[p] = true;
			prev = r->offset + r->length;
			total++;
		}
		if (actual == avail)
			break;
		cur = prev;
	}
	if (!CHECK(c, total == first_avail, "the first diff call said %zu runs, resuming found %zu",
		   first_avail, total))
		return false;
	c->count_diff++;
	/* Pages are compared byte by byte where the tree cannot tell (uvmo.h):
	 * a page is reported exactly when it differs. */
	for (uint64_t p = first; p < end; p++)
		if (!CHECK(c, covered[p] == !model_ranges_equal(v->m, s->m, p * PAGE, PAGE),
			   "page %" PRIu64 " %s the snapshot in the model, but the diff %s it", p,
			   covered[p] ? "equals" : "differs from",
			   covered[p] ? "reports" : "leaves out"))
			return false;
	return true;
}

/* A barrier that gives up (false) once any thread has failed. */
static bool rs_barrier(struct shared *sh)
{
	pthread_mutex_lock(&sh->bar_lock);
	unsigned long gen = sh->bar_gen;
	if (!atomic_load(&sh->stop)) {
		if (++sh->bar_arrived == sh->bar_n) {
			sh->bar_arrived = 0;
			sh->bar_gen++;
			pthread_cond_broadcast(&sh->bar_cond);
		} else {
			while (sh->bar_gen == gen && !atomic_load(&sh->stop))
				pthread_cond_wait(&sh->bar_cond, &sh->bar_lock);
		}
	}
	bool ok = sh->bar_gen != gen;
	pthread_mutex_unlock(&sh->bar_lock);
	return ok;
}

/* Every thread writes its part of the shared VMO through the one mapping;
 * at the barrier thread 0 restores the VMO to its snapshot (or takes a new
 * snapshot); after the second barrier every thread checks its part, mapped
 * and by call. */
static bool shared_round(struct ctx *c)
{
	struct shared *sh = c->sh;
	uint8_t *part = sh->rs_map + c->thread * RS_BYTES;
	unsigned writes = 1 + (unsigned)rnd(c, 6);
	note(c, "shared round %lu: %u writes to my part, then a barrier", sh->rs_rounds, writes);
	for (unsigned w = 0; w < writes; w++) {
		uint64_t off = rnd(c, RS_BYTES);
		uint64_t n = 1 + rnd(c, RS_BYTES - off < 2 * PAGE ? RS_BYTES - off : 2 * PAGE);
		for (uint64_t k = 0; k < n; k++)
			c->rs_want[off + k] = (uint8_t)rnd(c, 256);
		memcpy(part + off, c->rs_want + off, n);
	}
	if (!rs_barrier(sh))
		return false;
	if (c->thread == 0) {
		sh->rs_rounds++;
		sh->rs_restored = rnd(c, 4) != 0;
		if (sh->rs_restored) {
			sh->rs_restores++;
			if (!CALL_OK(c, uvmo_vmo_restore(sh->rs_h, sh->rs_snap)))
				return false;
		} else {
			uvmo_vmo_t *snap = NULL;
			if (!CALL_OK(c, uvmo_vmo_snapshot(sh->rs_h, &snap)))
				return false;
			uvmo_vmo_close(sh->rs_snap);
			sh->rs_snap = snap;
			if (!CALL_OK(c, uvmo_vmo_read(snap, sh->rs_img, 0, sh->rs_size)))
				return false;
		}
	}
	if (!rs_barrier(sh))
		return false;
	if (sh->rs_restored)
		memcpy(c->rs_want, sh->rs_img + c->thread * RS_BYTES, RS_BYTES);
	note(c, "shared round: check my part after %s", sh->rs_restored ? "a restore" : "a snapshot");
	if (!compare(c, part, c->rs_want, RS_BYTES, "shared VMO, mapped", c->thread * RS_BYTES))
		return false;
	if (!CALL_OK(c, uvmo_vmo_read(sh->rs_h, c->buf, c->thread * RS_BYTES, RS_BYTES)))
		return false;
	return compare(c, c->buf, c->rs_want, RS_BYTES, "shared VMO, uvmo_vmo_read",
		       c->thread * RS_BYTES);
}

/* ---------------------------------------------------------------------- */
/* a thread's run                                                         */
/* ---------------------------------------------------------------------- */

static bool step(struct ctx *c)
{
	/* Weights: writes and reads through mappings dominate. */
	static const struct {
		bool (*fn)(struct ctx *);
		unsigned weight;
	} table[] = {
		{ op_create, 5 },     { op_child, 8 },          { op_base_snapshot, 2 },
		{ op_map, 12 },       { op_unmap, 6 },          { op_protect, 5 },
		{ op_write_map, 22 }, { op_write_call, 8 },     { op_check_rec, 10 },
		{ op_check_obj, 4 },  { op_zero, 5 },           { op_vmar_range, 3 },
		{ op_resize, 4 },     { op_close, 4 },          { op_write_read_only, 2 },
		{ op_syscall, 3 },
		/* MAPPED_RESTORE only (weight 0 otherwise: runs without it
		 * draw exactly as before) */
		{ op_snapshot_live, 4 }, { op_restore, 6 },     { op_diff, 3 },
	};
	const size_t base = 16; /* entries before the MAPPED_RESTORE ones */
	bool restore = c->sh->flags & MAPPED_RESTORE;
	unsigned total = 0;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		total += restore || i < base ? table[i].weight : 0;
	unsigned pick = (unsigned)rnd(c, total);
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		unsigned weight = restore || i < base ? table[i].weight : 0;
		if (pick < weight) {
			if (table[i].fn == op_syscall && !(c->sh->flags & MAPPED_SYSCALLS))
				return op_write_map(c);
			return table[i].fn(c);
		}
		pick -= weight;
	}
	return true;
}

static void teardown(struct ctx *c)
{
	/* Root records one by one; the sub-VMAR in one destroy. */
	for (unsigned i = 0; i < c->nrecs;) {
		if (c->recs[i].in_sub) {
			i++;
			continue;
		}
		uvmo_vmar_unmap(uvmo_vmar_root(), c->recs[i].addr, c->recs[i].len);
		rec_remove(c, i);
	}
	if (c->sub) {
		uvmo_vmar_destroy(c->sub);
		uvmo_vmar_close(c->sub);
		c->sub = NULL;
	}
	while (c->nrecs)
		rec_remove(c, 0);
	for (unsigned i = 0; i < c->nobjs;) {
		struct obj *o = c->objs[i];
		if (o->h) {
			uvmo_vmo_close(o->h);
			o->h = NULL;
			obj_maybe_release(c, o); /* moves another object into slot i */
		} else {
			i++;
		}
	}
	while (c->nobjs) {
		struct obj *o = c->objs[--c->nobjs];
		model_close(o->m);
		free(o);
	}
	if (c->pipe_fd[0] >= 0) {
		close(c->pipe_fd[0]);
		close(c->pipe_fd[1]);
	}
}

static void *thread_main(void *arg)
{
	struct ctx *c = arg;
	struct shared *sh = c->sh;
	c->pipe_fd[0] = c->pipe_fd[1] = -1;
	snprintf(c->desc, sizeof(c->desc), "set-up");
	void *base = NULL;
	int rc = uvmo_vmar_allocate(uvmo_vmar_root(),
				    UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_CAN_MAP_WRITE |
					    UVMO_VMAR_CAN_MAP_SPECIFIC,
				    0, SUB_PAGES * PAGE, &c->sub, &base);
	if (!CHECK(c, rc == 0, "uvmo_vmar_allocate of the thread's sub-VMAR returned %d", rc))
		return NULL;
	c->sub_base = base;
	if (!CHECK(c, pipe(c->pipe_fd) == 0, "pipe"))
		return NULL;
	if (sh->rs_h)
		memcpy(c->rs_want, sh->rs_img + c->thread * RS_BYTES, RS_BYTES);
	for (c->op = 0; c->op < sh->nops && !atomic_load(&sh->stop); c->op++) {
		if (!step(c))
			break;
		if (sh->rs_h && c->op % RS_EVERY == RS_EVERY - 1 && !shared_round(c))
			break;
		if (c->op % 256 == 255) {
			note(c, "check everything");
			if (!check_all(c))
				break;
		}
		if (atomic_load(&sh->pager_failed)) {
			fail(c, "%s", sh->pager_err);
			break;
		}
	}
	if (!atomic_load(&sh->stop)) {
		note(c, "final check");
		check_all(c);
	}
	if (sh->flags & MAPPED_SUMMARY)
		fprintf(stderr,
			"mapped: seed %" PRIu64 " thread %u: %lu ops, %lu maps, %lu unmaps, "
			"%lu protects, %lu mapped writes, %lu mapping checks, %lu probed faults\n",
			sh->seed, c->thread, c->op, c->count_map, c->count_unmap, c->count_protect,
			c->count_mwrite, c->count_mcheck, c->count_faults);
	if (sh->flags & MAPPED_SUMMARY && sh->flags & MAPPED_RESTORE)
		fprintf(stderr,
			"mapped: seed %" PRIu64 " thread %u: %lu live snapshots, %lu restores, %lu"
			" diffs%s\n", sh->seed, c->thread, c->count_snap, c->count_restore,
			c->count_diff, c->thread ? "" : " (and the shared rounds)");
	teardown(c);
	return NULL;
}

int mapped_run(uint64_t seed, unsigned nops, unsigned nthreads, unsigned flags, char *errbuf,
	       size_t errlen)
{
	struct shared sh = { .seed = seed, .nops = nops, .flags = flags, .err = errbuf,
			     .errlen = errlen };
	pthread_mutex_init(&sh.err_lock, NULL);
	pthread_mutex_init(&sh.bar_lock, NULL);
	pthread_cond_init(&sh.bar_cond, NULL);
	atomic_init(&sh.stop, false);
	if (errlen)
		errbuf[0] = 0;
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > MAX_THREADS)
		nthreads = MAX_THREADS;
	pthread_once(&probe_once, probe_install);

	struct uvmo_stats before;
	memset(&before, 0, sizeof(before));
	int rc = uvmo_get_stats(&before);
	if (rc) {
		snprintf(errbuf, errlen, "uvmo_get_stats returned %d", rc);
		return -1;
	}
	if (flags & MAPPED_PAGER) {
		rc = uvmo_pager_create(0, &sh.pager);
		if (!rc && pthread_create(&sh.pager_thread, NULL, pager_main, &sh) != 0)
			rc = -EAGAIN;
		if (rc) {
			snprintf(errbuf, errlen, "setting up the pager returned %d", rc);
			return -1;
		}
	}
	if (flags & MAPPED_SHARED_BASE) {
		uint64_t size = 2 * MAX_PAGES * PAGE;
		rc = uvmo_vmo_create(size, 0, &sh.base_h);
		if (rc) {
			snprintf(errbuf, errlen, "uvmo_vmo_create of the base returned %d", rc);
			return -1;
		}
		sh.base_m = model_create(size, false);
		uint8_t *b = malloc(size);
		uint64_t x = seed | 1;
		for (uint64_t i = 0; i < size; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			b[i] = (i / PAGE) % 3 == 2 ? 0 : (uint8_t)x; /* some pages stay holes */
		}
		for (uint64_t p = 0; p < size / PAGE; p++)
			if ((p % 3) != 2 && uvmo_vmo_write(sh.base_h, b + p * PAGE, p * PAGE, PAGE))
				rc = -1;
		model_write(sh.base_m, 0, b, size);
		free(b);
	}

	if (flags & MAPPED_RESTORE) {
		/* The shared VMO: every thread's part starts with bytes (its
		 * last page a hole), mapped once, snapshotted. */
		sh.rs_size = nthreads * RS_BYTES;
		sh.bar_n = nthreads;
		sh.rs_img = calloc(1, sh.rs_size);
		void *addr = NULL;
		rc = uvmo_vmo_create(sh.rs_size, 0, &sh.rs_h);
		if (!rc) {
			uint64_t x = seed * 3 + 1;
			for (uint64_t i = 0; i < sh.rs_size; i++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				sh.rs_img[i] = (i / PAGE) % RS_PAGES == RS_PAGES - 1 ? 0 : (uint8_t)x;
			}
			rc = uvmo_vmo_write(sh.rs_h, sh.rs_img, 0, sh.rs_size);
		}
		if (!rc)
			rc = uvmo_vmar_map(uvmo_vmar_root(), PERM_RW, 0, sh.rs_h, 0, sh.rs_size,
					   &addr);
		sh.rs_map = addr;
		if (!rc)
			rc = uvmo_vmo_snapshot(sh.rs_h, &sh.rs_snap);
		if (rc) {
			snprintf(errbuf, errlen, "setting up the shared VMO returned %d", rc);
			return -1;
		}
	}

	struct ctx **cs = calloc(nthreads, sizeof(*cs));
	pthread_t *ts = calloc(nthreads, sizeof(*ts));
	for (unsigned t = 0; t < nthreads; t++) {
		cs[t] = calloc(1, sizeof(**cs));
		if (!cs[t])
			abort();
		cs[t]->sh = &sh;
		cs[t]->thread = t;
		/* splitmix64 of (seed, thread): threads of nearby seeds differ. */
		uint64_t z = seed * 0x100000001b3ull + t + 0x9e3779b97f4a7c15ull;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		cs[t]->rng = (z ^ (z >> 31)) | 1;
	}
	if (nthreads == 1) {
		thread_main(cs[0]);
	} else {
		for (unsigned t = 0; t < nthreads; t++)
			if (pthread_create(&ts[t], NULL, thread_main, cs[t]) != 0)
				abort();
		for (unsigned t = 0; t < nthreads; t++)
			pthread_join(ts[t], NULL);
	}
	for (unsigned t = 0; t < nthreads; t++)
		free(cs[t]);
	free(cs);
	free(ts);

	if (sh.base_h) {
		uvmo_vmo_close(sh.base_h);
		model_close(sh.base_m);
	}
	if (sh.rs_h) {
		if (flags & MAPPED_SUMMARY)
			fprintf(stderr, "mapped: seed %" PRIu64 ": %lu shared rounds, %lu restores\n",
				seed, sh.rs_rounds, sh.rs_restores);
		uvmo_vmar_unmap(uvmo_vmar_root(), sh.rs_map, sh.rs_size);
		uvmo_vmo_close(sh.rs_snap);
		uvmo_vmo_close(sh.rs_h);
		free(sh.rs_img);
	}
	if (sh.pager) {
		atomic_store(&sh.pager_stop, true);
		pthread_join(sh.pager_thread, NULL);
		if (atomic_load(&sh.pager_failed) && !sh.failed) {
			snprintf(errbuf, errlen, "seed %" PRIu64 ": %s", seed, sh.pager_err);
			sh.failed = true;
		}
		uvmo_pager_destroy(sh.pager);
	}
	if (!sh.failed) {
		struct uvmo_stats after;
		memset(&after, 0, sizeof(after));
		uvmo_get_stats(&after);
		if (after.committed_bytes != before.committed_bytes || after.vmos != before.vmos)
			snprintf(errbuf, errlen,
				 "seed %" PRIu64 ": after every mapping and VMO is gone, the pool "
				 "holds %" PRIu64 " bytes (%" PRIu64 " before) and %" PRIu64
				 " VMOs live (%" PRIu64 " before)",
				 seed, after.committed_bytes, before.committed_bytes, after.vmos,
				 before.vmos);
		else
			return 0;
	}
	pthread_mutex_destroy(&sh.err_lock);
	return -1;
}

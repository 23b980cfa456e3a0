/* SPDX-License-Identifier: MIT */
/*
 * The randomised differential engine: see differential.h.
 *
 * Structure: a generator looks at the current pool of live VMOs, draws one
 * operation (struct diff_op) from a seeded PRNG, and hands it to the
 * executor.  The executor performs the operation on uvmo and on the model,
 * and compares return codes, bytes, and accounting.  Because the executor
 * needs nothing but the recorded operation, any recording (or any subset of
 * one) can be replayed, which is what the shrinker in soak.c relies on.
 *
 * Invalid calls are generated on purpose (ranges past the end, unaligned
 * arguments, wrong VMO kinds, closed handles ...), always with exactly one
 * thing wrong, because the header does not order the checks when several
 * apply.  The model (model_api_*) predicts the errno.
 *
 * With DIFF_PAGER some roots are pager-backed (uvmo_pager_create_vmo): a
 * pager thread of the run answers every READ with model_pager_byte(key, .)
 * for the VMO's key (its serial), so the content never depends on timing.
 * Their trees hold slices and at-least-on-write children only (a plain
 * snapshot is generated now and then and must fail with -ENOTSUP), never a
 * clone of an at-least-on-write child, and no DECOMMIT of the pager-backed
 * VMO itself (the contract does not say what it does there).
 */
#include "differential.h"

#include "model.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uvmo/uvmo.h>

#define PAGE            ((uint64_t)UVMO_PAGE_SIZE)
#define SMALL_PAGES     64u                 /* most VMOs are at most this large ... */
#define MAX_PAGES       192u                /* ... some span several 64-page page-list chunks */
#define BUF_SIZE        ((MAX_PAGES + 4) * PAGE) /* scratch: a whole VMO plus overshoot */
#define POOL_MAX        24u                 /* live VMOs in a single-threaded run */
#define LIVE_CAP        256u                /* slots; replays of subsets may exceed POOL_MAX */
#define STALE_RING      16u                 /* closed handles kept for -EBADF probes */
#define THREADS         2u

enum diff_kind {
	K_CREATE,       /* options, len = size -> result */
	K_CHILD,        /* vmo = parent, options, offset, len = size -> result */
	K_WRITE,        /* vmo, offset, len, data; variant 1: NULL buffer */
	K_READ,         /* vmo, offset, len; variant 1: NULL buffer */
	K_OP_RANGE,     /* vmo, options = op, offset, len */
	K_SET_SIZE,     /* vmo, len = new size */
	K_CLOSE,        /* vmo */
	K_CHECK_VMO,    /* vmo: size, whole content, info */
	K_CHECK_GLOBAL, /* accounting across the pool; variant 1: the final check */
	K_STALE,        /* vmo = a closed serial; variant = which call (enum stale_call) */
	K_NULL,         /* a NULL argument; vmo = a live VMO for the other arguments;
			 * variant = which call (enum null_call) */
	K_BALLAST,      /* pool-limit runs: commit or decommit ballast frames so that
			 * len frames are left free (the next calls run out exactly) */
	K_SNAPSHOT_LIVE,/* DIFF_RESTORE: vmo -> result = uvmo_vmo_snapshot; len = vmo's size
			 * when generated (for shrinking) */
	K_RESTORE,      /* DIFF_RESTORE: restore vmo to the snapshot data;
			 * variant = enum pair_variant */
	K_DIFF,         /* DIFF_RESTORE: diff vmo against snapshot data over offset, len,
			 * options = max runs per call; variant = enum pair_variant */
	K_KINDS
};

/* Which handles a restore or diff gets (every variant but PAIR_LIVE has
 * exactly that one thing wrong). */
enum pair_variant {
	PAIR_LIVE,       /* both live: the model states the outcome */
	PAIR_NULL_VMO,   /* vmo NULL (-EINVAL) */
	PAIR_NULL_SNAP,  /* snapshot NULL (-EINVAL) */
	PAIR_STALE_VMO,  /* vmo a closed handle (-EBADF) */
	PAIR_STALE_SNAP, /* snapshot a closed handle (-EBADF) */
	PAIR_NULL_OUT,   /* diff: out NULL with max > 0 (-EINVAL) */
	PAIR_VARIANTS
};

enum stale_call {
	STALE_READ, STALE_WRITE, STALE_GET_SIZE, STALE_GET_INFO, STALE_OP_RANGE,
	STALE_CHILD, STALE_SET_SIZE, STALE_CLOSE_AGAIN, STALE_CALLS
};

enum null_call {
	NULL_READ_VMO, NULL_WRITE_VMO, NULL_GET_SIZE_VMO, NULL_GET_SIZE_OUT, NULL_GET_INFO_VMO,
	NULL_GET_INFO_OUT, NULL_OP_RANGE_VMO, NULL_SET_SIZE_VMO, NULL_CHILD_PARENT,
	NULL_CHILD_OUT, NULL_CREATE_OUT, NULL_STATS_OUT, NULL_CLOSE, NULL_CALLS
};

/* A live VMO: the uvmo handle and its model twin. */
struct slot {
	uint32_t serial;
	uint32_t parent_serial; /* 0 for a root */
	uvmo_vmo_t *h;
	struct model_vmo *m;
	uint64_t id;            /* uvmo's id, read at creation */
	uint64_t parent_id;     /* the parent's uvmo id, 0 for a root */
	unsigned depth;         /* clone generations below a root */
};

struct stale {
	uint32_t serial;
	uvmo_vmo_t *h;
};

struct diff_ctx {
	/* configuration */
	uint64_t seed;
	unsigned flags;
	int thread;             /* -1 single-threaded, else the thread index */
	unsigned pool_max;      /* live VMOs the generator keeps at most */
	bool global_checks;     /* alone in uvmo: global counters are ours */
	bool replay;
	bool pool_limited;      /* DIFF_POOL_LIMIT: -ENOMEM may replace success */
	atomic_int *stop;       /* set when any thread failed (threaded mode) */

	/* generator */
	uint64_t rng;
	uint32_t next_serial;

	/* executor state */
	struct slot live[LIVE_CAP];
	unsigned nlive;
	struct stale stale[STALE_RING];
	unsigned stale_next;
	unsigned max_depth;     /* deepest live chain of clones seen at a creation */
	unsigned max_snap_depth;/* the same, counting only chains of snapshots */
	unsigned long kind_count[K_KINDS];  /* executed operations by kind */
	unsigned long predicted_errors;     /* calls that failed as the model said */
	unsigned long enomem;               /* calls refused for want of pool frames */
	unsigned long discards;             /* discardable VMOs seen discarded */
	unsigned long restores_ok;          /* restores that succeeded */
	unsigned long diff_runs;            /* runs diffs reported */
	uint64_t *ids;          /* every uvmo id seen, to check they are never reused */
	size_t nids, capids;
	struct diff_log *log;
	size_t *enomem_at;      /* indices into log of calls that ran out of frames */
	size_t nenomem_at, capenomem_at;

	/* reporting */
	size_t op_index;
	char desc[256];
	char *errbuf;
	size_t errlen;

	uint8_t *buf;           /* what uvmo returned / the bytes written */
	uint8_t *expect;        /* what the model returned */
	uint8_t *save;          /* model bytes before a call that may fail with -ENOMEM */

	/* DIFF_PAGER: the pager of the pager-backed roots (created on first
	 * use, also in replays) and its thread. */
	uvmo_pager_t *pager;
	pthread_t pager_thread;
	atomic_bool pager_stop;
	atomic_bool pager_failed;
	char pager_error[256];

	/* Pool-limit runs: a root VMO outside the pool of slots whose only
	 * purpose is to hold frames, so that the pool is nearly full exactly
	 * when the generator wants (-ENOMEM at every step of a call). */
	uvmo_vmo_t *ballast;
	uint64_t ballast_pages; /* committed, from page 0 up */
};

/* ------------------------------------------------------------------------ */
/* PRNG: splitmix64, small, fast, and good enough for test generation.       */
/* ------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(struct diff_ctx *c)
{
	return splitmix64(&c->rng);
}

/* Uniform-enough integer in [0, n); 0 when n is 0. */
static uint64_t below(struct diff_ctx *c, uint64_t n)
{
	return n ? rnd(c) % n : 0;
}

/* Integer in [lo, hi]. */
static uint64_t between(struct diff_ctx *c, uint64_t lo, uint64_t hi)
{
	return lo + below(c, hi - lo + 1);
}

/* A VMO size in pages, at least @min: mostly small, sometimes large enough
 * that page lists and offsets cross chunk boundaries. */
static uint64_t gen_pages(struct diff_ctx *c, uint64_t min)
{
	uint64_t max = (below(c, 8) == 0) ? MAX_PAGES : SMALL_PAGES;

	return between(c, min, max > min ? max : min);
}

static bool chance(struct diff_ctx *c, unsigned num, unsigned den)
{
	return below(c, den) < num;
}

/* The bytes a write puts down: a stream from the op's data seed.  Seed 0
 * means all zeros, which exercises writes of zero pages. */
static void fill_bytes(uint64_t data, uint8_t *buf, uint64_t len)
{
	uint64_t state = data;

	if (data == 0) {
		memset(buf, 0, len);
		return;
	}
	for (uint64_t i = 0; i < len; i += 8) {
		uint64_t word = splitmix64(&state);
		uint64_t n = len - i < 8 ? len - i : 8;

		memcpy(buf + i, &word, n);
	}
}

/* ------------------------------------------------------------------------ */
/* Reporting                                                                 */
/* ------------------------------------------------------------------------ */

static const char *errno_name(int rc)
{
	static const struct { int err; const char *name; } names[] = {
		{ 0, "0" }, { -EINVAL, "-EINVAL" }, { -ERANGE, "-ERANGE" },
		{ -ENOMEM, "-ENOMEM" }, { -EBUSY, "-EBUSY" }, { -ENOTSUP, "-ENOTSUP" },
		{ -EACCES, "-EACCES" }, { -EAGAIN, "-EAGAIN" }, { -ENOENT, "-ENOENT" },
		{ -EBADF, "-EBADF" }, { -EEXIST, "-EEXIST" }, { -EIO, "-EIO" },
	};
	static _Thread_local char other[32];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].err == rc)
			return names[i].name;
	snprintf(other, sizeof(other), "%d", rc);
	return other;
}

static const char *op_name(uint32_t op)
{
	switch (op) {
	case UVMO_OP_COMMIT: return "COMMIT";
	case UVMO_OP_DECOMMIT: return "DECOMMIT";
	case UVMO_OP_ZERO: return "ZERO";
	case UVMO_OP_LOCK: return "LOCK";
	case UVMO_OP_TRY_LOCK: return "TRY_LOCK";
	case UVMO_OP_UNLOCK: return "UNLOCK";
	case UVMO_OP_DONT_NEED: return "DONT_NEED";
	case UVMO_OP_ALWAYS_NEED: return "ALWAYS_NEED";
	default: return "op?";
	}
}

static void child_options_name(uint32_t options, char *buf, size_t len)
{
	static const struct { uint32_t bit; const char *name; } bits[] = {
		{ UVMO_CHILD_SNAPSHOT, "SNAPSHOT" },
		{ UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, "AT_LEAST_ON_WRITE" },
		{ UVMO_CHILD_SNAPSHOT_MODIFIED, "SNAPSHOT_MODIFIED" },
		{ UVMO_CHILD_SLICE, "SLICE" },
		{ UVMO_CHILD_RESIZABLE, "RESIZABLE" },
		{ UVMO_CHILD_NO_WRITE, "NO_WRITE" },
	};
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		if (!(options & bits[i].bit))
			continue;
		used += snprintf(buf + used, used < len ? len - used : 0, "%s%s",
				 used ? "|" : "", bits[i].name);
		options &= ~bits[i].bit;
	}
	if (options || !used)
		snprintf(buf + used, used < len ? len - used : 0, "%s0x%x", used ? "|" : "",
			 options);
}

void diff_op_format(const struct diff_op *op, char *buf, size_t len)
{
	static const char *const stale_names[STALE_CALLS] = {
		"read", "write", "get_size", "get_info", "op_range", "create_child",
		"set_size", "close-again"
	};
	static const char *const null_names[NULL_CALLS] = {
		"read: vmo", "write: vmo", "get_size: vmo", "get_size: size", "get_info: vmo",
		"get_info: info", "op_range: vmo", "set_size: vmo", "create_child: parent",
		"create_child: out", "create: out", "get_stats: out", "close: vmo"
	};
	char opts[96];

	switch (op->kind) {
	case K_CREATE: {
		uint32_t other = op->options & ~(UVMO_VMO_RESIZABLE | UVMO_VMO_DISCARDABLE);

		snprintf(opts, sizeof(opts), "%s%s%s",
			 op->options & UVMO_VMO_RESIZABLE ? "|RESIZABLE" : "",
			 op->options & UVMO_VMO_DISCARDABLE ? "|DISCARDABLE" : "",
			 other ? "|unknown" : "");
		snprintf(buf, len, "v%u = %s(size=0x%" PRIx64 ", options=0x%x%s)", op->result,
			 op->variant == 1 ? "pager_create_vmo" : "create", op->len, op->options, opts);
		break;
	}
	case K_CHILD:
		child_options_name(op->options, opts, sizeof(opts));
		snprintf(buf, len,
			 "v%u = create_child(v%u, %s, offset=0x%" PRIx64 ", size=0x%" PRIx64 ")",
			 op->result, op->vmo, opts, op->offset, op->len);
		break;
	case K_WRITE:
		snprintf(buf, len, "write(v%u, offset=0x%" PRIx64 ", len=0x%" PRIx64 ", %s0x%" PRIx64 ")",
			 op->vmo, op->offset, op->len, op->variant ? "buf=NULL, data=" : "data=",
			 op->data);
		break;
	case K_READ:
		snprintf(buf, len, "read(v%u, offset=0x%" PRIx64 ", len=0x%" PRIx64 "%s)", op->vmo,
			 op->offset, op->len, op->variant ? ", buf=NULL" : "");
		break;
	case K_OP_RANGE:
		snprintf(buf, len, "op_range(v%u, %s(%u), offset=0x%" PRIx64 ", len=0x%" PRIx64 ")",
			 op->vmo, op_name(op->options), op->options, op->offset, op->len);
		break;
	case K_SET_SIZE:
		snprintf(buf, len, "set_size(v%u, 0x%" PRIx64 ")", op->vmo, op->len);
		break;
	case K_CLOSE:
		snprintf(buf, len, "close(v%u)", op->vmo);
		break;
	case K_CHECK_VMO:
		snprintf(buf, len, "check(v%u)", op->vmo);
		break;
	case K_CHECK_GLOBAL:
		snprintf(buf, len, "%s", op->variant ? "check-final" : "check-accounting");
		break;
	case K_STALE:
		snprintf(buf, len, "stale v%u: %s", op->vmo,
			 op->variant < STALE_CALLS ? stale_names[op->variant] : "?");
		break;
	case K_BALLAST:
		snprintf(buf, len, "ballast: leave %" PRIu64 " pool frames free", op->len);
		break;
	case K_NULL:
		snprintf(buf, len, "NULL argument to %s (v%u)",
			 op->variant < NULL_CALLS ? null_names[op->variant] : "?", op->vmo);
		break;
	case K_SNAPSHOT_LIVE:
		snprintf(buf, len, "v%u = snapshot(v%u)", op->result, op->vmo);
		break;
	case K_RESTORE:
	case K_DIFF: {
		static const char *const pair_names[PAIR_VARIANTS] = {
			"", " [vmo NULL]", " [snapshot NULL]", " [vmo closed]",
			" [snapshot closed]", " [out NULL]"
		};
		const char *what = op->variant < PAIR_VARIANTS ? pair_names[op->variant] : " [?]";

		if (op->kind == K_RESTORE)
			snprintf(buf, len, "restore(v%u, to v%" PRIu64 ")%s", op->vmo, op->data, what);
		else
			snprintf(buf, len, "diff(v%u, v%" PRIu64 ", offset=0x%" PRIx64 ", len=0x%" PRIx64
				 ", max=%u)%s", op->vmo, op->data, op->offset, op->len, op->options,
				 what);
		break;
	}
	default:
		snprintf(buf, len, "unknown op kind %u", op->kind);
		break;
	}
}

/* Records the first divergence in errbuf; always returns -1. */
__attribute__((format(printf, 2, 3)))
static int diverge(struct diff_ctx *c, const char *fmt, ...)
{
	char detail[768];
	char who[96];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (c->replay)
		snprintf(who, sizeof(who), "replay");
	else if (c->thread < 0)
		snprintf(who, sizeof(who), "seed %" PRIu64 " flags 0x%x", c->seed, c->flags);
	else
		snprintf(who, sizeof(who), "seed %" PRIu64 " flags 0x%x thread %d", c->seed,
			 c->flags, c->thread);
	if (c->errbuf && c->errlen)
		snprintf(c->errbuf, c->errlen, "%s, op #%zu: %s: %s", who, c->op_index, c->desc,
			 detail);
	return -1;
}

/* ------------------------------------------------------------------------ */
/* Pool bookkeeping                                                          */
/* ------------------------------------------------------------------------ */

static struct slot *find_slot(struct diff_ctx *c, uint32_t serial)
{
	for (unsigned i = 0; i < c->nlive; i++)
		if (c->live[i].serial == serial)
			return &c->live[i];
	return NULL;
}

static unsigned live_children(struct diff_ctx *c, uint32_t serial)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->nlive; i++)
		n += c->live[i].parent_serial == serial;
	return n;
}

static void remember_stale(struct diff_ctx *c, uint32_t serial, uvmo_vmo_t *h)
{
	c->stale[c->stale_next % STALE_RING] = (struct stale){ .serial = serial, .h = h };
	c->stale_next++;
}

static struct stale *find_stale(struct diff_ctx *c, uint32_t serial)
{
	for (unsigned i = 0; i < STALE_RING; i++)
		if (c->stale[i].serial == serial && c->stale[i].h)
			return &c->stale[i];
	return NULL;
}

static int log_op(struct diff_ctx *c, const struct diff_op *op)
{
	struct diff_log *log = c->log;

	if (!log)
		return 0;
	if (log->fd > 0) {
		const char *p = (const char *)op;
		size_t left = sizeof(*op);

		while (left) {
			ssize_t n = write(log->fd, p, left);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return -1;
			p += n;
			left -= (size_t)n;
		}
	}
	if (log->count == log->cap) {
		size_t cap = log->cap ? 2 * log->cap : 1024;
		struct diff_op *ops = realloc(log->ops, cap * sizeof(*ops));

		if (!ops)
			return -1;
		log->ops = ops;
		log->cap = cap;
	}
	log->ops[log->count++] = *op;
	return 0;
}

static int note_id(struct diff_ctx *c, uint64_t id)
{
	if (id == 0)
		return diverge(c, "uvmo_vmo_get_info reports id 0 (ids must be non-zero)");
	for (size_t i = 0; i < c->nids; i++)
		if (c->ids[i] == id)
			return diverge(c, "uvmo reused id %" PRIu64 " (ids are never reused)", id);
	if (c->nids == c->capids) {
		size_t cap = c->capids ? 2 * c->capids : 256;
		uint64_t *ids = realloc(c->ids, cap * sizeof(*ids));

		if (!ids)
			return diverge(c, "out of memory in the test");
		c->ids = ids;
		c->capids = cap;
	}
	c->ids[c->nids++] = id;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* The pager of DIFF_PAGER runs                                              */
/* ------------------------------------------------------------------------ */

/* Answers READ with the model's pattern for the VMO's key; DIRTY (never
 * asked for: no VMO traps) is acknowledged; COMPLETE needs nothing. */
static void *pager_main(void *arg)
{
	struct diff_ctx *c = arg;
	struct uvmo_page_request reqs[8];
	uint8_t *buf = NULL;
	size_t cap = 0;

	while (!atomic_load(&c->pager_stop)) {
		int n = uvmo_pager_get_requests(c->pager, reqs, 8, 20);
		int rc = 0;

		if (n < 0) {
			snprintf(c->pager_error, sizeof(c->pager_error),
				 "pager thread: get_requests returned %s", errno_name(n));
			atomic_store(&c->pager_failed, true);
			break;
		}
		for (int i = 0; i < n; i++) {
			const struct uvmo_page_request *r = &reqs[i];

			if (r->type == UVMO_PAGER_READ) {
				if (r->length > cap) {
					uint8_t *nb = realloc(buf, r->length);

					if (!nb) {
						rc = -ENOMEM;
						break;
					}
					buf = nb;
					cap = r->length;
				}
				for (uint64_t j = 0; j < r->length; j++)
					buf[j] = model_pager_byte(r->key, r->offset + j);
				rc = uvmo_pager_supply_pages(c->pager, r->vmo, r->offset, r->length, buf);
			} else if (r->type == UVMO_PAGER_DIRTY) {
				rc = uvmo_pager_op_range(c->pager, UVMO_PAGER_OP_DIRTY, r->vmo, r->offset,
							 r->length, 0);
			}
			/* -ENOENT / -ERANGE: the VMO died or shrank meanwhile. */
			if (rc < 0 && rc != -ENOENT && rc != -ERANGE && !atomic_load(&c->pager_failed)) {
				snprintf(c->pager_error, sizeof(c->pager_error),
					 "pager thread: answering type %u key %" PRIu64 " [0x%" PRIx64
					 ", +0x%" PRIx64 ") returned %s", r->type, r->key, r->offset,
					 r->length, errno_name(rc));
				atomic_store(&c->pager_failed, true);
			}
		}
	}
	free(buf);
	return NULL;
}

static int pager_start(struct diff_ctx *c)
{
	int rc;

	if (c->pager)
		return 0;
	rc = uvmo_pager_create(0, &c->pager);
	if (rc != 0) {
		c->pager = NULL;
		return rc;
	}
	atomic_store(&c->pager_stop, false);
	if (pthread_create(&c->pager_thread, NULL, pager_main, c) != 0) {
		uvmo_pager_destroy(c->pager);
		c->pager = NULL;
		return -EAGAIN;
	}
	return 0;
}

/* Stops the pager thread and takes whatever requests are left (at the end
 * of a run: the COMPLETEs of the VMOs just closed; uvmo keeps a dead pager
 * VMO's node until its owner has taken its COMPLETE).  The pager stays. */
static void pager_quiesce(struct diff_ctx *c)
{
	struct uvmo_page_request reqs[16];

	if (!c->pager || atomic_load(&c->pager_stop))
		return;
	atomic_store(&c->pager_stop, true);
	pthread_join(c->pager_thread, NULL);
	while (uvmo_pager_get_requests(c->pager, reqs, 16, 0) > 0)
		;
}

static void pager_stop(struct diff_ctx *c)
{
	if (!c->pager)
		return;
	pager_quiesce(c);
	uvmo_pager_destroy(c->pager);
	c->pager = NULL;
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                    */
/* ------------------------------------------------------------------------ */

static int expect_rc(struct diff_ctx *c, const char *call, int got, int want)
{
	if (got == want) {
		c->predicted_errors += got != 0;
		return 0;
	}
	return diverge(c, "%s returned %s, the model expects %s", call, errno_name(got),
		       errno_name(want));
}

static int compare_bytes(struct diff_ctx *c, const char *what, uint64_t offset, uint64_t len)
{
	if (memcmp(c->buf, c->expect, len) == 0)
		return 0;
	uint64_t i = 0;

	while (c->buf[i] == c->expect[i])
		i++;
	uint64_t first = i, last = i;
	uint64_t count = 0;

	for (; i < len; i++) {
		if (c->buf[i] != c->expect[i]) {
			last = i;
			count++;
		}
	}
	return diverge(c,
		       "%s: %" PRIu64 " bytes differ; first at VMO offset 0x%" PRIx64
		       " (page %" PRIu64 "): uvmo 0x%02x, model 0x%02x; last at 0x%" PRIx64
		       " (page %" PRIu64 ")",
		       what, count, offset + first, (offset + first) / PAGE, c->buf[first],
		       c->expect[first], offset + last, (offset + last) / PAGE);
}

/* Size, info fields, and per-VMO accounting bounds of one live VMO. */
static int check_info(struct diff_ctx *c, struct slot *s)
{
	struct uvmo_vmo_info info;
	uint64_t size = 0;
	int rc;

	rc = uvmo_vmo_get_size(s->h, &size);
	if (rc != 0)
		return diverge(c, "uvmo_vmo_get_size(v%u) returned %s", s->serial, errno_name(rc));
	if (size != model_size(s->m))
		return diverge(c, "v%u: get_size 0x%" PRIx64 ", model 0x%" PRIx64, s->serial, size,
			       model_size(s->m));
	memset(&info, 0xa5, sizeof(info));
	rc = uvmo_vmo_get_info(s->h, &info);
	if (rc != 0)
		return diverge(c, "uvmo_vmo_get_info(v%u) returned %s", s->serial, errno_name(rc));
	if (info.id != s->id)
		return diverge(c, "v%u: info.id changed from %" PRIu64 " to %" PRIu64, s->serial,
			       s->id, info.id);
	if (info.size != model_size(s->m))
		return diverge(c, "v%u: info.size 0x%" PRIx64 ", model 0x%" PRIx64, s->serial,
			       info.size, model_size(s->m));
	if (info.flags != model_info_flags(s->m))
		return diverge(c, "v%u: info.flags 0x%x, model 0x%x", s->serial, info.flags,
			       model_info_flags(s->m));
	/* parent_id is checked while the parent lives; after it closes the
	 * contract does not say whether the id stays. */
	if (s->parent_serial && find_slot(c, s->parent_serial) && info.parent_id != s->parent_id)
		return diverge(c, "v%u: info.parent_id %" PRIu64 ", expected v%u's id %" PRIu64,
			       s->serial, info.parent_id, s->parent_serial, s->parent_id);
	if (!s->parent_serial && info.parent_id != 0)
		return diverge(c, "v%u: root VMO has info.parent_id %" PRIu64, s->serial,
			       info.parent_id);
	unsigned children = live_children(c, s->serial);

	if (info.num_children != children)
		return diverge(c, "v%u: info.num_children %u, but %u live VMOs were created from it",
			       s->serial, info.num_children, children);
	if (info.lock_count != s->m->lock_count)
		return diverge(c, "v%u: info.lock_count %u, model %u", s->serial, info.lock_count,
			       s->m->lock_count);
	/* A VMO never holds more frames than it has pages. */
	if (info.committed_bytes > size)
		return diverge(c, "v%u: committed_bytes 0x%" PRIx64 " exceeds size 0x%" PRIx64,
			       s->serial, info.committed_bytes, size);
	if (info.committed_bytes % PAGE)
		return diverge(c, "v%u: committed_bytes 0x%" PRIx64 " is not whole pages",
			       s->serial, info.committed_bytes);
	if (!s->m->slice && info.attributed_bytes < info.committed_bytes)
		return diverge(c, "v%u: attributed_bytes 0x%" PRIx64 " < committed_bytes 0x%" PRIx64,
			       s->serial, info.attributed_bytes, info.committed_bytes);
	if (!s->m->slice && info.attributed_bytes > size)
		return diverge(c, "v%u: attributed_bytes 0x%" PRIx64 " exceeds size 0x%" PRIx64
			       " (more than an eager copy)",
			       s->serial, info.attributed_bytes, size);
	return 0;
}

/* Whole content equal, plus info. */
static int check_vmo(struct diff_ctx *c, struct slot *s)
{
	uint64_t size = model_size(s->m);
	int rc;

	if (check_info(c, s))
		return -1;
	memset(c->buf, 0x5a, size);
	rc = uvmo_vmo_read(s->h, c->buf, 0, size);
	if (s->m->discarded)
		return expect_rc(c, "full read of a discarded VMO", rc, size ? -ENOENT : 0);
	if (rc != 0)
		return diverge(c, "full read of v%u (size 0x%" PRIx64 ") returned %s", s->serial,
			       size, errno_name(rc));
	model_read(s->m, 0, c->expect, size);
	return compare_bytes(c, "full compare", 0, size);
}

/*
 * Accounting across the pool (only meaningful when this run is uvmo's only
 * user).  Lower bound: what live VMOs report owning is held by the pool
 * (slices are skipped: they report their window of the parent's frames).
 * Upper bound: a clone never costs more than an eager copy, so the pool
 * holds at most the bytes of the model's live stores — closed clones must
 * have given their frames back.
 */
static int check_global(struct diff_ctx *c, bool final)
{
	struct uvmo_stats st;
	uint64_t committed = 0, attributed = 0, eager = 0;
	int rc;

	if (atomic_load(&c->pager_failed))
		return diverge(c, "%s", c->pager_error);
	rc = uvmo_get_stats(&st);
	if (rc != 0)
		return diverge(c, "uvmo_get_stats returned %s", errno_name(rc));
	if (final) {
		if (c->pager) {
			pager_quiesce(c);
			rc = uvmo_get_stats(&st);
			if (rc != 0)
				return diverge(c, "uvmo_get_stats returned %s", errno_name(rc));
		}
		if (st.committed_bytes || st.host_bytes || st.vmos || st.nodes || st.hidden_nodes)
			return diverge(c,
				       "after closing everything: committed_bytes %" PRIu64
				       ", host_bytes %" PRIu64 ", vmos %" PRIu64 ", nodes %" PRIu64
				       ", hidden_nodes %" PRIu64 " (all must be 0)",
				       st.committed_bytes, st.host_bytes, st.vmos, st.nodes,
				       st.hidden_nodes);
		return 0;
	}
	/* The limit holds whoever else uses the pool. */
	if (c->pool_limited && (st.committed_bytes > DIFF_POOL_LIMIT_BYTES ||
				st.peak_committed_bytes > DIFF_POOL_LIMIT_BYTES ||
				st.pool_limit != DIFF_POOL_LIMIT_BYTES))
		return diverge(c, "pool limit 0x%x: stats.pool_limit 0x%" PRIx64 ", committed 0x%"
			       PRIx64 ", peak 0x%" PRIx64, DIFF_POOL_LIMIT_BYTES, st.pool_limit,
			       st.committed_bytes, st.peak_committed_bytes);
	if (!c->global_checks)
		return 0;
	if (st.vmos != c->nlive + (c->ballast != NULL))
		return diverge(c, "stats.vmos %" PRIu64 ", but %u handles are open", st.vmos,
			       c->nlive + (c->ballast != NULL));
	/* The ballast holds exactly the frames it committed. */
	eager += c->ballast_pages * PAGE;
	if (st.hidden_nodes > st.nodes)
		return diverge(c, "stats.hidden_nodes %" PRIu64 " > nodes %" PRIu64,
			       st.hidden_nodes, st.nodes);
	for (unsigned i = 0; i < c->nlive; i++) {
		struct slot *s = &c->live[i];
		struct uvmo_vmo_info info;
		bool seen = false;

		/* Each distinct store once: slices share their root's. */
		for (unsigned j = 0; j < i; j++)
			seen |= c->live[j].m->store == s->m->store;
		if (!seen)
			eager += s->m->store->size;
		rc = uvmo_vmo_get_info(s->h, &info);
		if (rc != 0)
			return diverge(c, "uvmo_vmo_get_info(v%u) returned %s", s->serial,
				       errno_name(rc));
		if (!s->m->slice) {
			committed += info.committed_bytes;
			attributed += info.attributed_bytes;
			continue;
		}
		/* A slice reports its window of the frames the VMO it slices
		 * owns: never more than that VMO owns in all. */
		for (unsigned j = 0; j < c->nlive; j++) {
			struct slot *owner = &c->live[j];
			struct uvmo_vmo_info oinfo;

			if (owner->m->slice || owner->m->store != s->m->store)
				continue;
			if (uvmo_vmo_get_info(owner->h, &oinfo) != 0)
				return diverge(c, "uvmo_vmo_get_info(v%u) failed", owner->serial);
			if (info.committed_bytes > oinfo.committed_bytes)
				return diverge(c, "slice v%u reports committed_bytes 0x%" PRIx64
					       ", more than the 0x%" PRIx64 " of v%u it is a window of",
					       s->serial, info.committed_bytes,
					       oinfo.committed_bytes, owner->serial);
		}
	}
	/* Closed parents that at-least-on-write children still follow keep
	 * their frames: each distinct store not counted yet, once. */
	const struct model_store *kept[LIVE_CAP];
	unsigned nkept = 0;

	for (unsigned i = 0; i < c->nlive; i++) {
		for (const struct model_vmo *f = c->live[i].m->follow; f; f = f->follow) {
			bool counted = !f->closed;

			for (unsigned j = 0; j < c->nlive && !counted; j++)
				counted = c->live[j].m->store == f->store;
			for (unsigned j = 0; j < nkept && !counted; j++)
				counted = kept[j] == f->store;
			if (!counted && nkept < LIVE_CAP) {
				kept[nkept++] = f->store;
				eager += f->store->size;
			}
		}
	}
	if (committed > st.committed_bytes)
		return diverge(c, "sum of live VMOs' committed_bytes 0x%" PRIx64
			       " > stats.committed_bytes 0x%" PRIx64, committed, st.committed_bytes);
	if (attributed > st.committed_bytes)
		return diverge(c, "sum of live VMOs' attributed_bytes 0x%" PRIx64
			       " > stats.committed_bytes 0x%" PRIx64, attributed, st.committed_bytes);
	if (st.committed_bytes > eager && !(c->flags & DIFF_NO_LEAK_CHECK))
		return diverge(c, "stats.committed_bytes 0x%" PRIx64 " > 0x%" PRIx64
			       ", the bytes eager copies of the %u live VMOs would hold (leak?)",
			       st.committed_bytes, eager, c->nlive);
	if (st.peak_committed_bytes < st.committed_bytes)
		return diverge(c, "stats.peak_committed_bytes 0x%" PRIx64 " < committed 0x%" PRIx64,
			       st.peak_committed_bytes, st.committed_bytes);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Executor: one recorded operation against uvmo and the model              */
/* ------------------------------------------------------------------------ */

/* Adds a VMO both sides created; its info is checked at once. */
static int add_slot(struct diff_ctx *c, const struct diff_op *op, struct slot *parent,
		    uvmo_vmo_t *h, struct model_vmo *m)
{
	struct uvmo_vmo_info info;
	struct slot *s = &c->live[c->nlive++];
	int rc;

	*s = (struct slot){ .serial = op->result, .h = h, .m = m };
	if (parent) {
		s->parent_serial = parent->serial;
		s->parent_id = parent->id;
		s->depth = parent->depth + 1;
	}
	/* Depth that counts is that of the live hierarchy: closed ancestors
	 * have been merged away inside uvmo. */
	unsigned live_depth = 0, snap_depth = 0;
	bool snapshots = true;

	for (struct slot *a = s; a->parent_serial; ) {
		struct slot *up = find_slot(c, a->parent_serial);

		if (!up)
			break;
		live_depth++;
		snapshots &= !a->m->slice;
		if (snapshots)
			snap_depth++;
		a = up;
	}
	if (live_depth > c->max_depth)
		c->max_depth = live_depth;
	if (snap_depth > c->max_snap_depth)
		c->max_snap_depth = snap_depth;
	rc = uvmo_vmo_get_info(h, &info);
	if (rc != 0)
		return diverge(c, "uvmo_vmo_get_info(new v%u) returned %s", s->serial,
			       errno_name(rc));
	s->id = info.id;
	if (note_id(c, info.id))
		return -1;
	return check_info(c, s);
}

/*
 * Under a pool limit, a call the model says succeeds may instead fail with
 * -ENOMEM, and must then have changed nothing (the calls that allocate
 * frames are all or nothing; for COMMIT the bytes do not change either way).
 * The caller undoes the model's side and the later reads check uvmo's.
 */
static bool enomem_instead_of_success(struct diff_ctx *c, int got, int want)
{
	if (!c->pool_limited || got != -ENOMEM || want != 0)
		return false;
	c->enomem++;
	if (c->log && c->log->count) {
		if (c->nenomem_at == c->capenomem_at) {
			size_t cap = c->capenomem_at ? 2 * c->capenomem_at : 64;
			size_t *at = realloc(c->enomem_at, cap * sizeof(*at));

			if (at) {
				c->enomem_at = at;
				c->capenomem_at = cap;
			}
		}
		if (c->nenomem_at < c->capenomem_at)
			c->enomem_at[c->nenomem_at++] = c->log->count - 1;
	}
	if (c->flags & DIFF_TRACE)
		fprintf(stderr, "[%s%d #%zu]   -> -ENOMEM (out of frames; nothing may change)\n",
			c->thread >= 0 ? "t" : "", c->thread >= 0 ? c->thread : 0, c->op_index);
	return true;
}

/* Compare the outcome of a call that creates a VMO in uvmo and in the
 * model, then keep both (or neither). */
static int settle_new_vmo(struct diff_ctx *c, const struct diff_op *op, struct slot *parent,
			  const char *call, int got, uvmo_vmo_t *h, int want,
			  struct model_vmo *m)
{
	if (enomem_instead_of_success(c, got, want)) {
		model_close(m);
		return 0;
	}
	if (got != want) {
		if (got == 0)
			uvmo_vmo_close(h);
		if (want == 0)
			model_close(m);
		return expect_rc(c, call, got, want);
	}
	if (got != 0)
		return 0;
	return add_slot(c, op, parent, h, m);
}

static int exec_create(struct diff_ctx *c, const struct diff_op *op)
{
	uvmo_vmo_t *h = NULL;
	struct model_vmo *m = NULL;

	if (op->variant == 1) { /* pager-backed, key = its serial */
		int rc = pager_start(c);

		if (rc != 0)
			return diverge(c, "uvmo_pager_create returned %s", errno_name(rc));
		int got = uvmo_pager_create_vmo(c->pager, op->options, op->result, op->len, &h);
		int want = model_api_pager_create(op->len, op->options, op->result, &m);
		return settle_new_vmo(c, op, NULL, "uvmo_pager_create_vmo", got, h, want, m);
	}
	int got = uvmo_vmo_create(op->len, op->options, &h);
	int want = model_api_create(op->len, op->options, &m);
	return settle_new_vmo(c, op, NULL, "uvmo_vmo_create", got, h, want, m);
}

static int exec_child(struct diff_ctx *c, struct slot *parent, const struct diff_op *op)
{
	uvmo_vmo_t *h = NULL;
	struct model_vmo *m = NULL;
	int got = uvmo_vmo_create_child(parent->h, op->options, op->offset, op->len, &h);
	int want = model_api_create_child(parent->m, op->options, op->offset, op->len, &m);
	return settle_new_vmo(c, op, parent, "uvmo_vmo_create_child", got, h, want, m);
}

static int exec_write(struct diff_ctx *c, struct slot *s, const struct diff_op *op)
{
	const uint8_t *data = NULL;

	if (op->variant == 0) {
		fill_bytes(op->data, c->buf, op->len);
		data = c->buf;
	}
	/* What the range held, in case the write must be undone (-ENOMEM). */
	bool saved = c->pool_limited && op->offset <= model_size(s->m) &&
		     op->len <= model_size(s->m) - op->offset;

	if (saved)
		model_read(s->m, op->offset, c->save, op->len);
	int got = uvmo_vmo_write(s->h, data, op->offset, op->len);
	int want = model_api_write(s->m, data, op->offset, op->len);

	if (saved && enomem_instead_of_success(c, got, want)) {
		model_write(s->m, op->offset, c->save, op->len);
		return 0;
	}
	return expect_rc(c, "uvmo_vmo_write", got, want);
}

static int exec_read(struct diff_ctx *c, struct slot *s, const struct diff_op *op)
{
	uint8_t *dst = op->variant == 0 ? c->buf : NULL;
	uint8_t *model_dst = op->variant == 0 ? c->expect : NULL;

	/* Poison, so that a read reporting success without copying shows. */
	if (dst)
		memset(dst, 0x5a, op->len);
	int got = uvmo_vmo_read(s->h, dst, op->offset, op->len);
	int want = model_api_read(s->m, model_dst, op->offset, op->len);

	if (expect_rc(c, "uvmo_vmo_read", got, want))
		return -1;
	if (got != 0 || !dst)
		return 0;
	return compare_bytes(c, "read", op->offset, op->len);
}

static int exec_op_range(struct diff_ctx *c, struct slot *s, const struct diff_op *op)
{
	struct uvmo_vmo_info info;
	/* ZERO may need a frame to zero part of a shared page; keep what the
	 * range held in case the call fails for want of one (-ENOMEM). */
	bool saved = c->pool_limited && op->options == UVMO_OP_ZERO &&
		     op->offset <= model_size(s->m) && op->len <= model_size(s->m) - op->offset;

	if (saved)
		model_read(s->m, op->offset, c->save, op->len);
	int got = uvmo_vmo_op_range(s->h, op->options, op->offset, op->len);
	int want = model_api_op_range(s->m, op->options, op->offset, op->len);

	if ((saved || op->options == UVMO_OP_COMMIT) && enomem_instead_of_success(c, got, want)) {
		if (saved)
			model_write(s->m, op->offset, c->save, op->len);
		return 0;
	}
	if (expect_rc(c, "uvmo_vmo_op_range", got, want))
		return -1;
	if (got != 0)
		return 0;
	if (op->options == UVMO_OP_COMMIT) {
		/* Every page wholly inside the range is now backed by frames
		 * this VMO owns (a slice: its window of its parent's). */
		uint64_t first = (op->offset + PAGE - 1) / PAGE;
		uint64_t end = (op->offset + op->len) / PAGE;
		uint64_t need = end > first ? (end - first) * PAGE : 0;

		if (uvmo_vmo_get_info(s->h, &info) != 0)
			return diverge(c, "uvmo_vmo_get_info failed after commit");
		if (info.committed_bytes < need)
			return diverge(c, "after COMMIT of 0x%" PRIx64 " whole-page bytes, v%u has"
				       " committed_bytes 0x%" PRIx64, need, s->serial,
				       info.committed_bytes);
	}
	if ((op->options == UVMO_OP_DECOMMIT || op->options == UVMO_OP_ZERO) &&
	    op->offset == 0 && op->len == model_size(s->m) && op->len % PAGE == 0) {
		/* Zeroing all of a VMO leaves it owning no frames. */
		if (uvmo_vmo_get_info(s->h, &info) != 0)
			return diverge(c, "uvmo_vmo_get_info failed after decommit");
		if (info.committed_bytes != 0)
			return diverge(c, "after %s of the whole of v%u, committed_bytes is 0x%"
				       PRIx64 " (frames must go back)", op_name(op->options),
				       s->serial, info.committed_bytes);
	}
	return 0;
}

static int exec_set_size(struct diff_ctx *c, struct slot *s, const struct diff_op *op)
{
	uint64_t old_size = model_size(s->m);

	if (c->pool_limited)
		model_read(s->m, 0, c->save, old_size);
	int got = uvmo_vmo_set_size(s->h, op->len);
	int want = model_api_set_size(s->m, op->len);

	if (enomem_instead_of_success(c, got, want)) {
		/* Undo: the old size, and the bytes a shrink cut off. */
		model_resize(s->m, old_size);
		model_write(s->m, 0, c->save, old_size);
		return 0;
	}
	if (expect_rc(c, "uvmo_vmo_set_size", got, want))
		return -1;
	if (got != 0)
		return 0;
	/* A shrink must have let go of the frames cut off at once. */
	return check_info(c, s);
}

static void close_slot(struct diff_ctx *c, struct slot *s)
{
	uvmo_vmo_close(s->h);
	model_close(s->m);
	remember_stale(c, s->serial, s->h);
	*s = c->live[--c->nlive];
}

static int exec_stale(struct diff_ctx *c, struct stale *st, const struct diff_op *op)
{
	uint8_t byte = 0;
	uint64_t size;
	struct uvmo_vmo_info info;
	uvmo_vmo_t *child = NULL;
	int got;

	switch (op->variant) {
	case STALE_READ:
		got = uvmo_vmo_read(st->h, &byte, 0, 1);
		break;
	case STALE_WRITE:
		got = uvmo_vmo_write(st->h, &byte, 0, 1);
		break;
	case STALE_GET_SIZE:
		got = uvmo_vmo_get_size(st->h, &size);
		break;
	case STALE_GET_INFO:
		got = uvmo_vmo_get_info(st->h, &info);
		break;
	case STALE_OP_RANGE:
		got = uvmo_vmo_op_range(st->h, UVMO_OP_ZERO, 0, 1);
		break;
	case STALE_CHILD:
		got = uvmo_vmo_create_child(st->h, UVMO_CHILD_SNAPSHOT, 0, PAGE, &child);
		if (got == 0)
			uvmo_vmo_close(child);
		break;
	case STALE_SET_SIZE:
		got = uvmo_vmo_set_size(st->h, PAGE);
		break;
	default:
		/* Closing twice must be harmless; later checks see any damage. */
		uvmo_vmo_close(st->h);
		return 0;
	}
	return expect_rc(c, "call on a closed handle", got, -EBADF);
}

/*
 * NULL where a handle or an out-pointer belongs: -EINVAL everywhere (a NULL
 * handle is an argument error, docs/api.md; only a closed one is -EBADF).
 */
static int exec_null(struct diff_ctx *c, struct slot *s, const struct diff_op *op)
{
	uint8_t byte = 0;
	uint64_t size;
	struct uvmo_vmo_info info;
	uvmo_vmo_t *child = NULL;
	int got;

	switch (op->variant) {
	case NULL_READ_VMO:
		got = uvmo_vmo_read(NULL, &byte, 0, 1);
		break;
	case NULL_WRITE_VMO:
		got = uvmo_vmo_write(NULL, &byte, 0, 1);
		break;
	case NULL_GET_SIZE_VMO:
		got = uvmo_vmo_get_size(NULL, &size);
		break;
	case NULL_GET_SIZE_OUT:
		got = uvmo_vmo_get_size(s->h, NULL);
		break;
	case NULL_GET_INFO_VMO:
		got = uvmo_vmo_get_info(NULL, &info);
		break;
	case NULL_GET_INFO_OUT:
		got = uvmo_vmo_get_info(s->h, NULL);
		break;
	case NULL_OP_RANGE_VMO:
		got = uvmo_vmo_op_range(NULL, UVMO_OP_ZERO, 0, 1);
		break;
	case NULL_SET_SIZE_VMO:
		got = uvmo_vmo_set_size(NULL, PAGE);
		break;
	case NULL_CHILD_PARENT:
		got = uvmo_vmo_create_child(NULL, UVMO_CHILD_SNAPSHOT, 0, PAGE, &child);
		break;
	case NULL_CHILD_OUT:
		got = uvmo_vmo_create_child(s->h, UVMO_CHILD_SNAPSHOT, 0, PAGE, NULL);
		break;
	case NULL_CREATE_OUT:
		got = uvmo_vmo_create(PAGE, 0, NULL);
		break;
	case NULL_STATS_OUT:
		got = uvmo_get_stats(NULL);
		break;
	default:
		uvmo_vmo_close(NULL); /* must be ignored */
		return 0;
	}
	if (got == 0 && child)
		uvmo_vmo_close(child);
	return expect_rc(c, "call with a NULL argument", got, -EINVAL);
}

/*
 * The pool discards unlocked discardable VMOs when it runs short, during
 * calls on other VMOs: the model cannot foresee it, so before each
 * operation on such a VMO the test asks uvmo and tells the model.  (Never
 * during a call on the VMO itself: uvmo does not discard the caller's own
 * tree, and threaded runs with a pool limit make no discardable VMOs.)
 */
static int sync_discard(struct diff_ctx *c, struct slot *s)
{
	struct uvmo_vmo_info info;
	int rc;

	if (!s->m->discardable || s->m->discarded || s->m->lock_count > 0)
		return 0;
	rc = uvmo_vmo_get_info(s->h, &info);
	if (rc != 0)
		return diverge(c, "uvmo_vmo_get_info(v%u) returned %s", s->serial, errno_name(rc));
	if (!(info.flags & UVMO_INFO_DISCARDED))
		return 0;
	if (!c->pool_limited)
		return diverge(c, "v%u was discarded without any pool limit", s->serial);
	model_discard(s->m);
	c->discards++;
	return 0;
}

static int exec_ballast(struct diff_ctx *c, const struct diff_op *op)
{
	struct uvmo_stats st;
	const uint64_t limit_pages = DIFF_POOL_LIMIT_BYTES / PAGE;
	int rc;

	if (!c->pool_limited)
		return 0;
	if (!c->ballast) {
		rc = uvmo_vmo_create(DIFF_POOL_LIMIT_BYTES, 0, &c->ballast);
		if (rc != 0)
			return diverge(c, "creating the ballast VMO returned %s", errno_name(rc));
	}
	rc = uvmo_get_stats(&st);
	if (rc != 0)
		return diverge(c, "uvmo_get_stats returned %s", errno_name(rc));
	uint64_t used = st.committed_bytes / PAGE;
	uint64_t free = used < limit_pages ? limit_pages - used : 0;

	if (free > op->len) {
		uint64_t more = free - op->len;

		if (more > limit_pages - c->ballast_pages)
			more = limit_pages - c->ballast_pages;
		rc = uvmo_vmo_op_range(c->ballast, UVMO_OP_COMMIT, c->ballast_pages * PAGE,
				       more * PAGE);
		if (rc != 0)
			return diverge(c, "committing %" PRIu64 " ballast pages with %" PRIu64
				       " free returned %s", more, free, errno_name(rc));
		c->ballast_pages += more;
	} else if (free < op->len) {
		uint64_t fewer = op->len - free;

		if (fewer > c->ballast_pages)
			fewer = c->ballast_pages;
		c->ballast_pages -= fewer;
		rc = uvmo_vmo_op_range(c->ballast, UVMO_OP_DECOMMIT, c->ballast_pages * PAGE,
				       fewer * PAGE);
		if (rc != 0)
			return diverge(c, "decommitting ballast pages returned %s", errno_name(rc));
	}
	return 0;
}

static void drop_ballast(struct diff_ctx *c)
{
	uvmo_vmo_close(c->ballast);
	c->ballast = NULL;
	c->ballast_pages = 0;
}

/* ---- live snapshots, restore, diff (DIFF_RESTORE) ---------------------- */

static int exec_snapshot_live(struct diff_ctx *c, struct slot *s, const struct diff_op *op)
{
	uvmo_vmo_t *h = NULL;
	struct model_vmo *m = NULL;
	int got = uvmo_vmo_snapshot(s->h, &h);
	int want = model_api_snapshot(s->m, &m);
	return settle_new_vmo(c, op, s, "uvmo_vmo_snapshot", got, h, want, m);
}

/* The handles a restore or diff passes: a live slot's, NULL, or a closed
 * one; *expect is the error the variant implies (0: ask the model). */
struct pair_args {
	uvmo_vmo_t *vh, *sh;
	struct slot *v, *s;
	int expect;
};

/* Resolves the handles of @op; false if this replay lacks one (skip). */
static bool pair_resolve(struct diff_ctx *c, const struct diff_op *op, struct pair_args *a)
{
	struct stale *st;

	memset(a, 0, sizeof(*a));
	if (op->variant != PAIR_NULL_VMO && op->variant != PAIR_STALE_VMO) {
		if (!(a->v = find_slot(c, op->vmo)))
			return false;
		a->vh = a->v->h;
	}
	if (op->variant != PAIR_NULL_SNAP && op->variant != PAIR_STALE_SNAP) {
		if (op->data > UINT32_MAX || !(a->s = find_slot(c, (uint32_t)op->data)))
			return false;
		a->sh = a->s->h;
	}
	switch (op->variant) {
	case PAIR_NULL_VMO:
	case PAIR_NULL_SNAP:
	case PAIR_NULL_OUT:
		a->expect = -EINVAL;
		break;
	case PAIR_STALE_VMO:
		if (!(st = find_stale(c, op->vmo)))
			return false;
		a->vh = st->h;
		a->expect = -EBADF;
		break;
	case PAIR_STALE_SNAP:
		if (op->data > UINT32_MAX || !(st = find_stale(c, (uint32_t)op->data)))
			return false;
		a->sh = st->h;
		a->expect = -EBADF;
		break;
	default:
		break;
	}
	return true;
}

static int exec_restore(struct diff_ctx *c, const struct pair_args *a, const struct diff_op *op)
{
	(void)op;
	if (!a->v || !a->s) {
		int got = uvmo_vmo_restore(a->vh, a->sh);

		return expect_rc(c, "uvmo_vmo_restore", got, a->expect);
	}
	struct model_vmo *m = a->v->m;
	uint64_t old_size = model_size(m);
	/* What the VMO held, in case the restore runs out of frames (-ENOMEM
	 * must leave everything as it was). */
	bool saved = c->pool_limited && old_size <= BUF_SIZE;

	if (saved)
		model_read(m, 0, c->save, old_size);
	bool strict = model_is_snapshot_of(a->s->m, m);
	bool open_question = !strict && model_is_clone_of(a->s->m, m);
	int got = uvmo_vmo_restore(a->vh, a->sh);

	if (open_question && got == -EINVAL)
		return check_vmo(c, a->v); /* refused: allowed, and nothing changed */
	int want = model_api_restore_lineage(m, a->s->m, strict || open_question);

	if (saved && enomem_instead_of_success(c, got, want)) {
		if (model_size(m) != old_size)
			model_resize(m, old_size);
		model_write(m, 0, c->save, old_size);
		return check_vmo(c, a->v);
	}
	if (expect_rc(c, "uvmo_vmo_restore", got, want))
		return -1;
	if (got != 0)
		return 0;
	c->restores_ok++;
	/* Every byte, and the size, at once. */
	return check_vmo(c, a->v);
}

#define DIFF_MAX_RUNS 64u

static int exec_diff(struct diff_ctx *c, const struct pair_args *a, const struct diff_op *op)
{
	struct uvmo_dirty_range runs[DIFF_MAX_RUNS];
	size_t max = op->options < DIFF_MAX_RUNS ? op->options : DIFF_MAX_RUNS;
	bool out_null = op->variant == PAIR_NULL_OUT;
	size_t actual = 0, avail = 0;

	if (a->v && a->s && model_size(a->v->m) != model_size(a->s->m))
		return 0; /* the contract does not say what a diff past one end means */
	int want = a->expect;
	int got = uvmo_vmo_diff(a->vh, a->sh, op->offset, op->len, out_null ? NULL : runs, max,
				&actual, &avail);

	if (a->v && a->s && !want) {
		bool strict = model_is_snapshot_of(a->s->m, a->v->m);
		bool open_question = !strict && model_is_clone_of(a->s->m, a->v->m);

		want = model_api_diff_lineage(a->v->m, a->s->m, op->offset, op->len, out_null, max,
					      strict || open_question);
		/* A clone that is no live snapshot may be refused (model.h). */
		if (open_question && got == -EINVAL &&
		    model_api_diff_lineage(a->v->m, a->s->m, op->offset, op->len, out_null, max,
					   false) == -EINVAL)
			want = -EINVAL;
	}
	if (got != 0 || want != 0)
		return expect_rc(c, "uvmo_vmo_diff", got, want);

	/* Collect every run, resuming from the end of the last one stored. */
	struct model_vmo *vm = a->v->m, *sm = a->s->m;
	uint64_t end = op->offset + op->len, cur = op->offset, prev_end = 0;
	uint64_t pages = model_size(vm) / PAGE;
	bool *covered = calloc(pages ? pages : 1, sizeof(*covered));
	size_t total = 0, first_avail = avail, calls = 0;
	int rc = 0;

	if (!covered)
		return diverge(c, "out of memory in the test");
	for (;;) {
		calls++;
		if (actual > max || actual > avail) {
			rc = diverge(c, "diff call %zu: actual %zu, avail %zu, max %zu", calls, actual,
				     avail, max);
			break;
		}
		for (size_t i = 0; i < actual; i++) {
			const struct uvmo_dirty_range *r = &runs[i];

			if (r->offset % PAGE || r->length % PAGE || !r->length || r->offset < cur ||
			    r->length > end - r->offset || (total && r->offset <= prev_end)) {
				rc = diverge(c, "diff call %zu run %zu [0x%" PRIx64 ", +0x%" PRIx64
					     ") is not whole pages, lies outside [0x%" PRIx64
					     ", 0x%" PRIx64 "), or is out of order or not merged"
					     " with the run before (ending 0x%" PRIx64 ")",
					     calls, i, r->offset, r->length, cur, end, prev_end);
				break;
			}
			for (uint64_t p = r->offset / PAGE; p < (r->offset + r->length) / PAGE; p++)
				covered[p] = true;
			prev_end = r->offset + r->length;
			total++;
		}
		if (rc || actual == avail)
			break;
		if (actual == 0 || calls > pages + 2) {
			rc = diverge(c, "diff call %zu stored no run (max %zu) but says %zu exist",
				     calls, max, avail);
			break;
		}
		cur = prev_end;
		actual = avail = 0;
		got = uvmo_vmo_diff(a->vh, a->sh, cur, end - cur, runs, max, &actual, &avail);
		if (got != 0) {
			rc = diverge(c, "resuming the diff at 0x%" PRIx64 " returned %s", cur,
				     errno_name(got));
			break;
		}
	}
	if (!rc && total != first_avail)
		rc = diverge(c, "the first diff call said %zu runs exist, resuming found %zu",
			     first_avail, total);
	/* Pages are compared byte by byte where the tree cannot tell (uvmo.h):
	 * a page is reported exactly when it differs. */
	for (uint64_t p = op->offset / PAGE; !rc && p < end / PAGE; p++) {
		bool same = model_ranges_equal(vm, sm, p * PAGE, PAGE);

		if (!covered[p] && !same)
			rc = diverge(c, "page %" PRIu64 " of v%u differs from snapshot v%u in the"
				     " model, but the diff does not report it", p, a->v->serial,
				     a->s->serial);
		else if (covered[p] && same)
			rc = diverge(c, "the diff reports page %" PRIu64 " of v%u, which equals"
				     " snapshot v%u's in the model", p, a->v->serial, a->s->serial);
	}
	free(covered);
	c->diff_runs += total;
	return rc;
}

/* Runs one operation; returns 0 if both sides agree (or the operation names
 * a VMO this replay does not have, and is skipped), -1 on divergence. */
static int exec_op(struct diff_ctx *c, const struct diff_op *op)
{
	struct slot *s = NULL;
	struct stale *st = NULL;
	struct pair_args pair = { 0 };

	if ((op->kind == K_RESTORE || op->kind == K_DIFF) && !pair_resolve(c, op, &pair))
		return 0;
	if (op->kind == K_CHILD || op->kind == K_WRITE || op->kind == K_READ ||
	    op->kind == K_OP_RANGE || op->kind == K_SET_SIZE || op->kind == K_CLOSE ||
	    op->kind == K_CHECK_VMO || op->kind == K_SNAPSHOT_LIVE) {
		s = find_slot(c, op->vmo);
		if (!s)
			return 0;
	}
	if (op->kind == K_STALE) {
		st = find_stale(c, op->vmo);
		if (!st)
			return 0;
	}
	if (op->kind == K_NULL) {
		s = find_slot(c, op->vmo);
		if (!s && (op->variant == NULL_GET_SIZE_OUT || op->variant == NULL_GET_INFO_OUT ||
			   op->variant == NULL_CHILD_OUT))
			return 0;
	}
	if ((op->kind == K_CREATE || op->kind == K_CHILD || op->kind == K_SNAPSHOT_LIVE) &&
	    c->nlive == LIVE_CAP)
		return 0;
	if (s && sync_discard(c, s))
		return -1;
	if ((op->kind == K_WRITE || op->kind == K_READ) && op->len > BUF_SIZE)
		return 0;
	if (log_op(c, op))
		return diverge(c, "out of memory in the test");
	diff_op_format(op, c->desc, sizeof(c->desc));
	if (op->kind < K_KINDS)
		c->kind_count[op->kind]++;
	if (c->flags & DIFF_TRACE) {
		if (c->thread >= 0)
			fprintf(stderr, "[t%d #%zu] %s\n", c->thread, c->op_index, c->desc);
		else
			fprintf(stderr, "[#%zu] %s\n", c->op_index, c->desc);
	}
	switch (op->kind) {
	case K_CREATE:
		return exec_create(c, op);
	case K_CHILD:
		return exec_child(c, s, op);
	case K_WRITE:
		return exec_write(c, s, op);
	case K_READ:
		return exec_read(c, s, op);
	case K_OP_RANGE:
		return exec_op_range(c, s, op);
	case K_SET_SIZE:
		return exec_set_size(c, s, op);
	case K_CLOSE:
		close_slot(c, s);
		return 0;
	case K_CHECK_VMO:
		return check_vmo(c, s);
	case K_CHECK_GLOBAL:
		return check_global(c, op->variant != 0);
	case K_STALE:
		return exec_stale(c, st, op);
	case K_NULL:
		return exec_null(c, s, op);
	case K_BALLAST:
		return exec_ballast(c, op);
	case K_SNAPSHOT_LIVE:
		return exec_snapshot_live(c, s, op);
	case K_RESTORE:
		return exec_restore(c, &pair, op);
	case K_DIFF:
		return exec_diff(c, &pair, op);
	default:
		return diverge(c, "unknown op kind %u", op->kind);
	}
}

/* ------------------------------------------------------------------------ */
/* Generator                                                                 */
/* ------------------------------------------------------------------------ */

/* Picks a live VMO satisfying @want (NULL: any); NULL if none does. */
static struct slot *pick(struct diff_ctx *c, bool (*want)(const struct slot *))
{
	struct slot *cand[LIVE_CAP];
	unsigned n = 0;

	for (unsigned i = 0; i < c->nlive; i++)
		if (!want || want(&c->live[i]))
			cand[n++] = &c->live[i];
	return n ? cand[below(c, n)] : NULL;
}

static bool is_writable(const struct slot *s)
{
	return !s->m->no_write && s->m->size > 0;
}

static bool is_nonempty(const struct slot *s)
{
	return s->m->size > 0;
}

static bool is_resizable_writable(const struct slot *s)
{
	return s->m->resizable && !s->m->no_write;
}

static bool is_discardable(const struct slot *s)
{
	return s->m->discardable;
}

static bool is_no_write(const struct slot *s)
{
	return s->m->no_write && s->m->size > 0;
}

/* A VMO that may be cloned without error (a snapshot additionally needs a
 * writable handle: what a snapshot of a NO_WRITE handle may do is not part
 * of the contract, so it is never generated). */
static bool is_clonable(const struct slot *s)
{
	return !s->m->discardable && s->m->size > 0;
}

static bool is_snapshot_parent(const struct slot *s)
{
	return is_clonable(s) && !s->m->no_write;
}

/*
 * Parent choice is biased towards the newest and the deepest VMOs so that
 * chains of clones of clones grow deep; otherwise uniform.
 */
static struct slot *pick_parent(struct diff_ctx *c, bool (*want)(const struct slot *))
{
	unsigned bias = (c->flags & DIFF_SNAPSHOTS_ONLY) ? 85 : 55;
	struct slot *best = NULL;

	if (below(c, 100) < bias) {
		bool deepest = chance(c, 1, 2);

		for (unsigned i = 0; i < c->nlive; i++) {
			struct slot *s = &c->live[i];

			if (!want(s))
				continue;
			if (!best || (deepest ? s->depth > best->depth : s->serial > best->serial))
				best = s;
		}
		if (best)
			return best;
	}
	return pick(c, want);
}

/* A byte range inside [0, size) (size > 0): small, page-crossing, a few
 * pages, or to the end. */
static void gen_range(struct diff_ctx *c, uint64_t size, uint64_t *offset, uint64_t *len)
{
	uint64_t off, n;

	switch (below(c, 10)) {
	case 0: case 1: case 2: case 3:
		off = below(c, size);
		n = between(c, 1, 64);
		break;
	case 4: case 5: case 6: {
		/* Straddle a page boundary. */
		uint64_t pages = size / PAGE;
		uint64_t boundary = between(c, 1, pages > 1 ? pages - 1 : 1) * PAGE;

		off = boundary - between(c, 1, 64 < boundary ? 64 : boundary);
		n = between(c, 2, 2 * PAGE);
		break;
	}
	case 7: case 8:
		off = below(c, size);
		n = between(c, 1, 3 * PAGE);
		break;
	default:
		off = chance(c, 1, 2) ? 0 : below(c, size);
		n = size - off;
		break;
	}
	if (off >= size)
		off = size - 1;
	if (n > size - off)
		n = size - off;
	*offset = off;
	*len = n;
}

/* A page-aligned range inside [0, size) (size > 0, page multiple). */
static void gen_page_range(struct diff_ctx *c, uint64_t size, uint64_t *offset, uint64_t *len)
{
	uint64_t pages = size / PAGE;
	uint64_t first = chance(c, 1, 4) ? 0 : below(c, pages);
	uint64_t count = chance(c, 1, 4) ? pages - first : between(c, 1, pages - first);

	*offset = first * PAGE;
	*len = count * PAGE;
}

static uint64_t gen_data(struct diff_ctx *c)
{
	/* Seed 0 writes zeros (page-of-zeros paths); never otherwise. */
	return chance(c, 1, 16) ? 0 : (rnd(c) | 1);
}

static void gen_create(struct diff_ctx *c, struct diff_op *op)
{
	uint64_t pages = gen_pages(c, 1);

	op->kind = K_CREATE;
	op->result = c->next_serial++;
	op->options = 0;
	/* (Not under a pool limit: a supply could then run out of frames and
	 * the pattern would no longer be what a read shows.) */
	if ((c->flags & DIFF_PAGER) && !c->pool_limited && chance(c, 1, 3)) {
		op->variant = 1;
		if (chance(c, 1, 4))
			op->options = UVMO_VMO_RESIZABLE;
		op->len = pages * PAGE;
		return;
	}
	if (!(c->flags & DIFF_SNAPSHOTS_ONLY)) {
		if (chance(c, 1, 4))
			op->options = UVMO_VMO_RESIZABLE;
		else if (chance(c, 1, 20) && !(c->pool_limited && c->thread >= 0))
			op->options = UVMO_VMO_DISCARDABLE;
	}
	if (op->options == UVMO_VMO_RESIZABLE && chance(c, 1, 16))
		pages = 0;
	op->len = pages * PAGE;
}

/* Returns false if no VMO can be a parent right now. */
static bool gen_child(struct diff_ctx *c, struct diff_op *op)
{
	bool snapshots_only = c->flags & DIFF_SNAPSHOTS_ONLY;
	unsigned r = below(c, 100);
	uint32_t type = r < 40 ? UVMO_CHILD_SNAPSHOT
		      : r < 65 ? UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE
		      : UVMO_CHILD_SLICE;
	struct slot *parent;

	if (snapshots_only && type == UVMO_CHILD_SLICE)
		type = UVMO_CHILD_SNAPSHOT;
	if (type == UVMO_CHILD_SLICE) {
		/* Resizable VMOs cannot be sliced (an error case, made elsewhere). */
		parent = pick_parent(c, is_clonable);
		if (parent && parent->m->resizable) {
			if (!is_snapshot_parent(parent))
				return false;
			type = UVMO_CHILD_SNAPSHOT;
		}
	} else {
		parent = pick_parent(c, is_snapshot_parent);
	}
	if (!parent)
		return false;
	if (parent->m->pager) {
		/* Pager-backed trees: never a clone of an at-least-on-write
		 * child; snapshots become at-least-on-write but for a few that
		 * must fail (-ENOTSUP); nothing follows a resizable root. */
		if (parent->m->follow)
			return false;
		if (type == UVMO_CHILD_SNAPSHOT && !chance(c, 1, 8))
			type = UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE;
		if (type == UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE && parent->m->resizable)
			return false;
		if (type == UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE && (c->flags & DIFF_PAGER_SLICES_ONLY))
			return false;
	}

	uint64_t psize = parent->m->size;
	uint64_t ppages = psize / PAGE;
	uint64_t off_pages, pages;

	op->kind = K_CHILD;
	op->vmo = parent->serial;
	op->result = c->next_serial++;
	if (type == UVMO_CHILD_SLICE) {
		if (chance(c, 1, 4)) {
			off_pages = 0;
			pages = ppages;
		} else {
			off_pages = below(c, ppages);
			pages = between(c, 1, ppages - off_pages);
		}
		op->options = type;
	} else {
		off_pages = below(c, ppages);
		switch (below(c, 4)) {
		case 0: /* the whole parent */
			off_pages = 0;
			pages = ppages;
			break;
		case 1: /* to the parent's end */
			pages = ppages - off_pages;
			break;
		case 2: /* anything: often past the parent's end */
			pages = gen_pages(c, 1);
			break;
		default: /* deliberately past the parent's end */
			pages = ppages - off_pages + between(c, 1, 8);
			break;
		}
		if (pages > MAX_PAGES)
			pages = MAX_PAGES;
		op->options = type;
		if (!snapshots_only && chance(c, 1, 4))
			op->options |= UVMO_CHILD_RESIZABLE;
	}
	if (!snapshots_only && chance(c, 1, 16))
		op->options |= UVMO_CHILD_NO_WRITE;
	op->offset = off_pages * PAGE;
	op->len = pages * PAGE;
	return true;
}

static bool gen_write(struct diff_ctx *c, struct diff_op *op)
{
	struct slot *s = pick(c, is_writable);

	if (!s)
		return false;
	op->kind = K_WRITE;
	op->vmo = s->serial;
	gen_range(c, s->m->size, &op->offset, &op->len);
	op->data = gen_data(c);
	return true;
}

static bool gen_read(struct diff_ctx *c, struct diff_op *op)
{
	struct slot *s = pick(c, is_nonempty);

	if (!s)
		return false;
	op->kind = K_READ;
	op->vmo = s->serial;
	gen_range(c, s->m->size, &op->offset, &op->len);
	if (chance(c, 1, 32)) {
		/* Nothing to read, anywhere up to the end; NULL is allowed then. */
		op->offset = below(c, s->m->size + 1);
		op->len = 0;
		op->variant = chance(c, 1, 2);
	}
	return true;
}

static bool gen_op_range(struct diff_ctx *c, struct diff_op *op, uint32_t code)
{
	struct slot *s = pick(c, is_writable);

	if (!s)
		return false;
	op->kind = K_OP_RANGE;
	op->vmo = s->serial;
	op->options = code;
	if (code == UVMO_OP_DECOMMIT || (code != UVMO_OP_ZERO && chance(c, 3, 4)) ||
	    (code == UVMO_OP_ZERO && chance(c, 1, 3)))
		gen_page_range(c, s->m->size, &op->offset, &op->len);
	else
		gen_range(c, s->m->size, &op->offset, &op->len);
	return true;
}

static bool gen_set_size(struct diff_ctx *c, struct diff_op *op)
{
	struct slot *s = pick(c, is_resizable_writable);

	if (!s)
		return false;
	uint64_t pages = s->m->size / PAGE;

	op->kind = K_SET_SIZE;
	op->vmo = s->serial;
	switch (below(c, 10)) {
	case 0: case 1: case 2: /* shrink */
		pages = below(c, pages + 1);
		break;
	case 3: case 4: case 5: /* grow */
		pages = between(c, pages, pages * 2 + 8 < MAX_PAGES ? pages * 2 + 8 : MAX_PAGES);
		break;
	case 6:
		pages = 0;
		break;
	default:
		pages = gen_pages(c, 0);
		break;
	}
	op->len = pages * PAGE;
	return true;
}

static bool gen_lock_op(struct diff_ctx *c, struct diff_op *op)
{
	struct slot *s = pick(c, is_discardable);

	if (!s)
		return false;
	op->kind = K_OP_RANGE;
	op->vmo = s->serial;
	op->offset = 0;
	op->len = s->m->size;
	/* Keep the count small and never UNLOCK at zero here (an error case). */
	if (s->m->lock_count > 0 && (s->m->lock_count > 3 || chance(c, 1, 2)))
		op->options = UVMO_OP_UNLOCK;
	else
		op->options = chance(c, 1, 2) ? UVMO_OP_LOCK : UVMO_OP_TRY_LOCK;
	return true;
}

static void gen_close(struct diff_ctx *c, struct diff_op *op)
{
	struct slot *s = NULL;
	unsigned parent_first = (c->flags & DIFF_CHURN) ? 70 : 30;
	bool want_parent = true;

	/* Closing parents before their children forces hidden-node merges;
	 * the snapshot-chain runs rather close leaves, so chains stay deep. */
	if (c->flags & DIFF_SNAPSHOTS_ONLY) {
		parent_first = 70;
		want_parent = false;
	}
	if (below(c, 100) < parent_first) {
		struct slot *cand[LIVE_CAP];
		unsigned n = 0;

		for (unsigned i = 0; i < c->nlive; i++)
			if ((live_children(c, c->live[i].serial) > 0) == want_parent)
				cand[n++] = &c->live[i];
		if (n)
			s = cand[below(c, n)];
	}
	if (!s)
		s = pick(c, NULL);
	op->kind = K_CLOSE;
	op->vmo = s->serial;
}

static bool gen_stale(struct diff_ctx *c, struct diff_op *op)
{
	unsigned avail = c->stale_next < STALE_RING ? c->stale_next : STALE_RING;

	if (avail == 0)
		return false;
	struct stale *st = &c->stale[below(c, avail)];

	op->kind = K_STALE;
	op->vmo = st->serial;
	op->variant = below(c, STALE_CALLS);
	return true;
}

static bool gen_null(struct diff_ctx *c, struct diff_op *op)
{
	/* The child-out case needs a parent that could be cloned. */
	struct slot *s = pick(c, is_snapshot_parent);

	if (!s)
		return false;
	op->kind = K_NULL;
	op->vmo = s->serial;
	op->variant = below(c, NULL_CALLS);
	return true;
}

/* One deliberately invalid call, with exactly one thing wrong. */
static bool gen_error(struct diff_ctx *c, struct diff_op *op)
{
	struct slot *s;

	switch (below(c, 26)) {
	case 0: /* read past the end */
		if (!(s = pick(c, NULL)))
			return false;
		op->kind = K_READ;
		op->vmo = s->serial;
		op->offset = below(c, s->m->size + 1);
		op->len = s->m->size - op->offset + between(c, 1, PAGE);
		return true;
	case 1: /* write past the end */
		if (!(s = pick(c, is_writable)))
			return false;
		op->kind = K_WRITE;
		op->vmo = s->serial;
		op->offset = below(c, s->m->size + 1);
		op->len = s->m->size - op->offset + between(c, 1, PAGE);
		op->data = gen_data(c);
		return true;
	case 2: /* offset + len overflows */
		if (!(s = pick(c, NULL)))
			return false;
		op->kind = chance(c, 1, 2) ? K_READ : K_OP_RANGE;
		op->vmo = s->serial;
		op->offset = UINT64_MAX - below(c, 100);
		op->len = between(c, 101, 300);
		op->options = UVMO_OP_COMMIT;
		if (op->kind == K_OP_RANGE && s->m->no_write)
			op->kind = K_READ;
		return true;
	case 3: /* read with the offset itself past the end */
		if (!(s = pick(c, NULL)))
			return false;
		op->kind = K_READ;
		op->vmo = s->serial;
		op->offset = s->m->size + between(c, 1, 3 * PAGE);
		op->len = below(c, 2);
		return true;
	case 4: /* NULL buffer with a length */
		if (!(s = pick(c, is_writable)))
			return false;
		op->kind = chance(c, 1, 2) ? K_READ : K_WRITE;
		op->vmo = s->serial;
		op->variant = 1;
		op->offset = 0;
		op->len = 1;
		return true;
	case 5: /* op_range past the end */
		if (!(s = pick(c, is_writable)))
			return false;
		op->kind = K_OP_RANGE;
		op->vmo = s->serial;
		op->options = chance(c, 1, 2) ? UVMO_OP_ZERO : UVMO_OP_COMMIT;
		op->offset = below(c, s->m->size / PAGE + 1) * PAGE;
		op->len = (s->m->size - op->offset) + between(c, 1, 4) * PAGE;
		return true;
	case 6: /* unaligned DECOMMIT, in range */
		if (!(s = pick(c, is_writable)))
			return false;
		op->kind = K_OP_RANGE;
		op->vmo = s->serial;
		op->options = UVMO_OP_DECOMMIT;
		if (chance(c, 1, 2) || s->m->size < 2 * PAGE) {
			op->offset = 0;
			op->len = between(c, 1, PAGE - 1);
		} else {
			op->offset = between(c, 1, PAGE - 1);
			op->len = PAGE;
		}
		return true;
	case 7: /* unknown op code */
		if (!(s = pick(c, is_writable)))
			return false;
		op->kind = K_OP_RANGE;
		op->vmo = s->serial;
		op->options = chance(c, 1, 2) ? 0 : (uint32_t)between(c, 9, 1000);
		op->offset = 0;
		op->len = PAGE;
		return true;
	case 8: /* LOCK of a VMO that is not discardable */
		if (!(s = pick(c, NULL)) || s->m->discardable)
			return false;
		op->kind = K_OP_RANGE;
		op->vmo = s->serial;
		op->options = UVMO_OP_LOCK + below(c, 3);
		op->offset = 0;
		op->len = s->m->size;
		return true;
	case 9: /* LOCK of a part of a discardable VMO */
		if (!(s = pick(c, is_discardable)))
			return false;
		op->kind = K_OP_RANGE;
		op->vmo = s->serial;
		op->options = UVMO_OP_LOCK;
		op->offset = 0;
		op->len = s->m->size - PAGE;
		return true;
	case 10: /* UNLOCK at count zero */
		if (!(s = pick(c, is_discardable)) || s->m->lock_count != 0)
			return false;
		op->kind = K_OP_RANGE;
		op->vmo = s->serial;
		op->options = UVMO_OP_UNLOCK;
		op->offset = 0;
		op->len = s->m->size;
		return true;
	case 11: /* anything that writes, through a NO_WRITE handle */
		if (!(s = pick(c, is_no_write)))
			return false;
		op->vmo = s->serial;
		switch (below(c, s->m->resizable ? 5 : 4)) {
		case 0:
			op->kind = K_WRITE;
			gen_range(c, s->m->size, &op->offset, &op->len);
			op->data = gen_data(c);
			break;
		case 1:
			op->kind = K_OP_RANGE;
			op->options = UVMO_OP_ZERO;
			gen_range(c, s->m->size, &op->offset, &op->len);
			break;
		case 2:
			op->kind = K_OP_RANGE;
			op->options = UVMO_OP_COMMIT;
			gen_page_range(c, s->m->size, &op->offset, &op->len);
			break;
		case 3:
			op->kind = K_OP_RANGE;
			op->options = UVMO_OP_DECOMMIT;
			gen_page_range(c, s->m->size, &op->offset, &op->len);
			break;
		default:
			op->kind = K_SET_SIZE;
			op->len = gen_pages(c, 0) * PAGE;
			break;
		}
		return true;
	case 12: /* resize of a VMO that is not resizable (a slice or not created so) */
		if (!(s = pick(c, is_writable)) || s->m->resizable)
			return false;
		op->kind = K_SET_SIZE;
		op->vmo = s->serial;
		op->len = gen_pages(c, 1) * PAGE;
		return true;
	case 13: /* unaligned or too large resize */
		if (!(s = pick(c, is_resizable_writable)))
			return false;
		op->kind = K_SET_SIZE;
		op->vmo = s->serial;
		if (chance(c, 1, 2))
			op->len = below(c, MAX_PAGES) * PAGE + between(c, 1, PAGE - 1);
		else
			op->len = UVMO_VMO_MAX_SIZE + between(c, 1, 4) * PAGE;
		return true;
	case 14: { /* bad create arguments */
		static const struct { uint64_t size; uint32_t options; } bad[] = {
			{ 3 * PAGE + 7, 0 },
			{ 0, 0 },
			{ 0, UVMO_VMO_DISCARDABLE },
			{ PAGE, UVMO_VMO_RESIZABLE | UVMO_VMO_DISCARDABLE },
			{ PAGE, 1u << 7 },
			{ UVMO_VMO_MAX_SIZE + PAGE, 0 },
			{ UVMO_VMO_MAX_SIZE + PAGE, UVMO_VMO_RESIZABLE },
			{ 100, UVMO_VMO_RESIZABLE },
		};
		unsigned i = below(c, sizeof(bad) / sizeof(bad[0]));

		op->kind = K_CREATE;
		op->result = c->next_serial++;
		op->len = bad[i].size;
		op->options = bad[i].options;
		return true;
	}
	default: { /* bad create_child arguments: cases 15..25 */
		struct slot *p = pick(c, is_snapshot_parent);

		if (!p)
			return false;
		op->kind = K_CHILD;
		op->vmo = p->serial;
		op->result = c->next_serial++;
		op->options = UVMO_CHILD_SNAPSHOT;
		op->offset = 0;
		op->len = PAGE;
		switch (below(c, 12)) {
		case 0:
			op->offset = between(c, 1, PAGE - 1);
			break;
		case 1:
			op->len = PAGE + between(c, 1, PAGE - 1);
			break;
		case 2:
			op->len = 0;
			break;
		case 3:
			op->options = UVMO_CHILD_SNAPSHOT | UVMO_CHILD_SLICE;
			break;
		case 4:
			op->options = chance(c, 1, 2) ? 0 : UVMO_CHILD_RESIZABLE;
			break;
		case 5:
			op->options |= 1u << 20;
			break;
		case 6:
			op->options = UVMO_CHILD_SNAPSHOT_MODIFIED;
			break;
		case 7: /* offset past the parent's end */
			op->offset = p->m->size + between(c, 1, 8) * PAGE;
			break;
		case 8: /* too large */
			op->len = UVMO_VMO_MAX_SIZE + PAGE;
			break;
		case 9: /* slice past the parent's end (or of a resizable parent) */
			op->options = UVMO_CHILD_SLICE;
			if (!p->m->resizable) {
				op->offset = below(c, p->m->size / PAGE) * PAGE;
				op->len = p->m->size - op->offset + between(c, 1, 4) * PAGE;
			}
			break;
		case 10: /* RESIZABLE slice (of a parent that could be sliced) */
			if (p->m->resizable)
				op->len = 0;
			else
				op->options = UVMO_CHILD_SLICE | UVMO_CHILD_RESIZABLE;
			break;
		default: /* offset + size overflows */
			op->offset = UINT64_MAX - PAGE + 1;
			op->len = PAGE;
			break;
		}
		return true;
	}
	}
}

/* The error cases with a discardable parent live here: it must refuse every
 * kind of child. */
static bool gen_child_of_discardable(struct diff_ctx *c, struct diff_op *op)
{
	static const uint32_t types[] = {
		UVMO_CHILD_SNAPSHOT, UVMO_CHILD_SNAPSHOT_AT_LEAST_ON_WRITE, UVMO_CHILD_SLICE
	};
	struct slot *p = pick(c, is_discardable);

	if (!p || p->m->size == 0)
		return false;
	op->kind = K_CHILD;
	op->vmo = p->serial;
	op->result = c->next_serial++;
	op->options = types[below(c, 3)];
	op->offset = 0;
	op->len = p->m->size;
	return true;
}

/* ---- live snapshots, restore, diff (DIFF_RESTORE) ---------------------- */

static bool is_live_snapshotable(const struct slot *s)
{
	return !s->m->slice && !s->m->discardable;
}

static bool is_live_snapshot(const struct slot *s)
{
	return s->m->snap_chain > 0;
}

static void gen_snapshot_live(struct diff_ctx *c, struct diff_op *op, struct slot *s)
{
	op->kind = K_SNAPSHOT_LIVE;
	op->vmo = s->serial;
	op->result = c->next_serial++;
	op->len = s->m->size;
}

/* A VMO and one of its live snapshots, satisfying @ok; false if none. */
static bool pick_pair(struct diff_ctx *c, bool (*ok)(const struct slot *v, const struct slot *s),
		      struct slot **v, struct slot **s)
{
	unsigned n = 0;

	for (int pass = 0; pass < 2; pass++) {
		unsigned k = pass ? (unsigned)below(c, n) : 0, seen = 0;

		for (unsigned i = 0; i < c->nlive; i++) {
			for (unsigned j = 0; j < c->nlive; j++) {
				struct slot *a = &c->live[i], *b = &c->live[j];

				if (i == j || !model_is_snapshot_of(b->m, a->m) || !ok(a, b))
					continue;
				if (pass && seen++ == k) {
					*v = a;
					*s = b;
					return true;
				}
				n += !pass;
			}
		}
		if (!n)
			return false;
	}
	return false;
}

static bool pair_restorable(const struct slot *v, const struct slot *s)
{
	return !v->m->no_write && (v->m->resizable || v->m->size == s->m->size);
}

static bool pair_no_write(const struct slot *v, const struct slot *s)
{
	return v->m->no_write && v->m->size == s->m->size;
}

static bool pair_diffable(const struct slot *v, const struct slot *s)
{
	return v->m->size > 0 && v->m->size == s->m->size;
}

static bool pair_any(const struct slot *v, const struct slot *s)
{
	(void)v;
	(void)s;
	return true;
}

static unsigned gen_diff_max(struct diff_ctx *c)
{
	static const unsigned maxes[] = { 1, 1, 2, 3, 8, DIFF_MAX_RUNS };

	return maxes[below(c, sizeof(maxes) / sizeof(maxes[0]))];
}

/* A restore or diff with exactly one thing wrong (@kind K_RESTORE or K_DIFF). */
static bool gen_pair_error(struct diff_ctx *c, struct diff_op *op, uint8_t kind)
{
	struct slot *v = NULL, *s = NULL;
	unsigned avail_stale = c->stale_next < STALE_RING ? c->stale_next : STALE_RING;

	op->kind = kind;
	op->options = gen_diff_max(c);
	if (!pick_pair(c, kind == K_DIFF ? pair_diffable : pair_any, &v, &s))
		return false;
	op->vmo = v->serial;
	op->data = s->serial;
	op->offset = 0;
	op->len = v->m->size;
	switch (below(c, kind == K_DIFF ? 9 : 6)) {
	case 0:
		op->variant = PAIR_NULL_VMO;
		return true;
	case 1:
		op->variant = PAIR_NULL_SNAP;
		return true;
	case 2: /* a closed VMO, a live snapshot */
		if (!avail_stale)
			return false;
		op->variant = PAIR_STALE_VMO;
		op->vmo = c->stale[below(c, avail_stale)].serial;
		return true;
	case 3: /* a live VMO, a closed snapshot */
		if (!avail_stale)
			return false;
		op->variant = PAIR_STALE_SNAP;
		op->data = c->stale[below(c, avail_stale)].serial;
		return true;
	case 4: { /* a snapshot of another VMO, or no snapshot at all */
		struct slot *other = pick(c, NULL);

		/* (Not a clone of it either: whether those count is open; nor
		 * a slice, which is wrong in another way, -ENOTSUP.) */
		if (!other || other == s || model_is_clone_of(other->m, v->m) || other->m->slice ||
		    (kind == K_RESTORE && (v->m->no_write || other->m->size != v->m->size)))
			return false;
		if (kind == K_DIFF && other->m->size != v->m->size)
			return false;
		op->data = other->serial;
		return true;
	}
	case 5: /* restore: through a NO_WRITE handle; diff: unaligned */
		if (kind == K_RESTORE) {
			if (!pick_pair(c, pair_no_write, &v, &s))
				return false;
			op->vmo = v->serial;
			op->data = s->serial;
			return true;
		}
		if (chance(c, 1, 2)) {
			op->offset = between(c, 1, PAGE - 1);
			op->len = PAGE;
		} else {
			op->len = between(c, 1, PAGE - 1);
		}
		return true;
	case 6: /* diff: past the end */
		op->offset = below(c, v->m->size / PAGE + 1) * PAGE;
		op->len = v->m->size - op->offset + between(c, 1, 4) * PAGE;
		return true;
	case 7: /* diff: offset + len overflows */
		op->offset = UINT64_MAX - PAGE + 1;
		op->len = 2 * PAGE;
		return true;
	default: /* diff: NULL out with max > 0 */
		op->variant = PAIR_NULL_OUT;
		return true;
	}
}

static bool gen_restore(struct diff_ctx *c, struct diff_op *op)
{
	struct slot *v, *s;

	if (!(c->flags & DIFF_NO_ERRORS) && chance(c, 1, 6))
		return gen_pair_error(c, op, K_RESTORE);
	if (!pick_pair(c, pair_restorable, &v, &s))
		return false;
	op->kind = K_RESTORE;
	op->vmo = v->serial;
	op->data = s->serial;
	return true;
}

static bool gen_diff(struct diff_ctx *c, struct diff_op *op)
{
	struct slot *v, *s;

	if (!(c->flags & DIFF_NO_ERRORS) && chance(c, 1, 6))
		return gen_pair_error(c, op, K_DIFF);
	if (!pick_pair(c, pair_diffable, &v, &s))
		return false;
	op->kind = K_DIFF;
	op->vmo = v->serial;
	op->data = s->serial;
	op->options = gen_diff_max(c);
	if (chance(c, 1, 2)) {
		op->offset = 0;
		op->len = v->m->size;
	} else {
		gen_page_range(c, v->m->size, &op->offset, &op->len);
	}
	return true;
}

enum gen_choice {
	G_CREATE, G_CHILD, G_WRITE, G_READ, G_CHECK_VMO, G_ZERO, G_DECOMMIT, G_COMMIT,
	G_HINT, G_SET_SIZE, G_CLOSE, G_CHECK_GLOBAL, G_ERROR, G_STALE, G_LOCK, G_BALLAST,
	G_SNAPSHOT_LIVE, G_RESTORE, G_DIFF, /* DIFF_RESTORE only; last, so that runs
					      * without it draw exactly as before */
	G_CHOICES
};

/* Relative weights of each kind of operation, given the run's flags and the
 * pool's state. */
static void weights(struct diff_ctx *c, unsigned w[G_CHOICES])
{
	bool full = c->nlive >= c->pool_max;
	bool errors = !(c->flags & DIFF_NO_ERRORS);

	memset(w, 0, G_CHOICES * sizeof(w[0]));
	if (c->flags & DIFF_SNAPSHOTS_ONLY) {
		w[G_CREATE] = full ? 0 : (c->nlive < 2 ? 10 : 1);
		w[G_CHILD] = full ? 0 : 20;
		w[G_WRITE] = 30;
		w[G_READ] = 15;
		w[G_CHECK_VMO] = 6;
		w[G_ZERO] = 4;
		w[G_DECOMMIT] = 3;
		w[G_COMMIT] = 2;
		w[G_CLOSE] = full ? 40 : 6;
		w[G_CHECK_GLOBAL] = 3;
	} else if (c->flags & DIFF_CHURN) {
		w[G_CREATE] = full ? 0 : 4;
		w[G_CHILD] = full ? 0 : 30;
		w[G_WRITE] = 22;
		w[G_READ] = 6;
		w[G_CHECK_VMO] = 4;
		w[G_ZERO] = 3;
		w[G_DECOMMIT] = 2;
		w[G_COMMIT] = 2;
		w[G_SET_SIZE] = 3;
		w[G_CLOSE] = full ? 60 : 24;
		w[G_CHECK_GLOBAL] = 6;
		w[G_ERROR] = errors ? 2 : 0;
		w[G_STALE] = errors ? 1 : 0;
	} else {
		w[G_CREATE] = full ? 0 : 5;
		w[G_CHILD] = full ? 0 : 16;
		w[G_WRITE] = 20;
		w[G_READ] = 12;
		w[G_CHECK_VMO] = 4;
		w[G_ZERO] = 7;
		w[G_DECOMMIT] = 5;
		w[G_COMMIT] = 4;
		w[G_HINT] = 1;
		w[G_SET_SIZE] = 5;
		w[G_CLOSE] = full ? 40 : 8;
		w[G_CHECK_GLOBAL] = 2;
		w[G_ERROR] = errors ? 6 : 0;
		w[G_STALE] = errors ? 1 : 0;
		w[G_LOCK] = 2;
	}
	if (c->flags & DIFF_RESTORE) {
		w[G_SNAPSHOT_LIVE] = full ? 0 : 6;
		w[G_RESTORE] = 10;
		w[G_DIFF] = 5;
	}
	/* Threads share the pool: a ballast would only measure the other
	 * thread's use, so only single-threaded runs fill it. */
	if (c->pool_limited && c->thread < 0)
		w[G_BALLAST] = 3;
	if (c->nlive < 2)
		w[G_CREATE] += 20;
	if (c->nlive == 0)
		memset(w + 1, 0, (G_CHOICES - 1) * sizeof(w[0]));
}

/* DIFF_PAGER: one draw of the generators that may fail (false: nothing
 * drawn); the same calls as the switch in gen_op makes. */
static bool gen_one(struct diff_ctx *c, struct diff_op *op, enum gen_choice g)
{
	switch (g) {
	case G_CHILD:
		return gen_child(c, op);
	case G_WRITE:
		return gen_write(c, op);
	case G_READ:
		return gen_read(c, op);
	case G_ZERO:
		return gen_op_range(c, op, UVMO_OP_ZERO);
	case G_DECOMMIT:
		return gen_op_range(c, op, UVMO_OP_DECOMMIT);
	case G_COMMIT:
		return gen_op_range(c, op, UVMO_OP_COMMIT);
	case G_HINT:
		return gen_op_range(c, op, chance(c, 1, 2) ? UVMO_OP_DONT_NEED : UVMO_OP_ALWAYS_NEED);
	case G_SET_SIZE:
		return gen_set_size(c, op);
	case G_ERROR:
		return chance(c, 1, 12) ? gen_child_of_discardable(c, op)
		       : chance(c, 1, 12) ? gen_null(c, op) : gen_error(c, op);
	case G_STALE:
		return gen_stale(c, op);
	case G_LOCK:
		return gen_lock_op(c, op);
	default:
		return false;
	}
}

/* DIFF_PAGER: keeps pager-backed trees to what the model states (see the
 * head of this file): error cases about clones with a second fault hidden
 * in the pager parent, DECOMMIT of a pager-backed VMO, and clones of
 * at-least-on-write children are drawn again. */
static bool pager_op_ok(struct diff_ctx *c, const struct diff_op *op, enum gen_choice g)
{
	struct slot *s = op->vmo ? find_slot(c, op->vmo) : NULL;

	if (!s || !s->m->pager || op->kind == K_STALE)
		return true;
	if (op->kind == K_CHILD)
		return g == G_CHILD && !s->m->follow;
	if (op->kind == K_NULL)
		return false;
	if (op->kind == K_OP_RANGE && op->options == UVMO_OP_DECOMMIT && !s->m->follow)
		return false;
	return true;
}

/* Draws one operation; always produces one (creation is always possible
 * when the pool is empty, and there is always something else otherwise). */
static void gen_op(struct diff_ctx *c, struct diff_op *op)
{
	unsigned w[G_CHOICES];

	for (;;) {
		unsigned total = 0, r;
		enum gen_choice g = 0;

		weights(c, w);
		for (unsigned i = 0; i < G_CHOICES; i++)
			total += w[i];
		r = below(c, total);
		while (r >= w[g])
			r -= w[g++];
		memset(op, 0, sizeof(*op));
		if ((c->flags & DIFF_PAGER) && g != G_CREATE && g != G_CHECK_VMO && g != G_CLOSE &&
		    g != G_CHECK_GLOBAL && g != G_BALLAST) {
			if (gen_one(c, op, g) && pager_op_ok(c, op, g))
				return;
			continue;
		}
		switch (g) {
		case G_CREATE:
			gen_create(c, op);
			return;
		case G_CHILD:
			if (gen_child(c, op))
				return;
			break;
		case G_WRITE:
			if (gen_write(c, op))
				return;
			break;
		case G_READ:
			if (gen_read(c, op))
				return;
			break;
		case G_CHECK_VMO:
			op->kind = K_CHECK_VMO;
			op->vmo = pick(c, NULL)->serial;
			return;
		case G_ZERO:
			if (gen_op_range(c, op, UVMO_OP_ZERO))
				return;
			break;
		case G_DECOMMIT:
			if (gen_op_range(c, op, UVMO_OP_DECOMMIT))
				return;
			break;
		case G_COMMIT:
			if (gen_op_range(c, op, UVMO_OP_COMMIT))
				return;
			break;
		case G_HINT:
			if (gen_op_range(c, op, chance(c, 1, 2) ? UVMO_OP_DONT_NEED
								 : UVMO_OP_ALWAYS_NEED))
				return;
			break;
		case G_SET_SIZE:
			if (gen_set_size(c, op))
				return;
			break;
		case G_CLOSE:
			gen_close(c, op);
			return;
		case G_CHECK_GLOBAL:
			op->kind = K_CHECK_GLOBAL;
			return;
		case G_ERROR:
			if (chance(c, 1, 12) ? gen_child_of_discardable(c, op)
			    : chance(c, 1, 12) ? gen_null(c, op) : gen_error(c, op))
				return;
			break;
		case G_STALE:
			if (gen_stale(c, op))
				return;
			break;
		case G_LOCK:
			if (gen_lock_op(c, op))
				return;
			break;
		case G_BALLAST:
			/* Mostly nearly full; sometimes let go, so that calls
			 * succeed again for a while. */
			op->kind = K_BALLAST;
			op->len = chance(c, 1, 3) ? DIFF_POOL_LIMIT_BYTES / PAGE : below(c, 4);
			return;
		case G_SNAPSHOT_LIVE: {
			/* Mostly of VMOs that are not live snapshots themselves. */
			struct slot *s = pick(c, is_live_snapshotable);

			if (s && is_live_snapshot(s) && chance(c, 2, 3))
				s = pick(c, is_live_snapshotable);
			if (!s)
				break;
			gen_snapshot_live(c, op, s);
			return;
		}
		case G_RESTORE:
			if (gen_restore(c, op))
				return;
			break;
		case G_DIFF:
			if (gen_diff(c, op))
				return;
			break;
		default:
			break;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Runs                                                                      */
/* ------------------------------------------------------------------------ */

static int ctx_init(struct diff_ctx *c, uint64_t seed, unsigned flags, int thread,
		    char *errbuf, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->seed = seed;
	c->flags = flags;
	c->thread = thread;
	c->rng = seed;
	c->next_serial = 1;
	c->pool_max = (flags & DIFF_CHURN) ? 10 : POOL_MAX;
	if (thread >= 0)
		c->pool_max /= THREADS;
	c->global_checks = thread < 0;
	c->errbuf = errbuf;
	c->errlen = errlen;
	c->pool_limited = flags & DIFF_POOL_LIMIT;
	c->buf = malloc(BUF_SIZE);
	c->expect = malloc(BUF_SIZE);
	c->save = malloc(BUF_SIZE);
	if (!c->buf || !c->expect || !c->save) {
		free(c->buf);
		free(c->expect);
		free(c->save);
		snprintf(errbuf, errlen, "seed %" PRIu64 ": out of memory in the test", seed);
		return -1;
	}
	return 0;
}

/* Closes whatever is still open (after a failure, or at the end of a run
 * that stopped early), newest first. */
static void ctx_close_all(struct diff_ctx *c)
{
	while (c->nlive)
		close_slot(c, &c->live[c->nlive - 1]);
	drop_ballast(c);
}

static void ctx_free(struct diff_ctx *c)
{
	pager_stop(c);
	free(c->buf);
	free(c->expect);
	free(c->save);
	free(c->ids);
	free(c->enomem_at);
	c->enomem_at = NULL;
	c->buf = c->expect = c->save = NULL;
	c->ids = NULL;
}

static void ctx_destroy(struct diff_ctx *c)
{
	ctx_close_all(c);
	ctx_free(c);
}

/* Generates and executes @nops operations, then closes everything in random
 * order.  The end-of-run global check is left to the caller (threads). */
static int ctx_run(struct diff_ctx *c, unsigned nops)
{
	struct diff_op op;

	for (unsigned i = 0; i < nops; i++) {
		if (c->stop && atomic_load(c->stop))
			return 0;
		c->op_index = i;
		gen_op(c, &op);
		if (exec_op(c, &op))
			return -1;
	}
	/* Close everything, in random order, parents before children or not. */
	c->op_index = nops;
	if (c->nlive) {
		memset(&op, 0, sizeof(op));
		op.kind = K_CHECK_GLOBAL;
		if (exec_op(c, &op))
			return -1;
	}
	while (c->nlive) {
		struct slot *s = pick(c, NULL);

		c->op_index++;
		memset(&op, 0, sizeof(op));
		op.kind = K_CHECK_VMO;
		op.vmo = s->serial;
		if (chance(c, 1, 4) && exec_op(c, &op))
			return -1;
		op.kind = K_CLOSE;
		if (exec_op(c, &op))
			return -1;
	}
	drop_ballast(c);
	snprintf(c->desc, sizeof(c->desc), "end of run");
	unsigned need = (c->flags & DIFF_SNAPSHOTS_ONLY) ? DIFF_MIN_CHAIN_DEPTH : DIFF_MIN_DEPTH;
	unsigned got = (c->flags & DIFF_SNAPSHOTS_ONLY) ? c->max_snap_depth : c->max_depth;

	if (c->flags & (DIFF_TRACE | DIFF_SUMMARY))
		fprintf(stderr,
			"[%s%c] seed %" PRIu64 ": creates %lu, children %lu, writes %lu, reads %lu,"
			" op_range %lu, set_size %lu, closes %lu, stale probes %lu; %lu calls"
			" failed as predicted, %lu for want of frames; %lu discards; live depth %u,"
			" snapshot chain %u\n",
			c->thread >= 0 ? "thread " : "run", c->thread >= 0 ? '0' + c->thread : ' ', c->seed,
			c->kind_count[K_CREATE], c->kind_count[K_CHILD], c->kind_count[K_WRITE],
			c->kind_count[K_READ], c->kind_count[K_OP_RANGE], c->kind_count[K_SET_SIZE],
			c->kind_count[K_CLOSE], c->kind_count[K_STALE], c->predicted_errors, c->enomem,
			c->discards,
			c->max_depth, c->max_snap_depth);
	if (c->flags & (DIFF_TRACE | DIFF_SUMMARY) && c->flags & DIFF_RESTORE)
		fprintf(stderr,
			"[%s%c] seed %" PRIu64 ": live snapshots %lu, restores %lu (%lu succeeded),"
			" diffs %lu (%lu runs)\n",
			c->thread >= 0 ? "thread " : "run", c->thread >= 0 ? '0' + c->thread : ' ', c->seed,
			c->kind_count[K_SNAPSHOT_LIVE], c->kind_count[K_RESTORE], c->restores_ok,
			c->kind_count[K_DIFF], c->diff_runs);
	if (nops >= DIFF_MIN_OPS_FOR_DEPTH && got < need)
		return diverge(c, "the run only reached clone depth %u (needs %u): the generator"
			       " no longer builds deep trees", got, need);
	return 0;
}

static int final_check(struct diff_ctx *c)
{
	struct diff_op op = { .kind = K_CHECK_GLOBAL, .variant = 1 };

	c->op_index++;
	return exec_op(c, &op);
}

/* Flags that need uvmo initialised with particular settings. */
#define INIT_FLAGS (DIFF_SMALL_WINDOW | DIFF_POOL_LIMIT)

/*
 * Restarts uvmo with the settings the flags ask for: windows of resizable
 * VMOs only a few pages large (growing one moves it to a new window again
 * and again), or a pool limit small enough that calls run out of frames.
 */
static int init_uvmo(unsigned flags, uint64_t seed, char *errbuf, size_t errlen)
{
	struct uvmo_config cfg = { 0 };
	int rc;

	if (!(flags & INIT_FLAGS))
		return 0;
	if (flags & DIFF_SMALL_WINDOW)
		cfg.resizable_window = 4 * PAGE;
	if (flags & DIFF_POOL_LIMIT)
		cfg.pool_limit = DIFF_POOL_LIMIT_BYTES;
	rc = uvmo_init(&cfg);
	if (rc == -EBUSY) {
		uvmo_shutdown();
		rc = uvmo_init(&cfg);
	}
	if (rc != 0)
		snprintf(errbuf, errlen, "seed %" PRIu64 ": uvmo_init for flags 0x%x returned %s",
			 seed, flags, errno_name(rc));
	return rc ? -1 : 0;
}

int diff_run_logged(uint64_t seed, unsigned nops, unsigned flags, struct diff_log *log,
		    char *errbuf, size_t errlen)
{
	struct diff_ctx *c = malloc(sizeof(*c));
	int rc;

	if (!c) {
		snprintf(errbuf, errlen, "seed %" PRIu64 ": out of memory in the test", seed);
		return -1;
	}
	if (init_uvmo(flags, seed, errbuf, errlen)) {
		free(c);
		return -1;
	}
	if (ctx_init(c, seed, flags & ~DIFF_THREADS, -1, errbuf, errlen)) {
		free(c);
		return -1;
	}
	c->log = log;
	rc = ctx_run(c, nops);
	if (rc == 0)
		rc = final_check(c);
	ctx_destroy(c);
	free(c);
	return rc;
}

struct thread_arg {
	struct diff_ctx *ctx;
	unsigned nops;
	int rc;
	struct diff_log history;
};

/*
 * A threaded run cannot be replayed exactly (which calls run out of pool
 * frames depends on the other thread), so a failing thread writes its
 * whole history, with the calls that ran out marked, to a file named in
 * the failure message.
 */
static void dump_history(struct diff_ctx *c, const struct diff_log *log)
{
	char path[96], line[256];
	size_t e = 0;
	FILE *f;

	snprintf(path, sizeof(path), "diff-fail-%" PRIu64 "-t%d.trace", c->seed, c->thread);
	f = fopen(path, "w");
	if (!f)
		return;
	for (size_t i = 0; i < log->count; i++) {
		diff_op_format(&log->ops[i], line, sizeof(line));
		fprintf(f, "%s\n", line);
		if (e < c->nenomem_at && c->enomem_at[e] == i) {
			fprintf(f, "  -> -ENOMEM (out of frames; nothing may change)\n");
			e++;
		}
	}
	fclose(f);
	size_t used = strlen(c->errbuf);

	snprintf(c->errbuf + used, c->errlen - used, " [history of thread %d: %s]", c->thread,
		 path);
}

static void *thread_main(void *p)
{
	struct thread_arg *a = p;

	a->ctx->log = &a->history;
	a->rc = ctx_run(a->ctx, a->nops);
	if (a->rc) {
		atomic_store(a->ctx->stop, 1);
		dump_history(a->ctx, &a->history);
	}
	a->ctx->log = NULL;
	diff_log_free(&a->history);
	/* Close what a stopped run left open, so the final check is fair. */
	ctx_close_all(a->ctx);
	return NULL;
}

/* Two threads, each on its own VMO trees with its own seed; they share
 * uvmo (and its locks, pool and counters) but no VMO. */
static int run_threads(uint64_t seed, unsigned nops, unsigned flags, char *errbuf,
		       size_t errlen)
{
	struct diff_ctx *ctx = calloc(THREADS, sizeof(*ctx));
	char errs[THREADS][1024];
	struct thread_arg args[THREADS];
	pthread_t tids[THREADS];
	atomic_int stop = 0;
	int rc = 0;
	unsigned started = 0, initialised = 0;

	if (!ctx) {
		snprintf(errbuf, errlen, "seed %" PRIu64 ": out of memory in the test", seed);
		return -1;
	}
	for (unsigned t = 0; t < THREADS; t++) {
		uint64_t tseed_state = seed + t;
		uint64_t tseed = splitmix64(&tseed_state);

		errs[t][0] = '\0';
		if (ctx_init(&ctx[t], tseed, flags, (int)t, errbuf, errlen)) {
			rc = -1;
			break;
		}
		initialised++;
		ctx[t].errbuf = errs[t];
		ctx[t].errlen = sizeof(errs[t]);
		/* Failure messages name the run's seed: that is what replays. */
		ctx[t].seed = seed;
		ctx[t].rng = tseed;
		ctx[t].stop = &stop;
		args[t] = (struct thread_arg){ .ctx = &ctx[t], .nops = nops };
	}
	for (unsigned t = 0; rc == 0 && t < THREADS; t++) {
		if (pthread_create(&tids[t], NULL, thread_main, &args[t]) != 0) {
			atomic_store(&stop, 1);
			snprintf(errbuf, errlen, "seed %" PRIu64 ": pthread_create failed", seed);
			rc = -1;
			break;
		}
		started++;
	}
	for (unsigned t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	for (unsigned t = 0; rc == 0 && t < started; t++) {
		if (args[t].rc) {
			snprintf(errbuf, errlen, "%s", errs[t]);
			rc = -1;
		}
	}
	if (rc == 0) {
		/* Ids are unique across threads too. */
		for (size_t i = 0; rc == 0 && i < ctx[0].nids; i++)
			for (size_t j = 0; j < ctx[1].nids; j++)
				if (ctx[0].ids[i] == ctx[1].ids[j]) {
					snprintf(errbuf, errlen, "seed %" PRIu64 " flags 0x%x: "
						 "both threads got VMO id %" PRIu64, seed, flags,
						 ctx[0].ids[i]);
					rc = -1;
					break;
				}
	}
	if (rc == 0) {
		struct diff_ctx *c = &ctx[0];

		/* Everything closed by both threads: the pool must be empty. */
		c->thread = -1;
		c->errbuf = errbuf;
		c->errlen = errlen;
		c->op_index = nops;
		snprintf(c->desc, sizeof(c->desc), "check-final after both threads");
		rc = check_global(c, true);
	}
	for (unsigned t = 0; t < initialised; t++)
		ctx_free(&ctx[t]);
	free(ctx);
	return rc;
}

int diff_run(uint64_t seed, unsigned nops, unsigned flags, char *errbuf, size_t errlen)
{
	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (flags & DIFF_THREADS) {
		if (init_uvmo(flags, seed, errbuf, errlen))
			return -1;
		return run_threads(seed, nops, flags, errbuf, errlen);
	}
	return diff_run_logged(seed, nops, flags, NULL, errbuf, errlen);
}

int diff_replay(const struct diff_op *ops, size_t count, unsigned flags, char *errbuf,
		size_t errlen)
{
	struct diff_ctx *c = malloc(sizeof(*c));
	int rc = 0;

	if (!c) {
		snprintf(errbuf, errlen, "replay: out of memory in the test");
		return -1;
	}
	if (init_uvmo(flags, 0, errbuf, errlen)) {
		free(c);
		return -1;
	}
	if (ctx_init(c, 0, flags & (DIFF_TRACE | INIT_FLAGS), -1, errbuf, errlen)) {
		free(c);
		return -1;
	}
	c->replay = true;
	for (size_t i = 0; rc == 0 && i < count; i++) {
		c->op_index = i;
		rc = exec_op(c, &ops[i]);
	}
	/* Close what the recording left open, newest first, then the pool must
	 * be empty. */
	while (rc == 0 && c->nlive) {
		struct diff_op op = { .kind = K_CLOSE, .vmo = c->live[c->nlive - 1].serial };

		c->op_index++;
		rc = exec_op(c, &op);
	}
	drop_ballast(c);
	if (rc == 0)
		rc = final_check(c);
	ctx_destroy(c);
	free(c);
	return rc;
}

int diff_op_to_root(const struct diff_op *op, struct diff_op *root)
{
	if (op->kind == K_SNAPSHOT_LIVE) {
		*root = (struct diff_op){ .kind = K_CREATE, .result = op->result, .len = op->len,
					  .options = op->len ? 0 : UVMO_VMO_RESIZABLE };
		return 1;
	}
	if (op->kind != K_CHILD)
		return 0;
	*root = (struct diff_op){
		.kind = K_CREATE,
		.result = op->result,
		.len = op->len,
		.options = (op->options & UVMO_CHILD_RESIZABLE) ? UVMO_VMO_RESIZABLE : 0,
	};
	return 1;
}

void diff_log_free(struct diff_log *log)
{
	free(log->ops);
	log->ops = NULL;
	log->count = log->cap = 0;
}

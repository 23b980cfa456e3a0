/* SPDX-License-Identifier: MIT */
/*
 * pager.c — the request queue, the VMOs a pager serves, and the waits on
 * them.  See pager.h for lifetimes and the lock order.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include "pager/pager.h"

struct request {
	TAILQ_ENTRY(request) link;
	uint32_t type; /* UVMO_PAGER_* */
	struct pager_vmo *pv;
	uint64_t pg, count;
};

struct pager {
	pthread_mutex_t lock;
	pthread_cond_t requests_cond; /* get_requests callers */
	pthread_cond_t waits_cond;    /* threads in source_sleep */
	int efd;                      /* readable while `pending` is not empty */
	bool efd_signalled;
	TAILQ_HEAD(request_list, request) pending;
	LIST_HEAD(, pager_vmo) vmos;
	bool destroyed;
	uvmo_pager_t *handle;
	_Atomic uint32_t refs;
	LIST_ENTRY(pager) registry_link;
};

/* Every pager, for fork(): registry lock → pager lock. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, pager) registry = LIST_HEAD_INITIALIZER(registry);

/* What cow holds of a pager VMO (opaque to cow). */
struct cow_source {
	struct pager_vmo *pv;
};

struct pager_vmo {
	struct cow_source src;  /* src.pv == this */
	struct pager *pager;
	struct cow_node *node;  /* held (cow_node_hold) */
	uint64_t key;
	const void *ident;
	bool serving;           /* false once dead or detached */
	LIST_HEAD(, cow_wait) waits;
	LIST_ENTRY(pager_vmo) link;
	_Atomic uint32_t refs;  /* the pager's list, operations in flight, call waits */
};

void pager_release(struct pager *p)
{
	if (atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	UVMO_ASSERT(TAILQ_EMPTY(&p->pending) && LIST_EMPTY(&p->vmos));
	pthread_mutex_lock(&registry_lock);
	LIST_REMOVE(p, registry_link);
	pthread_mutex_unlock(&registry_lock);
	close(p->efd);
	pthread_cond_destroy(&p->requests_cond);
	pthread_cond_destroy(&p->waits_cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void pager_vmo_put(struct pager_vmo *pv)
{
	if (atomic_fetch_sub(&pv->refs, 1) != 1)
		return;
	struct pager *p = pv->pager;
	UVMO_ASSERT(LIST_EMPTY(&pv->waits));
	cow_node_release(pv->node);
	free(pv);
	pager_release(p);
}

/* ---- the eventfd mirrors "requests are pending" (pager lock held) ---- */

static void update_efd(struct pager *p)
{
	bool want = !TAILQ_EMPTY(&p->pending);
	if (want == p->efd_signalled)
		return;
	uint64_t v = 1;
	ssize_t n = want ? write(p->efd, &v, sizeof(v)) : read(p->efd, &v, sizeof(v));
	(void)n;
	p->efd_signalled = want;
}

static void queue_request(struct pager *p, uint32_t type, struct pager_vmo *pv,
			  uint64_t pg, uint64_t count)
{
	/* Adjacent requests of one VMO become one (a sequential reader's
	 * faults, a call's runs). */
	struct request *tail = TAILQ_LAST(&p->pending, request_list);
	if (tail && tail->pv == pv && tail->type == type && type != UVMO_PAGER_COMPLETE &&
	    type != PAGER_REQUEST_UNUSED) {
		if (tail->pg + tail->count == pg) {
			tail->count += count;
			return;
		}
		if (pg + count == tail->pg) {
			tail->pg = pg;
			tail->count += count;
			return;
		}
	}
	struct request *r = malloc(sizeof(*r));
	if (!r) {
		/* The page stays marked as asked for; a FAIL or a retry after
		 * detach clears it.  Nothing better is possible here. */
		fprintf(stderr, "uvmo: pager request lost (out of memory)\n");
		return;
	}
	*r = (struct request){ .type = type, .pv = pv, .pg = pg, .count = count };
	TAILQ_INSERT_TAIL(&p->pending, r, link);
	update_efd(p);
	pthread_cond_broadcast(&p->requests_cond);
}

/* Drop @pv's pending requests; its COMPLETE too if @complete_too. */
static void drop_requests_of(struct pager *p, struct pager_vmo *pv, bool complete_too)
{
	struct request *r, *next;
	TAILQ_FOREACH_SAFE(r, &p->pending, link, next) {
		if (r->pv == pv && (complete_too || r->type != UVMO_PAGER_COMPLETE)) {
			TAILQ_REMOVE(&p->pending, r, link);
			free(r);
		}
	}
	update_efd(p);
}

/* Complete the waits of @pv of @kind (0: any) overlapping [pg, pg+count)
 * (count 0: all) with @result.  Pager lock held. */
static void complete_waits(struct pager_vmo *pv, uint32_t kind, uint64_t pg,
			   uint64_t count, int result)
{
	struct cow_wait *w, *next;
	bool woke = false;

	LIST_FOREACH_SAFE(w, &pv->waits, link, next) {
		if (kind && w->kind != kind)
			continue;
		if (count && (w->pg + w->count <= pg || pg + count <= w->pg))
			continue;
		LIST_REMOVE(w, link);
		w->result = result;
		w->done = true;
		if (w->complete)
			w->complete(w);
		else
			woke = true;
	}
	if (woke)
		pthread_cond_broadcast(&pv->pager->waits_cond);
}

/* ---- struct cow_source_ops: called by cow with the tree lock held ---- */

static void source_request(struct cow_source *s, uint32_t kind, uint64_t pg, uint64_t count)
{
	struct pager *p = s->pv->pager;
	pthread_mutex_lock(&p->lock);
	if (s->pv->serving)
		queue_request(p, kind == COW_WAIT_READ ? UVMO_PAGER_READ : UVMO_PAGER_DIRTY,
			      s->pv, pg, count);
	pthread_mutex_unlock(&p->lock);
}

static void source_link_wait(struct cow_source *s, struct cow_wait *w)
{
	struct pager *p = s->pv->pager;
	pthread_mutex_lock(&p->lock);
	if (!w->complete)
		atomic_fetch_add(&s->pv->refs, 1); /* dropped by source_sleep */
	LIST_INSERT_HEAD(&s->pv->waits, w, link);
	pthread_mutex_unlock(&p->lock);
}

static void source_sleep(struct cow_source *s, struct cow_wait *w)
{
	struct pager *p = s->pv->pager;
	pthread_mutex_lock(&p->lock);
	while (!w->done)
		pthread_cond_wait(&p->waits_cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	pager_vmo_put(s->pv);
}

/* Stop serving (pager lock held): no request any more, waits fail, and
 * the owner hears COMPLETE. */
static void stop_serving(struct pager_vmo *pv, int result)
{
	struct pager *p = pv->pager;
	if (!pv->serving)
		return;
	pv->serving = false;
	drop_requests_of(p, pv, false);
	complete_waits(pv, 0, 0, 0, result);
	queue_request(p, UVMO_PAGER_COMPLETE, pv, 0, 0);
}

static void source_gone(struct cow_source *s)
{
	struct pager *p = s->pv->pager;
	pthread_mutex_lock(&p->lock);
	stop_serving(s->pv, -EBUSY);
	pthread_mutex_unlock(&p->lock);
}

/* Only the pager's kept handle is left: the owner decides when the VMO
 * dies (pager.h, PAGER_REQUEST_UNUSED). */
static void source_unused(struct cow_source *s)
{
	struct pager *p = s->pv->pager;
	pthread_mutex_lock(&p->lock);
	if (s->pv->serving)
		queue_request(p, PAGER_REQUEST_UNUSED, s->pv, 0, 0);
	pthread_mutex_unlock(&p->lock);
}

static void source_cut(struct cow_source *s, uint64_t pg)
{
	struct pager *p = s->pv->pager;
	pthread_mutex_lock(&p->lock);
	complete_waits(s->pv, 0, pg, UINT64_MAX - pg, 0);
	pthread_mutex_unlock(&p->lock);
}

static const struct cow_source_ops source_ops = {
	.request = source_request,
	.link_wait = source_link_wait,
	.sleep = source_sleep,
	.cut = source_cut,
	.gone = source_gone,
	.unused = source_unused,
};

/* ---- the pager ---- */

static void init_conds(struct pager *p)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->requests_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&p->waits_cond, NULL);
}

int pager_create(struct pager **out)
{
	struct pager *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->efd < 0) {
		int rc = -errno;
		free(p);
		return rc;
	}
	pthread_mutex_init(&p->lock, NULL);
	init_conds(p);
	TAILQ_INIT(&p->pending);
	LIST_INIT(&p->vmos);
	atomic_init(&p->refs, 1);
	pthread_mutex_lock(&registry_lock);
	LIST_INSERT_HEAD(&registry, p, registry_link);
	pthread_mutex_unlock(&registry_lock);
	*out = p;
	return 0;
}

/* ---- fork() ---- */

void pager_fork_prepare(void)
{
	pthread_mutex_lock(&registry_lock);
	struct pager *p;
	LIST_FOREACH(p, &registry, registry_link)
		pthread_mutex_lock(&p->lock);
}

void pager_fork_parent(void)
{
	struct pager *p;
	LIST_FOREACH(p, &registry, registry_link)
		pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&registry_lock);
}

/* The child has no pager thread: every pager-backed VMO is detached (its
 * absent pages fail rather than wait for ever), the waits of the parent's
 * threads are forgotten, and each pager gets an eventfd of its own (the
 * inherited one is the parent's). */
void pager_fork_child(void)
{
	struct pager *p;
	LIST_FOREACH(p, &registry, registry_link) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd >= 0) {
			dup3(fd, p->efd, O_CLOEXEC);
			close(fd);
		}
		p->efd_signalled = false;
		init_conds(p); /* their waiters were the parent's threads */
		struct request *r, *next;
		TAILQ_FOREACH_SAFE(r, &p->pending, link, next)
			free(r);
		TAILQ_INIT(&p->pending);
		struct pager_vmo *pv;
		LIST_FOREACH(pv, &p->vmos, link) {
			LIST_INIT(&pv->waits);
			if (pv->serving)
				cow_pager_detach(pv->node);
			pv->serving = false;
		}
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_unlock(&registry_lock);
}

int pager_fd(struct pager *p)
{
	return p->efd;
}

void pager_set_handle(struct pager *p, uvmo_pager_t *handle)
{
	p->handle = handle;
}

uvmo_pager_t *pager_handle(const struct pager *p)
{
	return p->handle;
}

/* Remove @pv from the pager's list (pager lock held): the list's
 * reference is dropped by the caller once the lock is released. */
static void unlist(struct pager_vmo *pv)
{
	LIST_REMOVE(pv, link);
	pv->link.le_prev = NULL;
}

void pager_destroy(struct pager *p)
{
	pthread_mutex_lock(&p->lock);
	p->destroyed = true;
	pthread_cond_broadcast(&p->requests_cond);
	pthread_mutex_unlock(&p->lock);

	/* Detach one VMO at a time: detaching calls cow, which must not
	 * run under the pager lock. */
	for (;;) {
		pthread_mutex_lock(&p->lock);
		struct pager_vmo *pv = LIST_FIRST(&p->vmos);
		if (pv) {
			unlist(pv);
			atomic_fetch_add(&pv->refs, 1);
		}
		pthread_mutex_unlock(&p->lock);
		if (!pv)
			break;
		pager_detach(pv);
		/* Nobody will take its COMPLETE now. */
		pthread_mutex_lock(&p->lock);
		drop_requests_of(p, pv, true);
		pthread_mutex_unlock(&p->lock);
		pager_vmo_put(pv); /* ours */
		pager_vmo_put(pv); /* the list's */
	}
}

int pager_create_vmo(struct pager *p, uint32_t flags, uint64_t key, uint64_t size,
		     uint64_t capacity, struct cow_node **out, struct pager_vmo **pvout)
{
	struct pager_vmo *pv = calloc(1, sizeof(*pv));
	if (!pv)
		return -ENOMEM;
	pv->src.pv = pv;
	pv->pager = p;
	pv->key = key;
	pv->serving = true;
	LIST_INIT(&pv->waits);
	atomic_init(&pv->refs, 2); /* the pager's list, the caller */

	struct cow_node *n;
	int rc = cow_create_paged(size, capacity, flags, &pv->src, &source_ops, &n);
	if (rc < 0) {
		free(pv);
		return rc;
	}
	cow_node_hold(n);
	pv->node = n;

	pthread_mutex_lock(&p->lock);
	if (p->destroyed) {
		pthread_mutex_unlock(&p->lock);
		cow_pager_detach(n);
		cow_node_unref(n);
		cow_node_release(n);
		free(pv);
		return -EBUSY;
	}
	atomic_fetch_add(&p->refs, 1);
	LIST_INSERT_HEAD(&p->vmos, pv, link);
	pthread_mutex_unlock(&p->lock);
	*out = n;
	*pvout = pv;
	return 0;
}

void pager_set_ident(struct pager_vmo *pv, const void *ident)
{
	pthread_mutex_lock(&pv->pager->lock);
	pv->ident = ident;
	pthread_mutex_unlock(&pv->pager->lock);
}

struct pager_vmo *pager_find(struct pager *p, const void *ident, struct cow_node *node)
{
	struct pager_vmo *pv, *found = NULL;

	pthread_mutex_lock(&p->lock);
	LIST_FOREACH(pv, &p->vmos, link) {
		if (pv->serving && ((ident && pv->ident == ident) || (node && pv->node == node))) {
			found = pv;
			atomic_fetch_add(&pv->refs, 1);
			break;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return found;
}

struct cow_node *pager_vmo_node(const struct pager_vmo *pv)
{
	return pv->node;
}

uint64_t pager_vmo_get_key(const struct pager_vmo *pv)
{
	return pv->key;
}

/* ---- requests ---- */

static int wait_for_requests(struct pager *p, int timeout_ms)
{
	struct timespec deadline;
	if (timeout_ms > 0) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	while (TAILQ_EMPTY(&p->pending) && !p->destroyed) {
		if (timeout_ms == 0)
			return 0;
		if (timeout_ms < 0) {
			pthread_cond_wait(&p->requests_cond, &p->lock);
		} else if (pthread_cond_timedwait(&p->requests_cond, &p->lock, &deadline) ==
			   ETIMEDOUT) {
			return 0;
		}
	}
	return p->destroyed ? -EBUSY : 1;
}

int pager_get_requests(struct pager *p, struct uvmo_page_request *out, size_t max,
		       int timeout_ms)
{
	struct pager_vmo *finished[16];
	size_t nfinished = 0;
	int got = 0;

	pthread_mutex_lock(&p->lock);
	int rc = wait_for_requests(p, timeout_ms);
	while (rc > 0 && (size_t)got < max && nfinished < 16) {
		struct request *r = TAILQ_FIRST(&p->pending);
		if (!r)
			break;
		TAILQ_REMOVE(&p->pending, r, link);
		out[got++] = (struct uvmo_page_request){
			.type = r->type,
			.key = r->pv->key,
			.vmo = (uvmo_vmo_t *)r->pv->ident,
			.offset = r->pg << PAGE_SHIFT,
			.length = r->count << PAGE_SHIFT,
		};
		if (r->type == UVMO_PAGER_COMPLETE && r->pv->link.le_prev) {
			/* The owner knows: the pager forgets the VMO. */
			unlist(r->pv);
			finished[nfinished++] = r->pv;
		}
		free(r);
	}
	update_efd(p);
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < nfinished; i++)
		pager_vmo_put(finished[i]);
	return rc < 0 ? rc : got;
}

/* ---- answers ---- */

int pager_supply(struct pager_vmo *pv, uint64_t off, uint64_t len, const void *data)
{
	int rc = cow_pager_supply(pv->node, off, len, data);
	/* Wake the range's waiters even after a partial failure: what was
	 * supplied is there; the rest ask again. */
	pthread_mutex_lock(&pv->pager->lock);
	complete_waits(pv, COW_WAIT_READ, off >> PAGE_SHIFT, len >> PAGE_SHIFT, 0);
	pthread_mutex_unlock(&pv->pager->lock);
	return rc;
}

int pager_fail(struct pager_vmo *pv, uint64_t off, uint64_t len, int err)
{
	int rc = cow_pager_unrequest(pv->node, off, len);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&pv->pager->lock);
	complete_waits(pv, 0, off >> PAGE_SHIFT, len >> PAGE_SHIFT, -err);
	pthread_mutex_unlock(&pv->pager->lock);
	return 0;
}

int pager_ack_dirty(struct pager_vmo *pv, uint64_t off, uint64_t len)
{
	int rc = cow_pager_dirty(pv->node, off, len);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&pv->pager->lock);
	complete_waits(pv, COW_WAIT_DIRTY, off >> PAGE_SHIFT, len >> PAGE_SHIFT, 0);
	pthread_mutex_unlock(&pv->pager->lock);
	return 0;
}

int pager_detach(struct pager_vmo *pv)
{
	uint64_t lost = cow_pager_detach(pv->node);
	pthread_mutex_lock(&pv->pager->lock);
	bool was_serving = pv->serving;
	stop_serving(pv, -EBUSY);
	pthread_mutex_unlock(&pv->pager->lock);
	if (!was_serving)
		return -ENOENT;
	if (lost)
		fprintf(stderr, "uvmo: pager VMO (key %llu) detached with %llu dirty "
			"pages not written back\n", (unsigned long long)pv->key,
			(unsigned long long)lost);
	return 0;
}

struct pager *pager_of_node(struct cow_node *node)
{
	struct cow_source *s = cow_node_source(node);
	return s ? s->pv->pager : NULL;
}

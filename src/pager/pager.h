/* SPDX-License-Identifier: MIT */
/*
 * pager — the user-pager protocol (Zircon's zx_pager_*): the page source
 * of pager-backed VMOs.  Beside uffd, on top of cow: cow asks this module
 * for absent pages through struct cow_source_ops; this module queues the
 * requests, hands them to the pager's owner, and completes the waits when
 * the owner supplies, acknowledges or fails a range.
 *
 * OBJECTS AND LIFETIMES
 *  - struct pager: the protocol object.  Reference counted: the API's
 *    handle holds one, every VMO it serves one, every operation in flight
 *    one.  pager_destroy detaches every VMO and drops the handle's.
 *  - struct pager_vmo: one per VMO created, the cow_source of its node.  It
 *    holds the node's memory (cow_node_hold), never its content: the VMO
 *    dies when its last handle and mapping go, and a COMPLETE request
 *    follows.  (The file pager may also keep a handle of its own,
 *    pager_vmo_keep: the VMO then dies when that one closes, after a
 *    PAGER_REQUEST_UNUSED said every other reference was gone.)  It is identified by its key and by `ident`, the handle value
 *    the API returned for it, which stays usable after that handle closes.
 *
 * LOCKING
 * One mutex per pager guards its queue, its VMOs and their waits.  cow
 * calls the source operations with a tree lock held, so the order is
 * tree lock → pager lock; nothing here calls cow with the pager lock held.
 */
#ifndef UVMO_PAGER_H
#define UVMO_PAGER_H

#include <stddef.h>
#include <stdint.h>

#include <uvmo/uvmo.h>

#include "cow/cow.h"

struct pager;
struct pager_vmo;

/* A new pager with one reference (the caller's). */
int pager_create(struct pager **out);
/* Detach every VMO, drop pending requests and wake every caller of
 * get_requests (they return -EBUSY).  Idempotent; no reference dropped. */
void pager_destroy(struct pager *p);
void pager_release(struct pager *p);
int pager_fd(struct pager *p);

/* A paged root for @p; *@out has one reference (the caller's handle).
 * @flags: COW_RESIZABLE, COW_TRAP_DIRTY.  Call pager_set_ident once the
 * handle exists.  The VMO is returned referenced in *@pv too (drop it with
 * pager_vmo_put). */
int pager_create_vmo(struct pager *p, uint32_t flags, uint64_t key, uint64_t size,
		     uint64_t capacity, struct cow_node **out, struct pager_vmo **pv);
void pager_set_ident(struct pager_vmo *pv, const void *ident);

/* The VMO of @p named by @ident (the handle create_vmo returned), or the
 * one whose node is @node; referenced.  NULL if @p serves no such VMO any
 * more (never did, detached, or dead). */
struct pager_vmo *pager_find(struct pager *p, const void *ident, struct cow_node *node);
void pager_vmo_put(struct pager_vmo *pv);
struct cow_node *pager_vmo_node(const struct pager_vmo *pv);
uint64_t pager_vmo_get_key(const struct pager_vmo *pv);
/* The pager serving @node, if any (no reference; for lookups only). */
struct pager *pager_of_node(struct cow_node *node);

/* The protocol operations (see uvmo.h for their meaning and errors). */
int pager_get_requests(struct pager *p, struct uvmo_page_request *out, size_t max,
		       int timeout_ms);
int pager_supply(struct pager_vmo *pv, uint64_t off, uint64_t len, const void *data);
int pager_fail(struct pager_vmo *pv, uint64_t off, uint64_t len, int err);
int pager_ack_dirty(struct pager_vmo *pv, uint64_t off, uint64_t len);
int pager_detach(struct pager_vmo *pv);

/* fork() handlers, called by the API layer after its own and uffd's. */
void pager_fork_prepare(void);
void pager_fork_parent(void);
void pager_fork_child(void);

/* The handle value of the pager (set by the API layer). */
void pager_set_handle(struct pager *p, uvmo_pager_t *handle);
uvmo_pager_t *pager_handle(const struct pager *p);

/*
 * A request kind of our own, beside the public UVMO_PAGER_* ones: every
 * reference to the VMO but its pager's kept handle (pager_vmo_keep) is
 * gone — no user handle, mapping or child is left.  Only VMOs with a kept
 * handle get it, so a user's pager never sees it.  The VMO dies (and
 * COMPLETE follows) once the kept handle is closed.  Not merged with
 * anything; dropped if the VMO stops being served first.
 */
#define PAGER_REQUEST_UNUSED 0x100u

/* For the file pager (implemented by the API layer, which owns handles):
 * the pager and key of a pager-backed VMO handle (a slice names its
 * parent's).  0, or -EINVAL if @vmo is not pager-backed, -EBADF if it is
 * not an open handle. */
int pager_vmo_key(uvmo_vmo_t *vmo, uvmo_pager_t **pager, uint64_t *key);
/* For the file pager: a handle of the pager's own to the pager-backed VMO
 * @vmo (a whole VMO, not a slice), readable and writable like a duplicate,
 * but not a user's: when every other reference is gone the pager gets a
 * PAGER_REQUEST_UNUSED request, and the VMO lives until this handle is
 * closed too.  Not counted in uvmo_stats.vmos.  0, -EINVAL (a slice, or not
 * pager-backed), -ENOENT (not served any more), -ENOMEM, -EBADF. */
int pager_vmo_keep(uvmo_vmo_t *vmo, uvmo_vmo_t **kept);
/* For the file pager: the pager-backed VMO @vmo (a whole VMO, not yet
 * mapped) holds exactly the content of file @fd and no handle will ever
 * write it, so read-only mappings of it may map the file itself
 * (cow_set_direct_file).  Takes @fd (closed on failure too).  0, -EINVAL,
 * -EBADF. */
int pager_vmo_map_directly(uvmo_vmo_t *vmo, int fd);

#endif

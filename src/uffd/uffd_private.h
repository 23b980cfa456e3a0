/* SPDX-License-Identifier: MIT */
/* uffd_private.h — the uffd module's own structures; nobody else's. */
#ifndef UVMO_UFFD_PRIVATE_H
#define UVMO_UFFD_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/tree.h>

#include "uffd/uffd.h"

/* A child of a VMAR: a sub-VMAR or a mapping, [start, end) in bytes. */
struct region {
	RB_ENTRY(region) link;
	uint64_t start, end;
	bool is_vmar;
};
RB_HEAD(region_tree, region);
RB_PROTOTYPE(region_tree, region, link, region_cmp)

struct vmar {
	struct region r;  /* where it lies; in its parent's tree */
	struct vmar *parent;
	struct region_tree children;
	uint32_t rights;  /* UVMO_VMAR_CAN_MAP_* */
	bool destroyed;
	_Atomic uint32_t refs; /* handles, plus one while in the parent's tree */
};

/* Sequential fault streams tracked per mapping (fault-ahead). */
#define FAULT_STREAMS 4

struct mapping {
	struct region r;
	struct cow_mapping cm;
	struct vmar *vmar;
	struct cow_node *node;  /* a reference, through cow_mapping_attach */
	uint64_t node_offset;   /* node offset shown at r.start */
	uint64_t node_limit;    /* node offsets at or past it: SIGBUS (slices) */
	uint32_t perms;         /* UVMO_PERM_* */
	bool writable;          /* the VMO handle may write */
	uint64_t file_offset;   /* of the node's window when last mapped */
	bool async;             /* registered with the async-tracking userfaultfd */
	/* A mapping of the file itself (cow_direct_file): no window, no
	 * userfaultfd; the kernel serves it.  Decided at creation: read-only
	 * mappings of such a node within a slice's bounds (a slice never
	 * reaches past the file VMO's end). */
	bool direct;
	bool installed;
	bool dead;              /* being unmapped: never remapped again */
	/* Fault-ahead, per sequential stream (several threads may each walk
	 * their own part of one mapping): where the stream would fault next,
	 * and how far ahead to serve it (doubles on each hit, up to
	 * FAULT_AHEAD).  A fault that continues no stream starts one in the
	 * next slot, round robin. */
	struct fault_stream {
		_Atomic uint64_t next_fault;
		_Atomic uint32_t ahead;
	} streams[FAULT_STREAMS];
	_Atomic uint32_t next_stream_slot;
	/* r, node_offset, perms, file_offset and async change only under the
	 * node's tree lock (cow_mapping_update), since cow's callbacks read
	 * them. */
};

/* space.c: the root, the address-space lock, lookups */
extern pthread_rwlock_t aspace_lock;
extern struct vmar root_vmar;
/* The mapping containing @addr, or NULL (lock held). */
struct mapping *space_find_mapping(uint64_t addr);
/* Resolve a fault at page address @addr (address-space lock held for
 * reading); for a write-protect fault (@wp) also lift the protection.
 * @write: the access was a write.  0, -ESRCH (no mapping), or cow's error
 * (-EINPROGRESS: the page waits for a pager; see cow_wait_use). */
int space_resolve_fault(uint64_t addr, bool wp, bool write);
bool space_pool_has_room(void);
/* Give [start, end) back to the root's reservation (PROT_NONE). */
void space_release(uint64_t start, uint64_t len);

/* Call @fn on every mapping (lock held). */
void space_for_each_mapping(void (*fn)(struct mapping *m, void *arg), void *arg);

/* mapping.c */
int mapping_create(struct vmar *v, uint64_t addr, uint64_t len,
		   const struct map_target *t, uint64_t vmo_offset, uint32_t perms,
		   struct mapping **out);
/* Unmap [start, end) of @m (inside it); may split it in two. */
int mapping_unmap_range(struct mapping *m, uint64_t start, uint64_t end);
/* Apply @perms to [start, end) of @m; may split it. */
int mapping_protect_range(struct mapping *m, uint64_t start, uint64_t end,
			  uint32_t perms);
/* Split @m at @addr; the new right part is returned (already in the tree). */
int mapping_split(struct mapping *m, uint64_t addr, struct mapping **right);
/* Live mappings that map a file directly. */
uint64_t mapping_direct_count(void);

/* engine.c */
struct engine {
	int fd;         /* the userfaultfd of sync-tracked mappings */
	int async_fd;   /* with UFFD_FEATURE_WP_ASYNC; -1: no async tier */
	int pagemap_fd; /* /proc/self/pagemap, for PAGEMAP_SCAN; -1 with async_fd */
	uint64_t features;
	uint32_t config_threads, config_tracking, config_rest_ms;
	_Atomic uint64_t missing_faults, wp_faults, sigbus_faults, dirty_scans;
	_Atomic uint64_t dirty_scan_ns; /* time inside PAGEMAP_SCAN */
};
extern struct engine engine;
/* @tracking: UVMO_TRACKING_* (uffd.h); -ENOTSUP if ASYNC is impossible. */
int engine_start(uint32_t threads, uint32_t tracking, uint32_t rest_ms);
void engine_stop(void);
void engine_forget(void);
/* Register [start, start + len) with userfaultfd @fd (MISSING and WP). */
int engine_register(int fd, uint64_t start, uint64_t len);
int engine_unregister(int fd, uint64_t start, uint64_t len);
void engine_write_protect(int fd, uint64_t start, uint64_t len, bool protect);
/* Report (@written) and write-protect again the pages of a range
 * registered with the async userfaultfd written since last protected.
 * 0, or -errno (the range is not async-registered, no PAGEMAP_SCAN). */
int engine_scan_written(uint64_t start, uint64_t len,
			void (*written)(void *arg, uint64_t addr, uint64_t len), void *arg);
void engine_clear_poisons(void);
/* Poisoned pages wait for the pool to have room; retry them if it has. */
bool engine_poisons_pending(void);
void engine_retry_poisons(void);
/* Serve one fault message read from userfaultfd @fd (a handler thread). */
struct uffd_msg;
void engine_handle_fault(int fd, const struct uffd_msg *msg);
/* A handler thread ends: free what engine_handle_fault kept for it. */
void engine_handler_exit(void);

/* handlers.c: the handler threads (see there for who waits and who rests).
 * @threads: 0 for one per CPU, pinned; else that many, unpinned.
 * @rest_ms: uvmo_config.handler_rest_ms. */
int handlers_start(uint32_t threads, uint32_t rest_ms);
void handlers_get_stats(struct uffd_stats *out);
void handlers_stop(void);
/* After fork(): forget the parent's threads without touching them. */
void handlers_forget(void);
/* Fill and map holes of a mapping in one step (zeros: no wake-up): 0, or
 * an error if not all of it was done.  @wake_waiters: also wake the
 * threads faulting in the range (the fault being served is answered). */
int engine_install_zero(int fd, uint64_t addr, uint64_t len);
int engine_install_copy(int fd, uint64_t addr, const void *src, uint64_t len,
			bool wake_waiters);

/* The userfaultfd @m is registered with (tree lock held, or the
 * address-space lock for writing). */
static inline int mapping_uffd(const struct mapping *m)
{
	return m->async ? engine.async_fd : engine.fd;
}

#endif

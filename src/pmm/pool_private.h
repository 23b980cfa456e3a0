/* SPDX-License-Identifier: MIT */
/* pool_private.h — pmm's own state, shared by its files and nobody else. */
#ifndef UVMO_PMM_POOL_PRIVATE_H
#define UVMO_PMM_POOL_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct pmm_window {
	uint64_t base;   /* first file page */
	uint64_t pages;  /* slots */
	uint64_t frames; /* populated slots; caller's lock */
	uint32_t refs;   /* caller's lock */
};

struct pool {
	int fd;
	char *physmap;
	uint64_t span_pages;
	uint64_t limit_frames; /* 0: unlimited */
	int numa_node;         /* -1: local */
	_Atomic uint64_t frames;
	_Atomic uint64_t peak_frames;
	uint64_t windows;     /* under lock */
	pthread_mutex_t lock; /* leaf: the range allocator and window count */
	uint64_t (*reclaim)(uint64_t pages);
};

extern struct pool pool;

#endif

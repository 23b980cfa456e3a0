/* SPDX-License-Identifier: MIT */
/*
 * handle.c — the handle table.  A handle encodes (generation << 32 |
 * index + 1); a slot's generation advances whenever it is freed, so an old
 * handle never reaches a new object.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "api/api.h"

struct slot {
	uint32_t gen;
	uint32_t next_free; /* index + 1 of the next free slot, 0 = none */
	struct handle_obj *obj;
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *slots;
static uint32_t nslots, free_head, live;

static void *encode(uint32_t index, uint32_t gen)
{
	return (void *)(uintptr_t)(((uint64_t)gen << 32) | (index + 1));
}

/* The slot a handle names, if it is live (table lock held). */
static struct slot *decode(const void *h)
{
	uint64_t v = (uint64_t)(uintptr_t)h;
	uint32_t index = (uint32_t)v - 1;
	uint32_t gen = (uint32_t)(v >> 32);

	if ((uint32_t)v == 0 || index >= nslots)
		return NULL;
	if (slots[index].gen != gen || !slots[index].obj)
		return NULL;
	return &slots[index];
}

int handle_install(struct handle_obj *obj, void **out)
{
	uint32_t index;

	pthread_mutex_lock(&table_lock);
	if (free_head) {
		index = free_head - 1;
		free_head = slots[index].next_free;
	} else {
		if (nslots == UINT32_MAX - 1) {
			pthread_mutex_unlock(&table_lock);
			return -ENOMEM;
		}
		uint32_t cap = nslots ? nslots * 2 : 64;
		struct slot *s = realloc(slots, cap * sizeof(*s));
		if (!s) {
			pthread_mutex_unlock(&table_lock);
			return -ENOMEM;
		}
		/* Chain the new slots into the (empty) free list. */
		for (uint32_t i = nslots; i < cap; i++)
			s[i] = (struct slot){ .gen = 1, .next_free = i + 1 < cap ? i + 2 : 0 };
		slots = s;
		free_head = nslots + 1;
		nslots = cap;
		index = free_head - 1;
		free_head = slots[index].next_free;
	}
	slots[index].obj = obj;
	slots[index].next_free = 0;
	live++;
	*out = encode(index, slots[index].gen);
	pthread_mutex_unlock(&table_lock);
	return 0;
}

struct handle_obj *handle_get(const void *h, enum handle_type type)
{
	struct handle_obj *obj = NULL;

	pthread_mutex_lock(&table_lock);
	struct slot *s = decode(h);
	if (s && s->obj->type == type) {
		obj = s->obj;
		obj_get(obj);
	}
	pthread_mutex_unlock(&table_lock);
	return obj;
}

static struct handle_obj *slot_release(struct slot *s)
{
	struct handle_obj *obj = s->obj;
	s->obj = NULL;
	s->gen = s->gen + 1 ? s->gen + 1 : 1;
	s->next_free = free_head;
	free_head = (uint32_t)(s - slots) + 1;
	live--;
	return obj;
}

struct handle_obj *handle_remove(const void *h, enum handle_type type)
{
	struct handle_obj *obj = NULL;

	pthread_mutex_lock(&table_lock);
	struct slot *s = decode(h);
	if (s && s->obj->type == type)
		obj = slot_release(s);
	pthread_mutex_unlock(&table_lock);
	return obj;
}

uint64_t handle_count(enum handle_type type)
{
	uint64_t n = 0;
	pthread_mutex_lock(&table_lock);
	for (uint32_t i = 0; i < nslots; i++)
		n += slots[i].obj && slots[i].obj->type == type && !slots[i].obj->internal;
	pthread_mutex_unlock(&table_lock);
	return n;
}

uint64_t handle_close_all(void)
{
	uint64_t closed = 0;

	for (;;) {
		struct handle_obj *obj = NULL;
		pthread_mutex_lock(&table_lock);
		for (uint32_t i = 0; i < nslots && !obj; i++)
			if (slots[i].obj)
				obj = slot_release(&slots[i]);
		pthread_mutex_unlock(&table_lock);
		if (!obj)
			break;
		obj_put(obj);
		closed++;
	}
	return closed;
}

void obj_get(struct handle_obj *obj)
{
	atomic_fetch_add(&obj->refs, 1);
}

void obj_put(struct handle_obj *obj)
{
	if (atomic_fetch_sub(&obj->refs, 1) == 1)
		obj->destroy(obj);
}

struct child_count *child_count_new(void)
{
	struct child_count *c = calloc(1, sizeof(*c));
	if (c)
		atomic_init(&c->refs, 1);
	return c;
}

void child_count_put(struct child_count *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1)
		free(c);
}

void handle_table_lock(void)
{
	pthread_mutex_lock(&table_lock);
}

void handle_table_unlock(void)
{
	pthread_mutex_unlock(&table_lock);
}

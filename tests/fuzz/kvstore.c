// SPDX-License-Identifier: MIT
/* kvstore — see kvstore.h. */
#include "kvstore.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

struct kv_slot {
	const uint8_t *value; /* in memory from the store's allocator */
	uint8_t length;
	bool present;
};

struct kv_store {
	kv_alloc_fn alloc;
	size_t count;
	uint64_t sets; /* lifetime statistics */
	struct kv_slot slots[KV_KEYS];
};

struct kv_store *kv_create(kv_alloc_fn alloc)
{
	struct kv_store *store = alloc(sizeof(*store));
	if (store)
		store->alloc = alloc; /* the rest is zero: empty */
	return store;
}

int kv_set(struct kv_store *store, uint8_t key, const uint8_t *value, size_t len)
{
	if (len > KV_VALUE_MAX)
		return -EINVAL;
	/* Always a fresh copy (even of an empty value): readers may still hold
	 * the old one. */
	uint8_t *copy = store->alloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, value, len);

	struct kv_slot *slot = &store->slots[key];
	if (!slot->present)
		store->count++;
	slot->value = copy;
	slot->length = (uint8_t)len;
	slot->present = true;
	store->sets++;
	return 0;
}

int kv_get(const struct kv_store *store, uint8_t key, const uint8_t **value, size_t *len)
{
	const struct kv_slot *slot = &store->slots[key];
	if (!slot->present)
		return -ENOENT;
	*value = slot->value;
	*len = slot->length;
	return 0;
}

int kv_delete(struct kv_store *store, uint8_t key)
{
	struct kv_slot *slot = &store->slots[key];
	if (!slot->present)
		return -ENOENT;
	slot->present = false;
	slot->value = NULL;
	slot->length = 0;
	store->count--;
	return 0;
}

size_t kv_count(const struct kv_store *store)
{
	return store->count;
}

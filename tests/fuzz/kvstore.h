/* SPDX-License-Identifier: MIT */
/*
 * kvstore — a tiny in-memory key-value store: the stateful fuzz target of
 * the fuzzing examples (docs/fuzzing.md).
 *
 * Keys are bytes; values are byte strings of up to KV_VALUE_MAX bytes.
 * The store is long-lived state: a table of 256 slots plus counters, built
 * once by kv_create in memory from the caller's allocator.  A set copies
 * the value into fresh memory from that allocator and never frees the old
 * copy (an arena-style design: memory is reclaimed only when the whole
 * arena is).  Nothing in the store is ever reset by the store itself — run
 * inputs back to back without resetting and each sees what the ones before
 * left behind.
 */
#ifndef UVMO_TESTS_FUZZ_KVSTORE_H
#define UVMO_TESTS_FUZZ_KVSTORE_H

#include <stddef.h>
#include <stdint.h>

#define KV_KEYS      256
#define KV_VALUE_MAX 15

/* Zero-filled memory that the store never frees; NULL when exhausted. */
typedef void *(*kv_alloc_fn)(size_t size);

struct kv_store;

/* A new, empty store whose table and values come from @alloc. */
struct kv_store *kv_create(kv_alloc_fn alloc);

/* Store a copy of @value (@len <= KV_VALUE_MAX) under @key.
 * 0, -EINVAL (too long), or -ENOMEM (the allocator is exhausted). */
int kv_set(struct kv_store *store, uint8_t key, const uint8_t *value, size_t len);

/* 0 and the value, or -ENOENT. */
int kv_get(const struct kv_store *store, uint8_t key, const uint8_t **value, size_t *len);

/* 0, or -ENOENT if @key holds nothing. */
int kv_delete(struct kv_store *store, uint8_t key);

/* Keys holding a value. */
size_t kv_count(const struct kv_store *store);

#endif

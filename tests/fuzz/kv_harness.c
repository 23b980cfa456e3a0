// SPDX-License-Identifier: MIT
/* kv_harness — see kv_harness.h. */
#include "kv_harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <uvmo/fuzz.h>

/* Set once by kv_harness_setup and never changed: the pointer itself may
 * live outside fuzz memory. */
static struct kv_store *store;

struct model_entry {
	bool present;
	uint8_t length;
	uint8_t value[KV_VALUE_MAX];
};

struct model {
	size_t count;
	struct model_entry entries[KV_KEYS];
};

enum { OP_SET, OP_GET, OP_DELETE, OP_COUNT };

int kv_harness_setup(size_t heap_bytes)
{
	int rc = uvmo_fuzz_heap(heap_bytes);
	if (rc < 0)
		return rc;
	store = kv_create(uvmo_fuzz_alloc);
	if (!store)
		return -ENOMEM;
	return uvmo_fuzz_arm();
}

struct kv_store *kv_harness_store(void)
{
	return store;
}

__attribute__((format(printf, 3, 4)))
static int fail(struct kv_verdict *verdict, size_t offset, const char *format, ...)
{
	va_list args;

	verdict->failed = 1;
	verdict->op_offset = offset;
	va_start(args, format);
	vsnprintf(verdict->what, sizeof(verdict->what), format, args);
	va_end(args);
	return 1;
}

static int check_get(const struct model *model, uint8_t key, size_t at, struct kv_verdict *v)
{
	const struct model_entry *expected = &model->entries[key];
	const uint8_t *value;
	size_t length;
	int rc = kv_get(store, key, &value, &length);

	if (!expected->present && rc == 0)
		return fail(v, at, "GET %u: found a value (%zu bytes) this input never set", key,
			    length);
	if (expected->present && rc != 0)
		return fail(v, at, "GET %u: lost the value (%u bytes) set by this input", key,
			    expected->length);
	if (expected->present &&
	    (length != expected->length || memcmp(value, expected->value, length) != 0))
		return fail(v, at, "GET %u: wrong value (%zu bytes)", key, length);
	return 0;
}

int kv_harness_run(const uint8_t *input, size_t len, struct kv_verdict *verdict)
{
	static _Thread_local struct model model;
	size_t at = 0;

	memset(&model, 0, sizeof(model));
	memset(verdict, 0, sizeof(*verdict));
	while (at < len) {
		size_t op_start = at;
		uint8_t op = input[at++] % 4;

		if (op == OP_COUNT) {
			size_t count = kv_count(store);
			if (count != model.count)
				return fail(verdict, op_start, "COUNT: the store has %zu keys, this input set %zu",
					    count, model.count);
			continue;
		}
		if (at >= len)
			break;
		uint8_t key = input[at++];
		struct model_entry *entry = &model.entries[key];

		if (op == OP_GET) {
			if (check_get(&model, key, op_start, verdict))
				return 1;
		} else if (op == OP_DELETE) {
			int rc = kv_delete(store, key);
			if ((rc == 0) != entry->present)
				return fail(verdict, op_start, "DELETE %u: the store %s, this input %s",
					    key, rc == 0 ? "had the key" : "had no such key",
					    entry->present ? "set it" : "never set it");
			if (entry->present)
				model.count--;
			entry->present = false;
		} else { /* OP_SET */
			if (at >= len)
				break;
			size_t length = input[at++] % (KV_VALUE_MAX + 1);
			if (length > len - at)
				break;
			int rc = kv_set(store, key, input + at, length);
			if (rc < 0)
				return fail(verdict, op_start, "SET %u: failed: %s", key, strerror(-rc));
			if (!entry->present)
				model.count++;
			entry->present = true;
			entry->length = (uint8_t)length;
			memcpy(entry->value, input + at, length);
			at += length;
		}
	}
	return 0;
}

static uint64_t next_random(uint64_t *state)
{
	/* xorshift64* */
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return *state * 0x2545f4914f6cdd1dull;
}

size_t kv_corpus_input(uint64_t seed, uint64_t index, uint8_t *buf, size_t capacity)
{
	uint64_t state = (seed ^ (index * 0x9e3779b97f4a7c15ull)) | 1;
	size_t target = 1 + next_random(&state) % (capacity < 96 ? capacity : 96);
	size_t len = 0;

	while (len < target) {
		uint8_t op = (uint8_t)(next_random(&state) % 4);
		uint8_t key = (uint8_t)(next_random(&state) % 12); /* few keys: inputs share them */
		uint8_t value_length = (uint8_t)(next_random(&state) % (KV_VALUE_MAX + 1));
		size_t need = op == OP_COUNT ? 1 : op == OP_SET ? 3u + value_length : 2;

		if (len + need > capacity)
			break;
		buf[len++] = op;
		if (op == OP_COUNT)
			continue;
		buf[len++] = key;
		if (op == OP_SET) {
			buf[len++] = value_length;
			for (uint8_t i = 0; i < value_length; i++)
				buf[len++] = (uint8_t)next_random(&state);
		}
	}
	if (len == 0)
		buf[len++] = OP_COUNT;
	return len;
}

/* SPDX-License-Identifier: MIT */
/*
 * kv_harness — the fuzz harness around kvstore, shared by the libFuzzer
 * target (kv_libfuzzer.c), the persistent loop (kv_persistent.c) and the
 * 'fuzz' test suite.
 *
 * An input is a sequence of operations on the store, each checked against
 * a model that starts empty: what the input alone must produce.  The store
 * itself is built once (kv_harness_setup) inside uvmo fuzz memory and the
 * pristine state armed; whether it is reset between inputs is the caller's
 * choice (uvmo_fuzz_reset).  Without the reset the store remembers earlier
 * inputs, and an input that is correct on its own fails the check.
 *
 * Input encoding (bytes; a truncated operation ends the input):
 *   op % 4 == 0  SET    key, n, then n % 16 value bytes
 *   op % 4 == 1  GET    key      -> must match the model's value or absence
 *   op % 4 == 2  DELETE key      -> must find the key iff the model has it
 *   op % 4 == 3  COUNT           -> must equal the model's key count
 */
#ifndef UVMO_TESTS_FUZZ_KV_HARNESS_H
#define UVMO_TESTS_FUZZ_KV_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "kvstore.h"

/* Fuzz heap for the store: its table and every value a run stores.  An
 * input of at most 4 KiB needs under 24 KiB; without resets the values of
 * all earlier inputs pile up. */
#define KV_HARNESS_HEAP_BYTES (1u << 20)

struct kv_verdict {
	int failed;        /* 0: every answer matched the model */
	size_t op_offset;  /* where the first mismatching operation starts */
	char what[160];    /* what mismatched */
};

/* Build the store in uvmo fuzz memory (heap of @heap_bytes) and arm the
 * pristine state.  0 or a negative errno. */
int kv_harness_setup(size_t heap_bytes);

/* The store built by kv_harness_setup. */
struct kv_store *kv_harness_store(void);

/* Run @input against the store and the model; returns verdict->failed. */
int kv_harness_run(const uint8_t *input, size_t len, struct kv_verdict *verdict);

/* Input number @index of a deterministic corpus (seeded by @seed) of
 * operation sequences over a few keys, so that inputs share keys; writes
 * at most @capacity bytes to @buf and returns the length (>= 1). */
size_t kv_corpus_input(uint64_t seed, uint64_t index, uint8_t *buf, size_t capacity);

#endif

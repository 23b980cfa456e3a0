// SPDX-License-Identifier: MIT
/*
 * kv_libfuzzer — the kvstore harness as a libFuzzer target (clang
 * -fsanitize=fuzzer; built by tests/fuzz/meson.build when clang is there).
 *
 * The store is built once, in uvmo fuzz memory, and armed; after every
 * input the fuzz memory is reset to that pristine state, so each input
 * runs against the store as initialised — unless the environment has
 * KV_FUZZ_RESET=0, which shows what happens without it: inputs see what
 * earlier ones stored, the model check fails, and libFuzzer reports a
 * crash whose input passes when run alone.
 *
 *   ./kv_libfuzzer -runs=100000                  reset after each input
 *   KV_FUZZ_RESET=0 ./kv_libfuzzer -runs=100000  no reset: a false crash
 *   ./kv_libfuzzer crash-<sha1>                   replay one input
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uvmo/fuzz.h>

#include "kv_harness.h"

static bool reset_after_each_input = true;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *setting = getenv("KV_FUZZ_RESET");
	reset_after_each_input = !(setting && strcmp(setting, "0") == 0);

	int rc = kv_harness_setup(KV_HARNESS_HEAP_BYTES);
	if (rc < 0) {
		fprintf(stderr, "kv_libfuzzer: set-up: %s\n", strerror(-rc));
		exit(2);
	}
	fprintf(stderr, "kv_libfuzzer: uvmo fuzz memory armed; reset after each input: %s\n",
		reset_after_each_input ? "yes" : "NO (KV_FUZZ_RESET=0)");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kv_verdict verdict;

	if (kv_harness_run(data, size, &verdict)) {
		fprintf(stderr, "kv_libfuzzer: model mismatch at byte %zu of %zu: %s\n",
			verdict.op_offset, size, verdict.what);
		abort();
	}
	if (reset_after_each_input) {
		int rc = uvmo_fuzz_reset();
		if (rc < 0) {
			fprintf(stderr, "kv_libfuzzer: reset: %s\n", strerror(-rc));
			abort();
		}
	}
	return 0;
}

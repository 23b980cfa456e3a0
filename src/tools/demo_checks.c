// SPDX-License-Identifier: MIT
/* demo_checks.c — narration and checks shared by the demo's steps. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/demo.h"

unsigned mismatches;

/* A failing call ends the tool: later steps would only show its fallout. */
void must(int rc, const char *what)
{
	if (rc < 0) {
		fflush(stdout); /* keep the narration before the error */
		fprintf(stderr, "uvmo: %s failed: %s\n", what, strerror(-rc));
		exit(1);
	}
}

/* Formats a byte count as KiB / MiB, exact for page multiples. */
const char *fmt_bytes(char *buf, size_t len, uint64_t bytes)
{
	if (bytes >= (1u << 30) && bytes % (1u << 30) == 0)
		snprintf(buf, len, "%" PRIu64 " GiB", bytes >> 30);
	else if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
		snprintf(buf, len, "%" PRIu64 " MiB", bytes >> 20);
	else if (bytes % 1024 == 0)
		snprintf(buf, len, "%" PRIu64 " KiB", bytes >> 10);
	else
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	return buf;
}

void step(int number, const char *title)
{
	printf("\n== %d. %s\n", number, title);
}

void expect_figure(const char *what, uint64_t got, uint64_t want)
{
	if (got == want) {
		printf("   -> %s: %" PRIu64 ", as expected\n", what, got);
	} else {
		printf("   -> %s: %" PRIu64 ", expected %" PRIu64 "  <-- WRONG\n",
		       what, got, want);
		mismatches++;
	}
}

/*
 * A cost with a lower bound: below it something was lost (a bug); above it
 * the implementation spends more than strictly needed, which the contract
 * allows (e.g. Zircon's level-by-level copy leaves copies in the hidden
 * nodes between owner and writer), so it is reported, not failed.
 */
void expect_at_least(const char *what, uint64_t got, uint64_t least)
{
	if (got == least) {
		printf("   -> %s: %" PRIu64 ", the minimum\n", what, got);
	} else if (got > least) {
		printf("   -> %s: %" PRIu64 " (minimum %" PRIu64 "; the extra %" PRIu64
		       " is the implementation's choice)\n", what, got, least, got - least);
	} else {
		printf("   -> %s: %" PRIu64 ", below the possible minimum %" PRIu64
		       "  <-- WRONG\n", what, got, least);
		mismatches++;
	}
}

/* A figure with an upper bound the semantics require. */
void expect_at_most(const char *what, uint64_t got, uint64_t most)
{
	if (got <= most) {
		printf("   -> %s: %" PRIu64 ", as expected (at most %" PRIu64 ")\n",
		       what, got, most);
	} else {
		printf("   -> %s: %" PRIu64 ", expected at most %" PRIu64 "  <-- WRONG\n",
		       what, got, most);
		mismatches++;
	}
}

void expect_text(const char *what, const char *got, const char *want)
{
	if (strcmp(got, want) == 0) {
		printf("   -> %s: \"%s\", as expected\n", what, got);
	} else {
		printf("   -> %s: \"%s\", expected \"%s\"  <-- WRONG\n", what, got, want);
		mismatches++;
	}
}


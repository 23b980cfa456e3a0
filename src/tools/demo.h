// SPDX-License-Identifier: MIT
/*
 * demo.h — what the steps of `uvmo demo` share: narration and checks.  A
 * check that fails prints WRONG and counts in `mismatches`; the demo exits
 * 1 if any did.
 */
#ifndef UVMO_TOOLS_DEMO_H
#define UVMO_TOOLS_DEMO_H

#include <stddef.h>
#include <stdint.h>

#include <uvmo/uvmo.h>

#define PAGE UVMO_PAGE_SIZE

extern unsigned mismatches; /* failed checks of any kind */

/* A failing call ends the tool (strerror on stderr, exit 1). */
void must(int rc, const char *what);
const char *fmt_bytes(char *buf, size_t len, uint64_t bytes);
void step(int number, const char *title);
void expect_figure(const char *what, uint64_t got, uint64_t want);
void expect_at_least(const char *what, uint64_t got, uint64_t least);
void expect_at_most(const char *what, uint64_t got, uint64_t most);
void expect_text(const char *what, const char *got, const char *want);

/* Steps showing the three uses (demo_uses.c). */
/* Executions per second of a fork server whose child dirties @dirty pages
 * of a @bytes state: measured before uvmo is initialised, so that uvmo's
 * fork handlers do not slow the baseline down. */
double fork_server_rate(uint64_t bytes, unsigned dirty, unsigned runs);
void demo_fuzz_reset(double fork_rate);
void demo_checkpoint(void);

#endif

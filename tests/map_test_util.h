/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the mapping suites (test_vmar.c, test_fault.c, test_fork.c):
 * catching SIGSEGV / SIGBUS of one access and carrying on, sub-VMARs and
 * mappings, position-dependent page content.  Public API only; everything
 * is static inline so a suite that does not use a helper does not warn.
 *
 * A probe (probe_read / probe_write) performs one access with a handler
 * armed for SIGSEGV and SIGBUS: it returns 0 when the access completed and
 * the signal number when it raised one.  Each thread has its own jump
 * buffer, so probes work from any thread.  A signal that arrives while no
 * probe is armed takes its default action (the process dies with it, which
 * is what criterion's .signal option checks).
 */
#ifndef UVMO_TESTS_MAP_TEST_UTIL_H
#define UVMO_TESTS_MAP_TEST_UTIL_H

#include "vmo_test_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

/* ---------------------------------------------------------------------- */
/* signal probes                                                          */
/* ---------------------------------------------------------------------- */

static _Thread_local sigjmp_buf probe_env;
static _Thread_local volatile sig_atomic_t probe_armed;
static _Thread_local void *volatile probe_si_addr;

static inline void probe_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (probe_armed) {
		probe_armed = 0;
		probe_si_addr = si ? si->si_addr : NULL;
		siglongjmp(probe_env, sig);
	}
	/* Not ours: die of it.  The signal is blocked while this handler
	 * runs, so it is delivered (with the default action) on return. */
	signal(sig, SIG_DFL);
	raise(sig);
}

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;

static inline void probe_install_handlers(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = probe_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

static inline void probe_init(void)
{
	pthread_once(&probe_once, probe_install_handlers);
}

/* Read one byte at @p.  Returns 0 (and the byte in *@out) or the signal. */
static inline int probe_read(const void *p, uint8_t *out)
{
	probe_init();
	int sig = sigsetjmp(probe_env, 1);
	if (sig)
		return sig;
	probe_armed = 1;
	uint8_t v = *(const volatile uint8_t *)p;
	probe_armed = 0;
	if (out)
		*out = v;
	return 0;
}

/* Write @v at @p.  Returns 0 or the signal raised. */
static inline int probe_write(void *p, uint8_t v)
{
	probe_init();
	int sig = sigsetjmp(probe_env, 1);
	if (sig)
		return sig;
	probe_armed = 1;
	*(volatile uint8_t *)p = v;
	probe_armed = 0;
	return 0;
}

/* memcpy(@dst, @src, @len) with the probe armed; 0 or the signal. */
static inline int probe_copy(void *dst, const void *src, size_t len)
{
	probe_init();
	int sig = sigsetjmp(probe_env, 1);
	if (sig)
		return sig;
	probe_armed = 1;
	volatile uint8_t *d = dst;
	const volatile uint8_t *s = src;
	for (size_t i = 0; i < len; i++)
		d[i] = s[i];
	probe_armed = 0;
	return 0;
}

static inline const char *sig_name(int sig)
{
	switch (sig) {
	case 0: return "no signal";
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	default: return "another signal";
	}
}

#define expect_read_ok(p)                                                     \
	do {                                                                  \
		int s_ = probe_read((p), NULL);                               \
		cr_assert_eq(s_, 0, "reading %s (%p) raised %s", #p,          \
			     (const void *)(p), sig_name(s_));                \
	} while (0)

#define expect_read_signal(want, p)                                           \
	do {                                                                  \
		int s_ = probe_read((p), NULL);                               \
		cr_assert_eq(s_, (want), "reading %s (%p) gave %s, expected %s", \
			     #p, (const void *)(p), sig_name(s_), sig_name(want)); \
	} while (0)

#define expect_write_ok(p, v)                                                 \
	do {                                                                  \
		int s_ = probe_write((p), (v));                               \
		cr_assert_eq(s_, 0, "writing %s (%p) raised %s", #p,          \
			     (const void *)(p), sig_name(s_));                \
	} while (0)

#define expect_write_signal(want, p)                                          \
	do {                                                                  \
		int s_ = probe_write((p), 0x5a);                              \
		cr_assert_eq(s_, (want), "writing %s (%p) gave %s, expected %s", \
			     #p, (const void *)(p), sig_name(s_), sig_name(want)); \
	} while (0)

/* ---------------------------------------------------------------------- */
/* regions and mappings                                                   */
/* ---------------------------------------------------------------------- */

#define CAN_MAP_ALL                                                           \
	(UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_CAN_MAP_WRITE |                   \
	 UVMO_VMAR_CAN_MAP_EXECUTE | UVMO_VMAR_CAN_MAP_SPECIFIC)
#define CAN_MAP_RW_SPECIFIC                                                   \
	(UVMO_VMAR_CAN_MAP_READ | UVMO_VMAR_CAN_MAP_WRITE | UVMO_VMAR_CAN_MAP_SPECIFIC)
#define PERM_RW (UVMO_PERM_READ | UVMO_PERM_WRITE)
#define PERM_R UVMO_PERM_READ

static inline uvmo_vmar_t *root_vmar(void)
{
	uvmo_vmar_t *r = uvmo_vmar_root();
	cr_assert_not_null(r, "uvmo_vmar_root() is NULL");
	return r;
}

/* A sub-VMAR of @parent; *@addr_out (if not NULL) receives its start. */
static inline uvmo_vmar_t *make_vmar(uvmo_vmar_t *parent, uint32_t options, uint64_t offset,
				     uint64_t size, uint8_t **addr_out)
{
	uvmo_vmar_t *v = NULL;
	void *addr = NULL;
	expect_ok(uvmo_vmar_allocate(parent, options, offset, size, &v, &addr));
	cr_assert_not_null(v);
	cr_assert_not_null(addr);
	cr_assert_eq((uintptr_t)addr % PG, 0, "sub-VMAR at %p is not page-aligned", addr);
	if (addr_out)
		*addr_out = addr;
	return v;
}

/* Map [@off, @off + @len) of @vmo into @vmar (anywhere, or at @vmar_off
 * with a placement option). */
static inline uint8_t *map_at(uvmo_vmar_t *vmar, uint32_t options, uint64_t vmar_off,
			      uvmo_vmo_t *vmo, uint64_t off, uint64_t len)
{
	void *addr = NULL;
	expect_ok(uvmo_vmar_map(vmar, options, vmar_off, vmo, off, len, &addr));
	cr_assert_not_null(addr);
	cr_assert_eq((uintptr_t)addr % PG, 0, "mapping at %p is not page-aligned", addr);
	return addr;
}

static inline uint8_t *map_vmo(uvmo_vmar_t *vmar, uint32_t options, uvmo_vmo_t *vmo,
			       uint64_t off, uint64_t len)
{
	return map_at(vmar, options, 0, vmo, off, len);
}

/* Map the whole of @vmo read-write into the root VMAR. */
static inline uint8_t *map_rw(uvmo_vmo_t *vmo)
{
	return map_vmo(root_vmar(), PERM_RW, vmo, 0, size_of(vmo));
}

/* Fill [@off, @off + @len) of @vmo with pattern_byte(@seed, position). */
static inline void write_pattern(uvmo_vmo_t *vmo, uint64_t seed, uint64_t off, uint64_t len)
{
	uint8_t *buf = malloc(len);
	cr_assert_not_null(buf);
	fill_pattern(buf, len, seed, off);
	expect_ok(uvmo_vmo_write(vmo, buf, off, len));
	free(buf);
}

/* Assert that @len bytes at @p equal pattern_byte(@seed, @pos + i). */
#define expect_mem_pattern(p, len, seed, pos)                                 \
	do {                                                                  \
		const uint8_t *p_ = (const uint8_t *)(p);                     \
		uint64_t l_ = (len), s_ = (seed), o_ = (pos);                 \
		for (uint64_t i_ = 0; i_ < l_; i_++) {                        \
			uint8_t w_ = pattern_byte(s_, o_ + i_);               \
			if (p_[i_] != w_)                                     \
				cr_assert_fail("%s + %llu (pattern position %llu) is 0x%02x, expected 0x%02x", \
					       #p, (unsigned long long)i_,    \
					       (unsigned long long)(o_ + i_), p_[i_], w_); \
		}                                                             \
	} while (0)

/* Assert that @len bytes at @p all equal @val. */
#define expect_mem_val(p, len, val)                                           \
	do {                                                                  \
		const uint8_t *p_ = (const uint8_t *)(p);                     \
		long bad_ = first_other_byte(p_, (len), (uint8_t)(val));      \
		cr_assert(bad_ < 0, "%s + %ld is 0x%02x, expected 0x%02x", #p, \
			  bad_, bad_ < 0 ? 0 : p_[bad_], (uint8_t)(val));     \
	} while (0)

/* Assert that [@off, @off + @len) of @vmo, read by call, equals @len bytes at @p. */
#define expect_vmo_matches(vmo, off, p, len)                                  \
	do {                                                                  \
		uint64_t l_ = (len);                                          \
		uint8_t *b_ = malloc(l_);                                     \
		cr_assert_not_null(b_);                                       \
		expect_ok(uvmo_vmo_read((vmo), b_, (off), l_));               \
		const uint8_t *m_ = (const uint8_t *)(p);                     \
		for (uint64_t i_ = 0; i_ < l_; i_++)                          \
			if (b_[i_] != m_[i_])                                 \
				cr_assert_fail("%s byte %llu: uvmo_vmo_read 0x%02x, mapping 0x%02x", \
					       #vmo, (unsigned long long)((off) + i_), b_[i_], m_[i_]); \
		free(b_);                                                     \
	} while (0)

static inline double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------------- */
/* failures in worker threads                                             */
/* ---------------------------------------------------------------------- */

/* Criterion asserts are for the test thread only: workers record the first
 * failure here and the test thread asserts on it after joining them. */
static atomic_bool thread_failed;
static char thread_fail_msg[1024];
static pthread_mutex_t thread_fail_lock = PTHREAD_MUTEX_INITIALIZER;

__attribute__((format(printf, 1, 2))) static inline void thread_fail(const char *fmt, ...)
{
	pthread_mutex_lock(&thread_fail_lock);
	if (!atomic_load(&thread_failed)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(thread_fail_msg, sizeof(thread_fail_msg), fmt, ap);
		va_end(ap);
		atomic_store(&thread_failed, true);
	}
	pthread_mutex_unlock(&thread_fail_lock);
}

#define tcheck(cond, ...)                                                     \
	do {                                                                  \
		if (!(cond))                                                  \
			thread_fail(__VA_ARGS__);                             \
	} while (0)

#define expect_no_thread_failure()                                            \
	cr_assert(!atomic_load(&thread_failed), "%s", thread_fail_msg)

static inline void start_workers(pthread_t *t, int n, void *(*fn)(void *), void *args,
				 size_t argsz)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * argsz), 0);
}

static inline void join_workers(pthread_t *t, int n)
{
	for (int i = 0; i < n; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
}

/* ---- a writer for "a snapshot shows one instant" tests ---------------------
 * It stores round numbers into @words words, word by word in address order;
 * a snapshot taken at one instant therefore shows round r in a prefix of the
 * words and round r - 1 in the rest (or one round everywhere). */
struct instant_writer {
	volatile uint64_t *w;
	size_t words;
	atomic_bool stop;
	uint64_t rounds;
};

static inline void *instant_write(void *arg)
{
	struct instant_writer *iw = arg;
	uint64_t r = 0;
	while (!atomic_load(&iw->stop)) {
		r++;
		for (size_t i = 0; i < iw->words; i++)
			iw->w[i] = r;
	}
	iw->rounds = r;
	return NULL;
}

/* The first word of @got (@words long) that breaks "one instant", or
 * @words; *@cut: where round r - 1 starts. */
static inline size_t instant_break(const uint64_t *got, size_t words, size_t *cut)
{
	uint64_t a = got[0];
	size_t i = 0;
	while (i < words && got[i] == a)
		i++;
	*cut = i;
	while (i < words && a > 0 && got[i] == a - 1)
		i++;
	return i;
}

#endif /* UVMO_TESTS_MAP_TEST_UTIL_H */

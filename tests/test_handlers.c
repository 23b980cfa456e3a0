/* SPDX-License-Identifier: MIT */
/*
 * Fault handler threads: with one thread faulting, the handlers of the
 * other CPUs step aside (rest) so that faults stop waking them; they come
 * back when another thread faults, when the faulting thread moves to their
 * CPU, and when uvmo shuts down.  Faults are served correctly throughout.
 *
 * Each test runs in its own process and starts uvmo with a long rest
 * (10 s), so that a rest ends only for one of those reasons.  Tests that
 * need a second CPU skip on a machine with one.
 */
#include "map_test_util.h"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#define LONG_REST_MS 10000u
/* Random faults per round, each its own fault (small VMOs: validation
 * builds check the whole VMO after every fault). */
#define ROUND_PAGES 256u
#define MAX_ROUNDS 64

static long cpus_online(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN);
}

static void need_two_cpus(void)
{
	if (cpus_online() < 2)
		cr_skip_test("needs 2 CPUs");
}

static void start_uvmo(uint32_t rest_ms)
{
	struct uvmo_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.handler_rest_ms = rest_ms;
	expect_ok(uvmo_init(&cfg));
}

static void pin_to(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	cr_assert_eq(pthread_setaffinity_np(pthread_self(), sizeof(set), &set), 0,
		     "cannot pin to CPU %d", cpu);
}

/* Write every page of a fresh mapped VMO once, in a random order (so every
 * write is a fault of its own: no fault-ahead), and check what the VMO
 * holds afterwards. */
static void fault_random_pages(uint32_t pages, uint32_t seed)
{
	uvmo_vmo_t *v = make_vmo((uint64_t)pages * PG, 0);
	uint8_t *m = map_rw(v);
	uint32_t *order = malloc(pages * sizeof(*order));
	cr_assert_not_null(order);
	for (uint32_t i = 0; i < pages; i++)
		order[i] = i;
	uint32_t x = seed | 1;
	for (uint32_t i = pages - 1; i > 0; i--) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		uint32_t j = x % (i + 1), t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (uint32_t i = 0; i < pages; i++)
		m[(uint64_t)order[i] * PG + order[i] % PG] = (uint8_t)(order[i] * 7 + 1);
	for (uint32_t p = 0; p < pages; p += 97) {
		uint8_t got = 0;
		expect_ok(uvmo_vmo_read(v, &got, (uint64_t)p * PG + p % PG, 1));
		cr_assert_eq(got, (uint8_t)(p * 7 + 1), "page %u holds 0x%02x", p, got);
	}
	free(order);
	expect_ok(uvmo_vmar_unmap(root_vmar(), m, (uint64_t)pages * PG));
	uvmo_vmo_close(v);
}

/* Fault from CPU 0 until some handler rests; at least one keeps waiting. */
static void fault_until_a_handler_rests(void)
{
	pin_to(0);
	for (int round = 0; round < MAX_ROUNDS; round++) {
		fault_random_pages(ROUND_PAGES, (uint32_t)round + 1);
		struct uvmo_stats st = stats_now();
		cr_assert_geq(st.handlers_waiting, 1, "every handler rests");
		if (st.handler_rests > 0)
			return;
	}
	cr_assert_fail("no handler rested after %d x %u faults from one thread on CPU 0",
		       MAX_ROUNDS, ROUND_PAGES);
}

/* Wait (up to 2 s) until every handler waits again. */
static bool all_handlers_waiting_soon(void)
{
	for (int i = 0; i < 200; i++) {
		if (stats_now().handlers_waiting == (uint64_t)cpus_online())
			return true;
		usleep(10000);
	}
	return false;
}

Test(handlers, every_cpu_has_a_waiting_handler_at_start)
{
	start_uvmo(0);
	struct uvmo_stats st = stats_now();
	cr_assert_eq(st.handlers_waiting, (uint64_t)cpus_online());
	cr_assert_eq(st.handler_rests, 0);
}

Test(handlers, one_faulting_thread_leaves_the_other_handlers_resting)
{
	need_two_cpus();
	start_uvmo(LONG_REST_MS);
	fault_until_a_handler_rests();
	struct uvmo_stats st = stats_now();
	cr_assert_lt(st.handlers_waiting, (uint64_t)cpus_online());
	/* Faults keep being served while they rest. */
	for (uint32_t round = 0; round < 4; round++)
		fault_random_pages(ROUND_PAGES, round + 99);
}

Test(handlers, never_rest_keeps_every_handler_waiting)
{
	need_two_cpus();
	start_uvmo(UVMO_HANDLERS_NEVER_REST);
	pin_to(0);
	for (int round = 0; round < MAX_ROUNDS / 2; round++)
		fault_random_pages(ROUND_PAGES, (uint32_t)round + 1);
	struct uvmo_stats st = stats_now();
	cr_assert_eq(st.handler_rests, 0);
	cr_assert_eq(st.handlers_waiting, (uint64_t)cpus_online());
}

Test(handlers, a_single_unpinned_handler_never_rests)
{
	struct uvmo_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.fault_threads = 1;
	cfg.handler_rest_ms = LONG_REST_MS;
	expect_ok(uvmo_init(&cfg));
	for (int round = 0; round < MAX_ROUNDS / 2; round++)
		fault_random_pages(ROUND_PAGES, (uint32_t)round + 1);
	struct uvmo_stats st = stats_now();
	cr_assert_eq(st.handler_rests, 0);
	cr_assert_eq(st.handlers_waiting, 1);
}

struct fault_job {
	uvmo_vmo_t *vmo;
	uint8_t *map;
};

static void *write_first_page(void *arg)
{
	struct fault_job *j = arg;
	j->map[0] = 0x5a;
	return NULL;
}

Test(handlers, a_fault_from_another_thread_recalls_resting_handlers)
{
	need_two_cpus();
	start_uvmo(LONG_REST_MS);
	fault_until_a_handler_rests();
	uint64_t recalls = stats_now().handler_recalls;

	struct fault_job j = { .vmo = make_vmo(PG, 0) };
	j.map = map_rw(j.vmo);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, write_first_page, &j), 0);
	pthread_join(t, NULL);
	uint8_t got = 0;
	expect_ok(uvmo_vmo_read(j.vmo, &got, 0, 1));
	cr_assert_eq(got, 0x5a);

	cr_assert_gt(stats_now().handler_recalls, recalls,
		     "a fault from a second thread recalled no handler");
	cr_assert(all_handlers_waiting_soon(), "the recalled handlers did not come back");
	expect_ok(uvmo_vmar_unmap(root_vmar(), j.map, PG));
	uvmo_vmo_close(j.vmo);
}

Test(handlers, a_thread_moving_to_a_resting_handlers_cpu_recalls_it)
{
	need_two_cpus();
	if (access("/proc/self/task", R_OK) != 0)
		cr_skip_test("no /proc: a thread's CPU cannot be seen");
	start_uvmo(LONG_REST_MS);
	/* Faults from CPU 0 leave CPU 1's handler resting; then the same
	 * thread (so no recall for a new faulting thread) moves to CPU 1.
	 * Should CPU 0's handler have rested instead (CPU 0 too busy to
	 * serve its own faults), moving needs no recall: try again. */
	for (int attempt = 0; attempt < 3; attempt++) {
		fault_until_a_handler_rests();
		uint64_t recalls = stats_now().handler_recalls;
		pin_to(1);
		for (uint32_t round = 0; round < 4; round++)
			fault_random_pages(ROUND_PAGES, round + 7);
		if (stats_now().handler_recalls > recalls)
			return;
	}
	cr_assert_fail("%u faults on CPU 1, three times, never recalled its handler",
		       4 * ROUND_PAGES);
}

struct spinner {
	_Atomic bool stop, started;
};

static void *spin_on_cpu0(void *arg)
{
	struct spinner *s = arg;
	atomic_store(&s->started, true);
	while (!atomic_load(&s->stop))
		;
	return NULL;
}

Test(handlers, a_resting_handler_serves_a_fault_the_waiting_one_cannot_reach, .timeout = 20)
{
	need_two_cpus();
	start_uvmo(LONG_REST_MS);
	fault_until_a_handler_rests(); /* from CPU 0: CPU 1's handler rests */
	uvmo_vmo_t *v = make_vmo(PG, 0);
	uint8_t *m = map_rw(v);
	pin_to(1); /* before CPU 0 is taken */

	/* A real-time thread spinning on CPU 0 keeps CPU 0's handler (an
	 * ordinary thread) from running at all, but for the kernel's
	 * real-time throttling (50 ms a second by default). */
	struct spinner s = { 0 };
	pthread_attr_t attr;
	struct sched_param sp = { .sched_priority = 1 };
	cpu_set_t cpu0;
	CPU_ZERO(&cpu0);
	CPU_SET(0, &cpu0);
	pthread_attr_init(&attr);
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
	pthread_attr_setschedparam(&attr, &sp);
	pthread_attr_setaffinity_np(&attr, sizeof(cpu0), &cpu0);
	pthread_t t;
	if (pthread_create(&t, &attr, spin_on_cpu0, &s) != 0)
		cr_skip_test("cannot start a SCHED_FIFO thread here");
	pthread_attr_destroy(&attr);
	while (!atomic_load(&s.started))
		;

	uint64_t recalls = stats_now().handler_recalls;
	double t0 = now_seconds();
	m[0] = 0x77; /* a fault only a handler on CPU 1 can serve now */
	double waited = now_seconds() - t0;
	atomic_store(&s.stop, true);
	pthread_join(t, NULL);

	/* The resting handler looks every 10 ms; without that the fault
	 * would wait for the throttling (up to 950 ms) or the rest (10 s). */
	cr_assert_lt(waited, 0.3, "the fault waited %.0f ms", waited * 1e3);
	cr_assert_gt(stats_now().handler_recalls, recalls);
	uint8_t got = 0;
	expect_ok(uvmo_vmo_read(v, &got, 0, 1));
	cr_assert_eq(got, 0x77);
	expect_ok(uvmo_vmar_unmap(root_vmar(), m, PG));
	uvmo_vmo_close(v);
}

Test(handlers, shutdown_ends_rests_at_once, .timeout = 5)
{
	need_two_cpus();
	start_uvmo(LONG_REST_MS);
	fault_until_a_handler_rests();
	double t0 = now_seconds();
	uvmo_shutdown();
	/* A rest left to run out would take 10 s (and trip the timeout). */
	cr_assert_lt(now_seconds() - t0, 4.0);
}

Test(handlers, a_fork_child_starts_with_every_handler_waiting)
{
	need_two_cpus();
	start_uvmo(LONG_REST_MS);
	fault_until_a_handler_rests();
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct uvmo_stats st;
		if (uvmo_get_stats(&st) != 0)
			_exit(2);
		if (st.handlers_waiting != (uint64_t)cpus_online() || st.handler_rests != 0)
			_exit(3);
		/* And its faults are served. */
		uvmo_vmo_t *v;
		void *addr;
		if (uvmo_vmo_create(PG, 0, &v) != 0 ||
		    uvmo_vmar_map(uvmo_vmar_root(), PERM_RW, 0, v, 0, PG, &addr) != 0)
			_exit(4);
		*(volatile uint8_t *)addr = 1;
		_exit(0);
	}
	int status = 0;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "child: status 0x%x", status);
}

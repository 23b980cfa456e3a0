// SPDX-License-Identifier: MIT
/*
 * uvmo — the command-line tool.
 *
 *   uvmo demo    a narrated walk through VMOs, snapshot clones of clones, a
 *                slice, copy-on-write and memory accounting, mappings, and
 *                the uses: resetting fuzz-target memory, fork-free
 *                checkpoints restored lazily through the file pager
 *   uvmo stats   print uvmo's global counters
 *   uvmo --help  usage
 *
 * The demo checks what it shows: every page it prints is also compared with
 * the content the semantics require, and any mismatch (a library bug) makes
 * it exit 1.  Any failing uvmo call prints strerror and exits 1.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uvmo/uvmo.h>

#include "tools/demo.h"

static const char usage_text[] =
	"usage: uvmo <command>\n"
	"\n"
	"commands:\n"
	"  demo     walk through VMOs, snapshot clones (clone of clone of clone),\n"
	"           a slice, copy-on-write and memory accounting, with narration\n"
	"  stats    print uvmo's global counters for a fresh runtime\n"
	"  help     print this text (also -h, --help)\n"
	"\n"
	"environment:\n"
	"  UVMO_POOL_LIMIT   most bytes the frame pool may hold (K, M, G, T suffix)\n"
	"  UVMO_NUMA_NODE    NUMA node for frames\n";

/* ------------------------------------------------------------------------ */
/* uvmo stats                                                                */
/* ------------------------------------------------------------------------ */

static void print_stats(const struct uvmo_stats *st)
{
	char b[32];

	printf("  pool limit          %s\n",
	       st->pool_limit ? fmt_bytes(b, sizeof b, st->pool_limit) : "unlimited");
	printf("  committed           %s\n", fmt_bytes(b, sizeof b, st->committed_bytes));
	printf("  peak committed      %s\n", fmt_bytes(b, sizeof b, st->peak_committed_bytes));
	printf("  host (pool memfd)   %s\n", fmt_bytes(b, sizeof b, st->host_bytes));
	printf("  live VMOs           %" PRIu64 "\n", st->vmos);
	printf("  cow nodes           %" PRIu64 " (%" PRIu64 " hidden)\n",
	       st->nodes, st->hidden_nodes);
	printf("  pool windows        %" PRIu64 "\n", st->windows);
	printf("  cow copies          %" PRIu64 "\n", st->cow_copies);
	printf("  cow moves           %" PRIu64 "\n", st->cow_moves);
	printf("  zero fills          %" PRIu64 "\n", st->zero_fills);
	printf("  merges              %" PRIu64 "\n", st->merges);
	printf("  discards            %" PRIu64 "\n", st->discards);
	printf("  metadata            %s\n", fmt_bytes(b, sizeof b, st->metadata_bytes));
}

static int cmd_stats(void)
{
	struct uvmo_stats st;

	must(uvmo_init(NULL), "uvmo_init");
	must(uvmo_get_stats(&st), "uvmo_get_stats");
	printf("uvmo global counters (this process, since uvmo_init):\n");
	print_stats(&st);
	uvmo_shutdown();
	return 0;
}

/* ------------------------------------------------------------------------ */
/* uvmo demo                                                                 */
/* ------------------------------------------------------------------------ */

/* The VMOs of the demo, by role; the table rows follow this order. */
enum { BASE, SNAP1, SNAP2, SNAP3, SLICE, NUM_VMOS };

static const char *const vmo_names[NUM_VMOS] = {
	"base", "snap1", "snap2", "snap3", "slice",
};
static uvmo_vmo_t *vmos[NUM_VMOS];

#define DEMO_PAGES 16u /* size of base (64 KiB) */
#define SHOWN_PAGES 6u /* pages 0..5 are printed */
#define SLICE_FIRST 1u /* the slice is pages 1..2 of snap2 */
#define SLICE_PAGES 2u
#define CELL 12        /* characters shown per page */

/*
 * What each VMO must contain, page by page ("" = zeros).  The demo updates
 * this model alongside every write, the way the semantics say, and checks
 * the library against it.
 */
static char model[NUM_VMOS][SHOWN_PAGES][CELL + 1];
static unsigned content_mismatches; /* pages that read wrong */

/* Writes @text at the start of page @page of @which; the rest of the page
 * reads zero.  A whole page is written, as a program filling a page would. */
static void write_page(int which, unsigned page, const char *text)
{
	static char buf[PAGE];
	char what[64];

	memset(buf, 0, sizeof buf);
	snprintf(buf, sizeof buf, "%s", text);
	snprintf(what, sizeof what, "uvmo_vmo_write(%s, page %u)", vmo_names[which], page);
	must(uvmo_vmo_write(vmos[which], buf, (uint64_t)page * PAGE, PAGE), what);
	printf("   write %-10s -> %s page %u\n", text, vmo_names[which], page);
}

/* Pages of @which that are shown (a slice is shorter than the others). */
static unsigned shown_pages(int which)
{
	return which == SLICE ? SLICE_PAGES : SHOWN_PAGES;
}

/* Prints what each open VMO holds at the start of pages 0..5, marks every
 * page that disagrees with the model, and counts the disagreements. */
static void show_contents(void)
{
	char buf[PAGE];

	printf("   %-6s", "");
	for (unsigned p = 0; p < SHOWN_PAGES; p++)
		printf("  page %-*u", CELL - 6, p);
	printf("\n");
	for (int v = 0; v < NUM_VMOS; v++) {
		if (!vmos[v])
			continue;
		printf("   %-6s", vmo_names[v]);
		for (unsigned p = 0; p < shown_pages(v); p++) {
			char what[64], cell[CELL + 1];
			bool zero = true;

			snprintf(what, sizeof what, "uvmo_vmo_read(%s, page %u)", vmo_names[v], p);
			must(uvmo_vmo_read(vmos[v], buf, (uint64_t)p * PAGE, PAGE), what);
			for (size_t i = 0; i < PAGE && zero; i++)
				zero = buf[i] == 0;
			/* Show the text up to its NUL; anything unprintable as '?'. */
			size_t n = strnlen(buf, CELL);
			for (size_t i = 0; i < n; i++)
				cell[i] = (buf[i] >= 0x20 && buf[i] < 0x7f) ? buf[i] : '?';
			cell[n] = '\0';

			/* The model stores only the text; the rest must be zero. */
			size_t tail = strlen(model[v][p]);
			bool ok = strncmp(buf, model[v][p], CELL) == 0;
			for (size_t i = tail; i < PAGE && ok; i++)
				ok = buf[i] == 0;
			if (!ok) {
				mismatches++;
				content_mismatches++;
			}
			printf(" %c%-*s", ok ? ' ' : '!', CELL - 1,
			       zero ? "." : cell);
		}
		printf("\n");
	}
	printf("   (\".\" = page reads zero%s)\n",
	       content_mismatches ? "; \"!\" = NOT what the semantics require" : "");
}

/* Prints the memory figures: per VMO from uvmo_vmo_get_info, globally from
 * uvmo_get_stats.  Returns the stats for the caller's narration. */
static struct uvmo_stats show_memory(void)
{
	struct uvmo_stats st;
	uint64_t owned = 0; /* frames the open VMOs own (slices own none) */
	char a[32], b[32], c[32];

	printf("   %-6s %4s %8s %10s %11s %9s\n", "", "id", "size", "committed",
	       "attributed", "children");
	for (int v = 0; v < NUM_VMOS; v++) {
		struct uvmo_vmo_info info;

		if (!vmos[v])
			continue;
		must(uvmo_vmo_get_info(vmos[v], &info), "uvmo_vmo_get_info");
		if (!(info.flags & UVMO_INFO_SLICE))
			owned += info.committed_bytes;
		printf("   %-6s %4" PRIu64 " %8s %10s %11s %9u\n", vmo_names[v],
		       info.id, fmt_bytes(a, sizeof a, info.size),
		       fmt_bytes(b, sizeof b, info.committed_bytes),
		       fmt_bytes(c, sizeof c, info.attributed_bytes),
		       info.num_children);
	}
	must(uvmo_get_stats(&st), "uvmo_get_stats");
	/* Frames no open VMO owns are held by hidden nodes for the clones. */
	uint64_t hidden = st.committed_bytes > owned ? st.committed_bytes - owned : 0;
	printf("   pool: committed %s = %" PRIu64 " frame%s (%" PRIu64
	       " in hidden nodes), host %s\n",
	       fmt_bytes(a, sizeof a, st.committed_bytes), st.committed_bytes / PAGE,
	       st.committed_bytes == PAGE ? "" : "s", hidden / PAGE,
	       fmt_bytes(b, sizeof b, st.host_bytes));
	printf("   cow copies %" PRIu64 ", moves %" PRIu64 ", zero fills %" PRIu64
	       " | nodes %" PRIu64 " (%" PRIu64 " hidden), merges %" PRIu64 "\n",
	       st.cow_copies, st.cow_moves, st.zero_fills, st.nodes,
	       st.hidden_nodes, st.merges);
	return st;
}

/* Records in the model that @which now holds @text at @page. */
static void model_set(int which, unsigned page, const char *text)
{
	snprintf(model[which][page], sizeof model[which][page], "%s", text);
}

/* A write through the API, mirrored in the model. */
static void demo_write(int which, unsigned page, const char *text)
{
	write_page(which, page, text);
	model_set(which, page, text);
	/* A slice and snap2 share every byte of the slice's window. */
	if (which == SLICE)
		model_set(SNAP2, page + SLICE_FIRST, text);
	if (which == SNAP2 && vmos[SLICE] && page >= SLICE_FIRST &&
	    page < SLICE_FIRST + SLICE_PAGES)
		model_set(SLICE, page - SLICE_FIRST, text);
}

static void clone_snapshot(int parent, int child)
{
	char what[64];

	snprintf(what, sizeof what, "uvmo_vmo_create_child(%s, SNAPSHOT)",
		 vmo_names[parent]);
	must(uvmo_vmo_create_child(vmos[parent], UVMO_CHILD_SNAPSHOT, 0,
				   (uint64_t)DEMO_PAGES * PAGE, &vmos[child]), what);
	memcpy(model[child], model[parent], sizeof model[child]);
	printf("   %s = SNAPSHOT of %s\n", vmo_names[child], vmo_names[parent]);
}

static void close_vmo(int which)
{
	uvmo_vmo_close(vmos[which]);
	vmos[which] = NULL;
	printf("   close %s\n", vmo_names[which]);
}

/* A figure the semantics fix exactly (the API contract promises it). */
/*
 * Step 8: the same objects as ordinary memory.  A VMO mapped into the
 * process is written through a pointer, snapshotted while in use (one
 * write-protect pass, no copy), and keeps being written; the snapshot stays
 * as it was, through calls and through a mapping of its own.  fork() keeps
 * parent and child apart.
 */
static void demo_mapped(void)
{
	const uint64_t pages = 16;
	uvmo_vmo_t *heap, *snap;
	void *addr, *snap_addr;
	char buf[32];

	step(8, "Map a VMO into memory, snapshot it while in use, keep writing.");
	must(uvmo_vmo_create(pages * PAGE, 0, &heap), "uvmo_vmo_create");
	must(uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ | UVMO_PERM_WRITE, 0, heap, 0,
			   pages * PAGE, &addr), "uvmo_vmar_map");
	char *mem = addr;
	for (uint64_t p = 0; p < pages; p++)
		snprintf(mem + p * PAGE, 32, "generation 1, page %u", (unsigned)p);
	printf("   wrote \"generation 1\" into all %u pages through the pointer\n",
	       (unsigned)pages);
	struct uvmo_stats st0, st1;
	must(uvmo_get_stats(&st0), "uvmo_get_stats");
	must(uvmo_vmo_create_child(heap, UVMO_CHILD_SNAPSHOT, 0, pages * PAGE, &snap),
	     "uvmo_vmo_create_child");
	must(uvmo_get_stats(&st1), "uvmo_get_stats");
	expect_figure("pages copied by the snapshot of the mapped VMO",
		      st1.cow_copies - st0.cow_copies, 0);
	for (uint64_t p = 0; p < pages; p += 2)
		snprintf(mem + p * PAGE, 32, "generation 2, page %u", (unsigned)p);
	printf("   wrote \"generation 2\" into the even pages through the pointer\n");
	must(uvmo_get_stats(&st1), "uvmo_get_stats");
	expect_figure("write-protect faults (one per page written after the snapshot)",
		      st1.wp_faults - st0.wp_faults, pages / 2);
	expect_text("live memory, page 4", mem + 4 * PAGE, "generation 2, page 4");
	must(uvmo_vmo_read(snap, buf, 4 * PAGE, sizeof buf), "uvmo_vmo_read");
	buf[sizeof buf - 1] = '\0';
	expect_text("snapshot, page 4 (read by call)", buf, "generation 1, page 4");
	must(uvmo_vmar_map(uvmo_vmar_root(), UVMO_PERM_READ, 0, snap, 0, pages * PAGE,
			   &snap_addr), "uvmo_vmar_map");
	expect_text("snapshot, page 4 (its own read-only mapping)",
		    (char *)snap_addr + 4 * PAGE, "generation 1, page 4");

	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		snprintf(mem, 32, "written by the child");
		_exit(strcmp(mem, "written by the child") == 0 ? 0 : 1);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		status = 1;
	printf("   fork(): the child wrote page 0 of its copy (exit status %d)\n",
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	expect_text("parent's page 0 after the child's write", mem, "generation 2, page 0");

	must(uvmo_vmar_unmap(uvmo_vmar_root(), snap_addr, pages * PAGE), "uvmo_vmar_unmap");
	must(uvmo_vmar_unmap(uvmo_vmar_root(), addr, pages * PAGE), "uvmo_vmar_unmap");
	uvmo_vmo_close(snap);
	uvmo_vmo_close(heap);
	must(uvmo_get_stats(&st1), "uvmo_get_stats");
	expect_figure("frames in the pool after closing both", st1.committed_bytes / PAGE, 0);
}

static int cmd_demo(void)
{
	struct uvmo_stats st, before;
	char what[64];

	double fork_rate = fork_server_rate(64ull << 20, 10, 200);
	must(uvmo_init(NULL), "uvmo_init");
	printf("uvmo demo: copy-on-write clones of a VMO, step by step.\n"
	       "Each VMO is shown by the first bytes of pages 0-%u; the memory\n"
	       "figures come from uvmo_vmo_get_info and uvmo_get_stats.\n",
	       SHOWN_PAGES - 1);

	step(1, "Create a 64 KiB VMO. It is zero-filled and owns no frame yet.");
	must(uvmo_vmo_create((uint64_t)DEMO_PAGES * PAGE, 0, &vmos[BASE]), "uvmo_vmo_create");
	show_contents();
	st = show_memory();
	expect_figure("frames in the pool", st.committed_bytes / PAGE, 0);

	step(2, "Write text into pages 0-3 of base: one frame per written page.");
	for (unsigned p = 0; p < 4; p++) {
		char text[CELL + 1];

		snprintf(text, sizeof text, "orig %u", p);
		demo_write(BASE, p, text);
	}
	show_contents();
	st = show_memory();
	expect_figure("frames in the pool", st.committed_bytes / PAGE, 4);

	step(3, "Snapshot base, then snapshot the snapshot, twice (depth 3).");
	printf("   A snapshot copies no page: the clones read base's pages.\n");
	before = st;
	clone_snapshot(BASE, SNAP1);
	clone_snapshot(SNAP1, SNAP2);
	clone_snapshot(SNAP2, SNAP3);
	show_contents();
	printf("   base's frames now belong to hidden nodes that all four share, so no\n"
	       "   VMO is charged for them (committed 0) while the pool still holds 4.\n");
	st = show_memory();
	expect_figure("frames in the pool", st.committed_bytes / PAGE, 4);
	expect_figure("pages copied by the three snapshots",
		      st.cow_copies - before.cow_copies, 0);

	step(4, "Write on different levels of the chain.");
	printf("   The first write to a shared page gives the writer its own copy;\n"
	       "   nobody else sees it (isolation).  Untouched pages stay shared.\n");
	before = st;
	demo_write(BASE, 0, "base v2");
	demo_write(SNAP1, 1, "snap1 v2");
	demo_write(SNAP3, 2, "snap3 v2");
	demo_write(SNAP3, 5, "snap3 new");
	show_contents();
	st = show_memory();
	/* Three shared pages were written (each needs one copy, or a move of
	 * the shared frame when nobody else could still see it) and one page
	 * nobody had was written (a fresh frame). */
	expect_at_least("pages copied or moved by the writes",
			(st.cow_copies - before.cow_copies) + (st.cow_moves - before.cow_moves), 3);
	expect_at_least("frames in the pool (4 originals + 3 copies + 1 new)",
			st.committed_bytes / PAGE, 8);

	step(5, "Take a SLICE of snap2 (its pages 1-2): a window, not a copy.");
	printf("   Writes through the slice are seen by snap2 and the other way\n"
	       "   round; snap3, snapshotted from snap2 earlier, keeps its view.\n");
	snprintf(what, sizeof what, "uvmo_vmo_create_child(snap2, SLICE)");
	must(uvmo_vmo_create_child(vmos[SNAP2], UVMO_CHILD_SLICE,
				   (uint64_t)SLICE_FIRST * PAGE,
				   (uint64_t)SLICE_PAGES * PAGE, &vmos[SLICE]), what);
	for (unsigned p = 0; p < SLICE_PAGES; p++)
		model_set(SLICE, p, model[SNAP2][p + SLICE_FIRST]);
	printf("   slice = SLICE of snap2, pages %u-%u\n", SLICE_FIRST,
	       SLICE_FIRST + SLICE_PAGES - 1);
	demo_write(SLICE, 0, "via slice");
	demo_write(SNAP2, 2, "snap2 v2");
	show_contents();
	printf("   (a slice reports the frames of its window of snap2 as committed)\n");
	st = show_memory();
	expect_at_least("frames in the pool (2 more copies)", st.committed_bytes / PAGE, 10);

	step(6, "Close snap1, in the middle of the chain.");
	printf("   snap2 and snap3 still need what snap1 saw: their content stays;\n"
	       "   snap1's own page (\"snap1 v2\") goes back to the pool.\n");
	struct uvmo_vmo_info snap1_info;
	must(uvmo_vmo_get_info(vmos[SNAP1], &snap1_info), "uvmo_vmo_get_info(snap1)");
	before = st;
	close_vmo(SNAP1);
	show_contents();
	st = show_memory();
	/* Its own frames at least; hidden-node copies only it could see may
	 * go too. */
	expect_at_most("frames in the pool",
		       st.committed_bytes / PAGE,
		       (before.committed_bytes - snap1_info.committed_bytes) / PAGE);

	step(7, "Close everything else; every frame returns to the pool.");
	printf("   Each close merges a hidden node into the surviving clone, which\n"
	       "   takes over the pages it still sees without copying them; pages\n"
	       "   nobody can see any more are freed at once.\n");
	before = st;
	const int close_order[] = { BASE, SLICE, SNAP3, SNAP2 };
	for (size_t i = 0; i < sizeof close_order / sizeof close_order[0]; i++) {
		close_vmo(close_order[i]);
		st = show_memory();
	}
	expect_at_least("pages copied by the closes", st.cow_copies - before.cow_copies, 0);
	expect_figure("frames in the pool", st.committed_bytes / PAGE, 0);
	expect_figure("bytes the pool memfd still holds (host)", st.host_bytes, 0);
	expect_figure("live VMOs", st.vmos, 0);
	expect_figure("live copy-on-write nodes", st.nodes, 0);

	demo_mapped();
	demo_fuzz_reset(fork_rate);
	demo_checkpoint();

	uvmo_shutdown();
	if (mismatches) {
		printf("\n%u check(s) FAILED: uvmo did not behave as the semantics "
		       "require (see the marks above).\n", mismatches);
		return 1;
	}
	printf("\nAll checks passed: clones cost nothing until written, writes stay\n"
	       "isolated, the slice shares its window, closing frees every frame, a\n"
	       "mapped VMO snapshotted in use keeps its snapshot while it is written,\n"
	       "a fuzz target's state is reset after every input at the cost of the\n"
	       "pages the input wrote, and a running program is checkpointed without\n"
	       "fork() and its checkpoint restored lazily through the file pager.\n");
	return 0;
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	const char *cmd = argv[1];

	if (!strcmp(cmd, "help") || !strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc > 2) {
		fprintf(stderr, "uvmo: %s takes no arguments\n\n", cmd);
		fputs(usage_text, stderr);
		return 2;
	}
	if (!strcmp(cmd, "demo"))
		return cmd_demo();
	if (!strcmp(cmd, "stats"))
		return cmd_stats();
	fprintf(stderr, "uvmo: unknown command '%s'\n\n", cmd);
	fputs(usage_text, stderr);
	return 2;
}

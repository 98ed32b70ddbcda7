/* Repeat collapsing for log lines (ops/logrep.h), the one implementation
 * behind the daemon's logger and libkadmesh's log callback. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ops/logrep.h"

#define WINDOW 60000

static struct {
	char lines[16][KM_LOGREP_MSG_MAX + 64];
	enum km_log_level levels[16];
	size_t lens[16];
	int n;
} out;

static void record(void *user, enum km_log_level level, const char *msg)
{
	cr_assert_eq(user, &out);
	cr_assert_lt(out.n, 16);
	snprintf(out.lines[out.n], sizeof(out.lines[0]), "%s", msg);
	out.lens[out.n] = strlen(msg);
	out.levels[out.n++] = level;
}

static struct km_logrep rep;

static void setup(void)
{
	memset(&out, 0, sizeof(out));
	km_logrep_init(&rep, WINDOW, record, &out);
}

TestSuite(logrep, .init = setup);

Test(logrep, identical_lines_within_the_window_collapse_into_one)
{
	for (km_ms t = 1000; t < 1000 + 500; t++)
		km_logrep_log(&rep, KM_LOG_WARN, "accept: too many open files", t);
	cr_assert_eq(out.n, 1);
	cr_assert_str_eq(out.lines[0], "accept: too many open files");
	cr_assert_eq(out.levels[0], KM_LOG_WARN);
}

Test(logrep, different_lines_pass_and_first_report_the_count)
{
	km_logrep_log(&rep, KM_LOG_WARN, "a", 1000);
	km_logrep_log(&rep, KM_LOG_WARN, "a", 1001);
	km_logrep_log(&rep, KM_LOG_WARN, "a", 1002);
	km_logrep_log(&rep, KM_LOG_INFO, "b", 1003);
	km_logrep_log(&rep, KM_LOG_INFO, "c", 1004);
	cr_assert_eq(out.n, 4);
	cr_assert_str_eq(out.lines[0], "a");
	cr_assert_str_eq(out.lines[1], "a (repeated 2 times)");
	cr_assert_eq(out.levels[1], KM_LOG_WARN);
	cr_assert_str_eq(out.lines[2], "b");
	cr_assert_str_eq(out.lines[3], "c");
}

Test(logrep, the_same_text_at_another_level_is_a_different_line)
{
	km_logrep_log(&rep, KM_LOG_WARN, "a", 1000);
	km_logrep_log(&rep, KM_LOG_ERROR, "a", 1001);
	cr_assert_eq(out.n, 2);
}

Test(logrep, the_count_is_reported_when_the_window_ends)
{
	km_logrep_log(&rep, KM_LOG_WARN, "flood", 1000);
	for (int i = 0; i < 9; i++)
		km_logrep_log(&rep, KM_LOG_WARN, "flood", 2000);
	cr_assert_eq(km_logrep_tick(&rep, 2000), 1000 + WINDOW,
		     "a held-back count asks for a tick at the window's end");
	cr_assert_eq(km_logrep_tick(&rep, 1000 + WINDOW - 1), 1000 + WINDOW);
	cr_assert_eq(out.n, 1);
	km_logrep_tick(&rep, 1000 + WINDOW);
	cr_assert_eq(out.n, 2);
	cr_assert_str_eq(out.lines[1], "flood (repeated 9 times)");
	cr_assert_eq(km_logrep_tick(&rep, 1000 + WINDOW + 1), 0,
		     "nothing held back: no tick wanted");
}

Test(logrep, a_long_flood_costs_one_summary_a_window)
{
	km_ms t = 1000;

	for (int i = 0; i < 3 * WINDOW / 10; i++, t += 10) {
		km_logrep_log(&rep, KM_LOG_WARN, "flood", t);
		km_logrep_tick(&rep, t);
	}
	cr_assert_eq(out.n, 3, "the line, then one count for each of two "
		     "ended windows; the third is still open");
	cr_assert_str_eq(out.lines[1], "flood (repeated 5999 times)");
	cr_assert_str_eq(out.lines[2], "flood (repeated 6000 times)");
	km_logrep_flush(&rep);
	cr_assert_eq(out.n, 4);
	cr_assert_str_eq(out.lines[3], "flood (repeated 6000 times)");
}

Test(logrep, a_line_that_comes_back_after_a_quiet_window_is_printed_again)
{
	km_logrep_log(&rep, KM_LOG_INFO, "joined", 1000);
	km_logrep_log(&rep, KM_LOG_INFO, "joined", 1000 + WINDOW + 5);
	cr_assert_eq(out.n, 2);
	cr_assert_str_eq(out.lines[1], "joined");
}

Test(logrep, flush_reports_a_pending_count_once)
{
	km_logrep_log(&rep, KM_LOG_WARN, "x", 1000);
	km_logrep_log(&rep, KM_LOG_WARN, "x", 1001);
	km_logrep_flush(&rep);
	km_logrep_flush(&rep);
	cr_assert_eq(out.n, 2);
	cr_assert_str_eq(out.lines[1], "x (repeated 1 times)");
}

Test(logrep, a_line_too_long_to_remember_passes_every_time)
{
	static char big[KM_LOGREP_MSG_MAX + 100];

	memset(big, 'z', sizeof(big) - 1);
	for (int i = 0; i < 3; i++)
		km_logrep_log(&rep, KM_LOG_WARN, big, 1000 + (km_ms)i);
	cr_assert_eq(out.n, 3);
}

Test(logrep, control_characters_go_out_escaped)
{
	km_logrep_log(&rep, KM_LOG_DEBUG, "GOODBYE: a\nfake line\x1b[31m\x7f", 1);
	cr_assert_eq(out.n, 1);
	cr_assert_str_eq(out.lines[0], "GOODBYE: a\\x0afake line\\x1b[31m\\x7f");
}

Test(logrep, a_huge_line_is_cut_not_overflowed)
{
	static char big[8192];

	memset(big, '\n', sizeof(big) - 1);
	km_logrep_log(&rep, KM_LOG_WARN, big, 1);
	cr_assert_eq(out.n, 1);
	cr_assert_lt(out.lens[0], KM_LOGREP_LINE_MAX);
	cr_assert_gt(out.lens[0], KM_LOGREP_LINE_MAX - 8);
	cr_assert(strncmp(out.lines[0], "\\x0a\\x0a", 8) == 0);
}

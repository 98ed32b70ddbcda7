/* The programs' logger: format, levels, and one line plus a count for a
 * message that repeats. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

static char out[8192];

static void setup(void)
{
	cr_redirect_stderr();
	km_tool_log_init(KM_LOG_INFO);
}

static size_t read_lines(char **lines, size_t max)
{
	FILE *f = cr_get_redirected_stderr();
	size_t n = fread(out, 1, sizeof(out) - 1, f), count = 0;

	out[n] = '\0';
	for (char *p = strtok(out, "\n"); p && count < max; p = strtok(NULL, "\n"))
		lines[count++] = p;
	return count;
}

Test(log, a_repeated_message_is_printed_once_with_a_count, .init = setup)
{
	char *lines[8];

	for (int i = 0; i < 1000; i++)
		km_tool_log(KM_LOG_WARN, "accept: %s", "too many open files");
	km_tool_log(KM_LOG_INFO, "something else");
	fflush(stderr);
	cr_assert_eq(read_lines(lines, 8), 3);
	cr_assert(strstr(lines[0], "accept: too many open files"));
	cr_assert(strstr(lines[1], "accept: too many open files (repeated 999 times)"));
	cr_assert(strstr(lines[2], "something else"));
}

Test(log, lines_carry_a_timestamp_the_level_and_the_node_id, .init = setup)
{
	struct km_id id = { .b = { 0x1a, 0x2b, 0x3c, 0x4d } };
	char *lines[8];
	regex_t re;

	km_tool_log_set_id(&id);
	km_tool_log(KM_LOG_ERROR, "first");
	km_tool_log(KM_LOG_DEBUG, "hidden at the default level");
	km_tool_log_flush();
	fflush(stderr);
	cr_assert_eq(read_lines(lines, 8), 1);
	cr_assert_eq(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z "
			     "error \\[1a2b3c4d\\] first$", REG_EXTENDED), 0);
	cr_assert_eq(regexec(&re, lines[0], 0, NULL, 0), 0, "%s", lines[0]);
	regfree(&re);
}

static void stop_loop(uv_timer_t *t)
{
	uv_stop(t->loop);
}

Test(log, the_count_is_printed_when_the_window_ends_on_the_loop, .init = setup)
{
	uv_loop_t loop;
	uv_timer_t keep; /* the logger's own timer does not keep loops alive */
	char *lines[8];

	uv_loop_init(&loop);
	km_tool_log_attach(&loop, 50);
	for (int i = 0; i < 5; i++)
		km_tool_log(KM_LOG_WARN, "peer %d refused", 7);
	uv_timer_init(&loop, &keep);
	uv_timer_start(&keep, stop_loop, 1000, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	km_tool_log_detach();
	uv_close((uv_handle_t *)&keep, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	cr_assert_eq(uv_loop_close(&loop), 0);
	fflush(stderr);
	cr_assert_eq(read_lines(lines, 8), 2);
	cr_assert(strstr(lines[0], "peer 7 refused"));
	cr_assert(strstr(lines[1], "peer 7 refused (repeated 4 times)"),
		  "%s", lines[1]);
}

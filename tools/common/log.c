#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ops/logrep.h"

/* Process-wide on purpose: a program has one stderr and one node. */
static enum km_log_level log_max = KM_LOG_INFO;
static char log_id[9] = "--------";

static const char *const level_names[] = {
	[KM_LOG_ERROR] = "error",
	[KM_LOG_WARN] = "warn",
	[KM_LOG_INFO] = "info",
	[KM_LOG_DEBUG] = "debug",
};

void km_tool_log_init(enum km_log_level max)
{
	log_max = max;
}

void km_tool_log_set_id(const struct km_id *id)
{
	char hex[KM_ID_HEXLEN + 1];

	km_id_to_hex(id, hex);
	memcpy(log_id, hex, 8);
	log_id[8] = '\0';
}

bool km_tool_log_enabled(enum km_log_level level)
{
	return level <= log_max;
}

/* Repeats collapse within a minute (ops/logrep.h); a timer on the
 * program's loop, once attached, reports a count when its window ends. */
static struct km_logrep rep;
static bool rep_ready;
static uv_timer_t rep_timer;
static bool rep_timer_on;

static void print_line(void *user, enum km_log_level level, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	char when[32];

	(void)user;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", when, ts.tv_nsec / 1000000,
		level_names[level], log_id, msg);
}

static km_ms mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (km_ms)ts.tv_sec * 1000 + (km_ms)ts.tv_nsec / 1000000;
}

static struct km_logrep *repeats(void)
{
	if (!rep_ready) {
		km_logrep_init(&rep, KM_TOOL_LOG_WINDOW_MS, print_line, NULL);
		rep_ready = true;
	}
	return &rep;
}

void km_tool_log_flush(void)
{
	km_logrep_flush(repeats());
}

static void on_rep_timer(uv_timer_t *t)
{
	km_ms now = mono_ms(), when = km_logrep_tick(repeats(), now);

	if (when)
		uv_timer_start(t, on_rep_timer, when - now, 0);
}

static void emit(enum km_log_level level, const char *msg)
{
	km_ms now = mono_ms();
	km_ms when;

	km_logrep_log(repeats(), level, msg, now);
	when = km_logrep_tick(repeats(), now);
	if (rep_timer_on && when && !uv_is_active((uv_handle_t *)&rep_timer))
		uv_timer_start(&rep_timer, on_rep_timer, when - now, 0);
}

void km_tool_log_attach(uv_loop_t *loop, km_ms window_ms)
{
	repeats()->window = window_ms;
	uv_timer_init(loop, &rep_timer);
	/* The logger never keeps a loop that is done from exiting. */
	uv_unref((uv_handle_t *)&rep_timer);
	rep_timer_on = true;
}

void km_tool_log_detach(void)
{
	if (!rep_timer_on)
		return;
	rep_timer_on = false;
	uv_close((uv_handle_t *)&rep_timer, NULL);
}

void km_tool_log(enum km_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!km_tool_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	emit(level, msg);
}

void km_tool_log_hook(void *user, enum km_log_level level, const char *msg)
{
	if (km_tool_log_enabled(level))
		emit(level, msg);
}

bool km_tool_log_level_parse(const char *s, enum km_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum km_log_level)i;
			return true;
		}
	}
	return false;
}

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

/* The last line printed, so that a condition that repeats (a flood of
 * failing accepts, say) costs one line and a count, not a line each. */
#define REPEAT_WINDOW_S 60
static struct {
	char msg[512];
	enum km_log_level level;
	unsigned long repeats;
	time_t since;
} last;

static void print_line(enum km_log_level level, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", when, ts.tv_nsec / 1000000,
		level_names[level], log_id, msg);
}

void km_tool_log_flush(void)
{
	char note[64];

	if (last.repeats == 0)
		return;
	snprintf(note, sizeof(note), "(last message repeated %lu times)",
		 last.repeats);
	last.repeats = 0;
	print_line(last.level, note);
}

static void emit(enum km_log_level level, const char *msg)
{
	time_t now = time(NULL);

	if (level == last.level && strcmp(msg, last.msg) == 0 &&
	    now - last.since < REPEAT_WINDOW_S) {
		last.repeats++;
		return;
	}
	km_tool_log_flush();
	print_line(level, msg);
	snprintf(last.msg, sizeof(last.msg), "%s", msg);
	last.level = level;
	last.since = now;
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

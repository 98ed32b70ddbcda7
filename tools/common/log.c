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

static void emit(enum km_log_level level, const char *msg)
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

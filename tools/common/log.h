/* Logging for the programs: one line per message on stderr,
 *   2024-05-01T12:00:00.123Z WARN  [1a2b3c4d] message
 * with the UTC time, the level and the first 8 hex digits of the node ID.
 * A line identical to the one before (within a minute) is not printed
 * again: the next different line, the end of the minute (once
 * km_tool_log_attach() gave the logger a loop), or km_tool_log_flush()
 * prints "<line> (repeated N times)" instead (ops/logrep.h). */
#ifndef KM_TOOLS_LOG_H
#define KM_TOOLS_LOG_H

#include <stdbool.h>

#include <uv.h>

#include "net/node.h"

/* Messages above max are dropped. */
void km_tool_log_init(enum km_log_level max);
void km_tool_log_set_id(const struct km_id *id);
bool km_tool_log_enabled(enum km_log_level level);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void km_tool_log(enum km_log_level level, const char *fmt, ...);

/* A km_uv_hooks.log that ignores user. */
void km_tool_log_hook(void *user, enum km_log_level level, const char *msg);

/* A timer on loop reports a count when its window (KM_TOOL_LOG_WINDOW_MS
 * for the programs) ends; detach (before the loop's last run) closes it.
 * The timer never keeps the loop alive. */
#define KM_TOOL_LOG_WINDOW_MS 60000
void km_tool_log_attach(uv_loop_t *loop, km_ms window_ms);
void km_tool_log_detach(void);

/* Prints the pending "<line> (repeated N times)", if any. */
void km_tool_log_flush(void);

/* "error", "warn", "info" or "debug". */
bool km_tool_log_level_parse(const char *s, enum km_log_level *out);

#endif

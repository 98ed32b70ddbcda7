/* Repeat collapsing for log lines, shared by the daemon's logger and
 * libkadmesh's log callback, so that a condition that repeats (a flood of
 * failing accepts, say) costs one line and a count, not a line each.
 *
 * A line with the same level and text as the last one passed on, within
 * `window` of the start of its window, is counted instead of passed on.
 * The count goes out as "<text> (repeated N times)" (N: the lines held
 * back) when a different line arrives, when the window ends
 * (km_logrep_tick), or on km_logrep_flush.  A flood that lasts several
 * windows gives one summary per window.  Sans-IO: the caller passes the
 * time and calls km_logrep_tick by the time it returns.
 *
 * Lines can carry a peer's words (a GOODBYE's text), so they go out with
 * control characters (bytes below 0x20, and 0x7f) as \xNN: a peer cannot
 * forge a log line with a newline nor drive a terminal. */
#ifndef KM_OPS_LOGREP_H
#define KM_OPS_LOGREP_H

#include <stdbool.h>

#include "net/node.h"

#define KM_LOGREP_MSG_MAX 512 /* longer lines pass on but never collapse */
#define KM_LOGREP_LINE_MAX 2048 /* longer lines are cut there */

typedef void km_logrep_out_fn(void *user, enum km_log_level level,
			      const char *msg);

struct km_logrep {
	km_logrep_out_fn *out;
	void *user;
	km_ms window;
	km_ms since;            /* when the current window began */
	unsigned long repeats;  /* lines held back in this window */
	bool have;              /* msg is the last line passed on */
	enum km_log_level level;
	char msg[KM_LOGREP_MSG_MAX];
};

void km_logrep_init(struct km_logrep *r, km_ms window, km_logrep_out_fn *out,
		    void *user);
void km_logrep_log(struct km_logrep *r, enum km_log_level level,
		   const char *msg, km_ms now);
/* Reports the count of a window that has ended; returns when the current
 * window ends if lines are held back (call again then), else 0. */
km_ms km_logrep_tick(struct km_logrep *r, km_ms now);
/* Reports the count now, if any (e.g. before exit). */
void km_logrep_flush(struct km_logrep *r);

#endif

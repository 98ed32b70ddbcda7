#include "logrep.h"

#include <stdio.h>
#include <string.h>

void km_logrep_init(struct km_logrep *r, km_ms window, km_logrep_out_fn *out,
		    void *user)
{
	memset(r, 0, sizeof(*r));
	r->window = window;
	r->out = out;
	r->user = user;
}

void km_logrep_flush(struct km_logrep *r)
{
	char note[KM_LOGREP_MSG_MAX + 48];

	if (r->repeats == 0)
		return;
	snprintf(note, sizeof(note), "%s (repeated %lu times)", r->msg,
		 r->repeats);
	r->repeats = 0;
	r->out(r->user, r->level, note);
}

km_ms km_logrep_tick(struct km_logrep *r, km_ms now)
{
	if (r->have && now - r->since >= r->window) {
		/* A flood keeps its line: the next window counts on, so that
		 * it costs one summary a window.  A quiet line is forgotten,
		 * so that it is printed again when it comes back. */
		r->have = r->repeats > 0;
		km_logrep_flush(r);
		r->since = now;
	}
	return r->have && r->repeats > 0 ? r->since + r->window : 0;
}

static bool same_as_last(const struct km_logrep *r, enum km_log_level level,
			 const char *msg)
{
	return r->have && level == r->level && strcmp(msg, r->msg) == 0;
}

/* Control characters as \xNN, cut to fit out. */
static const char *escape(const char *in, char out[static KM_LOGREP_LINE_MAX])
{
	size_t o = 0;

	for (; *in && o + 5 < KM_LOGREP_LINE_MAX; in++) {
		unsigned char ch = (unsigned char)*in;

		if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(out + o, 5, "\\x%02x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
	return out;
}

void km_logrep_log(struct km_logrep *r, enum km_log_level level,
		   const char *raw, km_ms now)
{
	char clean[KM_LOGREP_LINE_MAX];
	const char *msg = escape(raw, clean);

	km_logrep_tick(r, now);
	if (same_as_last(r, level, msg)) {
		r->repeats++;
		return;
	}
	km_logrep_flush(r);
	r->out(r->user, level, msg);
	r->have = strlen(msg) < sizeof(r->msg);
	if (r->have)
		memcpy(r->msg, msg, strlen(msg) + 1);
	r->level = level;
	r->since = now;
}

/* The control protocol, with no I/O: lines in, JSON lines out.
 *
 * Each client of the control socket is a session.  A request is one line,
 * `COMMAND [ARGS...]\n`; every response is one line of JSON,
 * {"ok":true,"result":...} or {"ok":false,"error":"..."}.  Lookups answer
 * when they finish, so the driver forwards the node's lookup_done here.
 * docs/CONTROL.md specifies every command. */
#ifndef KM_OPS_CONTROL_H
#define KM_OPS_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "net/node.h"

/* A request line, newline included, fits in this many bytes. */
#define KM_CONTROL_LINE_MAX 4096
/* Clients connected at once. */
#define KM_CONTROL_MAX_SESSIONS 32

struct km_control;

/* Neither callback may call back into km_control. */
struct km_control_callbacks {
	void (*write)(void *user, uint64_t session, const char *buf, size_t len);
	void (*close)(void *user, uint64_t session);
};

struct km_control *km_control_new(struct km_node *node,
				  const struct km_control_callbacks *cb,
				  void *user);
void km_control_del(struct km_control *c); /* NULL is a no-op */

/* A new client; returns its session id (never 0), or 0 when at the cap. */
uint64_t km_control_open(struct km_control *c);
void km_control_recv(struct km_control *c, uint64_t session,
		     const uint8_t *buf, size_t len, km_ms now);
void km_control_closed(struct km_control *c, uint64_t session);

/* True while the session's request awaits its answer (a lookup): a driver
 * that saw the client half-close keeps the session open until then. */
bool km_control_pending(const struct km_control *c, uint64_t session);

/* A broadcast message was delivered: every subscribed session gets an
 * event line.  A subscriber that does not read is the driver's to drop
 * (its write queue is bounded). */
void km_control_deliver(struct km_control *c, const struct km_message *m);

/* Returns true if a session was waiting for this lookup. */
bool km_control_lookup_done(struct km_control *c, uint64_t lookup_id,
			    const struct km_lookup *lk);

#endif

/* Serves the control protocol (ops/control.h) on a Unix socket.
 *
 * It owns the km_control: it listens on `path` (mode 0600), opens a session
 * per client, feeds it every byte read, writes the responses and closes the
 * clients the protocol closes.  The program forwards the node's
 * lookup_done to km_control_lookup_done(km_uv_control_core(u), ...). */
#ifndef KM_COMMON_CONTROL_SOCKET_H
#define KM_COMMON_CONTROL_SOCKET_H

#include <uv.h>

#include "ops/control.h"

/* Bytes of responses queued for one client before it is dropped as too
 * slow a reader. */
#define KM_UV_CONTROL_WRITE_MAX (4u << 20)

struct km_uv_control;

/* Listens on path.  A stale socket file left by a dead daemon is removed
 * first; a socket another process still answers on gives UV_EADDRINUSE, and
 * a file that is not a socket UV_EEXIST.  Returns 0, or a negative UV_E* /
 * KM_ERR_NOMEM code with nothing left open. */
int km_uv_control_start(uv_loop_t *loop, const char *path,
			struct km_node *node, struct km_uv_control **out);

struct km_control *km_uv_control_core(struct km_uv_control *u);

/* Stops listening, drops every client, removes the socket file and frees u
 * once its handles have closed (the loop must run on).  u must not be used
 * afterwards; NULL is a no-op. */
void km_uv_control_stop(struct km_uv_control *u);

#endif

/* kadmesh's libuv mode: the bundled driver owns the sockets, the clock and
 * the randomness, and runs a node on your uv_loop_t.  Everything else --
 * config, callbacks, lookups, broadcasts, kadmesh_stop() -- is in
 * <kadmesh.h>, which this header includes.
 *
 * Link as for <kadmesh.h>; your program links libuv itself, since it owns
 * the loop. */
#ifndef KADMESH_UV_H
#define KADMESH_UV_H

#include "kadmesh.h"

#ifdef __cplusplus
extern "C" {
#endif

struct uv_loop_s;

/* Binds UDP and TCP on bind ("IP:PORT", port 0 picks one) and runs on loop;
 * *out gets the node, which kadmesh_stop() stops and frees.  Returns 0,
 * KADMESH_ERR_INVAL (bind or cfg unusable), KADMESH_ERR_NOMEM, or libuv's
 * negative UV_E* code from binding the sockets (UV_EADDRINUSE, say). */
KADMESH_API int kadmesh_uv_start(struct uv_loop_s *loop, const char *bind,
				 const struct kadmesh_config *cfg,
				 const struct kadmesh_callbacks *cb, void *user,
				 struct kadmesh **out);

#ifdef __cplusplus
}
#endif

#endif

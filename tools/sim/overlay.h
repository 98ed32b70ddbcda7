/* The broadcast overlay for dht-sim: every node's km_connmgr picks its
 * outbound neighbours from its own km_dht routing table, and the links
 * carry unmodified km_bcast instances (tools/sim/overlaysim).
 *
 * Links come up at once (no TCP handshake is timed); a dial to a node that
 * is down fails at once and puts it on the connection manager's backoff.
 * When a node notices that a neighbour died, the connection manager hears
 * of it and the node dials replacements from its routing table, as
 * km_node does. */
#ifndef KM_SIM_OVERLAY_H
#define KM_SIM_OVERLAY_H

#include "overlaysim.h"
#include "sim.h"

struct overlay;

/* Builds the overlay over the live nodes of w at w->now; NULL on
 * allocation failure. */
struct overlay *overlay_new(struct sim *w, const struct km_bcast_config *bc);
void overlay_del(struct overlay *ov);

struct osim *overlay_osim(struct overlay *ov);

/* Links up now: in total and the most any node has. */
size_t overlay_links(const struct overlay *ov, size_t *max_per_node);

/* Connected components among the live nodes (1 = one overlay). */
size_t overlay_components(const struct overlay *ov);

/* Outbound dials that failed (the node was down) and links replaced. */
unsigned long overlay_failed_dials(const struct overlay *ov);

#endif

/* The node's NAT awareness: votes on its external address come in from
 * KRPC replies (BEP 42 `ip`) and from HELLOs (see nat.h). */
#include "net/node_internal.h"

void node_observed(struct km_node *n, const struct km_addr *from,
		   const struct km_addr *seen, km_ms now)
{
	char addr[KM_ADDR_STRLEN];

	if (!km_nat_vote(&n->nat, from, seen, now))
		return;
	km_addr_format(&n->nat.external, addr, sizeof(addr));
	node_log(n, KM_LOG_INFO, "external address %s (%s)", addr,
		 km_reach_name(km_nat_reachability(&n->nat)));
}

/* An accepting peer saw where our outbound connection came from.  Its
 * port is an ephemeral TCP port, so only the IP counts. */
void node_hello_observed(struct km_node *n, const struct link *l, km_ms now)
{
	struct km_addr seen = l->hello.observed;

	if (!l->outbound || seen.family == KM_AF_NONE)
		return;
	seen.port = 0;
	node_observed(n, &l->remote, &seen, now);
}

struct km_nat *km_node_nat(struct km_node *n)
{
	return &n->nat;
}

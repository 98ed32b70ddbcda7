/* NAT awareness with no I/O: which address the rest of the network sees
 * us at, and whether it can reach us there.
 *
 * Peers tell us how they see us: KRPC replies carry our address in `ip`
 * (BEP 42) and an accepting peer's HELLO carries the address our outbound
 * connection came from.  Each such report is a vote.  A peer's word is cheap
 * (it can say anything), so the external address is adopted only when at
 * least KM_NAT_QUORUM distinct voters agree and they are a strict majority
 * of all current voters.  Voters are told apart by IP (a host with many
 * nodes is one voter), and when the voters span at least KM_NAT_QUORUM
 * distinct /16s (IPv6: /32s) votes are counted per prefix instead, so that
 * one subnet full of liars weighs as one.  A voter's newer vote replaces its
 * older one, so one liar can never move the result.
 *
 * Reachability is `unknown` exactly while no external address is adopted.
 * A dial-back verdict comes with the address it is about (the IP our
 * neighbours see us at, our listening port) and adopts it when the votes
 * have not adopted one, so that a verdict never stands without an address.
 * A dial-back verdict, once there is one, decides; before that the address
 * being one of our own interfaces means `public` and anything else (a NAT
 * rewrote it) means `private`. */
#ifndef KM_NET_NAT_H
#define KM_NET_NAT_H

#include <stdbool.h>
#include <stddef.h>

#include "dht/id.h"
#include "proto/ms.h"
#include "proto/addr.h"

#define KM_NAT_VOTERS_MAX 32          /* votes kept; the oldest goes first */
#define KM_NAT_QUORUM 3
#define KM_NAT_VOTE_TTL_MS KM_MINUTES(30)
#define KM_NAT_LOCAL_MAX 16           /* our own interface addresses */

enum km_reach { KM_REACH_UNKNOWN, KM_REACH_PUBLIC, KM_REACH_PRIVATE };

struct km_nat_vote {
	struct km_addr voter;   /* family KM_AF_NONE: a free slot */
	struct km_addr seen;    /* port 0 when the report carries none */
	km_ms at;
};

/* Embedded in its owner; all fields private. */
struct km_nat {
	struct km_nat_vote votes[KM_NAT_VOTERS_MAX];
	struct km_addr external;        /* KM_AF_NONE until adopted */
	struct km_addr local[KM_NAT_LOCAL_MAX];
	size_t nlocal;
	enum km_reach dialback;         /* KM_REACH_UNKNOWN until checked */
	unsigned long votes_in, changes;
};

void km_nat_init(struct km_nat *nat);

/* Our interface addresses (ports ignored); keeps at most KM_NAT_LOCAL_MAX. */
void km_nat_set_local(struct km_nat *nat, const struct km_addr *local,
		      size_t n);

/* voter says it sees us at seen.  Returns true if the adopted external
 * address changed.  Votes with no family, or from or for an unspecified
 * address, are ignored. */
bool km_nat_vote(struct km_nat *nat, const struct km_addr *voter,
		 const struct km_addr *seen, km_ms now);

/* The outcome of a dial-back check (KM_REACH_UNKNOWN forgets it) about
 * the address at, which becomes the external address if none is adopted
 * yet.  Returns false (and changes nothing) for a verdict with no address
 * when none is adopted: reachability and the address always go together. */
bool km_nat_set_dialback(struct km_nat *nat, enum km_reach r,
			 const struct km_addr *at);

/* The adopted external address, or NULL.  Its port is the one the voters
 * for that IP reported most recently over UDP, or 0 if none did. */
const struct km_addr *km_nat_external(const struct km_nat *nat);
enum km_reach km_nat_reachability(const struct km_nat *nat);
/* The dial-back verdict alone (KM_REACH_UNKNOWN: none stands). */
enum km_reach km_nat_dialback(const struct km_nat *nat);
/* "public", "private", "unknown". */
const char *km_nat_reach_name(enum km_reach r);

/* How far an address reaches, narrowest first: loopback (127/8, ::1),
 * private (RFC 1918, 100.64/10 CGNAT, 169.254/16, fc00::/7, fe80::/10),
 * global (anything else).  A dial-back from a peer of a narrower scope
 * than the network's says nothing about the wider one: a LAN peer can
 * always reach us, the Internet perhaps not. */
enum km_scope { KM_SCOPE_NONE, KM_SCOPE_LOOPBACK, KM_SCOPE_PRIVATE,
		KM_SCOPE_GLOBAL };
enum km_scope km_nat_scope(const struct km_addr *a);

#endif

/* Hole punching: the punches running now, and coordinating them as the
 * rendezvous (punch.h). */
#include "net/punch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dht/id.h"
#include "proto/err.h"
#include "proto/frame.h"

struct punch {
	struct km_id id;
	struct km_addr addr;      /* family KM_AF_NONE: a free slot */
	uint64_t conn;            /* the attempt running now, or 0 */
	uint64_t rendezvous;      /* conn of the link whose PUNCH_GO started it */
	int attempts;
	km_ms started;            /* PUNCH_GO arrived */
	km_ms next_try;           /* 0: an attempt is running */
	km_ms deadline;
};

struct km_punch {
	struct km_punch_callbacks cb;
	void *user;
	struct punch punches[KM_PUNCHES_MAX];
	km_ms relay_asked;        /* PUNCH_GO of the punch that fell back */
	struct km_punch_stats st;
};

struct km_punch *km_punch_new(const struct km_punch_callbacks *cb, void *user)
{
	struct km_punch *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->cb = *cb;
	p->user = user;
	return p;
}

void km_punch_del(struct km_punch *p)
{
	free(p);
}

/* Punches are rare: each step is worth a debug line. */
static void punch_log(struct km_punch *k, const struct punch *p,
		      const char *what)
{
	char addr[KM_ADDR_STRLEN], msg[160];

	if (!k->cb.log)
		return;
	km_addr_format(&p->addr, addr, sizeof(addr));
	snprintf(msg, sizeof(msg), "punch to %02x%02x%02x%02x at %s: %s (attempt %d)",
		 p->id.b[0], p->id.b[1], p->id.b[2], p->id.b[3], addr, what,
		 p->attempts);
	k->cb.log(k->user, msg);
}

void km_punch_ask(struct km_punch *k, uint64_t via, const struct km_id *id,
		  enum km_punch_why why)
{
	k->cb.send(k->user, via, KM_FRAME_PUNCH_REQ, id->b, KM_ID_LEN);
	k->st.upgrades += why == KM_PUNCH_UPGRADE;
	k->st.asked += why == KM_PUNCH_PRIVATE;
}

/* PUNCH_GO's body: a PEER_LIST body with one entry. */
static void send_go(struct km_punch *k, uint64_t conn,
		    const struct km_peer *about)
{
	uint8_t body[2 + KM_PEER_ENTRY_MAX_LEN];
	int len = km_msg_peer_list_encode(body, sizeof(body), about, 1);

	if (len > 0)
		k->cb.send(k->user, conn, KM_FRAME_PUNCH_GO, body, (size_t)len);
}

/* As the rendezvous: both need a listening port to be named. */
static void on_req(struct km_punch *k, uint64_t a, const struct km_peer *pa,
		   const struct km_id *id)
{
	struct km_peer pb;
	uint64_t b;

	if (!k->cb.neighbour(k->user, id, &b, &pb) || b == a ||
	    pb.addr.port == 0 || pa->addr.port == 0)
		return;
	send_go(k, a, &pb);
	send_go(k, b, pa);
	k->st.coordinated++;
}

static struct punch *punch_find(const struct km_punch *k,
				const struct km_id *id)
{
	for (size_t i = 0; i < KM_PUNCHES_MAX; i++) {
		const struct punch *p = &k->punches[i];

		if (p->addr.family != KM_AF_NONE && km_id_eq(&p->id, id))
			return (struct punch *)p;
	}
	return NULL;
}

bool km_punch_running(const struct km_punch *k, const struct km_id *id)
{
	return punch_find(k, id) != NULL;
}

static void attempt(struct km_punch *k, struct punch *p, km_ms now)
{
	uint64_t conn = k->cb.dial(k->user, &p->id, &p->addr, now);

	p->attempts++;
	punch_log(k, p, conn ? "connecting" : "no link slot");
	p->next_try = conn ? 0 : now + KM_PUNCH_RETRY_MS;
	p->conn = conn;
	k->st.attempts++;
	if (conn)
		k->cb.connect(k->user, conn, &p->addr);
}

static void on_go(struct km_punch *k, uint64_t r, const struct km_peer *peer,
		  km_ms now)
{
	struct punch *p = NULL;
	struct km_id id = peer->id;

	if (!k->cb.wanted(k->user, &id) || punch_find(k, &id))
		return;
	for (size_t i = 0; !p && i < KM_PUNCHES_MAX; i++)
		if (k->punches[i].addr.family == KM_AF_NONE)
			p = &k->punches[i];
	if (!p)
		return;
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->addr = peer->addr;
	p->deadline = now + KM_PUNCH_TIMEOUT_MS;
	p->started = now;
	p->rendezvous = r;
	attempt(k, p, now);
}

int km_punch_on_frame(struct km_punch *k, uint64_t conn,
		      const struct km_peer *from, uint8_t type,
		      const uint8_t *body, size_t len, km_ms now)
{
	struct km_peer peer;
	struct km_id id;
	int rc;

	if (type == KM_FRAME_PUNCH_REQ) {
		if (len != KM_ID_LEN)
			return len < KM_ID_LEN ? KM_ERR_TRUNCATED : KM_ERR_TRAILING;
		memcpy(id.b, body, KM_ID_LEN);
		on_req(k, conn, from, &id);
		return 0;
	}
	rc = km_msg_peer_list_decode(body, len, &peer, 1);
	if (rc < 0)
		return rc;
	if (rc != 1)
		return KM_ERR_TRUNCATED;
	on_go(k, conn, &peer, now);
	return 0;
}

bool km_punch_link_up(struct km_punch *k, uint64_t conn, const struct km_id *id,
		      bool outbound, bool relayed, km_ms now)
{
	struct punch *p;

	/* A relayed link leaves a punch running: if it succeeds, it
	 * replaces the relayed link. */
	if (relayed) {
		if (k->relay_asked)
			k->st.last_relay_ms = now - k->relay_asked;
		k->relay_asked = 0;
		return false;
	}
	if (!(p = punch_find(k, id)))
		return false;
	/* Our SYN or theirs (inbound), the punch made it: neither NAT lets an
	 * unsolicited connection in.  A link we dialled the usual way only
	 * makes the punch moot. */
	if (conn != p->conn && outbound) {
		punch_log(k, p, "moot: linked another way");
		memset(p, 0, sizeof(*p));
		return false;
	}
	k->st.last_punch_ms = now - p->started;
	k->st.ok++;
	punch_log(k, p, "link up");
	memset(p, 0, sizeof(*p));
	return true;
}

void km_punch_link_gone(struct km_punch *k, uint64_t conn, km_ms now)
{
	for (size_t i = 0; i < KM_PUNCHES_MAX; i++) {
		struct punch *p = &k->punches[i];
		km_ms backoff;

		if (p->addr.family == KM_AF_NONE || p->conn != conn)
			continue;
		p->conn = 0;
		backoff = KM_PUNCH_RETRY_MS << (p->attempts < 4 ? p->attempts - 1 : 3);
		p->next_try = now + backoff;
		punch_log(k, p, "failed");
	}
}

static void give_up(struct km_punch *k, struct punch *p, km_ms now)
{
	struct punch gone = *p;

	k->st.failed++;
	punch_log(k, p, "gave up, asking for a relay");
	k->relay_asked = p->started;
	memset(p, 0, sizeof(*p));
	k->cb.gave_up(k->user, gone.rendezvous, &gone.id, now);
}

km_ms km_punch_tick(struct km_punch *k, km_ms now)
{
	km_ms wake = 0;

	for (size_t i = 0; i < KM_PUNCHES_MAX; i++) {
		struct punch *p = &k->punches[i];

		if (p->addr.family == KM_AF_NONE)
			continue;
		if (now >= p->deadline && p->conn == 0) {
			give_up(k, p, now);
			continue;
		}
		if (p->next_try != 0 && now >= p->next_try) {
			if (now >= p->deadline) {
				p->next_try = 0;
				continue;
			}
			attempt(k, p, now);
		}
		wake = km_ms_earliest(wake, p->next_try);
		wake = km_ms_earliest(wake, p->deadline);
	}
	return wake;
}

struct km_punch_stats km_punch_stats(const struct km_punch *k)
{
	return k->st;
}

/* LAN discovery's libuv side (see uv_lan.h): one UDP socket in the
 * multicast group, one timer, and the sans-IO km_lan deciding. */
#include <stdlib.h>
#include <string.h>

#include "net/lan.h"
#include "uv/addr.h"
#include "uv/lan.h"

struct km_uv_lan {
	uv_loop_t *loop;
	struct km_uv_node *node;
	uv_udp_t udp;
	uv_timer_t timer;
	int open_handles;
	struct km_lan lan;
	struct sockaddr_in group;
	char out[KM_LAN_MSG_MAX];
	char in[KM_LAN_MSG_MAX + 1];
};

static void on_timer(uv_timer_t *t);

static void arm(struct km_uv_lan *l, km_ms wake)
{
	km_ms now = uv_now(l->loop);

	uv_timer_start(&l->timer, on_timer, wake > now ? wake - now : 0, 0);
}

/* Announces when due.  A failed send (no multicast route, say) is only
 * retried at the next announce: LAN discovery is best effort. */
static void on_timer(uv_timer_t *t)
{
	struct km_uv_lan *l = t->data;
	km_ms wake;
	int len = km_lan_tick(&l->lan, uv_now(l->loop), l->out,
			      sizeof(l->out), &wake);

	if (len > 0) {
		uv_buf_t b = uv_buf_init(l->out, (unsigned)len);

		uv_udp_try_send(&l->udp, &b, 1,
				(const struct sockaddr *)&l->group);
	}
	arm(l, wake);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct km_uv_lan *l = h->data;

	(void)hint;
	*buf = uv_buf_init(l->in, sizeof(l->in));
}

static void on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf,
		    const struct sockaddr *addr, unsigned flags)
{
	struct km_uv_lan *l = h->data;
	struct km_addr from, contact;
	struct km_dht *d = km_node_dht_of(km_uv_node_core(l->node), KM_AF_INET4);
	km_ms now = uv_now(l->loop);

	if (n <= 0 || !addr || (flags & UV_UDP_PARTIAL) || !d ||
	    !km_uv_addr_from_sockaddr(addr, &from))
		return;
	if (!km_lan_recv(&l->lan, &from, (const uint8_t *)buf->base, (size_t)n,
			 now, &contact))
		return;
	km_dht_ping_addr(d, &contact, now);
	km_uv_node_kick(l->node);
	arm(l, l->lan.next);
}

static void on_close(uv_handle_t *h)
{
	struct km_uv_lan *l = h->data;

	if (--l->open_handles == 0)
		free(l);
}

static int join(struct km_uv_lan *l)
{
	struct sockaddr_in any;
	int rc;

	uv_ip4_addr("0.0.0.0", KM_LAN_PORT, &any);
	uv_ip4_addr(KM_LAN_GROUP4, KM_LAN_PORT, &l->group);
	rc = uv_udp_bind(&l->udp, (const struct sockaddr *)&any,
			 UV_UDP_REUSEADDR);
	if (rc == 0)
		rc = uv_udp_set_membership(&l->udp, KM_LAN_GROUP4, NULL,
					   UV_JOIN_GROUP);
	/* Other nodes on this host are on the LAN too; one hop is the LAN. */
	if (rc == 0)
		rc = uv_udp_set_multicast_loop(&l->udp, 1);
	if (rc == 0)
		rc = uv_udp_set_multicast_ttl(&l->udp, 1);
	if (rc == 0)
		rc = uv_udp_recv_start(&l->udp, on_alloc, on_recv);
	return rc;
}

int km_uv_lan_start(uv_loop_t *loop, struct km_uv_node *node,
		    struct km_uv_lan **out)
{
	const struct km_node_config *cfg = km_node_config(km_uv_node_core(node));
	struct km_lan_announce self = {
		.network = cfg->network_id,
		.id = cfg->dht.id,
		.port = km_uv_node_port(node),
	};
	struct km_uv_lan *l = calloc(1, sizeof(*l));
	int rc;

	if (!l)
		return UV_ENOMEM;
	l->loop = loop;
	l->node = node;
	km_lan_init(&l->lan, &self, uv_now(loop));
	uv_udp_init(loop, &l->udp);
	uv_timer_init(loop, &l->timer);
	l->udp.data = l->timer.data = l;
	l->open_handles = 2;
	rc = join(l);
	if (rc < 0) {
		km_uv_lan_stop(l);
		return rc;
	}
	arm(l, l->lan.next);
	*out = l;
	return 0;
}

void km_uv_lan_stop(struct km_uv_lan *l)
{
	if (!l)
		return;
	uv_udp_recv_stop(&l->udp);
	uv_timer_stop(&l->timer);
	uv_close((uv_handle_t *)&l->udp, on_close);
	uv_close((uv_handle_t *)&l->timer, on_close);
}

void km_uv_nat_learn_local(struct km_uv_node *node)
{
	struct km_addr local[KM_NAT_LOCAL_MAX];
	uv_interface_address_t *ifs;
	int count;
	size_t n = 0;

	if (uv_interface_addresses(&ifs, &count) < 0)
		return;
	for (int i = 0; i < count && n < KM_NAT_LOCAL_MAX; i++)
		if (km_uv_addr_from_sockaddr((struct sockaddr *)&ifs[i].address,
					     &local[n]))
			n++;
	uv_free_interface_addresses(ifs, count);
	km_nat_set_local(km_node_nat(km_uv_node_core(node)), local, n);
}

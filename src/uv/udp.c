/* UDP for the driver: datagrams in through recvmmsg batches, replies out
 * gathered into one sendmmsg per batch, the rest through a bounded queue. */
#define _GNU_SOURCE /* sendmmsg, struct mmsghdr */
#include "uv/node_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "uv/addr.h"

static void on_udp_sent(uv_udp_send_t *req, int status)
{
	struct udp_req *r = (struct udp_req *)req;

	r->u->udp_queued -= r->len;
	free(r);
}

/* The socket's buffer was full: queue a copy, up to UDP_QUEUE_CAP bytes.
 * Past that the datagram is dropped, as the network might have. */
static void udp_queue(struct sock_pair *sp, const struct sockaddr *sa,
		      const uint8_t *buf, size_t len)
{
	struct km_uv_node *u = sp->u;
	struct udp_req *r;
	uv_buf_t b;

	if (u->udp_queued + len > UDP_QUEUE_CAP)
		return;
	r = malloc(sizeof(*r) + len);
	if (!r)
		return;
	memcpy(r->data, buf, len);
	r->u = u;
	r->len = len;
	b = uv_buf_init((char *)r->data, (unsigned)len);
	if (uv_udp_send(&r->req, &sp->udp, &b, 1, sa, on_udp_sent) < 0) {
		free(r);
		return;
	}
	u->udp_queued += len;
}

/* Sends the gathered replies with one sendmmsg; what the socket does not
 * take goes through libuv's queue, like any datagram that meets EAGAIN. */
static void batch_flush(struct sock_pair *sp)
{
	struct send_batch *b = &sp->out;
	size_t done = 0;
	uv_os_fd_t fd;

	if (b->n > 0 && sp->u->udp_queued == 0 &&
	    uv_fileno((uv_handle_t *)&sp->udp, &fd) == 0) {
		while (done < b->n) {
			int n = sendmmsg(fd, b->msg + done,
					 (unsigned)(b->n - done), 0);

			if (n <= 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			done += (size_t)n;
		}
	}
	for (; done < b->n; done++)
		udp_queue(sp, (const struct sockaddr *)&b->to[done], b->buf[done],
			  b->iov[done].iov_len);
	b->n = 0;
}

static void batch_add(struct sock_pair *sp, const struct sockaddr_storage *ss,
		      const uint8_t *buf, size_t len)
{
	struct send_batch *b = &sp->out;
	size_t i = b->n++;

	memcpy(b->buf[i], buf, len);
	b->to[i] = *ss;
	b->iov[i] = (struct iovec){ .iov_base = b->buf[i], .iov_len = len };
	b->msg[i].msg_hdr = (struct msghdr){
		.msg_name = &b->to[i],
		.msg_namelen = ss->ss_family == AF_INET6 ?
			sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
		.msg_iov = &b->iov[i], .msg_iovlen = 1 };
	if (b->n == SEND_BATCH)
		batch_flush(sp);
}

void km_uv_udp_send(void *user, const struct km_addr *to,
			  const uint8_t *buf, size_t len)
{
	struct km_uv_node *u = user;
	struct sock_pair *sp = km_uv_node_pair_for(u, to->family);
	struct sockaddr_storage ss;
	uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
	int rc;

	if (!sp || uv_is_closing((uv_handle_t *)&sp->udp) ||
	    km_uv_addr_to_sockaddr(to, &ss) < 0)
		return;
	if (sp->out.open && len <= SEND_MAX) {
		batch_add(sp, &ss, buf, len);
		return;
	}
	rc = uv_udp_try_send(&sp->udp, &b, 1, (const struct sockaddr *)&ss);
	if (rc == UV_EAGAIN)
		udp_queue(sp, (const struct sockaddr *)&ss, buf, len);
	else if (rc < 0)
		km_uv_node_say(u, KM_LOG_DEBUG, "udp send: %s", uv_strerror(rc));
}

static void on_udp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct sock_pair *sp = h->data;

	/* libuv calls back once per datagram and once more at the end of the
	 * batch, always before the next alloc, so one buffer serves all. */
	*buf = uv_buf_init((char *)sp->u->udp_buf, UDP_CHUNK * RECV_BATCH);
}

static void on_udp_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf,
			const struct sockaddr *addr, unsigned flags)
{
	struct sock_pair *sp = h->data;
	struct km_uv_node *u = sp->u;
	struct km_addr from;

	/* n == 0 with no address: the socket ran dry or a recvmmsg batch
	 * ended; either way the replies gathered so far can go.  A partial
	 * datagram was over 64 KiB and cannot be KRPC. */
	if (n == 0 && !addr) {
		sp->out.open = false;
		batch_flush(sp);
		return;
	}
	if (flags & UV_UDP_MMSG_CHUNK)
		sp->out.open = true;
	if (n <= 0 || !addr || (flags & UV_UDP_PARTIAL) || u->stopping)
		return;
	if (!km_uv_addr_from_sockaddr(addr, &from))
		return;
	km_node_udp_recv(u->node, &from, (const uint8_t *)buf->base,
			 (size_t)n, km_uv_node_now(u));
	km_uv_node_kick(u);
}

int km_uv_udp_start(struct sock_pair *sp)
{
	return uv_udp_recv_start(&sp->udp, on_udp_alloc, on_udp_recv);
}

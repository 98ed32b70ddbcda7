/* Binding one TCP listener and one UDP socket per address, all on one
 * port number, before libuv adopts them. */
#define _GNU_SOURCE /* struct mmsghdr in node_internal.h */
#include "uv/node_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "uv/addr.h"
#include "proto/err.h"

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Binds TCP first, so that port 0 picks a port free for TCP, then UDP to
 * the same number.  An IPv6 socket is IPv6 only, so that IPv4 stays with
 * the IPv4 socket and its routing table. */
static int try_bind(const struct km_addr *bind_to, int *tfd, int *ufd,
		    uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int one = 1, rcvbuf = UDP_RCVBUF;
	int len = km_uv_addr_to_sockaddr(bind_to, &ss);
	struct km_addr bound;
	bool v6 = bind_to->family == KM_AF_INET6;

	if (len < 0)
		return len;
	*tfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (*tfd < 0)
		return -errno;
	setsockopt(*tfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if ((v6 && setsockopt(*tfd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			      sizeof(one)) < 0) ||
	    bind(*tfd, (struct sockaddr *)&ss, (socklen_t)len) < 0 ||
	    getsockname(*tfd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	/* After bind, so that port 0 never lands on another node's port:
	 * hole punching binds a second socket to this port (km_uv_tcp_punch). */
	setsockopt(*tfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	*ufd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (*ufd < 0 ||
	    (v6 && setsockopt(*ufd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			      sizeof(one)) < 0) ||
	    bind(*ufd, (struct sockaddr *)&ss, sl) < 0)
		return -errno;
	/* Best effort: the kernel caps it at net.core.rmem_max. */
	setsockopt(*ufd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	km_uv_addr_from_sockaddr((struct sockaddr *)&ss, &bound);
	*port = bound.port;
	return 0;
}

void km_uv_bind_close_fds(int fds[][2], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		close_fd(&fds[i][0]);
		close_fd(&fds[i][1]);
	}
}

/* Every address on one port number: the first picks it (when asked for
 * port 0), the others follow.  Port 0: if a later socket finds the number
 * taken, start over with another. */
int km_uv_bind_all(const struct km_addr *binds, size_t nbinds, int fds[][2],
		    uint16_t *port)
{
	int rc = KM_ERR_INVAL;

	for (int attempt = 0; attempt < BIND_ATTEMPTS; attempt++) {
		*port = binds[0].port;
		for (size_t i = 0; i < nbinds; i++) {
			struct km_addr a = binds[i];

			a.port = *port;
			rc = try_bind(&a, &fds[i][0], &fds[i][1], port);
			if (rc < 0)
				break;
		}
		if (rc == 0)
			return 0;
		km_uv_bind_close_fds(fds, nbinds);
		if (rc != -EADDRINUSE || binds[0].port != 0)
			break;
	}
	return rc;
}

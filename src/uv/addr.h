/* km_addr <-> struct sockaddr: the one place where the two meet. */
#ifndef KM_UV_ADDR_H
#define KM_UV_ADDR_H

#include <stdbool.h>
#include <sys/socket.h>

#include "proto/addr.h"

/* Fills ss and returns the length to pass to bind/sendto, or KM_ERR_INVAL
 * for a km_addr with no family. */
int km_uv_addr_to_sockaddr(const struct km_addr *a,
			   struct sockaddr_storage *ss);

/* False for families other than AF_INET and AF_INET6.  IPv4-mapped IPv6
 * addresses stay IPv6; a dual-stack socket is not how we listen. */
bool km_uv_addr_from_sockaddr(const struct sockaddr *sa, struct km_addr *out);

#endif

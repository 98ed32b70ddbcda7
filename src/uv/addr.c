#include "uv/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proto/err.h"

int km_uv_addr_to_sockaddr(const struct km_addr *a,
			   struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == KM_AF_INET4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		memcpy(&sin->sin_addr, a->ip, 4);
		return (int)sizeof(*sin);
	}
	if (a->family == KM_AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		memcpy(&sin6->sin6_addr, a->ip, 16);
		return (int)sizeof(*sin6);
	}
	return KM_ERR_INVAL;
}

bool km_uv_addr_from_sockaddr(const struct sockaddr *sa, struct km_addr *out)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		km_addr_set_v4(out, (const uint8_t *)&sin->sin_addr,
			       ntohs(sin->sin_port));
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		km_addr_set_v6(out, (const uint8_t *)&sin6->sin6_addr,
			       ntohs(sin6->sin6_port));
		return true;
	}
	return false;
}

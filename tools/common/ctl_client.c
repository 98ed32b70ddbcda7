/* The control socket's client side; see ctl_client.h. */
#include "ctl_client.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int km_ctl_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		fd = -1;
	}
	return fd;
}

int km_ctl_send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

long long km_ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads up to and excluding the first newline.  Returns a malloc'd string,
 * or NULL with *why set. */
char *km_ctl_read_line(int fd, size_t max, long long deadline,
		       const char **why)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap), *nl = NULL;

	while (buf && !nl) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - km_ctl_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			*why = "timed out waiting for the answer";
			break;
		}
		if (len + 1 == cap) {
			char *bigger = cap < max ? realloc(buf, cap *= 2) : NULL;

			if (!bigger) {
				*why = "answer too long";
				break;
			}
			buf = bigger;
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*why = n == 0 ? "the node closed the connection" :
				       strerror(errno);
			break;
		}
		nl = memchr(buf + len, '\n', (size_t)n);
		len += (size_t)n;
	}
	if (!nl) {
		free(buf);
		return NULL;
	}
	*nl = '\0';
	return buf;
}

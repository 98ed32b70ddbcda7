/* The client side of the control socket, shared by dht-ctl and dht-lookup:
 * connect, send a request line, read one answer line with a deadline. */
#ifndef KM_TOOLS_CTL_CLIENT_H
#define KM_TOOLS_CTL_CLIENT_H

#include <stddef.h>

/* Monotonic milliseconds, for deadlines. */
long long km_ctl_now_ms(void);

/* A connected Unix stream socket, or -1 with errno set. */
int km_ctl_connect(const char *path);

/* Sends all of buf; 0, or -1 with errno set. */
int km_ctl_send_all(int fd, const char *buf, size_t len);

/* Reads up to and excluding the first newline, at most max bytes, until
 * deadline (km_ctl_now_ms() time).  Returns a malloc'd string, or NULL with
 * *why set to a message. */
char *km_ctl_read_line(int fd, size_t max, long long deadline, const char **why);

#endif

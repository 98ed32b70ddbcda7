/* The datagrams a km_dht under test sends, in order, for the test to read
 * and answer as the peers it plays: sent_record() is the send callback. */
#ifndef KM_TEST_SENT_H
#define KM_TEST_SENT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/addr.h"

#define SENT_MAX 1024

struct sent {
	struct km_addr to;
	uint8_t buf[2048]; /* what km_dht sends fits in 2 KiB */
	size_t len;
};

extern struct sent sent[SENT_MAX];
extern size_t nsent; /* the test resets it when it has read them */

/* A km_dht_callbacks.send; aborts if more than SENT_MAX pile up unread. */
void sent_record(void *user, const struct km_addr *to, const uint8_t *buf,
		 size_t len);

#endif

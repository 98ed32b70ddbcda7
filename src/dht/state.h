/* The routing table snapshot that a node saves to disk, with no I/O.
 *
 * Layout (integers big-endian):
 *
 *   "KMST"            4   magic
 *   version           1   KM_STATE_VERSION
 *   self id          20   the node ID the snapshot belongs to
 *   count             2   entries that follow, at most KM_STATE_MAX_ENTRIES
 *   entries               count times: id (20), family (1: 4 or 6),
 *                         ip (4 or 16 by family), port (2)
 *   checksum          4   the first 4 bytes of SHA-1 over everything above
 *
 * The checksum catches a torn or bit-rotted file; it is not a defence
 * against someone who can write the state directory. */
#ifndef KM_DHT_STATE_H
#define KM_DHT_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/node.h"

#define KM_STATE_VERSION 1
#define KM_STATE_MAX_ENTRIES 2048
#define KM_STATE_HEADER_LEN 27 /* magic, version, self id, count */
#define KM_STATE_CHECKSUM_LEN 4
#define KM_STATE_ENTRY_MAX_LEN (KM_ID_LEN + 1 + 16 + 2)
/* Enough for any snapshot km_state_encode() can write. */
#define KM_STATE_MAX_LEN                                                      \
	(KM_STATE_HEADER_LEN + KM_STATE_MAX_ENTRIES * KM_STATE_ENTRY_MAX_LEN + \
	 KM_STATE_CHECKSUM_LEN)

/* Writes the snapshot of self and c[0..n) to buf and returns its length.
 * Errors: KM_ERR_TOO_MANY if n > KM_STATE_MAX_ENTRIES, KM_ERR_INVAL if a
 * contact's family is neither IPv4 nor IPv6, KM_ERR_BUF if cap is short. */
int km_state_encode(const struct km_id *self, const struct km_contact *c,
		    size_t n, uint8_t *buf, size_t cap);

/* Reads a snapshot into *self and out[0..*n).  Checks, in this order:
 * KM_ERR_TRUNCATED  shorter than a header;
 * KM_ERR_UNKNOWN_TYPE  the magic is not "KMST";
 * KM_ERR_VERSION    a version we do not read;
 * KM_ERR_TOO_MANY   count > KM_STATE_MAX_ENTRIES;
 * KM_ERR_BUF        count > max;
 * KM_ERR_RANGE      an entry's family is neither 4 nor 6;
 * KM_ERR_TRUNCATED  the entries or the checksum are cut short;
 * KM_ERR_TRAILING   bytes after the checksum;
 * KM_ERR_CHECKSUM   the checksum does not match.
 * On error *self, out and *n may have been partly written; *n is then 0. */
int km_state_decode(const uint8_t *buf, size_t len, struct km_id *self,
		    struct km_contact *out, size_t max, size_t *n);

#endif

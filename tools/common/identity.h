/* The node's identity and saved routing table in its state directory. */
#ifndef KM_TOOLS_IDENTITY_H
#define KM_TOOLS_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "proto/node.h"

/* A random ID from the OS. */
void km_tool_random_id(struct km_id *out);

/* Reads dir/id (40 hex digits and an optional newline).  If it is missing,
 * or corrupt (with a warning), writes a fresh random ID there atomically.
 * Returns 0 or a negative errno from writing the file. */
int km_tool_identity_load(const char *dir, struct km_id *out);

/* Reads the Ed25519 key seed from dir/key (64 hex digits and an optional
 * newline).  If it is missing, writes a fresh one from the OS (mode 0600,
 * atomically).  If it is corrupt, warns, and gives the node a fresh key
 * *and* a fresh ID (rewriting dir/id into *id): peers pin keys per ID, so
 * the old ID with a new key would be refused as an impersonator.  Returns
 * 0 or a negative errno from writing a file. */
int km_tool_key_load(const char *dir, struct km_id *id,
		     uint8_t seed[static 32]);

/* Reads dir/nodes.dat into out[0..*n) (out holds KM_STATE_MAX_ENTRIES).
 * A missing file is no error; a corrupt or truncated one gets a warning
 * and yields no contacts. */
void km_tool_state_load(const char *dir, const struct km_id *self,
			struct km_contact *out, size_t *n);

/* Writes buf to dir/nodes.dat atomically; logs failures. */
void km_tool_state_save(const char *dir, const uint8_t *buf, size_t len);

#endif

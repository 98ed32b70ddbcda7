#include "identity.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dht/id.h"
#include "net/ident.h"
#include "log.h"
#include "dht/state.h"
#include "common/fs.h"
#include "proto/err.h"

static void random_bytes(uint8_t *p, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom(p + got, len - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			abort(); /* no randomness, no safe identity */
		got += (size_t)n;
	}
}

void km_tool_random_id(struct km_id *out)
{
	random_bytes(out->b, sizeof(out->b));
}

static const char *fs_error(int rc)
{
	return rc <= -200 ? km_strerror(rc) : strerror(-rc);
}

static bool parse_id_file(const uint8_t *buf, size_t len, struct km_id *out)
{
	char hex[KM_ID_HEXLEN + 1];

	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len != KM_ID_HEXLEN)
		return false;
	memcpy(hex, buf, len);
	hex[len] = '\0';
	return km_id_from_hex(hex, out);
}

static int write_new_id(const char *dir, struct km_id *id)
{
	char path[PATH_MAX], hex[KM_ID_HEXLEN + 2];

	snprintf(path, sizeof(path), "%s/id", dir);
	km_tool_random_id(id);
	km_id_to_hex(id, hex);
	hex[KM_ID_HEXLEN] = '\n';
	return km_uv_fs_write_atomic(path, (const uint8_t *)hex,
				     KM_ID_HEXLEN + 1);
}

int km_tool_identity_load(const char *dir, struct km_id *out)
{
	char path[PATH_MAX];
	uint8_t *buf;
	size_t len;
	int rc;

	snprintf(path, sizeof(path), "%s/id", dir);
	rc = km_uv_fs_read_all(path, KM_ID_HEXLEN + 1, &buf, &len);
	if (rc == 0 && parse_id_file(buf, len, out)) {
		free(buf);
		return 0;
	}
	free(buf);
	if (rc != -ENOENT)
		km_tool_log(KM_LOG_WARN, "%s is unreadable or corrupt (%s); "
			    "using a new node ID", path,
			    rc < 0 ? fs_error(rc) : "not 40 hex digits");
	return write_new_id(dir, out);
}

#define KEY_HEXLEN (2 * KM_IDENT_SEED_LEN)

static bool parse_key_file(const uint8_t *buf, size_t len, uint8_t *seed)
{
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len != KEY_HEXLEN)
		return false;
	for (size_t i = 0; i < KM_IDENT_SEED_LEN; i++) {
		unsigned v;
		char pair[3] = { (char)buf[2 * i], (char)buf[2 * i + 1], 0 };

		if (!isxdigit((unsigned char)pair[0]) ||
		    !isxdigit((unsigned char)pair[1]) ||
		    sscanf(pair, "%2x", &v) != 1)
			return false;
		seed[i] = (uint8_t)v;
	}
	return true;
}

int km_tool_key_load(const char *dir, struct km_id *id,
		     uint8_t seed[static KM_IDENT_SEED_LEN])
{
	char path[PATH_MAX], hex[KEY_HEXLEN + 1];
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	snprintf(path, sizeof(path), "%s/key", dir);
	rc = km_uv_fs_read_all(path, KEY_HEXLEN + 1, &buf, &len);
	if (rc == 0 && parse_key_file(buf, len, seed)) {
		free(buf);
		return 0;
	}
	free(buf);
	if (rc != -ENOENT) {
		km_tool_log(KM_LOG_WARN, "%s is unreadable or corrupt (%s); "
			    "using a new key and a new node ID", path,
			    rc < 0 ? fs_error(rc) : "not 64 hex digits");
		if ((rc = write_new_id(dir, id)) < 0)
			return rc;
	}
	random_bytes(seed, KM_IDENT_SEED_LEN);
	for (size_t i = 0; i < KM_IDENT_SEED_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", seed[i]);
	hex[KEY_HEXLEN] = '\n';
	return km_uv_fs_write_atomic(path, (const uint8_t *)hex, KEY_HEXLEN + 1);
}

void km_tool_state_load(const char *dir, const struct km_id *self,
			struct km_contact *out, size_t *n)
{
	char path[PATH_MAX];
	struct km_id owner;
	uint8_t *buf;
	size_t len;
	int rc;

	*n = 0;
	snprintf(path, sizeof(path), "%s/nodes.dat", dir);
	rc = km_uv_fs_read_all(path, KM_STATE_MAX_LEN, &buf, &len);
	if (rc == -ENOENT)
		return;
	if (rc == 0)
		rc = km_state_decode(buf, len, &owner, out,
				     KM_STATE_MAX_ENTRIES, n);
	free(buf);
	if (rc < 0) {
		km_tool_log(KM_LOG_WARN, "%s: %s; starting with an empty "
			    "routing table", path, fs_error(rc));
		return;
	}
	/* The contacts are still live nodes, whoever saved them. */
	if (!km_id_eq(&owner, self))
		km_tool_log(KM_LOG_INFO, "%s was saved by another node ID",
			    path);
	km_tool_log(KM_LOG_INFO, "loaded %zu saved nodes", *n);
}

void km_tool_state_save(const char *dir, const uint8_t *buf, size_t len)
{
	char path[PATH_MAX];
	int rc;

	snprintf(path, sizeof(path), "%s/nodes.dat", dir);
	rc = km_uv_fs_write_atomic(path, buf, len);
	if (rc < 0)
		km_tool_log(KM_LOG_WARN, "saving %s: %s", path, fs_error(rc));
	else
		km_tool_log(KM_LOG_DEBUG, "saved %zu bytes to %s", len, path);
}

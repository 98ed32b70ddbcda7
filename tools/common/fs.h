/* The few file operations the daemon needs, done synchronously.
 *
 * They run on the loop thread, but only at start, at shutdown and once per
 * save interval, on files of at most KM_STATE_MAX_LEN bytes, so a thread
 * pool would buy nothing.  Errors are negative errno values (the same
 * numbers as UV_E*), or KM_ERR_* where noted. */
#ifndef KM_COMMON_FS_H
#define KM_COMMON_FS_H

#include <stddef.h>
#include <stdint.h>

/* Replaces path with buf atomically: writes "path.tmp" (mode 0600), fsyncs
 * it, renames it over path, and fsyncs the directory, so a crash leaves
 * either the old file or the new one, never a torn mix. */
int km_uv_fs_write_atomic(const char *path, const uint8_t *buf, size_t len);

/* Reads all of path into a malloc'd buffer (*out, to be freed; *len bytes).
 * KM_ERR_TOO_LONG if the file holds more than cap bytes; -ENOENT if it does
 * not exist. */
int km_uv_fs_read_all(const char *path, size_t cap, uint8_t **out,
		      size_t *len);

/* Creates dir with mode 0700 unless it already exists as a directory. */
int km_uv_fs_mkdir_private(const char *dir);

#endif

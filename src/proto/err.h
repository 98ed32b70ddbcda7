/* Error codes shared by every layer of kadmesh.
 *
 * Functions return 0 (or a non-negative count) on success and one of these
 * negative codes on failure, in the style of ngtcp2 and libuv.  errno never
 * leaks out of the core; the libuv drivers pass UV_E* values through as they
 * are (those are small negative errno values, so they never collide with
 * ours, which all sit below -200). */
#ifndef KM_PROTO_ERR_H
#define KM_PROTO_ERR_H

enum km_err {
	KM_OK = 0,

	/* Caller or resource problems. */
	KM_ERR_NOMEM = -201,       /* an allocation failed */
	KM_ERR_INVAL = -202,       /* an argument is out of its documented range */
	KM_ERR_BUF = -203,         /* the output buffer is too small */
	KM_ERR_FULL = -204,        /* a bounded table or queue is at its cap */
	KM_ERR_NOT_FOUND = -205,   /* no such entry */

	/* Malformed input from outside.  Each names what was wrong. */
	KM_ERR_TRUNCATED = -210,   /* input ended before the structure did */
	KM_ERR_TOO_LONG = -211,    /* a length field exceeds its limit */
	KM_ERR_UNKNOWN_TYPE = -212,/* a frame or message type we do not know */
	KM_ERR_SYNTAX = -213,      /* bytes that cannot start or continue a value */
	KM_ERR_TOO_DEEP = -214,    /* nesting beyond the configured depth */
	KM_ERR_TOO_MANY = -215,    /* more items than the configured cap */
	KM_ERR_TRAILING = -216,    /* bytes left after a complete value */
	KM_ERR_UNSORTED = -217,    /* dict keys out of order or repeated */
	KM_ERR_TYPE = -218,        /* a field has the wrong type */
	KM_ERR_MISSING = -219,     /* a required field is absent */
	KM_ERR_RANGE = -220,       /* a number outside its allowed range */
	KM_ERR_VERSION = -221,     /* incompatible protocol version or network */
	KM_ERR_CHECKSUM = -222,    /* a checksum does not match the bytes it covers */
	KM_ERR_AUTH = -223,        /* a signature or key that does not verify */
};

/* A short English description of code; never NULL. */
const char *km_strerror(int code);

#endif

#include "proto/err.h"

const char *km_strerror(int code)
{
	switch (code) {
	case KM_OK: return "success";
	case KM_ERR_NOMEM: return "out of memory";
	case KM_ERR_INVAL: return "invalid argument";
	case KM_ERR_BUF: return "output buffer too small";
	case KM_ERR_FULL: return "table or queue full";
	case KM_ERR_NOT_FOUND: return "not found";
	case KM_ERR_TRUNCATED: return "input truncated";
	case KM_ERR_TOO_LONG: return "length exceeds limit";
	case KM_ERR_UNKNOWN_TYPE: return "unknown type";
	case KM_ERR_SYNTAX: return "syntax error";
	case KM_ERR_TOO_DEEP: return "nesting too deep";
	case KM_ERR_TOO_MANY: return "too many items";
	case KM_ERR_TRAILING: return "trailing bytes after value";
	case KM_ERR_UNSORTED: return "dictionary keys not sorted";
	case KM_ERR_TYPE: return "field has wrong type";
	case KM_ERR_MISSING: return "required field missing";
	case KM_ERR_RANGE: return "number out of range";
	case KM_ERR_VERSION: return "incompatible version or network";
	case KM_ERR_CHECKSUM: return "checksum mismatch";
	case KM_ERR_AUTH: return "authentication failed";
	}
	return "unknown error";
}

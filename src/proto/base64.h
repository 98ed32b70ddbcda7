/* Base64 (RFC 4648, standard alphabet, with padding): how the control
 * protocol carries broadcast payloads, which may be any bytes, inside a
 * request line or a JSON string. */
#ifndef KM_PROTO_BASE64_H
#define KM_PROTO_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters km_base64_encode() writes for len bytes, without the NUL. */
#define KM_BASE64_LEN(len) (((len) + 2) / 3 * 4)

/* Writes the encoding of in[0..len) and a NUL; out must hold
 * KM_BASE64_LEN(len) + 1 bytes.  Returns the length written. */
size_t km_base64_encode(const uint8_t *in, size_t len, char *out);

/* Decodes a NUL-terminated string into out[0..cap).  Returns the byte
 * count, KM_ERR_SYNTAX (a character outside the alphabet, bad padding or a
 * length that is not a multiple of 4) or KM_ERR_BUF. */
int km_base64_decode(const char *in, uint8_t *out, size_t cap);

#endif

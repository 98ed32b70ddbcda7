#include "proto/base64.h"

#include <stdbool.h>
#include <string.h>

#include "proto/err.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t km_base64_encode(const uint8_t *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t left = len - i;

		if (left > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		out[o++] = alphabet[v >> 18 & 63];
		out[o++] = alphabet[v >> 12 & 63];
		out[o++] = left > 1 ? alphabet[v >> 6 & 63] : '=';
		out[o++] = left > 2 ? alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

static int sextet(char c)
{
	const char *p = c ? strchr(alphabet, c) : NULL;

	return p ? (int)(p - alphabet) : -1;
}

/* One 4-character group; pad is how many '=' end it (0..2). */
static int decode_group(const char *g, bool last, uint8_t out[3])
{
	int pad = last ? (g[3] == '=') + (g[2] == '=' && g[3] == '=') : 0;
	uint32_t v = 0;

	for (int i = 0; i < 4; i++) {
		int s = i >= 4 - pad ? 0 : sextet(g[i]);

		if (s < 0)
			return KM_ERR_SYNTAX;
		v = v << 6 | (uint32_t)s;
	}
	out[0] = (uint8_t)(v >> 16);
	out[1] = (uint8_t)(v >> 8);
	out[2] = (uint8_t)v;
	return 3 - pad;
}

int km_base64_decode(const char *in, uint8_t *out, size_t cap)
{
	size_t len = strlen(in), o = 0;

	if (len % 4 != 0 || len / 4 * 3 > (size_t)INT32_MAX)
		return KM_ERR_SYNTAX;
	for (size_t i = 0; i < len; i += 4) {
		uint8_t b[3];
		int n = decode_group(in + i, i + 4 == len, b);

		if (n < 0)
			return n;
		if (o + (size_t)n > cap)
			return KM_ERR_BUF;
		memcpy(out + o, b, (size_t)n);
		o += (size_t)n;
	}
	return (int)o;
}

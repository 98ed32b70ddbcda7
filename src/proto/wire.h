/* Big-endian integers and bounds-checked cursors for wire formats.
 *
 * Every codec in proto (overlay frames, message bodies, KRPC) reads and
 * writes through these, so the bounds checks live in one place.  Both
 * cursors are sticky: once a read runs past the end (or a write past the
 * capacity) every later call does nothing and the flag stays set.  A decoder
 * can therefore read all of its fixed fields and test the flag once, which
 * keeps the codecs short without weakening the checks. */
#ifndef KM_PROTO_WIRE_H
#define KM_PROTO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void km_wire_put_u16(uint8_t p[static 2], uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void km_wire_put_u32(uint8_t p[static 4], uint32_t v)
{
	km_wire_put_u16(p, (uint16_t)(v >> 16));
	km_wire_put_u16(p + 2, (uint16_t)v);
}

static inline void km_wire_put_u64(uint8_t p[static 8], uint64_t v)
{
	km_wire_put_u32(p, (uint32_t)(v >> 32));
	km_wire_put_u32(p + 4, (uint32_t)v);
}

static inline uint16_t km_wire_get_u16(const uint8_t p[static 2])
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t km_wire_get_u32(const uint8_t p[static 4])
{
	return (uint32_t)km_wire_get_u16(p) << 16 | km_wire_get_u16(p + 2);
}

static inline uint64_t km_wire_get_u64(const uint8_t p[static 8])
{
	return (uint64_t)km_wire_get_u32(p) << 32 | km_wire_get_u32(p + 4);
}

/* Reads from buf[0..len).  buf may be NULL when len is 0. */
struct km_wire_reader {
	const uint8_t *buf;
	size_t len;
	size_t off;
	bool short_read; /* a read wanted more bytes than were left */
};

static inline void km_wire_reader_init(struct km_wire_reader *r,
				       const uint8_t *buf, size_t len)
{
	*r = (struct km_wire_reader){ .buf = buf, .len = len };
}

static inline size_t km_wire_left(const struct km_wire_reader *r)
{
	return r->len - r->off;
}

/* The next n bytes, or NULL (and short_read set) if fewer are left.  Also
 * NULL for n == 0, so callers never do arithmetic on a NULL buf. */
static inline const uint8_t *km_wire_read(struct km_wire_reader *r, size_t n)
{
	const uint8_t *p;

	if (r->short_read || n > km_wire_left(r)) {
		r->short_read = true;
		return NULL;
	}
	if (n == 0)
		return NULL;
	p = r->buf + r->off;
	r->off += n;
	return p;
}

static inline void km_wire_read_copy(struct km_wire_reader *r, void *dst, size_t n)
{
	const uint8_t *p = km_wire_read(r, n);

	if (p)
		memcpy(dst, p, n);
}

static inline uint8_t km_wire_read_u8(struct km_wire_reader *r)
{
	const uint8_t *p = km_wire_read(r, 1);

	return p ? p[0] : 0;
}

static inline uint16_t km_wire_read_u16(struct km_wire_reader *r)
{
	const uint8_t *p = km_wire_read(r, 2);

	return p ? km_wire_get_u16(p) : 0;
}

static inline uint32_t km_wire_read_u32(struct km_wire_reader *r)
{
	const uint8_t *p = km_wire_read(r, 4);

	return p ? km_wire_get_u32(p) : 0;
}

static inline uint64_t km_wire_read_u64(struct km_wire_reader *r)
{
	const uint8_t *p = km_wire_read(r, 8);

	return p ? km_wire_get_u64(p) : 0;
}

/* Writes into buf[0..cap). */
struct km_wire_writer {
	uint8_t *buf;
	size_t cap;
	size_t off;
	bool overflow; /* a write did not fit */
};

static inline void km_wire_writer_init(struct km_wire_writer *w, uint8_t *buf,
				       size_t cap)
{
	*w = (struct km_wire_writer){ .buf = buf, .cap = cap };
}

/* Room for n more bytes, or NULL (and overflow set) if they do not fit. */
static inline uint8_t *km_wire_reserve(struct km_wire_writer *w, size_t n)
{
	uint8_t *p;

	if (w->overflow || n > w->cap - w->off) {
		w->overflow = true;
		return NULL;
	}
	if (n == 0)
		return NULL;
	p = w->buf + w->off;
	w->off += n;
	return p;
}

static inline void km_wire_write(struct km_wire_writer *w, const void *src, size_t n)
{
	uint8_t *p = km_wire_reserve(w, n);

	if (p)
		memcpy(p, src, n);
}

static inline void km_wire_write_u8(struct km_wire_writer *w, uint8_t v)
{
	uint8_t *p = km_wire_reserve(w, 1);

	if (p)
		p[0] = v;
}

static inline void km_wire_write_u16(struct km_wire_writer *w, uint16_t v)
{
	uint8_t *p = km_wire_reserve(w, 2);

	if (p)
		km_wire_put_u16(p, v);
}

static inline void km_wire_write_u32(struct km_wire_writer *w, uint32_t v)
{
	uint8_t *p = km_wire_reserve(w, 4);

	if (p)
		km_wire_put_u32(p, v);
}

static inline void km_wire_write_u64(struct km_wire_writer *w, uint64_t v)
{
	uint8_t *p = km_wire_reserve(w, 8);

	if (p)
		km_wire_put_u64(p, v);
}

#endif

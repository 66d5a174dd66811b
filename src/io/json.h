/* json.h - just enough JSON (RFC 8259) for file headers: a reader and string quoting
 * (internal; implemented in io/json.c, used by io/safetensors.c).
 *
 * Reading is two passes over the same cursor, so that hostile input allocates nothing
 * before it is known to be well-formed:
 *   1. bk__json_check validates the whole text (syntax only, recursion capped at
 *      BK_JSON_MAX_DEPTH so hostile nesting cannot exhaust the stack) and counts the
 *      members of the top-level object, which sizes the caller's tables;
 *   2. the caller walks the text again (pos = 0) with a string pool: bk__json_string
 *      decodes each string into the pool, bk__json_uint_array reads integer lists. A
 *      decoded string plus its NUL is never longer than its quoted source, so a pool of
 *      the text's length always suffices.
 * The text must already be known to be valid UTF-8 (bk__utf8_next).
 */
#ifndef BRICK_IO_JSON_H
#define BRICK_IO_JSON_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BK_JSON_MAX_DEPTH 8 /* a safetensors header needs 3: file { tensor { shape [ */

typedef struct bk__json {
    const char *s;
    size_t n, pos;
    const char *what; /* names the text in messages ("the header") */
    char *pool;       /* NULL in the syntax pass */
    size_t pool_used, pool_cap;
    bool too_deep;   /* the syntax error is nesting beyond BK_JSON_MAX_DEPTH */
    size_t top_keys; /* syntax pass: members of the top-level object */
    char err[160];   /* what is wrong, and where ("... at byte 12 of the header") */
} bk__json;

/* The byte at pos, or -1 at the end. */
static inline int bk__json_peek(const bk__json *j) {
    return j->pos < j->n ? (unsigned char)j->s[j->pos] : -1;
}
/* Skips white space. */
void bk__json_ws(bk__json *j);
/* The syntax pass over the whole text: one value and nothing after it. False with j->err
 * (and j->too_deep) set. Leaves pos at the end. */
bool bk__json_check(bk__json *j);
/* A string at pos. With a pool, its decoded bytes and a NUL are appended and *off (if not
 * NULL) says where they start. False with j->err set. */
bool bk__json_string(bk__json *j, size_t *off);
/* An array of plain non-negative integers at pos (syntax known to be valid). Stores the
 * first `max` in out and returns how many there are; -1 if the value is anything else,
 * -2 if an integer does not fit in 64 bits. */
long bk__json_uint_array(bk__json *j, uint64_t *out, int max);

/* Walking an object in the second pass (its syntax is known to be valid), '{' at pos:
 *     if (bk__json_object_open(j)) do {
 *         if (!bk__json_key(j, &key_off)) return false;
 *         ... read the value at pos ...
 *     } while (bk__json_object_more(j));
 * _open consumes the '{' (and the '}' of an empty object, returning false); _key decodes
 * the next key into the pool and leaves pos at its value; _more consumes the ',' that
 * announces another member (true) or the closing '}'. */
bool bk__json_object_open(bk__json *j);
bool bk__json_key(bk__json *j, size_t *off);
bool bk__json_object_more(bk__json *j);

/* Appends s (valid UTF-8) as a JSON string literal: only '"', '\\' and control characters
 * need escaping. */
void bk__json_quote(bk__str *b, const char *s);

#endif /* BRICK_IO_JSON_H */

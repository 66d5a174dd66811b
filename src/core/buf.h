/* buf.h - growable memory brick's own code shares (internal; not part of the API):
 * a string buffer and a growable array. Implemented in core/buf.c.
 */
#ifndef BRICK_CORE_BUF_H
#define BRICK_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>

/* A string being built. Two kinds:
 *   - growable (bk__str_init, or zero-initialised): p grows on the heap as needed; after an
 *     allocation failure it stops growing and sets oom (check once, at the end). Free p
 *     with bk__str_free.
 *   - fixed (bk__str_fixed): p is the caller's buffer of cap bytes; what does not fit is
 *     dropped, as by snprintf, and len still counts it (so a NULL buffer measures).
 * In both, p (when not NULL) is always NUL-terminated and len is the length the whole
 * text has. */
typedef struct bk__str {
    char *p;
    size_t len, cap;
    bool fixed;
    bool oom;
} bk__str;

/* A fixed buffer over buf[0..n) (buf may be NULL when n is 0). */
bk__str bk__str_fixed(char *buf, size_t n);
void bk__str_putn(bk__str *b, const char *s, size_t n);
void bk__str_puts(bk__str *b, const char *s);
void bk__str_printf(bk__str *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Appends item to a ", "-separated list of *count items (an empty item shows as "", so
 * that the reader sees it) and counts it. */
void bk__str_item(bk__str *b, int *count, const char *item);
/* Releases a growable buffer (nothing to do for a fixed one) and zeroes it. */
void bk__str_free(bk__str *b);

/* Makes room for one more element in a growable array *arr of *cap elements of elem bytes
 * holding n: doubles the capacity (from `first`) when n == *cap. False on out of memory or
 * overflow, with *arr and *cap unchanged (the caller sets the error: it knows who it is). */
bool bk__grow(void **arr, int n, int *cap, size_t elem, int first);

#endif /* BRICK_CORE_BUF_H */

/* buf.c - the string buffer and the growable array of core/buf.h.
 *
 * One of each for the whole library: the safetensors header writer, the state-dict and
 * checkpoint mismatch messages and the block printer build strings with bk__str; the
 * block registries, named-tensor lists and safetensors metadata grow with bk__grow.
 */
#include "internal.h"

#include "core/buf.h"

#include <stdint.h>

bk__str bk__str_fixed(char *buf, size_t n) {
    if (buf && n) buf[0] = '\0';
    return (bk__str){buf, 0, buf ? n : 0, true, false};
}

/* Room for `need` more bytes plus a NUL in a growable buffer; false (and oom) if not. */
static bool reserve(bk__str *b, size_t need) {
    if (b->oom) return false;
    if (need >= SIZE_MAX - b->len) {
        b->oom = true;
        return false;
    }
    if (b->len + need + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + need + 1) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = bk__realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p, b->cap = cap;
    return true;
}

void bk__str_putn(bk__str *b, const char *s, size_t n) {
    if (b->fixed) {
        size_t room = b->len < b->cap ? b->cap - b->len - 1 : 0; /* (cap 0: no room) */
        size_t k = n < room ? n : room;
        if (k) memcpy(b->p + b->len, s, k);
        if (b->len < b->cap) b->p[b->len + k] = '\0';
        b->len += n;
        return;
    }
    if (!reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void bk__str_puts(bk__str *b, const char *s) { bk__str_putn(b, s, strlen(s)); }

void bk__str_printf(bk__str *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k <= 0) return;
    if (b->fixed) {
        size_t room = b->len < b->cap ? b->cap - b->len : 0;
        va_start(ap, fmt);
        if (room) vsnprintf(b->p + b->len, room, fmt, ap);
        va_end(ap);
        b->len += (size_t)k;
        return;
    }
    if (!reserve(b, (size_t)k)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)k;
}

void bk__str_item(bk__str *b, int *count, const char *item) {
    if ((*count)++) bk__str_puts(b, ", ");
    bk__str_puts(b, item[0] ? item : "\"\"");
}

void bk__str_free(bk__str *b) {
    if (!b->fixed) bk__free(b->p);
    *b = (bk__str){NULL, 0, 0, false, false};
}

bool bk__grow(void **arr, int n, int *cap, size_t elem, int first) {
    if (n < *cap) return true;
    if (*cap > INT32_MAX / 2) return false;
    int nc = *cap ? *cap * 2 : first;
    if ((size_t)nc > SIZE_MAX / elem) return false;
    void *na = bk__realloc(*arr, (size_t)nc * elem);
    if (!na) return false;
    *arr = na;
    *cap = nc;
    return true;
}

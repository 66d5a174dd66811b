/* safetensors.c - reading and writing safetensors files, and module state dicts.
 *
 * The format (github.com/huggingface/safetensors):
 *
 *   [8 bytes: N, little-endian u64][N bytes: UTF-8 JSON header][data section]
 *
 * The header is a JSON object. Each key is a tensor name mapping to
 *   {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
 * with offsets in bytes from the start of the data section, end exclusive. The optional
 * key "__metadata__" maps to an object of string values. Data is little-endian, row-major.
 * Writers pad the header with spaces so that the data starts at a multiple of 8.
 *
 * Reading trusts nothing in the file:
 *   - the header length is checked against the file size (and a 100 MB cap, the reference
 *     implementation's) before the header is allocated;
 *   - the header is checked to be UTF-8, then parsed in two passes by the small JSON parser
 *     below, whose recursion is capped at JSON_MAX_DEPTH: a syntax pass that allocates
 *     nothing and counts the top-level keys, then a schema pass that extracts names,
 *     dtypes, shapes and offsets into tables sized by what the syntax pass found;
 *   - the tensors must tile the data section exactly (no overlap, no gap, nothing after
 *     the last one), so the tensors allocated add up to exactly the file's data bytes.
 * Every failure returns NULL with "safetensors: <path>: <what is wrong>".
 *
 * Writing is atomic (src/io/atomic_file.c): the bytes go to a new temporary file next to
 * the target, which is flushed, fsync'ed and renamed over the target only once complete.
 * On any failure the temporary file is removed and an existing file of that name is left
 * untouched; a save that is killed leaves "<path>.tmp.XXXXXX", which loads never look at
 * and the next successful save of the same path removes (docs/reliability.md).
 */
#define _XOPEN_SOURCE 700 /* fstat, fileno */

#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ST_MAX_HEADER 100000000u /* bytes; larger headers are refused, as by safetensors */
#define JSON_MAX_DEPTH 8         /* a valid header needs 3: file { tensor { shape [ */

/* One tensor of a loaded file. */
typedef struct st_entry {
    size_t name_off;   /* into the string pool while parsing */
    const char *name;  /* set once the pool is final */
    int order;         /* position of its key in the header */
    int ndim;
    int64_t shape[BK_MAX_DIMS];
    uint64_t begin, end; /* data_offsets */
    bk_tensor *t;
} st_entry;

typedef struct st_meta {
    size_t key_off, value_off;
    const char *key, *value;
} st_meta;

struct bk_safetensors {
    char *path;
    char *pool;           /* every decoded string of the header, NUL-terminated */
    int n;
    st_entry *entries;    /* in data order (= writing order for files brick wrote) */
    st_entry **by_name;   /* the same entries sorted by name, for lookups */
    int n_meta, cap_meta;
    st_meta *meta;        /* sorted by key */
};

/* ---- small helpers --------------------------------------------------------------------- */

/* Records "safetensors: <path>: <message>". Always returns false, for `return fail(...)`. */
static bool st_fail(const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static bool st_fail(const char *path, const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bk_set_error("safetensors: %s: %s", path, msg);
    return false;
}

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* Reverses the bytes of n 4-byte words in place (little-endian file <-> big-endian host). */
static void swap32(void *p, size_t n) {
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++, b += 4) {
        unsigned char t0 = b[0], t1 = b[1];
        b[0] = b[3];
        b[1] = b[2];
        b[2] = t1;
        b[3] = t0;
    }
}

/* The offset of the first byte of s[0..n) that is not valid UTF-8 (overlong forms,
 * surrogates and code points past U+10FFFF included), or n if all of it is valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0, len;
    uint32_t cp;
    while (i < n && (len = bk__utf8_next(s + i, n - i, &cp)) > 0) i += len;
    return i;
}

/* ---- JSON ------------------------------------------------------------------------------
 * Just enough JSON (RFC 8259) for a safetensors header. The same cursor serves both passes:
 * with pool == NULL strings are only validated, with a pool they are decoded into it. A
 * decoded string plus its NUL is never longer than its quoted source, so a pool of the
 * header's length always suffices. */

typedef struct json {
    const char *s;
    size_t n, pos;
    char *pool;        /* NULL in the syntax pass */
    size_t pool_used, pool_cap;
    bool too_deep;     /* the syntax error is nesting beyond JSON_MAX_DEPTH */
    size_t top_keys;   /* syntax pass: members of the top-level object */
    char err[160];     /* syntax pass: what is wrong, and where */
} json;

static int json_peek(const json *j) { return j->pos < j->n ? (unsigned char)j->s[j->pos] : -1; }

static void json_ws(json *j) {
    while (j->pos < j->n) {
        char c = j->s[j->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        j->pos++;
    }
}

static bool json_fail(json *j, const char *what) {
    if (!j->err[0]) {
        if (j->pos >= j->n)
            snprintf(j->err, sizeof j->err, "%s at the end of the header", what);
        else
            snprintf(j->err, sizeof j->err, "%s at byte %zu of the header", what, j->pos);
    }
    return false;
}

static bool json_put(json *j, unsigned char c) {
    if (!j->pool) return true;
    if (j->pool_used >= j->pool_cap) return json_fail(j, "string pool overflow"); /* cannot happen */
    j->pool[j->pool_used++] = (char)c;
    return true;
}

static bool json_hex4(json *j, uint32_t *out) {
    if (j->n - j->pos < 4) return json_fail(j, "truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char c = j->s[j->pos + (size_t)k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return json_fail(j, "invalid \\u escape");
        v = v << 4 | (uint32_t)d;
    }
    j->pos += 4;
    *out = v;
    return true;
}

/* A \uXXXX escape (the "\u" already consumed), surrogate pairs joined, as UTF-8. */
static bool json_unicode_escape(json *j) {
    uint32_t cp, lo;
    if (!json_hex4(j, &cp)) return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return json_fail(j, "lone low surrogate in a \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (j->n - j->pos < 2 || j->s[j->pos] != '\\' || j->s[j->pos + 1] != 'u')
            return json_fail(j, "lone high surrogate in a \\u escape");
        j->pos += 2;
        if (!json_hex4(j, &lo)) return false;
        if (lo < 0xDC00 || lo > 0xDFFF) return json_fail(j, "invalid surrogate pair in a \\u escape");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp == 0) return json_fail(j, "\\u0000 (NUL) in a string");
    bool ok = true;
    if (cp < 0x80) {
        ok = json_put(j, (unsigned char)cp);
    } else if (cp < 0x800) {
        ok = json_put(j, (unsigned char)(0xC0 | cp >> 6)) &&
             json_put(j, (unsigned char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        ok = json_put(j, (unsigned char)(0xE0 | cp >> 12)) &&
             json_put(j, (unsigned char)(0x80 | (cp >> 6 & 0x3F))) &&
             json_put(j, (unsigned char)(0x80 | (cp & 0x3F)));
    } else {
        ok = json_put(j, (unsigned char)(0xF0 | cp >> 18)) &&
             json_put(j, (unsigned char)(0x80 | (cp >> 12 & 0x3F))) &&
             json_put(j, (unsigned char)(0x80 | (cp >> 6 & 0x3F))) &&
             json_put(j, (unsigned char)(0x80 | (cp & 0x3F)));
    }
    return ok;
}

/* A string at pos. With a pool, its decoded bytes and a NUL are appended and *off (if not
 * NULL) says where they start. The header is already known to be valid UTF-8. */
static bool json_string(json *j, size_t *off) {
    if (json_peek(j) != '"') return json_fail(j, "expected a string");
    j->pos++;
    size_t start = j->pool_used;
    for (;;) {
        if (j->pos >= j->n) return json_fail(j, "unterminated string");
        unsigned char c = (unsigned char)j->s[j->pos];
        if (c < 0x20) return json_fail(j, "control character in a string");
        j->pos++;
        if (c == '"') break;
        if (c != '\\') {
            if (!json_put(j, c)) return false;
            continue;
        }
        if (j->pos >= j->n) return json_fail(j, "unterminated string");
        c = (unsigned char)j->s[j->pos++];
        bool ok;
        switch (c) {
        case '"': case '\\': case '/': ok = json_put(j, c); break;
        case 'b': ok = json_put(j, '\b'); break;
        case 'f': ok = json_put(j, '\f'); break;
        case 'n': ok = json_put(j, '\n'); break;
        case 'r': ok = json_put(j, '\r'); break;
        case 't': ok = json_put(j, '\t'); break;
        case 'u': ok = json_unicode_escape(j); break;
        default: j->pos--; return json_fail(j, "invalid escape in a string");
        }
        if (!ok) return false;
    }
    if (!json_put(j, '\0')) return false;
    if (off) *off = start;
    return true;
}

static bool json_digits(json *j) {
    if (json_peek(j) < '0' || json_peek(j) > '9') return json_fail(j, "invalid number");
    while (json_peek(j) >= '0' && json_peek(j) <= '9') j->pos++;
    return true;
}

/* A number at pos. *is_uint: it is a plain non-negative integer (no sign, fraction or
 * exponent), whose value is *u; *big: it does not fit in 64 bits (*u is then UINT64_MAX). */
static bool json_number(json *j, bool *is_uint, uint64_t *u, bool *big_out) {
    bool neg = false, frac = false, big = false;
    uint64_t v = 0;
    if (json_peek(j) == '-') neg = true, j->pos++;
    if (json_peek(j) == '0') {
        j->pos++;
    } else if (json_peek(j) >= '1' && json_peek(j) <= '9') {
        while (json_peek(j) >= '0' && json_peek(j) <= '9') {
            unsigned d = (unsigned)(json_peek(j) - '0');
            if (v > (UINT64_MAX - d) / 10) big = true;
            else v = v * 10 + d;
            j->pos++;
        }
    } else {
        return json_fail(j, "invalid number");
    }
    if (json_peek(j) == '.') {
        j->pos++, frac = true;
        if (!json_digits(j)) return false;
    }
    if (json_peek(j) == 'e' || json_peek(j) == 'E') {
        j->pos++, frac = true;
        if (json_peek(j) == '+' || json_peek(j) == '-') j->pos++;
        if (!json_digits(j)) return false;
    }
    *is_uint = !neg && !frac;
    *u = big ? UINT64_MAX : v;
    *big_out = big;
    return true;
}

/* The syntax pass: validates one value at pos (depth 1 = the top level) and moves past it.
 * Recursion is capped at JSON_MAX_DEPTH, so hostile nesting cannot exhaust the stack. */
static bool json_skip(json *j, int depth) {
    json_ws(j);
    int c = json_peek(j);
    if (c == '{' || c == '[') {
        if (depth > JSON_MAX_DEPTH) {
            j->too_deep = true;
            return json_fail(j, "a deeper level opens");
        }
        int close = c == '{' ? '}' : ']';
        j->pos++;
        json_ws(j);
        if (json_peek(j) == close) {
            j->pos++;
            return true;
        }
        for (;;) {
            if (c == '{') {
                json_ws(j);
                if (!json_string(j, NULL)) return false;
                json_ws(j);
                if (json_peek(j) != ':') return json_fail(j, "expected ':' after an object key");
                j->pos++;
                if (depth == 1) j->top_keys++;
            }
            if (!json_skip(j, depth + 1)) return false;
            json_ws(j);
            int d = json_peek(j);
            j->pos++;
            if (d == ',') continue;
            if (d == close) return true;
            j->pos--;
            return json_fail(j, c == '{' ? "expected ',' or '}' in an object"
                                         : "expected ',' or ']' in an array");
        }
    }
    if (c == '"') return json_string(j, NULL);
    if (c == '-' || (c >= '0' && c <= '9')) {
        bool is_uint, big;
        uint64_t u;
        return json_number(j, &is_uint, &u, &big);
    }
    static const char *const literals[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        size_t len = strlen(literals[k]);
        if (j->n - j->pos >= len && memcmp(j->s + j->pos, literals[k], len) == 0) {
            j->pos += len;
            return true;
        }
    }
    return json_fail(j, c < 0 ? "unexpected end" : "unexpected character");
}

/* Schema pass (the syntax is known to be valid): an array of plain non-negative integers.
 * Stores the first `max` in out and returns how many there are; -1 if the value is
 * anything else, -2 if an integer does not fit in 64 bits. */
static long json_uint_array(json *j, uint64_t *out, int max) {
    if (json_peek(j) != '[') return -1;
    j->pos++;
    json_ws(j);
    if (json_peek(j) == ']') {
        j->pos++;
        return 0;
    }
    for (long count = 0;; count++) {
        json_ws(j);
        if (json_peek(j) < '0' || json_peek(j) > '9') return -1;
        bool is_uint, big;
        uint64_t v;
        if (!json_number(j, &is_uint, &v, &big) || !is_uint) return -1;
        if (big) return -2;
        if (count < max) out[count] = v;
        json_ws(j);
        int c = json_peek(j);
        j->pos++;
        if (c == ']') return count + 1;
        if (c != ',') return -1;
    }
}

/* ---- reading ----------------------------------------------------------------------------- */

/* dtypes of the safetensors format that brick recognises but cannot read. */
static const char *const OTHER_DTYPES[] = {
    "BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F64", "I64", "U64",
    "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64",
};

static bool check_dtype(const char *path, const char *name, const char *dtype) {
    if (strcmp(dtype, "F32") == 0) return true;
    for (size_t k = 0; k < sizeof OTHER_DTYPES / sizeof *OTHER_DTYPES; k++)
        if (strcmp(dtype, OTHER_DTYPES[k]) == 0)
            return st_fail(path, "dtype %s of tensor '%s' is not supported (brick reads F32)",
                           dtype, name);
    return st_fail(path, "unknown dtype '%s' of tensor '%s'", dtype, name);
}

/* Checks a tensor's parsed shape and offsets against each other and the data size. */
static bool check_entry(const char *path, st_entry *e, const char *name, const uint64_t *dims,
                        long ndim, const uint64_t *offs, long n_offs, uint64_t data_size) {
    if (ndim < 0) return st_fail(path, "shape of tensor '%s' is not a list of non-negative integers", name);
    if (ndim > BK_MAX_DIMS)
        return st_fail(path, "tensor '%s' has %ld dimensions; brick supports at most %d", name,
                       ndim, BK_MAX_DIMS);
    int64_t numel = 1, bytes;
    e->ndim = (int)ndim;
    for (int i = 0; i < e->ndim; i++) {
        if (dims[i] > (uint64_t)INT64_MAX || !bk__mul_ok(numel, (int64_t)dims[i], &numel))
            return st_fail(path, "shape of tensor '%s' overflows: its element count does not "
                           "fit in 64 bits", name);
        e->shape[i] = (int64_t)dims[i];
    }
    if (!bk__mul_ok(numel, (int64_t)sizeof(float), &bytes))
        return st_fail(path, "shape of tensor '%s' overflows: its byte size does not fit in "
                       "64 bits", name);
    if (n_offs != 2)
        return st_fail(path, "data_offsets of tensor '%s' must be two non-negative integers "
                       "[begin, end]", name);
    e->begin = offs[0], e->end = offs[1];
    if (e->begin > e->end)
        return st_fail(path, "data_offsets of tensor '%s' have begin %" PRIu64 " > end %" PRIu64,
                       name, e->begin, e->end);
    if (e->end > data_size)
        return st_fail(path, "data_offsets [%" PRIu64 ", %" PRIu64 "] of tensor '%s' go past "
                       "the end of the file (its data section has %" PRIu64 " bytes)",
                       e->begin, e->end, name, data_size);
    if (e->end - e->begin != (uint64_t)bytes) {
        char s[256];
        return st_fail(path, "tensor '%s' of shape %s and dtype F32 needs %" PRId64 " bytes, but "
                       "its data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64, name,
                       bk__shape_fmt(e->ndim, e->shape, s, sizeof s), bytes, e->begin, e->end,
                       e->end - e->begin);
    }
    return true;
}

/* One tensor's entry {"dtype": ..., "shape": ..., "data_offsets": ...}, at pos. */
static bool parse_tensor(bk_safetensors *st, json *j, size_t name_off, uint64_t data_size) {
    const char *path = st->path, *name = j->pool + name_off;
    if (json_peek(j) != '{')
        return st_fail(path, "entry '%s' is not an object {\"dtype\", \"shape\", "
                       "\"data_offsets\"}", name);
    st_entry *e = &st->entries[st->n];
    memset(e, 0, sizeof *e);
    e->name_off = name_off;
    e->order = st->n;
    static const char *const fields[3] = {"dtype", "shape", "data_offsets"};
    bool seen[3] = {false, false, false};
    uint64_t dims[BK_MAX_DIMS], offs[2];
    long ndim = -1, n_offs = -1;

    j->pos++;
    json_ws(j);
    bool more = json_peek(j) != '}';
    if (!more) j->pos++;
    while (more) {
        size_t key_off;
        json_ws(j);
        if (!json_string(j, &key_off)) return false;
        json_ws(j);
        j->pos++; /* ':' */
        json_ws(j);
        const char *key = j->pool + key_off;
        int f = 0;
        while (f < 3 && strcmp(key, fields[f]) != 0) f++;
        if (f == 3) return st_fail(path, "tensor '%s' has unexpected field '%s'", name, key);
        if (seen[f]) return st_fail(path, "tensor '%s' has field '%s' twice", name, key);
        seen[f] = true;
        if (f == 0) {
            size_t dtype_off;
            if (json_peek(j) != '"') return st_fail(path, "dtype of tensor '%s' is not a string", name);
            if (!json_string(j, &dtype_off)) return false;
            if (!check_dtype(path, name, j->pool + dtype_off)) return false;
        } else if (f == 1) {
            ndim = json_uint_array(j, dims, BK_MAX_DIMS);
            if (ndim == -2)
                return st_fail(path, "shape of tensor '%s' overflows: a dimension does not fit "
                               "in 64 bits", name);
            if (ndim < 0)
                return st_fail(path, "shape of tensor '%s' is not a list of non-negative integers", name);
        } else {
            n_offs = json_uint_array(j, offs, 2);
            if (n_offs == -2)
                return st_fail(path, "data_offsets of tensor '%s' do not fit in 64 bits", name);
            if (n_offs != 2)
                return st_fail(path, "data_offsets of tensor '%s' must be two non-negative "
                               "integers [begin, end]", name);
        }
        j->pool_used = key_off; /* the field name and dtype are not kept */
        json_ws(j);
        more = j->s[j->pos++] == ','; /* else '}' */
    }
    for (int f = 0; f < 3; f++)
        if (!seen[f]) return st_fail(path, "tensor '%s' is missing field '%s'", name, fields[f]);
    if (!check_entry(path, e, name, dims, ndim, offs, n_offs, data_size)) return false;
    st->n++;
    return true;
}

/* The "__metadata__" object of strings, at pos. */
static bool parse_metadata(bk_safetensors *st, json *j) {
    if (json_peek(j) != '{') return st_fail(st->path, "__metadata__ is not an object of strings");
    j->pos++;
    json_ws(j);
    if (json_peek(j) == '}') {
        j->pos++;
        return true;
    }
    for (;;) {
        size_t key_off, value_off;
        json_ws(j);
        if (!json_string(j, &key_off)) return false;
        json_ws(j);
        j->pos++; /* ':' */
        json_ws(j);
        if (json_peek(j) != '"')
            return st_fail(st->path, "metadata value of '%s' is not a string", j->pool + key_off);
        if (!json_string(j, &value_off)) return false;
        if (st->n_meta == st->cap_meta) {
            /* at most one entry per 6 header bytes, so this cannot overflow */
            int cap = st->cap_meta ? 2 * st->cap_meta : 8;
            st_meta *m = bk__realloc(st->meta, (size_t)cap * sizeof *m);
            if (!m) return st_fail(st->path, "out of memory");
            st->meta = m, st->cap_meta = cap;
        }
        st->meta[st->n_meta++] = (st_meta){key_off, value_off, NULL, NULL};
        json_ws(j);
        if (j->s[j->pos++] == '}') return true; /* else ',' */
    }
}

/* The schema pass over the top-level object. */
static bool parse_header(bk_safetensors *st, json *j, uint64_t data_size) {
    bool seen_meta = false;
    json_ws(j);
    j->pos++; /* '{' */
    json_ws(j);
    if (json_peek(j) == '}') return true;
    for (;;) {
        size_t key_off;
        json_ws(j);
        if (!json_string(j, &key_off)) return false;
        json_ws(j);
        j->pos++; /* ':' */
        json_ws(j);
        if (strcmp(j->pool + key_off, "__metadata__") == 0) {
            if (seen_meta) return st_fail(st->path, "duplicate key '__metadata__'");
            seen_meta = true;
            j->pool_used = key_off;
            if (!parse_metadata(st, j)) return false;
        } else if (!parse_tensor(st, j, key_off, data_size)) {
            return false;
        }
        json_ws(j);
        if (j->s[j->pos++] == '}') return true; /* else ',' */
    }
}

static int cmp_entry_data_order(const void *pa, const void *pb) {
    const st_entry *a = pa, *b = pb;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    if (a->end != b->end) return a->end < b->end ? -1 : 1;
    return (a->order > b->order) - (a->order < b->order);
}

static int cmp_entry_name(const void *pa, const void *pb) {
    const st_entry *const *a = pa, *const *b = pb;
    return strcmp((*a)->name, (*b)->name);
}

static int cmp_meta_key(const void *pa, const void *pb) {
    const st_meta *a = pa, *b = pb;
    return strcmp(a->key, b->key);
}

/* After parsing: makes the pool final, orders the entries, and checks the names are unique
 * and the tensors tile the data section exactly. */
static bool finish_header(bk_safetensors *st, json *j, uint64_t data_size) {
    const char *path = st->path;
    if (j->pool_used > 0 && j->pool_used < j->pool_cap) { /* drop the padding's share */
        char *p = bk__realloc(st->pool, j->pool_used);
        if (p) st->pool = p;
    }
    for (int i = 0; i < st->n; i++) st->entries[i].name = st->pool + st->entries[i].name_off;
    for (int i = 0; i < st->n_meta; i++) {
        st->meta[i].key = st->pool + st->meta[i].key_off;
        st->meta[i].value = st->pool + st->meta[i].value_off;
    }

    if (st->n_meta > 1) {
        qsort(st->meta, (size_t)st->n_meta, sizeof *st->meta, cmp_meta_key);
        for (int i = 1; i < st->n_meta; i++)
            if (strcmp(st->meta[i - 1].key, st->meta[i].key) == 0)
                return st_fail(path, "duplicate metadata key '%s'", st->meta[i].key);
    }

    if (st->n > 1) qsort(st->entries, (size_t)st->n, sizeof *st->entries, cmp_entry_data_order);
    st->by_name = bk__malloc((size_t)st->n * sizeof *st->by_name + 1);
    if (!st->by_name) return st_fail(path, "out of memory");
    for (int i = 0; i < st->n; i++) st->by_name[i] = &st->entries[i];
    if (st->n > 1) qsort(st->by_name, (size_t)st->n, sizeof *st->by_name, cmp_entry_name);
    for (int i = 1; i < st->n; i++)
        if (strcmp(st->by_name[i - 1]->name, st->by_name[i]->name) == 0)
            return st_fail(path, "duplicate tensor name '%s'", st->by_name[i]->name);

    uint64_t covered = 0; /* the data section is tiled up to here */
    for (int i = 0; i < st->n; i++) {
        const st_entry *e = &st->entries[i];
        if (e->begin < covered) {
            const st_entry *prev = &st->entries[i - 1];
            return st_fail(path, "tensor '%s' (data_offsets [%" PRIu64 ", %" PRIu64 "]) overlaps "
                           "tensor '%s' (data_offsets [%" PRIu64 ", %" PRIu64 "])", e->name,
                           e->begin, e->end, prev->name, prev->begin, prev->end);
        }
        if (e->begin > covered)
            return st_fail(path, "data_offsets leave a gap of %" PRIu64 " bytes before tensor "
                           "'%s' (data_offsets [%" PRIu64 ", %" PRIu64 "])", e->begin - covered,
                           e->name, e->begin, e->end);
        covered = e->end;
    }
    if (covered != data_size)
        return st_fail(path, "%" PRIu64 " bytes after the last tensor (the tensors end at data "
                       "byte %" PRIu64 " of %" PRIu64 ")", data_size - covered, covered, data_size);
    return true;
}

/* Reads n bytes; on a short read says whether the file ended or the read failed. */
static bool read_exact(FILE *f, void *buf, size_t n, const char *path, const char *what) {
    if (n == 0 || fread(buf, 1, n, f) == n) return true;
    if (ferror(f)) return st_fail(path, "cannot read %s: %s", what, strerror(errno));
    return st_fail(path, "the file ended while reading %s (was it truncated while open?)", what);
}

bk_safetensors *bk_safetensors_load(const char *path) {
    if (!path) {
        bk_set_error("safetensors: load: path is NULL");
        return NULL;
    }
    bk_safetensors *st = NULL;
    char *header = NULL;
    char why[256];
    FILE *f = bk__open_regular(path, why, sizeof why); /* never blocks (a FIFO is refused) */
    if (!f) {
        st_fail(path, "%s", why);
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        st_fail(path, "cannot stat: %s", strerror(errno));
        goto fail;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        st_fail(path, "file is too short (%" PRIu64 " bytes) to hold the 8-byte header length", size);
        goto fail;
    }

    unsigned char len8[8];
    if (!read_exact(f, len8, 8, path, "the header length")) goto fail;
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = hlen << 8 | len8[k];
    if (hlen == 0) {
        st_fail(path, "header length is 0");
        goto fail;
    }
    if (hlen > ST_MAX_HEADER) {
        st_fail(path, "header length %" PRIu64 " exceeds the limit of %u bytes", hlen, ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > size - 8) {
        st_fail(path, "header length %" PRIu64 " goes past the end of the file (%" PRIu64 " bytes)",
                hlen, size);
        goto fail;
    }
    uint64_t data_size = size - 8 - hlen;

    header = bk__malloc((size_t)hlen);
    if (!header) {
        st_fail(path, "out of memory for a %" PRIu64 "-byte header", hlen);
        goto fail;
    }
    if (!read_exact(f, header, (size_t)hlen, path, "the header")) goto fail;
    size_t bad = utf8_invalid_at((const unsigned char *)header, (size_t)hlen);
    if (bad < hlen) {
        st_fail(path, "header is not valid UTF-8 (byte %zu)", bad);
        goto fail;
    }

    json j = {.s = header, .n = (size_t)hlen};
    bool ok = json_skip(&j, 1);
    if (ok) {
        json_ws(&j);
        if (j.pos < j.n) ok = json_fail(&j, "unexpected data after the top-level value");
    }
    if (!ok) {
        if (j.too_deep)
            st_fail(path, "header is nested deeper than %d levels (%s)", JSON_MAX_DEPTH, j.err);
        else
            st_fail(path, "header is not valid JSON: %s", j.err);
        goto fail;
    }
    j.pos = 0;
    json_ws(&j);
    if (json_peek(&j) != '{') {
        st_fail(path, "header is not a JSON object");
        goto fail;
    }
    if (j.top_keys > INT_MAX || j.top_keys > (SIZE_MAX - 1) / sizeof(st_entry)) {
        st_fail(path, "header has too many tensors (%zu)", j.top_keys);
        goto fail;
    }

    st = bk__calloc(1, sizeof *st);
    if (!st || !(st->path = bk__strdup(path))) {
        st_fail(path, "out of memory");
        goto fail;
    }
    /* Sizes proven by the syntax pass: one entry per top-level key, one pool byte per
     * header byte. */
    st->entries = bk__malloc(j.top_keys * sizeof *st->entries + 1);
    st->pool = bk__malloc((size_t)hlen + 1);
    if (!st->entries || !st->pool) {
        st_fail(path, "out of memory");
        goto fail;
    }
    j.pool = st->pool, j.pool_cap = (size_t)hlen + 1;
    if (!parse_header(st, &j, data_size)) {
        if (j.err[0]) st_fail(path, "header: %s", j.err); /* cannot happen after the syntax pass */
        goto fail;
    }
    bk__free(header);
    header = NULL;
    if (!finish_header(st, &j, data_size)) goto fail;

    /* The tensors tile the data section in this order, so they are read front to back. */
    for (int i = 0; i < st->n; i++) {
        st_entry *e = &st->entries[i];
        e->t = bk_tensor_new(e->ndim, e->shape);
        if (!e->t) {
            bk__error_prefix("safetensors: %s: tensor '%s'", path, e->name);
            goto fail;
        }
        char what[300];
        snprintf(what, sizeof what, "tensor '%s'", e->name);
        if (!read_exact(f, e->t->data, (size_t)(e->end - e->begin), path, what)) goto fail;
        if (!host_is_little_endian()) swap32(e->t->data, (size_t)e->t->numel);
    }
    fclose(f);
    return st;

fail:
    bk__free(header);
    bk_safetensors_free(st);
    fclose(f);
    return NULL;
}

void bk_safetensors_free(bk_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) bk_tensor_free(st->entries[i].t);
    bk__free(st->entries);
    bk__free(st->by_name);
    bk__free(st->meta);
    bk__free(st->pool);
    bk__free(st->path);
    bk__free(st);
}

const char *bk__safetensors_path(const bk_safetensors *st) { return st ? st->path : "(NULL)"; }

int bk_safetensors_count(const bk_safetensors *st) {
    if (!st) {
        bk_set_error("safetensors_count: file is NULL");
        return -1;
    }
    return st->n;
}

const char *bk_safetensors_name(const bk_safetensors *st, int i) {
    if (!st) {
        bk_set_error("safetensors_name: file is NULL");
        return NULL;
    }
    if (i < 0 || i >= st->n) {
        bk_set_error("safetensors: %s: index %d is out of range (%d tensors)", st->path, i, st->n);
        return NULL;
    }
    return st->entries[i].name;
}

static st_entry *find_entry(const bk_safetensors *st, const char *name) {
    st_entry key, *pkey = &key;
    key.name = name;
    st_entry **hit = st->n > 0 ? bsearch(&pkey, st->by_name, (size_t)st->n, sizeof *st->by_name,
                                         cmp_entry_name)
                               : NULL;
    return hit ? *hit : NULL;
}

bk_tensor *bk_safetensors_get(const bk_safetensors *st, const char *name) {
    if (!st || !name) {
        bk_set_error("safetensors_get: %s is NULL", st ? "name" : "file");
        return NULL;
    }
    st_entry *e = find_entry(st, name);
    if (!e) {
        bk_set_error("safetensors: %s: no tensor named '%s'", st->path, name);
        return NULL;
    }
    return e->t;
}

const char *bk_safetensors_meta(const bk_safetensors *st, const char *key) {
    if (!st || !key) {
        bk_set_error("safetensors_meta: %s is NULL", st ? "key" : "file");
        return NULL;
    }
    st_meta k = {.key = key};
    const st_meta *hit = st->n_meta > 0 ? bsearch(&k, st->meta, (size_t)st->n_meta,
                                                  sizeof *st->meta, cmp_meta_key)
                                        : NULL;
    return hit ? hit->value : NULL;
}

/* ---- writing ----------------------------------------------------------------------------- */

/* A growable string; after an allocation failure it stops growing and sets oom. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (n >= SIZE_MAX - b->len) {
        b->oom = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *p = bk__realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

/* s as a JSON string literal. s is valid UTF-8, so only '"', '\\' and control characters
 * need escaping. */
static void sb_json_string(sbuf *b, const char *s) {
    sb_putn(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            sb_putn(b, esc, 2);
        } else if (c < 0x20) {
            const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r"
                              : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
            if (named) {
                sb_puts(b, named);
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                sb_puts(b, esc);
            }
        } else {
            sb_putn(b, (const char *)&c, 1);
        }
    }
    sb_putn(b, "\"", 1);
}

static void sb_u64(sbuf *b, uint64_t v) {
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    sb_puts(b, s);
}

static int cmp_str_ptr(const void *pa, const void *pb) {
    return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

/* Names, keys or values are valid UTF-8 (so that readers accept the file) and, if
 * `unique`, all different. */
static bool check_names(const char *path, int n, const char *const *names, const char *what,
                        bool unique) {
    for (int i = 0; i < n; i++) {
        if (!names[i]) return st_fail(path, "%s %d is NULL", what, i);
        size_t len = strlen(names[i]);
        if (utf8_invalid_at((const unsigned char *)names[i], len) < len)
            return st_fail(path, "%s '%s' is not valid UTF-8", what, names[i]);
    }
    if (!unique || n < 2) return true;
    const char **sorted = bk__malloc((size_t)n * sizeof *sorted);
    if (!sorted) return st_fail(path, "out of memory");
    memcpy(sorted, names, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str_ptr);
    for (int i = 1; i < n; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            st_fail(path, "duplicate %s '%s'", what, sorted[i]);
            bk__free(sorted);
            return false;
        }
    }
    bk__free(sorted);
    return true;
}

/* The JSON header for the given tensors and metadata, space-padded to a multiple of 8. */
static bool build_header(sbuf *h, const char *path, int n, const char *const *names,
                         const bk_tensor *const *tensors, int n_meta, const char *const *keys,
                         const char *const *values, uint64_t *data_bytes) {
    uint64_t offset = 0;
    sb_puts(h, "{");
    if (n_meta > 0) {
        sb_puts(h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_puts(h, ",");
            sb_json_string(h, keys[i]);
            sb_puts(h, ":");
            sb_json_string(h, values[i]);
        }
        sb_puts(h, "}");
    }
    for (int i = 0; i < n; i++) {
        const bk_tensor *t = tensors[i];
        uint64_t bytes = (uint64_t)t->numel * sizeof(float); /* numel < 2^63 / 4 (tensor_new) */
        if (i || n_meta > 0) sb_puts(h, ",");
        sb_json_string(h, names[i]);
        sb_puts(h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_puts(h, ",");
            sb_u64(h, (uint64_t)t->shape[d]);
        }
        sb_puts(h, "],\"data_offsets\":[");
        sb_u64(h, offset);
        sb_puts(h, ",");
        if (bytes > UINT64_MAX - offset) return st_fail(path, "total data size overflows");
        offset += bytes;
        sb_u64(h, offset);
        sb_puts(h, "]}");
    }
    sb_puts(h, "}");
    while (!h->oom && h->len % 8 != 0) sb_puts(h, " ");
    if (h->oom) return st_fail(path, "out of memory building the header");
    if (h->len > ST_MAX_HEADER)
        return st_fail(path, "header would be %zu bytes, over the %u-byte limit of readers",
                       h->len, ST_MAX_HEADER);
    *data_bytes = offset;
    return true;
}

/* Writes n floats little-endian. */
static bool write_f32(FILE *f, const float *x, size_t n) {
    if (n == 0) return true;
    if (host_is_little_endian()) return fwrite(x, sizeof(float), n, f) == n;
    unsigned char buf[4096];
    while (n > 0) {
        size_t k = n < sizeof buf / 4 ? n : sizeof buf / 4;
        memcpy(buf, x, k * 4);
        swap32(buf, k);
        if (fwrite(buf, 4, k, f) != k) return false;
        x += k, n -= k;
    }
    return true;
}

int bk_safetensors_save(const char *path, int n, const char *const *names,
                        const bk_tensor *const *tensors, int n_meta,
                        const char *const *meta_keys, const char *const *meta_values) {
    if (!path) {
        bk_set_error("safetensors: save: path is NULL");
        return -1;
    }
    if (n < 0 || n_meta < 0) return st_fail(path, "negative tensor or metadata count"), -1;
    if (n > 0 && (!names || !tensors)) return st_fail(path, "names or tensors is NULL"), -1;
    if (n_meta > 0 && (!meta_keys || !meta_values))
        return st_fail(path, "metadata keys or values is NULL"), -1;
    for (int i = 0; i < n; i++) {
        const bk_tensor *t = tensors[i];
        const char *name = names[i] ? names[i] : "(NULL)";
        if (!t) return st_fail(path, "tensor '%s' (#%d) is NULL", name, i), -1;
        if (t->magic != BK_TENSOR_MAGIC)
            return st_fail(path, "tensor '%s' (#%d) is not a live tensor", name, i), -1;
        if (names[i] && strcmp(names[i], "__metadata__") == 0)
            return st_fail(path, "'__metadata__' is reserved and cannot name a tensor"), -1;
    }
    if (!check_names(path, n, names, "tensor name", true) ||
        !check_names(path, n_meta, meta_keys, "metadata key", true) ||
        !check_names(path, n_meta, meta_values, "metadata value", false))
        return -1;

    sbuf h = {NULL, 0, 0, false};
    uint64_t data_bytes;
    if (!build_header(&h, path, n, names, tensors, n_meta, meta_keys, meta_values, &data_bytes)) {
        bk__free(h.p);
        return -1;
    }

    bk__atomic_file a;
    FILE *f = bk__atomic_open(&a, path, "safetensors");
    if (!f) {
        bk__free(h.p);
        return -1;
    }
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)h.len >> (8 * k));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.p, 1, h.len, f) == h.len;
    for (int i = 0; ok && i < n; i++) ok = write_f32(f, tensors[i]->data, (size_t)tensors[i]->numel);
    bk__free(h.p);
    if (!ok) return bk__atomic_fail(&a, "write"), -1;
    return bk__atomic_commit(&a);
}

/* ---- module state dicts ------------------------------------------------------------------ */

int bk_module_save(const bk_module *m, const char *path) {
    if (!bk__module_ok(m, "module_save")) return -1;
    bk_param_list *l = bk_module_named(m, BK_STATE);
    if (!l) return -1;
    /* "format": "pt" is what transformers' loaders look for in a PyTorch checkpoint. */
    static const char *const keys[] = {"format"}, *const values[] = {"pt"};
    int rc = bk_safetensors_save(path, l->n, (const char *const *)l->names,
                                 (const bk_tensor *const *)l->tensors, 1, keys, values);
    bk_param_list_free(l);
    return rc;
}

int bk_module_load(bk_module *m, const char *path, bool strict) {
    if (!bk__module_ok(m, "load_state_dict")) return -1;
    bk_safetensors *st = bk_safetensors_load(path);
    if (!st) return -1;
    int rc = bk_module_load_from(m, st, strict);
    bk_safetensors_free(st);
    return rc;
}

/* Appends "<sep>item" to a comma-separated list of n items (an empty name shows as ""). */
static void list_add(sbuf *b, int *n, const char *item) {
    if ((*n)++) sb_puts(b, ", ");
    sb_puts(b, item[0] ? item : "\"\"");
}

int bk_module_load_from(bk_module *m, const bk_safetensors *st, bool strict) {
    if (!bk__module_ok(m, "load_state_dict")) return -1;
    if (!st) {
        bk_set_error("load_state_dict: file is NULL");
        return -1;
    }
    bk_param_list *l = bk_module_named(m, BK_STATE);
    if (!l) return -1;
    int rc = -1;
    sbuf missing = {0}, unexpected = {0}, mismatch = {0}, msg = {0};
    int n_missing = 0, n_unexpected = 0, n_mismatch = 0; /* (a name may be "") */
    const st_entry **found = bk__calloc((size_t)l->n + 1, sizeof *found);
    bool *used = bk__calloc((size_t)st->n + 1, sizeof *used);
    if (!found || !used) {
        bk_set_error("load_state_dict: %s: out of memory", st->path);
        goto done;
    }

    /* Match every name of the module against the file; nothing is changed yet. */
    for (int i = 0; i < l->n; i++) {
        const bk_tensor *t = l->tensors[i];
        const st_entry *e = find_entry(st, l->names[i]);
        if (!e) {
            list_add(&missing, &n_missing, l->names[i]);
            continue;
        }
        used[e - st->entries] = true;
        bool same = e->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
        if (!same) {
            char a[256], b[256], item[1024];
            snprintf(item, sizeof item, "%s %s in file vs %s in model", l->names[i],
                     bk__shape_fmt(e->ndim, e->shape, a, sizeof a),
                     bk__shape_fmt(t->ndim, t->shape, b, sizeof b));
            list_add(&mismatch, &n_mismatch, item);
            continue;
        }
        found[i] = e;
    }
    for (int k = 0; k < st->n; k++)
        if (!used[k]) list_add(&unexpected, &n_unexpected, st->entries[k].name);

    bool bad = n_mismatch > 0 || (strict && (n_missing > 0 || n_unexpected > 0));
    if (bad) {
        sb_puts(&msg, "load_state_dict: ");
        sb_puts(&msg, st->path);
        sb_puts(&msg, ": ");
        size_t head = msg.len;
        const sbuf *parts[3] = {&missing, &unexpected, &mismatch};
        const int counts[3] = {n_missing, n_unexpected, n_mismatch};
        const char *labels[3] = {"missing: ", "unexpected: ", "shape mismatch: "};
        for (int p = 0; p < 3; p++) {
            if (counts[p] == 0 || (p < 2 && !strict)) continue;
            if (msg.len > head) sb_puts(&msg, "; ");
            sb_puts(&msg, labels[p]);
            sb_puts(&msg, parts[p]->p);
        }
        if (missing.oom || unexpected.oom || mismatch.oom || msg.oom)
            bk_set_error("load_state_dict: %s: the state dict does not match the module (out of "
                         "memory while listing the differences)", st->path);
        else
            bk_set_error("%s", msg.p);
        goto done;
    }

    /* Everything matches: copy. */
    for (int i = 0; i < l->n; i++)
        if (found[i] && l->tensors[i]->numel > 0)
            memcpy(l->tensors[i]->data, found[i]->t->data,
                   (size_t)l->tensors[i]->numel * sizeof(float));
    rc = 0;

done:
    bk__free(missing.p);
    bk__free(unexpected.p);
    bk__free(mismatch.p);
    bk__free(msg.p);
    bk__free(found);
    bk__free(used);
    bk_param_list_free(l);
    return rc;
}

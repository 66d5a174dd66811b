/* safetensors.c - the safetensors format: reading and writing files of named tensors.
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
 * brick writes F32 only. It reads F32 and the dtypes PyTorch's state dicts hold, each
 * converted to float32 as it is read: F64 (rounded to nearest; beyond float's range it
 * becomes an infinity), F16 and BF16 (exactly: every value, subnormals, infinities and
 * NaNs included, is a float32), I64 and I32 (integer buffers such as BatchNorm's
 * num_batches_tracked; exact up to 2^24 in magnitude, rounded to nearest beyond).
 * bk_safetensors_dtype tells what a tensor was in the file.
 *
 * Reading trusts nothing in the file:
 *   - the header length is checked against the file size (and a 100 MB cap, the reference
 *     implementation's) before the header is allocated;
 *   - the header is checked to be UTF-8, then parsed in two passes by the small JSON reader
 *     of io/json.c, whose recursion is capped at BK_JSON_MAX_DEPTH: a syntax pass that
 *     allocates nothing and counts the top-level keys, then a schema pass (here) that
 *     extracts names, dtypes, shapes and offsets into tables sized by what the syntax pass
 *     found;
 *   - the tensors must tile the data section exactly (no overlap, no gap, nothing after
 *     the last one), so the tensors allocated add up to exactly the file's data bytes.
 * Every failure returns NULL with "safetensors: <path>: <what is wrong>".
 *
 * Writing is atomic (src/io/atomic_file.c): the bytes go to a new temporary file next to
 * the target, which is flushed, fsync'ed and renamed over the target only once complete.
 * On any failure the temporary file is removed and an existing file of that name is left
 * untouched; a save that is killed leaves "<path>.tmp.XXXXXX", which loads never look at
 * and the next successful save of the same path removes (docs/reliability.md).
 *
 * Module state dicts (nn/state_dict.c) and training checkpoints (io/checkpoint.c) are
 * safetensors files too; both load through bk__safetensors_match, which checks a whole
 * list of wanted names and shapes against a file before anything is copied.
 */
#define _XOPEN_SOURCE 700 /* fstat, fileno */

#include "internal.h"

#include "core/buf.h"
#include "io/json.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ST_MAX_HEADER 100000000u /* bytes; larger headers are refused, as by safetensors */

/* One tensor of a loaded file. */
typedef struct st_entry {
    size_t name_off;  /* into the string pool while parsing */
    const char *name; /* set once the pool is final */
    int order;        /* position of its key in the header */
    int ndim;
    int64_t shape[BK_MAX_DIMS];
    const struct st_dtype *dtype; /* what the file holds; read as float32 */
    uint64_t begin, end;          /* data_offsets */
    bk_tensor *t;
} st_entry;

typedef struct st_meta {
    size_t key_off, value_off;
    const char *key, *value;
} st_meta;

struct bk_safetensors {
    char *path;
    char *pool; /* every decoded string of the header, NUL-terminated */
    int n;
    st_entry *entries;  /* in data order (= writing order for files brick wrote) */
    st_entry **by_name; /* the same entries sorted by name, for lookups */
    int n_meta, cap_meta;
    st_meta *meta; /* sorted by key */
};

/* ---- small helpers --------------------------------------------------------------------- */

/* Records "safetensors: <path>: <message>". Always returns false, for `return st_fail(...)`. */
#define st_fail(path, ...) bk__file_error("safetensors", path, __VA_ARGS__)

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

/* ---- reading ----------------------------------------------------------------------------- */

/* The dtypes brick reads, each converted to float32 (see the top of the file). */
typedef enum st_kind { ST_F32, ST_F64, ST_F16, ST_BF16, ST_I64, ST_I32, ST_KIND_COUNT } st_kind;
typedef struct st_dtype {
    const char *name;
    st_kind kind;
    int size; /* bytes per element */
} st_dtype;
static const st_dtype DTYPES[] = {
    {"F32", ST_F32, 4},   {"F64", ST_F64, 8}, {"F16", ST_F16, 2},
    {"BF16", ST_BF16, 2}, {"I64", ST_I64, 8}, {"I32", ST_I32, 4},
};

/* dtypes of the safetensors format that brick recognises but cannot read. */
static const char *const OTHER_DTYPES[] = {
    "BOOL",    "U8",      "I8",      "I16", "U16",     "U32",     "U64",
    "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2", "C64",
};

static const st_dtype *check_dtype(const char *path, const char *name, const char *dtype) {
    for (size_t k = 0; k < sizeof DTYPES / sizeof *DTYPES; k++)
        if (strcmp(dtype, DTYPES[k].name) == 0) return &DTYPES[k];
    for (size_t k = 0; k < sizeof OTHER_DTYPES / sizeof *OTHER_DTYPES; k++)
        if (strcmp(dtype, OTHER_DTYPES[k]) == 0)
            return st_fail(path,
                           "dtype %s of tensor '%s' is not supported (brick reads F32, F64, F16, BF16, "
                           "I64 and I32)",
                           dtype, name),
                   NULL;
    return st_fail(path, "unknown dtype '%s' of tensor '%s'", dtype, name), NULL;
}

/* IEEE half precision to float: exact (every half is a float). */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | mant << 13; /* infinity, NaN (payload kept) */
    } else if (exp != 0) {
        bits = sign | (exp + 112) << 23 | mant << 13; /* normal: rebias 15 -> 127 */
    } else {
        float v = ldexpf((float)mant, -24); /* zero or subnormal: mant * 2^-24 */
        return sign ? -v : v;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* n little-endian elements of dtype d at raw to float32. */
static void convert_to_f32(const st_dtype *d, const unsigned char *raw, float *out, size_t n) {
    for (size_t i = 0; i < n; i++, raw += d->size) {
        uint64_t u = 0;
        for (int k = d->size - 1; k >= 0; k--) u = u << 8 | raw[k];
        switch (d->kind) {
        case ST_F64: {
            double v;
            memcpy(&v, &u, 8);
            out[i] = (float)v;
            break;
        }
        case ST_F16: out[i] = half_to_float((uint16_t)u); break;
        case ST_BF16: {
            uint32_t bits = (uint32_t)u << 16;
            memcpy(&out[i], &bits, 4);
            break;
        }
        case ST_I64: out[i] = (float)(int64_t)u; break;
        case ST_I32: out[i] = (float)(int32_t)(uint32_t)u; break;
        case ST_F32: {
            uint32_t bits = (uint32_t)u;
            memcpy(&out[i], &bits, 4);
            break;
        }
        default: out[i] = NAN; break;
        }
    }
}

/* Checks a tensor's parsed shape and offsets against each other and the data size. */
static bool check_entry(const char *path, st_entry *e, const char *name, const uint64_t *dims, long ndim,
                        const uint64_t *offs, long n_offs, uint64_t data_size) {
    if (ndim < 0) return st_fail(path, "shape of tensor '%s' is not a list of non-negative integers", name);
    if (ndim > BK_MAX_DIMS)
        return st_fail(path, "tensor '%s' has %ld dimensions; brick supports at most %d", name, ndim,
                       BK_MAX_DIMS);
    int64_t numel = 1, bytes;
    e->ndim = (int)ndim;
    for (int i = 0; i < e->ndim; i++) {
        if (dims[i] > (uint64_t)INT64_MAX || !bk__mul_ok(numel, (int64_t)dims[i], &numel))
            return st_fail(path,
                           "shape of tensor '%s' overflows: its element count does not "
                           "fit in 64 bits",
                           name);
        e->shape[i] = (int64_t)dims[i];
    }
    if (!bk__mul_ok(numel, (int64_t)e->dtype->size, &bytes))
        return st_fail(path,
                       "shape of tensor '%s' overflows: its byte size does not fit in "
                       "64 bits",
                       name);
    if (n_offs != 2)
        return st_fail(path,
                       "data_offsets of tensor '%s' must be two non-negative integers "
                       "[begin, end]",
                       name);
    e->begin = offs[0], e->end = offs[1];
    if (e->begin > e->end)
        return st_fail(path, "data_offsets of tensor '%s' have begin %" PRIu64 " > end %" PRIu64, name,
                       e->begin, e->end);
    if (e->end > data_size)
        return st_fail(path,
                       "data_offsets [%" PRIu64 ", %" PRIu64
                       "] of tensor '%s' go past "
                       "the end of the file (its data section has %" PRIu64 " bytes)",
                       e->begin, e->end, name, data_size);
    if (e->end - e->begin != (uint64_t)bytes) {
        char s[256];
        return st_fail(path,
                       "tensor '%s' of shape %s and dtype %s needs %" PRId64
                       " bytes, but "
                       "its data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64,
                       name, bk__shape_fmt(e->ndim, e->shape, s, sizeof s), e->dtype->name, bytes, e->begin,
                       e->end, e->end - e->begin);
    }
    return true;
}

/* One tensor's entry {"dtype": ..., "shape": ..., "data_offsets": ...}, at pos. */
static bool parse_tensor(bk_safetensors *st, bk__json *j, size_t name_off, uint64_t data_size) {
    const char *path = st->path, *name = j->pool + name_off;
    if (bk__json_peek(j) != '{')
        return st_fail(path,
                       "entry '%s' is not an object {\"dtype\", \"shape\", "
                       "\"data_offsets\"}",
                       name);
    st_entry *e = &st->entries[st->n];
    memset(e, 0, sizeof *e);
    e->name_off = name_off;
    e->order = st->n;
    static const char *const fields[3] = {"dtype", "shape", "data_offsets"};
    bool seen[3] = {false, false, false};
    uint64_t dims[BK_MAX_DIMS], offs[2];
    long ndim = -1, n_offs = -1;

    if (bk__json_object_open(j)) do {
            size_t key_off;
            if (!bk__json_key(j, &key_off)) return false;
            const char *key = j->pool + key_off;
            int f = 0;
            while (f < 3 && strcmp(key, fields[f]) != 0) f++;
            if (f == 3) return st_fail(path, "tensor '%s' has unexpected field '%s'", name, key);
            if (seen[f]) return st_fail(path, "tensor '%s' has field '%s' twice", name, key);
            seen[f] = true;
            if (f == 0) {
                size_t dtype_off;
                if (bk__json_peek(j) != '"')
                    return st_fail(path, "dtype of tensor '%s' is not a string", name);
                if (!bk__json_string(j, &dtype_off)) return false;
                if (!(e->dtype = check_dtype(path, name, j->pool + dtype_off))) return false;
            } else if (f == 1) {
                ndim = bk__json_uint_array(j, dims, BK_MAX_DIMS);
                if (ndim == -2)
                    return st_fail(path,
                                   "shape of tensor '%s' overflows: a dimension does not fit "
                                   "in 64 bits",
                                   name);
                if (ndim < 0)
                    return st_fail(path, "shape of tensor '%s' is not a list of non-negative integers", name);
            } else {
                n_offs = bk__json_uint_array(j, offs, 2);
                if (n_offs == -2)
                    return st_fail(path, "data_offsets of tensor '%s' do not fit in 64 bits", name);
                if (n_offs != 2)
                    return st_fail(path,
                                   "data_offsets of tensor '%s' must be two non-negative "
                                   "integers [begin, end]",
                                   name);
            }
            j->pool_used = key_off; /* the field name and dtype are not kept */
        } while (bk__json_object_more(j));
    for (int f = 0; f < 3; f++)
        if (!seen[f]) return st_fail(path, "tensor '%s' is missing field '%s'", name, fields[f]);
    if (!check_entry(path, e, name, dims, ndim, offs, n_offs, data_size)) return false;
    st->n++;
    return true;
}

/* The "__metadata__" object of strings, at pos. */
static bool parse_metadata(bk_safetensors *st, bk__json *j) {
    if (bk__json_peek(j) != '{') return st_fail(st->path, "__metadata__ is not an object of strings");
    if (bk__json_object_open(j)) do {
            size_t key_off, value_off;
            if (!bk__json_key(j, &key_off)) return false;
            if (bk__json_peek(j) != '"')
                return st_fail(st->path, "metadata value of '%s' is not a string", j->pool + key_off);
            if (!bk__json_string(j, &value_off)) return false;
            /* (at most one entry per 6 header bytes, so the count fits in an int) */
            if (!bk__grow((void **)&st->meta, st->n_meta, &st->cap_meta, sizeof *st->meta, 8))
                return st_fail(st->path, "out of memory");
            st->meta[st->n_meta++] = (st_meta){key_off, value_off, NULL, NULL};
        } while (bk__json_object_more(j));
    return true;
}

/* The schema pass over the top-level object. */
static bool parse_header(bk_safetensors *st, bk__json *j, uint64_t data_size) {
    bool seen_meta = false;
    if (bk__json_object_open(j)) do {
            size_t key_off;
            if (!bk__json_key(j, &key_off)) return false;
            if (strcmp(j->pool + key_off, "__metadata__") == 0) {
                if (seen_meta) return st_fail(st->path, "duplicate key '__metadata__'");
                seen_meta = true;
                j->pool_used = key_off;
                if (!parse_metadata(st, j)) return false;
            } else if (!parse_tensor(st, j, key_off, data_size)) {
                return false;
            }
        } while (bk__json_object_more(j));
    return true;
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
static bool finish_header(bk_safetensors *st, bk__json *j, uint64_t data_size) {
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
            return st_fail(path,
                           "tensor '%s' (data_offsets [%" PRIu64 ", %" PRIu64
                           "]) overlaps "
                           "tensor '%s' (data_offsets [%" PRIu64 ", %" PRIu64 "])",
                           e->name, e->begin, e->end, prev->name, prev->begin, prev->end);
        }
        if (e->begin > covered)
            return st_fail(path,
                           "data_offsets leave a gap of %" PRIu64
                           " bytes before tensor "
                           "'%s' (data_offsets [%" PRIu64 ", %" PRIu64 "])",
                           e->begin - covered, e->name, e->begin, e->end);
        covered = e->end;
    }
    if (covered != data_size)
        return st_fail(path,
                       "%" PRIu64
                       " bytes after the last tensor (the tensors end at data "
                       "byte %" PRIu64 " of %" PRIu64 ")",
                       data_size - covered, covered, data_size);
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
        st_fail(path, "header length %" PRIu64 " goes past the end of the file (%" PRIu64 " bytes)", hlen,
                size);
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

    bk__json j = {.s = header, .n = (size_t)hlen, .what = "the header"};
    if (!bk__json_check(&j)) {
        if (j.too_deep)
            st_fail(path, "header is nested deeper than %d levels (%s)", BK_JSON_MAX_DEPTH, j.err);
        else st_fail(path, "header is not valid JSON: %s", j.err);
        goto fail;
    }
    j.pos = 0;
    bk__json_ws(&j);
    if (bk__json_peek(&j) != '{') {
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
        if (e->dtype->kind == ST_F32) {
            if (!read_exact(f, e->t->data, (size_t)(e->end - e->begin), path, what)) goto fail;
            if (!host_is_little_endian()) swap32(e->t->data, (size_t)e->t->numel);
            continue;
        }
        /* another dtype: converted a chunk at a time (no second copy of the tensor) */
        unsigned char chunk[8192];
        size_t per = sizeof chunk / (size_t)e->dtype->size;
        for (int64_t k = 0; k < e->t->numel; k += (int64_t)per) {
            size_t m = (size_t)(e->t->numel - k) < per ? (size_t)(e->t->numel - k) : per;
            if (!read_exact(f, chunk, m * (size_t)e->dtype->size, path, what)) goto fail;
            convert_to_f32(e->dtype, chunk, e->t->data + k, m);
        }
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
    void *blocks[] = {st->entries, st->by_name, st->meta, st->pool, st->path, st}; /* plain */
    for (size_t k = 0; k < sizeof blocks / sizeof *blocks; k++) bk__free(blocks[k]);
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
    st_entry **hit = st->n > 0
                         ? bsearch(&pkey, st->by_name, (size_t)st->n, sizeof *st->by_name, cmp_entry_name)
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

const char *bk_safetensors_dtype(const bk_safetensors *st, const char *name) {
    if (!st || !name) {
        bk_set_error("safetensors_dtype: %s is NULL", st ? "name" : "file");
        return NULL;
    }
    st_entry *e = find_entry(st, name);
    if (!e) {
        bk_set_error("safetensors: %s: no tensor named '%s'", st->path, name);
        return NULL;
    }
    return e->dtype->name;
}

const char *bk_safetensors_meta(const bk_safetensors *st, const char *key) {
    if (!st || !key) {
        bk_set_error("safetensors_meta: %s is NULL", st ? "key" : "file");
        return NULL;
    }
    st_meta k = {.key = key};
    const st_meta *hit = st->n_meta > 0
                             ? bsearch(&k, st->meta, (size_t)st->n_meta, sizeof *st->meta, cmp_meta_key)
                             : NULL;
    return hit ? hit->value : NULL;
}

int bk__safetensors_match(const bk_safetensors *st, int n, const char *const *names, bk_tensor *const *want,
                          const char *vs, const char *skip_prefix, bk_tensor **found, bk__st_report *r) {
    bool *used = bk__calloc((size_t)st->n + 1, sizeof *used);
    if (!used) {
        bk_set_error("%s: out of memory", st->path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const bk_tensor *t = want[i];
        const st_entry *e = find_entry(st, names[i]);
        found[i] = NULL;
        if (!e) {
            bk__str_item(&r->missing, &r->n_missing, names[i]);
            continue;
        }
        used[e - st->entries] = true;
        bool same = e->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
        if (!same) {
            char a[256], b[256], item[1024];
            snprintf(item, sizeof item, "%s %s in file vs %s%s", names[i],
                     bk__shape_fmt(e->ndim, e->shape, a, sizeof a),
                     bk__shape_fmt(t->ndim, t->shape, b, sizeof b), vs);
            bk__str_item(&r->mismatch, &r->n_mismatch, item);
            continue;
        }
        found[i] = e->t;
    }
    size_t skip = skip_prefix ? strlen(skip_prefix) : 0;
    for (int k = 0; k < st->n; k++)
        if (!used[k] && !(skip && strncmp(st->entries[k].name, skip_prefix, skip) == 0))
            bk__str_item(&r->unexpected, &r->n_unexpected, st->entries[k].name);
    bk__free(used);
    return 0;
}

void bk__st_report_free(bk__st_report *r) {
    bk__str_free(&r->missing);
    bk__str_free(&r->unexpected);
    bk__str_free(&r->mismatch);
}

/* ---- writing ----------------------------------------------------------------------------- */

static void sb_u64(bk__str *b, uint64_t v) {
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    bk__str_puts(b, s);
}

static int cmp_str_ptr(const void *pa, const void *pb) {
    return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

/* Names, keys or values are valid UTF-8 (so that readers accept the file) and, if
 * `unique`, all different. */
static bool check_names(const char *path, int n, const char *const *names, const char *what, bool unique) {
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
static bool build_header(bk__str *h, const char *path, int n, const char *const *names,
                         const bk_tensor *const *tensors, int n_meta, const char *const *keys,
                         const char *const *values, uint64_t *data_bytes) {
    uint64_t offset = 0;
    bk__str_puts(h, "{");
    if (n_meta > 0) {
        bk__str_puts(h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) bk__str_puts(h, ",");
            bk__json_quote(h, keys[i]);
            bk__str_puts(h, ":");
            bk__json_quote(h, values[i]);
        }
        bk__str_puts(h, "}");
    }
    for (int i = 0; i < n; i++) {
        const bk_tensor *t = tensors[i];
        uint64_t bytes = (uint64_t)t->numel * sizeof(float); /* numel < 2^63 / 4 (tensor_new) */
        if (i || n_meta > 0) bk__str_puts(h, ",");
        bk__json_quote(h, names[i]);
        bk__str_puts(h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) bk__str_puts(h, ",");
            sb_u64(h, (uint64_t)t->shape[d]);
        }
        bk__str_puts(h, "],\"data_offsets\":[");
        sb_u64(h, offset);
        bk__str_puts(h, ",");
        if (bytes > UINT64_MAX - offset) return st_fail(path, "total data size overflows");
        offset += bytes;
        sb_u64(h, offset);
        bk__str_puts(h, "]}");
    }
    bk__str_puts(h, "}");
    while (!h->oom && h->len % 8 != 0) bk__str_puts(h, " ");
    if (h->oom) return st_fail(path, "out of memory building the header");
    if (h->len > ST_MAX_HEADER)
        return st_fail(path, "header would be %zu bytes, over the %u-byte limit of readers", h->len,
                       ST_MAX_HEADER);
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

int bk_safetensors_save(const char *path, int n, const char *const *names, const bk_tensor *const *tensors,
                        int n_meta, const char *const *meta_keys, const char *const *meta_values) {
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

    bk__str h = {0};
    uint64_t data_bytes;
    if (!build_header(&h, path, n, names, tensors, n_meta, meta_keys, meta_values, &data_bytes)) {
        bk__str_free(&h);
        return -1;
    }

    bk__atomic_file a;
    FILE *f = bk__atomic_open(&a, path, "safetensors");
    if (!f) {
        bk__str_free(&h);
        return -1;
    }
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)h.len >> (8 * k));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.p, 1, h.len, f) == h.len;
    for (int i = 0; ok && i < n; i++) ok = write_f32(f, tensors[i]->data, (size_t)tensors[i]->numel);
    bk__str_free(&h);
    if (!ok) return bk__atomic_fail(&a, "write"), -1;
    return bk__atomic_commit(&a);
}

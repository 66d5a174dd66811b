/* test_safetensors.c - safetensors files and module state dicts.
 *
 *   - round trips are bit-exact (NaN payloads, -0, infinities, subnormals) for rank 0,
 *     zero-element and rank-8 tensors, with escaped names and metadata;
 *   - files laid out as the Python writer lays them out load, in any header key order;
 *   - F64, F16, BF16, I64 and I32 tensors read as float32 (subnormals, infinities, NaNs,
 *     rounding of large integers);
 *   - one crafted file per rule the reader enforces, each checked by its message;
 *   - saving is atomic: a missing directory, replacing a file, a write that fails half-way
 *     (RLIMIT_FSIZE, so it works as root too) and a read-only directory (non-root only);
 *   - bk_module_save / bk_module_load round trip an MLP, and strict loading lists every
 *     missing, unexpected and mis-shaped name while changing nothing; a non-strict load
 *     reports what it skipped (bk_module_load_report).
 * Files go to a mkdtemp directory under /tmp, removed at the end.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, setrlimit, opendir, lstat, umask */

#include "test.h"
#include "files.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fills t with bit patterns that a lossy round trip would change. */
static void fill_bits(bk_tensor *t, uint32_t seed) {
    static const uint32_t special[] = {
        0x7fc00001u, /* NaN with a payload */
        0x80000000u, /* -0 */
        0x7f800000u, /* +inf */
        0xff800000u, /* -inf */
        0x00000001u, /* smallest subnormal */
        0x3f800000u, /* 1 */
    };
    uint32_t x = seed * 2654435761u + 1;
    for (int64_t i = 0; i < t->numel; i++) {
        x = x * 1664525u + 1013904223u;
        uint32_t bits = i < 6 ? special[(i + seed) % 6] : x;
        memcpy(&t->data[i], &bits, 4);
    }
}

static bool same_tensor(const bk_tensor *a, const bk_tensor *b) {
    if (!a || !b || a->ndim != b->ndim || a->numel != b->numel) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return a->numel == 0 || memcmp(a->data, b->data, (size_t)a->numel * 4) == 0;
}

/* ---- round trips ----------------------------------------------------------------------- */

TEST(round_trip_tensors_and_metadata) {
    const char *path = tpath("round_trip.safetensors");
    bk_tensor *t[6] = {
        bk_tensor_new(BK_SHAPE(2, 3)),       bk_tensor_new(0, NULL), /* rank 0 */
        bk_tensor_new(BK_SHAPE(0, 5)),       bk_tensor_new(BK_SHAPE(7)),
        bk_tensor_new(BK_SHAPE(2, 1, 3, 2)), bk_tensor_new(BK_SHAPE(1, 2, 1, 2, 1, 2, 1, 2)), /* rank 8 */
    };
    for (int i = 0; i < 6; i++) {
        CHECK(t[i] != NULL);
        if (!t[i]) return;
        fill_bits(t[i], (uint32_t)i);
    }
    const char *names[6] = {"layer.0.weight", "scalar",
                            "empty",          "quote\" backslash\\ newline\n tab\t ctrl\x01 slash/",
                            "four_d",         "rank8 \xc3\xbcnicode \xe6\x97\xa5\xf0\x9f\x98\x80"};
    const char *keys[3] = {"format", "note \"quoted\"", ""};
    const char *values[3] = {"pt", "tab\there \\ \xc3\xa9 \x1f end", ""};
    CHECK(bk_safetensors_save(path, 6, names, (const bk_tensor *const *)t, 3, keys, values) == 0);

    /* The layout readers expect: the header is a space-padded object, data starts at a
     * multiple of 8, and the file has nothing beyond the tensors. */
    size_t size = 0;
    unsigned char *raw = read_file(path, &size);
    CHECK(raw != NULL && size > 8);
    if (raw && size > 8) {
        uint64_t hlen = 0;
        for (int k = 7; k >= 0; k--) hlen = hlen << 8 | raw[k];
        CHECK(hlen % 8 == 0);
        CHECK(raw[8] == '{');
        int64_t data = 0;
        for (int i = 0; i < 6; i++) data += t[i]->numel * 4;
        CHECK(size == 8 + hlen + (uint64_t)data);
        size_t last = 8 + (size_t)hlen - 1;
        while (last > 8 && raw[last] == ' ') last--;
        CHECK(raw[last] == '}');
    }
    free(raw);

    bk_safetensors *st = bk_safetensors_load(path);
    CHECK(st != NULL);
    if (st) {
        CHECK(bk_safetensors_count(st) == 6);
        for (int i = 0; i < 6; i++) {
            const char *name = bk_safetensors_name(st, i);
            CHECK(name && strcmp(name, names[i]) == 0); /* the order they were given in */
            CHECK(same_tensor(bk_safetensors_get(st, names[i]), t[i]));
        }
        for (int i = 0; i < 3; i++) {
            const char *v = bk_safetensors_meta(st, keys[i]);
            CHECK(v && strcmp(v, values[i]) == 0);
        }
        CHECK(bk_safetensors_meta(st, "absent") == NULL);
        CHECK_ERR(bk_safetensors_get(st, "absent"), "no tensor named 'absent'");
        CHECK_ERR(bk_safetensors_name(st, 6), "index 6 is out of range (6 tensors)");
        CHECK_ERR(bk_safetensors_name(st, -1), "out of range");
    }
    bk_safetensors_free(st);
    for (int i = 0; i < 6; i++) bk_tensor_free(t[i]);
}

TEST(round_trip_no_tensors) {
    const char *path = tpath("empty.safetensors");
    CHECK(bk_safetensors_save(path, 0, NULL, NULL, 0, NULL, NULL) == 0);
    bk_safetensors *st = bk_safetensors_load(path);
    CHECK(st && bk_safetensors_count(st) == 0);
    CHECK(st && bk_safetensors_meta(st, "format") == NULL);
    if (st) CHECK_ERR(bk_safetensors_get(st, "x"), "no tensor named 'x'");
    bk_safetensors_free(st);
}

/* A header as the Python writer makes it (keys in name order, data in another order,
 * padded with spaces), plus JSON the reader must accept: whitespace, \u escapes and
 * surrogate pairs, zero-element tensors sharing an offset. */
TEST(reads_foreign_layouts) {
    const char *path = tpath("python.safetensors");
    const char *header =
        "{\"__metadata__\":{\"format\":\"pt\"},"
        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}       ";
    size_t hl = strlen(header);
    unsigned char buf[256] = {0};
    for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)hl >> (8 * k));
    memcpy(buf + 8, header, hl);
    const unsigned char data[12] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40}; /* 1 2 3 */
    memcpy(buf + 8 + hl, data, 12);
    CHECK(write_file(path, buf, 8 + hl + 12));
    bk_safetensors *st = bk_safetensors_load(path);
    CHECK(st != NULL);
    if (st) {
        CHECK(bk_safetensors_count(st) == 2);
        CHECK(strcmp(bk_safetensors_name(st, 0), "b") == 0); /* data order */
        CHECK(strcmp(bk_safetensors_name(st, 1), "a") == 0);
        bk_tensor *a = bk_safetensors_get(st, "a"), *b = bk_safetensors_get(st, "b");
        CHECK(a && a->ndim == 1 && a->shape[0] == 1 && a->data[0] == 3.0f);
        CHECK(b && b->ndim == 1 && b->shape[0] == 2 && b->data[0] == 1.0f && b->data[1] == 2.0f);
        CHECK(a && !a->requires_grad && a->arena == NULL);
        CHECK(strcmp(bk_safetensors_meta(st, "format"), "pt") == 0);
    }
    bk_safetensors_free(st);

    CHECK(write_st(path,
                   " \t\r\n{ \"caf\\u00e9 \\ud83d\\ude00\\/\" : { \"shape\" : [ ] , \"dtype\" : \"F32\" ,"
                   " \"data_offsets\" : [ 0 , 4 ] } , \"z\":{\"dtype\":\"F32\",\"shape\":[0,3],"
                   "\"data_offsets\":[4,4]}, \"y\":{\"dtype\":\"F32\",\"shape\":[3,0],"
                   "\"data_offsets\":[4,4]}, \"__metadata__\" : { } }\n\t ",
                   4));
    st = bk_safetensors_load(path);
    CHECK(st != NULL);
    if (st) {
        CHECK(bk_safetensors_count(st) == 3);
        bk_tensor *s = bk_safetensors_get(st, "caf\xc3\xa9 \xf0\x9f\x98\x80/");
        CHECK(s && s->ndim == 0 && s->numel == 1 && s->data[0] == 0.0f);
        bk_tensor *z = bk_safetensors_get(st, "z");
        CHECK(z && z->ndim == 2 && z->shape[0] == 0 && z->shape[1] == 3 && z->numel == 0);
        CHECK(strcmp(bk_safetensors_name(st, 1), "z") == 0); /* header order among equals */
    }
    bk_safetensors_free(st);

    CHECK(write_st(path, "{}", 0));
    st = bk_safetensors_load(path);
    CHECK(st && bk_safetensors_count(st) == 0);
    bk_safetensors_free(st);
}

/* ---- the dtypes PyTorch writes, converted to float32 ---------------------------------- */

/* Appends the n-byte little-endian value v to buf at *at. */
static void put_le(unsigned char *buf, size_t *at, uint64_t v, int n) {
    for (int k = 0; k < n; k++) buf[(*at)++] = (unsigned char)(v >> (8 * k));
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

TEST(reads_other_dtypes) {
    const char *path = tpath("dtypes.safetensors");
    /* F64 (3): 0.1 (rounds), -1e300 (-inf), 2^-149 (the smallest float subnormal);
     * F16 (8): 1, -0, 65504, 2^-24 (subnormal), 3 * 2^-24, +inf, a NaN, -2.5;
     * BF16 (3): 1, -inf, 0x4049 (3.140625); I64 (3): -3, 2^24 + 1 (rounds to 2^24), 2^40;
     * I32 (2): -7, 2147483647 (rounds to 2^31); an empty F16 tensor. */
    static const char header
        [] = "{\"d\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[0,24]},"
             "\"h\":{\"dtype\":\"F16\",\"shape\":[2,4],\"data_offsets\":[24,40]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[40,46]},"
             "\"e\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[46,46]},"
             "\"l\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[46,70]},"
             "\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[70,78]}}";
    unsigned char buf[512];
    size_t at = 0, hlen = sizeof header - 1;
    put_le(buf, &at, hlen, 8);
    memcpy(buf + at, header, hlen);
    at += hlen;
    const double d[3] = {0.1, -1e300, 0x1p-149};
    for (int k = 0; k < 3; k++) {
        uint64_t u;
        memcpy(&u, &d[k], 8);
        put_le(buf, &at, u, 8);
    }
    const uint16_t h[8] = {0x3c00, 0x8000, 0x7bff, 0x0001, 0x0003, 0x7c00, 0x7e00, 0xc100};
    for (int k = 0; k < 8; k++) put_le(buf, &at, h[k], 2);
    const uint16_t b[3] = {0x3f80, 0xff80, 0x4049};
    for (int k = 0; k < 3; k++) put_le(buf, &at, b[k], 2);
    const int64_t l[3] = {-3, (1 << 24) + 1, INT64_C(1) << 40};
    for (int k = 0; k < 3; k++) put_le(buf, &at, (uint64_t)l[k], 8);
    const int32_t i32[2] = {-7, 2147483647};
    for (int k = 0; k < 2; k++) put_le(buf, &at, (uint32_t)i32[k], 4);
    CHECK(write_file(path, buf, at));

    bk_safetensors *st = bk_safetensors_load(path);
    CHECK(st != NULL);
    if (!st) {
        fprintf(stderr, "       %s\n", bk_last_error());
        return;
    }
    const bk_tensor *td = bk_safetensors_get(st, "d"), *th = bk_safetensors_get(st, "h"),
                    *tb = bk_safetensors_get(st, "b"), *te = bk_safetensors_get(st, "e"),
                    *tl = bk_safetensors_get(st, "l"), *ti = bk_safetensors_get(st, "i");
    CHECK(td && th && tb && te && tl && ti);
    if (!(td && th && tb && te && tl && ti)) return;
    CHECK(td->data[0] == 0.1f && isinf(td->data[1]) && td->data[1] < 0 && td->data[2] == 0x1p-149f);
    CHECK(th->ndim == 2 && th->shape[0] == 2 && th->shape[1] == 4);
    CHECK(th->data[0] == 1.0f && bits_of(th->data[1]) == 0x80000000u && th->data[2] == 65504.0f);
    CHECK(th->data[3] == 0x1p-24f && th->data[4] == 3 * 0x1p-24f);
    CHECK(isinf(th->data[5]) && th->data[5] > 0 && isnan(th->data[6]) && th->data[7] == -2.5f);
    CHECK(tb->data[0] == 1.0f && isinf(tb->data[1]) && tb->data[1] < 0 && tb->data[2] == 3.140625f);
    CHECK(te->numel == 0);
    CHECK(tl->data[0] == -3.0f && tl->data[1] == 16777216.0f && tl->data[2] == 0x1p40f);
    CHECK(ti->data[0] == -7.0f && ti->data[1] == 2147483648.0f);
    static const char *const names[6] = {"d", "h", "b", "e", "l", "i"};
    static const char *const want[6] = {"F64", "F16", "BF16", "F16", "I64", "I32"};
    for (int k = 0; k < 6; k++) {
        const char *got = bk_safetensors_dtype(st, names[k]);
        CHECK(got && !strcmp(got, want[k]));
    }
    CHECK(bk_safetensors_dtype(st, "zz") == NULL && strstr(bk_last_error(), "no tensor named 'zz'"));
    bk_safetensors_free(st);

    /* A file that ends inside a converted tensor says which tensor. */
    CHECK(write_file(path, buf, at - 5));
    bk_clear_error();
    CHECK(bk_safetensors_load(path) == NULL);
    CHECK(strstr(bk_last_error(), "data_offsets [70, 78] of tensor 'i' go past the end of the file") != NULL);
}

/* ---- what the reader rejects ----------------------------------------------------------- */

#define F32(shape, offs) "{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}"

typedef struct bad_case {
    const char *header;
    size_t data_len;
    const char *expect;
} bad_case;

static const bad_case BAD[] = {
    /* the header is not a JSON object of the right depth */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4,
     "header is not valid JSON: expected ',' or '}' in an object at the end of the header"},
    {"{\"a\": }", 0, "header is not valid JSON: unexpected character at byte 6 of the header"},
    {"{\"a\":1,}", 0, "header is not valid JSON: expected a string at byte 7"},
    {"{'a':1}", 0, "header is not valid JSON: expected a string at byte 1"},
    {"{\"a\":tru}", 0, "header is not valid JSON: unexpected character at byte 5"},
    {"{\"a\":01}", 0, "header is not valid JSON: expected ',' or '}' in an object at byte 6"},
    {"{\"a\":1.}", 0, "header is not valid JSON: invalid number at byte 7"},
    {"{\"a\":\"x\ny\"}", 0, "header is not valid JSON: control character in a string at byte 7"},
    {"{\"a\\q\":1}", 0, "header is not valid JSON: invalid escape in a string at byte 4"},
    {"{\"\\ud800\":1}", 0, "header is not valid JSON: lone high surrogate in a \\u escape"},
    {"{\"\\udc00\":1}", 0, "header is not valid JSON: lone low surrogate in a \\u escape"},
    {"{\"a\\u0000b\":1}", 0, "header is not valid JSON: \\u0000 (NUL) in a string at byte 9"},
    {"{\"a\\u12\":1}", 0, "header is not valid JSON: invalid \\u escape"},
    {"{} x", 0, "header is not valid JSON: unexpected data after the top-level value at byte 3"},
    {"{}{}", 0, "header is not valid JSON: unexpected data after the top-level value"},
    {"        ", 0, "header is not valid JSON: unexpected end at the end of the header"},
    {"[1, 2]", 0, "header is not a JSON object"},
    {"\"a\"", 0, "header is not a JSON object"},
    {"{\"a\":[[[[[[[[1]]]]]]]]}", 0,
     "header is nested deeper than 8 levels (a deeper level opens at byte 12 of the header)"},
    {"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 0,
     "header is nested deeper than 8 levels"},
    /* dtypes */
    {"{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     "unknown dtype 'Q7' of tensor 'a'"},
    {"{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
     "dtype U8 of tensor 'x' is not supported (brick reads F32, F64, F16, BF16, I64 and I32)"},
    {"{\"x\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
     "dtype I16 of tensor 'x' is not supported"},
    {"{\"x\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     "tensor 'x' of shape (2,) and dtype F16 needs 4 bytes, but its data_offsets [0, 8] hold 8"},
    {"{\"x\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     "tensor 'x' of shape (1,) and dtype I64 needs 8 bytes, but its data_offsets [0, 4] hold 4"},
    {"{\"x\":{\"dtype\":\"BF16\",\"shape\":[4611686018427387904],"
     "\"data_offsets\":[0,4]}}",
     4, "shape of tensor 'x' overflows: its byte size does not fit in 64 bits"},
    {"{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype of tensor 'a' is not a string"},
    /* fields */
    {"{\"a\":1}", 0, "entry 'a' is not an object"},
    {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor 'a' is missing field 'shape'"},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor 'a' is missing field 'dtype'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor 'a' is missing field 'data_offsets'"},
    {"{\"a\":{}}", 0, "tensor 'a' is missing field 'dtype'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"foo\":1}}", 4,
     "tensor 'a' has unexpected field 'foo'"},
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     "tensor 'a' has field 'dtype' twice"},
    /* data_offsets */
    {"{\"a\":" F32("[1]", "[0]") "}", 4,
     "data_offsets of tensor 'a' must be two non-negative integers [begin, end]"},
    {"{\"a\":" F32("[1]", "[0,4,8]") "}", 8, "data_offsets of tensor 'a' must be two non-negative"},
    {"{\"a\":" F32("[1]", "[-1,3]") "}", 4, "data_offsets of tensor 'a' must be two non-negative"},
    {"{\"a\":" F32("[1]", "[0.0,4]") "}", 4, "data_offsets of tensor 'a' must be two non-negative"},
    {"{\"a\":" F32("[1]", "[0,4e0]") "}", 4, "data_offsets of tensor 'a' must be two non-negative"},
    {"{\"a\":" F32("[1]", "[\"0\",4]") "}", 4, "data_offsets of tensor 'a' must be two non-negative"},
    {"{\"a\":" F32("[1]", "4") "}", 4, "data_offsets of tensor 'a' must be two non-negative"},
    {"{\"a\":" F32("[1]", "[8,4]") "}", 8, "data_offsets of tensor 'a' have begin 8 > end 4"},
    /* names and metadata */
    {"{\"a\":" F32("[1]", "[0,4]") ",\"a\":" F32("[1]", "[4,8]") "}", 8, "duplicate tensor name 'a'"},
    {"{\"__metadata__\":{\"k\":1}}", 0, "metadata value of 'k' is not a string"},
    {"{\"__metadata__\":{\"k\":[\"v\"]}}", 0, "metadata value of 'k' is not a string"},
    {"{\"__metadata__\":\"x\"}", 0, "__metadata__ is not an object of strings"},
    {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate metadata key 'k'"},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate key '__metadata__'"},
    /* shapes */
    {"{\"a\":" F32("[4294967296,4294967296,4]", "[0,4]") "}", 4,
     "shape of tensor 'a' overflows: its element count does not fit in 64 bits"},
    {"{\"a\":" F32("[9223372036854775808]", "[0,4]") "}", 4,
     "shape of tensor 'a' overflows: its element count"},
    {"{\"a\":" F32("[99999999999999999999999]", "[0,4]") "}", 4,
     "shape of tensor 'a' overflows: a dimension does not fit in 64 bits"},
    {"{\"a\":" F32("[3074457345618258603]", "[0,4]") "}", 4,
     "shape of tensor 'a' overflows: its byte size does not fit in 64 bits"},
    {"{\"a\":" F32("[-2]", "[0,4]") "}", 4, "shape of tensor 'a' is not a list of non-negative integers"},
    {"{\"a\":" F32("[2.5]", "[0,4]") "}", 4, "shape of tensor 'a' is not a list of non-negative"},
    {"{\"a\":" F32("\"2\"", "[0,4]") "}", 4, "shape of tensor 'a' is not a list of non-negative"},
    {"{\"a\":" F32("[[1]]", "[0,4]") "}", 4, "shape of tensor 'a' is not a list of non-negative"},
    {"{\"a\":" F32("[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4,
     "tensor 'a' has 9 dimensions; brick supports at most 8"},
    /* sizes and layout */
    {"{\"a\":" F32("[2,3]", "[0,20]") "}", 20,
     "tensor 'a' of shape (2, 3) and dtype F32 needs 24 bytes, but its data_offsets [0, 20] hold 20"},
    {"{\"a\":" F32("[2]", "[0,8]") ",\"b\":" F32("[2]", "[4,12]") "}", 12,
     "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a' (data_offsets [0, 8])"},
    {"{\"a\":" F32("[2]", "[0,8]") ",\"z\":" F32("[0]", "[4,4]") "}", 8,
     "tensor 'z' (data_offsets [4, 4]) overlaps tensor 'a'"},
    {"{\"a\":" F32("[1]", "[0,4]") ",\"b\":" F32("[1]", "[8,12]") "}", 12,
     "data_offsets leave a gap of 4 bytes before tensor 'b' (data_offsets [8, 12])"},
    {"{\"a\":" F32("[1]", "[4,8]") "}", 8, "data_offsets leave a gap of 4 bytes before tensor 'a'"},
    {"{\"a\":" F32("[2]", "[0,8]") "}", 4,
     "data_offsets [0, 8] of tensor 'a' go past the end of the file (its data section has 4 bytes)"},
    {"{\"a\":" F32("[1]", "[18446744073709551615,18446744073709551616]") "}", 4,
     "data_offsets of tensor 'a' do not fit in 64 bits"},
    {"{\"a\":" F32("[1]", "[18446744073709551611,18446744073709551615]") "}", 4,
     "data_offsets [18446744073709551611, 18446744073709551615] of tensor 'a' go past the end"},
    {"{\"a\":" F32("[1]", "[0,4]") "}", 8,
     "4 bytes after the last tensor (the tensors end at data byte 4 of 8)"},
    {"{}", 4, "4 bytes after the last tensor"},
};

TEST(rejects_bad_headers) {
    const char *path = tpath("bad.safetensors");
    char prefix[600];
    snprintf(prefix, sizeof prefix, "safetensors: %s: ", path);
    for (size_t i = 0; i < sizeof BAD / sizeof *BAD; i++) {
        CHECK(write_st(path, BAD[i].header, BAD[i].data_len));
        bk_clear_error();
        bk_safetensors *st = bk_safetensors_load(path);
        const char *e = bk_last_error();
        if (st || !strstr(e, BAD[i].expect) || strncmp(e, prefix, strlen(prefix)) != 0) {
            fprintf(stderr, "  FAIL case %zu, header %s\n       expected \"%s\"\n       got %s \"%s\"\n", i,
                    BAD[i].header, BAD[i].expect, st ? "success and" : "error", e);
            test_failed_checks_++;
        }
        bk_safetensors_free(st);
    }
}

TEST(rejects_bad_files) {
    const char *path = tpath("bad.safetensors");
    /* shorter than the length field */
    CHECK(write_file(path, "\x05\0\0\0\0", 5));
    CHECK_ERR(bk_safetensors_load(path), "file is too short (5 bytes) to hold the 8-byte header length");
    CHECK(write_file(path, "", 0));
    CHECK_ERR(bk_safetensors_load(path), "file is too short (0 bytes)");
    /* header lengths */
    CHECK(write_st_len(path, "{}", 0, 8));
    CHECK_ERR(bk_safetensors_load(path), "header length is 0");
    unsigned char big[16] = {0x00, 0xc2, 0xeb, 0x0b, 0, 0, 0, 0, '{', '}'}; /* 200,000,000 */
    CHECK(write_file(path, big, 16));
    CHECK_ERR(bk_safetensors_load(path), "header length 200000000 exceeds the limit of 100000000 bytes");
    unsigned char huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK(write_file(path, huge, 8));
    CHECK_ERR(bk_safetensors_load(path), "header length 18446744073709551615 exceeds the limit");
    unsigned char past[12] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    CHECK(write_file(path, past, 12));
    CHECK_ERR(bk_safetensors_load(path), "header length 100 goes past the end of the file (12 bytes)");
    /* not UTF-8: a stray byte, an overlong '/', an encoded surrogate, a cut sequence */
    CHECK(write_st(path, "{\"a\xff\":1}", 0));
    CHECK_ERR(bk_safetensors_load(path), "header is not valid UTF-8 (byte 3)");
    CHECK(write_st(path, "{\"\xc0\xaf\":1}", 0));
    CHECK_ERR(bk_safetensors_load(path), "header is not valid UTF-8 (byte 2)");
    CHECK(write_st(path, "{\"\xed\xa0\x80\":1}", 0));
    CHECK_ERR(bk_safetensors_load(path), "header is not valid UTF-8 (byte 2)");
    CHECK(write_st(path, "{\"\xe6\x97\":1}", 0));
    CHECK_ERR(bk_safetensors_load(path), "header is not valid UTF-8 (byte 2)");
    /* not a file at all */
    CHECK_ERR(bk_safetensors_load(tpath("does-not-exist")), "does-not-exist: cannot open: No such file");
    CHECK_ERR(bk_safetensors_load(tmpdir), "not a regular file");
    CHECK_ERR(bk_safetensors_load(NULL), "path is NULL");
    CHECK(bk_safetensors_count(NULL) == -1);
    CHECK_ERR(bk_safetensors_get(NULL, "a"), "file is NULL");
}

/* ---- atomic saving --------------------------------------------------------------------- */

static int save_one(const char *path, const char *name, bk_tensor *t) {
    const bk_tensor *ts[1] = {t};
    return bk_safetensors_save(path, 1, &name, ts, 0, NULL, NULL);
}

/* The file at path holds one tensor `name` equal to t. */
static bool file_holds(const char *path, const char *name, const bk_tensor *t) {
    bk_safetensors *st = bk_safetensors_load(path);
    bool ok = st && bk_safetensors_count(st) == 1 && same_tensor(bk_safetensors_get(st, name), t);
    bk_safetensors_free(st);
    return ok;
}

TEST(save_to_missing_directory_fails) {
    bk_tensor *t = bk_tensor_new(BK_SHAPE(3));
    const char *path = tpath("no/such/dir/model.safetensors");
    CHECK_FAILS_INT(save_one(path, "w", t), path);
    CHECK_FAILS_INT(save_one(path, "w", t), "cannot create a temporary file");
    CHECK_FAILS_INT(save_one(path, "w", t), "No such file or directory");
    bk_tensor_free(t);
}

TEST(save_replaces_existing_file) {
    const char *path = tpath("replace.safetensors");
    bk_tensor *a = bk_tensor_new(BK_SHAPE(2, 2)), *b = bk_tensor_new(BK_SHAPE(5));
    fill_bits(a, 1);
    fill_bits(b, 2);
    mode_t old_mask = umask(022);
    CHECK(save_one(path, "w", a) == 0);
    CHECK(file_holds(path, "w", a));
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644); /* as fopen would make it */
    CHECK(save_one(path, "v", b) == 0);
    CHECK(file_holds(path, "v", b));
    umask(old_mask);
    CHECK(count_temp_files(tmpdir) == 0);
    bk_tensor_free(a);
    bk_tensor_free(b);
}

/* Argument errors are found before the disk is touched. */
TEST(save_rejects_bad_arguments) {
    const char *path = tpath("args.safetensors");
    bk_tensor *a = bk_tensor_new(BK_SHAPE(2));
    fill_bits(a, 3);
    CHECK(save_one(path, "keep", a) == 0);
    const bk_tensor *two[2] = {a, a};
    const char *dup[2] = {"x", "x"};
    CHECK_FAILS_INT(bk_safetensors_save(path, 2, dup, two, 0, NULL, NULL), "duplicate tensor name 'x'");
    const bk_tensor *null_t[1] = {NULL};
    const char *one[1] = {"n"};
    CHECK_FAILS_INT(bk_safetensors_save(path, 1, one, null_t, 0, NULL, NULL), "tensor 'n' (#0) is NULL");
    CHECK_FAILS_INT(save_one(path, "__metadata__", a), "'__metadata__' is reserved");
    /* (the message quotes the name escaped: bk_set_error escapes every message) */
    CHECK_FAILS_INT(save_one(path, "bad\xff", a), "tensor name 'bad\\xff' is not valid UTF-8");
    const char *keys[2] = {"k", "k"}, *values[2] = {"1", "2"};
    CHECK_FAILS_INT(bk_safetensors_save(path, 1, one, two, 2, keys, values), "duplicate metadata key 'k'");
    const char *bad_value[1] = {"\xc3"};
    CHECK_FAILS_INT(bk_safetensors_save(path, 1, one, two, 1, keys, bad_value), "metadata value");
    CHECK_FAILS_INT(bk_safetensors_save(path, -1, NULL, NULL, 0, NULL, NULL), "negative");
    CHECK_FAILS_INT(bk_safetensors_save(NULL, 0, NULL, NULL, 0, NULL, NULL), "path is NULL");
    CHECK(file_holds(path, "keep", a));
    bk_tensor_free(a);
}

/* A write that fails half-way (the file size limit stands in for a full disk) leaves the
 * old file as it was and no temporary file behind. */
TEST(failed_write_keeps_old_file) {
    const char *path = tpath("atomic.safetensors");
    bk_tensor *small = bk_tensor_new(BK_SHAPE(4)), *large = bk_tensor_new(BK_SHAPE(512, 512));
    fill_bits(small, 4);
    fill_bits(large, 5);
    CHECK(save_one(path, "w", small) == 0);

    struct rlimit old, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    lim = old;
    lim.rlim_cur = 64 * 1024;
    if (old.rlim_max != RLIM_INFINITY && old.rlim_max < lim.rlim_cur) lim.rlim_cur = old.rlim_max;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of a signal */
    fflush(stdout);
    fflush(stderr);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int rc = save_one(path, "w", large);
    int err_ok = strstr(bk_last_error(), "File too large") != NULL && strstr(bk_last_error(), path) != NULL;
    CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
    signal(SIGXFSZ, old_handler);
    CHECK(rc == -1);
    CHECK(err_ok);
    CHECK(file_holds(path, "w", small));
    CHECK(count_temp_files(tmpdir) == 0);
    bk_tensor_free(small);
    bk_tensor_free(large);
}

TEST(save_into_read_only_directory) {
    if (geteuid() == 0) {
        printf("  (skipped save_into_read_only_directory: root ignores directory permissions)\n");
        return;
    }
    const char *dir = tpath("ro");
    CHECK(mkdir(dir, 0700) == 0);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    bk_tensor *a = bk_tensor_new(BK_SHAPE(3)), *b = bk_tensor_new(BK_SHAPE(3));
    fill_bits(a, 6);
    fill_bits(b, 7);
    CHECK(save_one(path, "w", a) == 0);
    CHECK(chmod(dir, 0500) == 0);
    CHECK_FAILS_INT(save_one(path, "w", b), "Permission denied");
    CHECK(chmod(dir, 0700) == 0);
    CHECK(file_holds(path, "w", a));
    CHECK(count_temp_files(dir) == 0);
    bk_tensor_free(a);
    bk_tensor_free(b);
}

/* ---- module state dicts ---------------------------------------------------------------- */

static bk_module *make_mlp(uint64_t seed) {
    bk_manual_seed(seed);
    return bk_nn_sequential(3, bk_nn_linear(4, 8), bk_nn_relu(), bk_nn_linear(8, 2));
}

TEST(module_save_load_round_trip) {
    const char *path = tpath("mlp.safetensors");
    bk_module *net = make_mlp(1), *other = make_mlp(2);
    CHECK(net && other);
    if (!net || !other) {
        bk_module_free(net);
        bk_module_free(other);
        return;
    }
    CHECK(bk_module_save(net, path) == 0);

    bk_safetensors *st = bk_safetensors_load(path);
    CHECK(st && bk_safetensors_count(st) == 4);
    const char *want[4] = {"0.weight", "0.bias", "2.weight", "2.bias"};
    for (int i = 0; st && i < 4; i++) {
        const char *name = bk_safetensors_name(st, i);
        CHECK(name && strcmp(name, want[i]) == 0);
        CHECK(same_tensor(bk_safetensors_get(st, want[i]), bk_module_get(net, want[i])));
    }
    CHECK(st && bk_safetensors_meta(st, "format") && !strcmp(bk_safetensors_meta(st, "format"), "pt"));
    bk_safetensors_free(st);

    CHECK(!same_tensor(bk_module_get(net, "0.weight"), bk_module_get(other, "0.weight")));
    CHECK(bk_module_load(other, path, true) == 0);
    for (int i = 0; i < 4; i++)
        CHECK(same_tensor(bk_module_get(net, want[i]), bk_module_get(other, want[i])));

    /* Same weights, same function. */
    bk_tensor *x = bk_randn(BK_SHAPE(3, 4));
    bk_tensor *y1 = bk_forward(net, x), *y2 = bk_forward(other, x);
    CHECK(y1 && y2 && same_tensor(y1, y2));
    bk_module_free(net);
    bk_module_free(other);
}

/* Saves the named tensors (shapes as given) as a state dict file. */
static void save_state(const char *path, int n, const char *const *names, bk_tensor **ts) {
    CHECK(bk_safetensors_save(path, n, names, (const bk_tensor *const *)ts, 0, NULL, NULL) == 0);
    for (int i = 0; i < n; i++) bk_tensor_free(ts[i]);
}

TEST(module_strict_load_lists_every_problem) {
    bk_module *net = make_mlp(3);
    CHECK(net != NULL);
    if (!net) return;
    int64_t n_before;
    float *before = snapshot(net, NULL, &n_before); /* to check later that it did not change */
    char want[2048];

    /* Only one of the four tensors. */
    const char *path_a = tpath("partial.safetensors");
    const char *names_a[1] = {"0.weight"};
    bk_tensor *ts_a[1] = {bk_tensor_new(BK_SHAPE(8, 4))};
    fill_bits(ts_a[0], 9);
    bk_tensor *w_a = bk_tensor_clone_owned(ts_a[0]);
    save_state(path_a, 1, names_a, ts_a);
    snprintf(want, sizeof want, "load_state_dict: %s: missing: 0.bias, 2.weight, 2.bias", path_a);
    CHECK(bk_module_load(net, path_a, true) == -1);
    CHECK(strcmp(bk_last_error(), want) == 0);
    if (strcmp(bk_last_error(), want) != 0) fprintf(stderr, "       want: %s\n", want);
    CHECK(same_as(net, NULL, before, n_before));

    /* Unexpected and mis-shaped names (b), and missing ones too (c). */
    const char *path_b = tpath("mixed.safetensors");
    const char *names_b[6] = {"0.weight", "0.bias", "foo", "2.weight", "extra.bar", "2.bias"};
    bk_tensor *ts_b[6] = {bk_tensor_new(BK_SHAPE(8, 5)), bk_tensor_new(BK_SHAPE(8)),
                          bk_tensor_new(BK_SHAPE(3)),    bk_tensor_new(BK_SHAPE(2, 8)),
                          bk_tensor_new(0, NULL),        bk_tensor_new(BK_SHAPE(2, 1))};
    save_state(path_b, 6, names_b, ts_b);
    const char *path_c = tpath("mixed2.safetensors");
    const char *names_c[5] = {"0.weight", "foo", "2.weight", "extra.bar", "2.bias"};
    bk_tensor *ts_c[5] = {bk_tensor_new(BK_SHAPE(8, 5)), bk_tensor_new(BK_SHAPE(3)),
                          bk_tensor_new(BK_SHAPE(2, 8)), bk_tensor_new(0, NULL),
                          bk_tensor_new(BK_SHAPE(2, 1))};
    save_state(path_c, 5, names_c, ts_c);
    snprintf(want, sizeof want,
             "load_state_dict: %s: missing: 0.bias; unexpected: foo, extra.bar; shape mismatch: "
             "0.weight (8, 5) in file vs (8, 4) in model, 2.bias (2, 1) in file vs (2,) in model",
             path_c);
    CHECK(bk_module_load(net, path_c, true) == -1);
    CHECK(strcmp(bk_last_error(), want) == 0);
    if (strcmp(bk_last_error(), want) != 0) fprintf(stderr, "       want: %s\n", want);
    CHECK(same_as(net, NULL, before, n_before));

    /* Non-strict: mis-shaped names still fail, and only they are listed. */
    snprintf(want, sizeof want,
             "load_state_dict: %s: shape mismatch: 0.weight (8, 5) in file vs (8, 4) in model, "
             "2.bias (2, 1) in file vs (2,) in model",
             path_b);
    CHECK(bk_module_load(net, path_b, false) == -1);
    CHECK(strcmp(bk_last_error(), want) == 0);
    if (strcmp(bk_last_error(), want) != 0) fprintf(stderr, "       want: %s\n", want);
    CHECK(same_as(net, NULL, before, n_before));

    /* Non-strict: the matching names load, the rest is ignored. */
    CHECK(bk_module_load(net, path_a, false) == 0);
    CHECK(same_tensor(bk_module_get(net, "0.weight"), w_a));
    /* (before: 0.weight (8, 4), 0.bias (8), 2.weight (2, 8), 2.bias (2), in that order) */
    CHECK(!memcmp(bk_module_get(net, "0.bias")->data, before + 32, 8 * sizeof(float)));
    CHECK(!memcmp(bk_module_get(net, "2.weight")->data, before + 40, 16 * sizeof(float)));

    /* The report of a non-strict load: torch's missing_keys and unexpected_keys. */
    bk_safetensors *st_a = bk_safetensors_load(path_a), *st_c = bk_safetensors_load(path_c);
    CHECK(st_a && st_c);
    bk_load_report rep;
    CHECK(bk_module_load_report(net, st_a, false, &rep) == 0);
    CHECK(rep.n_missing == 3 && rep.n_unexpected == 0 && rep.unexpected == NULL);
    CHECK(rep.missing && !strcmp(rep.missing, "0.bias, 2.weight, 2.bias"));
    bk_load_report_free(&rep);
    CHECK(rep.missing == NULL && rep.n_missing == 0);
    /* a failed load (a shape mismatch, or strict) leaves the report empty */
    CHECK(bk_module_load_report(net, st_c, false, &rep) == -1);
    CHECK(rep.n_missing == 0 && rep.missing == NULL && rep.unexpected == NULL);
    CHECK(bk_module_load_report(net, st_a, true, &rep) == -1);
    CHECK(rep.n_missing == 0 && rep.missing == NULL);
    bk_load_report_free(&rep);
    bk_load_report_free(NULL);
    /* unexpected names: a file with every name plus two more */
    const char *path_d = tpath("extra.safetensors");
    const char *names_d[6] = {"0.weight", "0.bias", "zz.first", "2.weight", "2.bias", "aa.last"};
    bk_tensor *ts_d[6] = {bk_tensor_new(BK_SHAPE(8, 4)), bk_tensor_new(BK_SHAPE(8)),
                          bk_tensor_new(BK_SHAPE(1)),    bk_tensor_new(BK_SHAPE(2, 8)),
                          bk_tensor_new(BK_SHAPE(2)),    bk_tensor_new(BK_SHAPE(3))};
    save_state(path_d, 6, names_d, ts_d);
    bk_safetensors *st_d = bk_safetensors_load(path_d);
    CHECK(bk_module_load_report(net, st_d, false, &rep) == 0);
    CHECK(rep.n_missing == 0 && rep.missing == NULL && rep.n_unexpected == 2);
    CHECK(rep.unexpected && !strcmp(rep.unexpected, "zz.first, aa.last")); /* file order */
    bk_load_report_free(&rep);
    CHECK(bk_module_load_report(net, st_d, false, NULL) == 0);
    bk_safetensors_free(st_a);
    bk_safetensors_free(st_c);
    bk_safetensors_free(st_d);

    /* Load errors of the file itself come through unchanged. */
    CHECK_FAILS_INT(bk_module_load(net, tpath("absent.safetensors"), true), "cannot open");
    CHECK_FAILS_INT(bk_module_load(NULL, path_a, true), "module is NULL");
    CHECK_FAILS_INT(bk_module_load_from(net, NULL, true), "file is NULL");
    CHECK_FAILS_INT(bk_module_save(NULL, path_a), "module is NULL");

    bk_tensor_free(w_a);
    free(before);
    bk_module_free(net);
}

int main(void) {
    if (!files_init("test-safetensors", NULL)) return 1;
    RUN(round_trip_tensors_and_metadata);
    RUN(round_trip_no_tensors);
    RUN(reads_foreign_layouts);
    RUN(reads_other_dtypes);
    RUN(rejects_bad_headers);
    RUN(rejects_bad_files);
    RUN(save_to_missing_directory_fails);
    RUN(save_replaces_existing_file);
    RUN(save_rejects_bad_arguments);
    RUN(failed_write_keeps_old_file);
    RUN(save_into_read_only_directory);
    RUN(module_save_load_round_trip);
    RUN(module_strict_load_lists_every_problem);
    files_cleanup();
    return test_summary("safetensors");
}

/* json.c - just enough JSON (RFC 8259) for a safetensors header: the two-pass reader and
 * string quoting of io/json.h. Every limit is checked against the text's length; nothing
 * here allocates (the caller gives the string pool).
 */
#include "internal.h"

#include "io/json.h"

#include <inttypes.h>

void bk__json_ws(bk__json *j) {
    while (j->pos < j->n) {
        char c = j->s[j->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        j->pos++;
    }
}

static bool json_fail(bk__json *j, const char *what) {
    const char *text = j->what ? j->what : "the text";
    if (!j->err[0]) {
        if (j->pos >= j->n) snprintf(j->err, sizeof j->err, "%s at the end of %s", what, text);
        else snprintf(j->err, sizeof j->err, "%s at byte %zu of %s", what, j->pos, text);
    }
    return false;
}

static bool json_put(bk__json *j, unsigned char c) {
    if (!j->pool) return true;
    if (j->pool_used >= j->pool_cap) return json_fail(j, "string pool overflow"); /* cannot happen */
    j->pool[j->pool_used++] = (char)c;
    return true;
}

static bool json_hex4(bk__json *j, uint32_t *out) {
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
static bool json_unicode_escape(bk__json *j) {
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
        ok = json_put(j, (unsigned char)(0xC0 | cp >> 6)) && json_put(j, (unsigned char)(0x80 | (cp & 0x3F)));
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
bool bk__json_string(bk__json *j, size_t *off) {
    if (bk__json_peek(j) != '"') return json_fail(j, "expected a string");
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
        case '"':
        case '\\':
        case '/': ok = json_put(j, c); break;
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

static bool json_digits(bk__json *j) {
    if (bk__json_peek(j) < '0' || bk__json_peek(j) > '9') return json_fail(j, "invalid number");
    while (bk__json_peek(j) >= '0' && bk__json_peek(j) <= '9') j->pos++;
    return true;
}

/* A number at pos. *is_uint: it is a plain non-negative integer (no sign, fraction or
 * exponent), whose value is *u; *big: it does not fit in 64 bits (*u is then UINT64_MAX). */
static bool json_number(bk__json *j, bool *is_uint, uint64_t *u, bool *big_out) {
    bool neg = false, frac = false, big = false;
    uint64_t v = 0;
    if (bk__json_peek(j) == '-') neg = true, j->pos++;
    if (bk__json_peek(j) == '0') {
        j->pos++;
    } else if (bk__json_peek(j) >= '1' && bk__json_peek(j) <= '9') {
        while (bk__json_peek(j) >= '0' && bk__json_peek(j) <= '9') {
            unsigned d = (unsigned)(bk__json_peek(j) - '0');
            if (v > (UINT64_MAX - d) / 10) big = true;
            else v = v * 10 + d;
            j->pos++;
        }
    } else {
        return json_fail(j, "invalid number");
    }
    if (bk__json_peek(j) == '.') {
        j->pos++, frac = true;
        if (!json_digits(j)) return false;
    }
    if (bk__json_peek(j) == 'e' || bk__json_peek(j) == 'E') {
        j->pos++, frac = true;
        if (bk__json_peek(j) == '+' || bk__json_peek(j) == '-') j->pos++;
        if (!json_digits(j)) return false;
    }
    *is_uint = !neg && !frac;
    *u = big ? UINT64_MAX : v;
    *big_out = big;
    return true;
}

/* The syntax pass: validates one value at pos (depth 1 = the top level) and moves past it.
 * Recursion is capped at BK_JSON_MAX_DEPTH, so hostile nesting cannot exhaust the stack. */
static bool json_skip(bk__json *j, int depth) {
    bk__json_ws(j);
    int c = bk__json_peek(j);
    if (c == '{' || c == '[') {
        if (depth > BK_JSON_MAX_DEPTH) {
            j->too_deep = true;
            return json_fail(j, "a deeper level opens");
        }
        int close = c == '{' ? '}' : ']';
        j->pos++;
        bk__json_ws(j);
        if (bk__json_peek(j) == close) {
            j->pos++;
            return true;
        }
        for (;;) {
            if (c == '{') {
                bk__json_ws(j);
                if (!bk__json_string(j, NULL)) return false;
                bk__json_ws(j);
                if (bk__json_peek(j) != ':') return json_fail(j, "expected ':' after an object key");
                j->pos++;
                if (depth == 1) j->top_keys++;
            }
            if (!json_skip(j, depth + 1)) return false;
            bk__json_ws(j);
            int d = bk__json_peek(j);
            j->pos++;
            if (d == ',') continue;
            if (d == close) return true;
            j->pos--;
            return json_fail(j, c == '{' ? "expected ',' or '}' in an object"
                                         : "expected ',' or ']' in an array");
        }
    }
    if (c == '"') return bk__json_string(j, NULL);
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
long bk__json_uint_array(bk__json *j, uint64_t *out, int max) {
    if (bk__json_peek(j) != '[') return -1;
    j->pos++;
    bk__json_ws(j);
    if (bk__json_peek(j) == ']') {
        j->pos++;
        return 0;
    }
    for (long count = 0;; count++) {
        bk__json_ws(j);
        if (bk__json_peek(j) < '0' || bk__json_peek(j) > '9') return -1;
        bool is_uint, big;
        uint64_t v;
        if (!json_number(j, &is_uint, &v, &big) || !is_uint) return -1;
        if (big) return -2;
        if (count < max) out[count] = v;
        bk__json_ws(j);
        int c = bk__json_peek(j);
        j->pos++;
        if (c == ']') return count + 1;
        if (c != ',') return -1;
    }
}

bool bk__json_object_open(bk__json *j) {
    bk__json_ws(j);
    j->pos++; /* '{' */
    bk__json_ws(j);
    if (bk__json_peek(j) != '}') return true;
    j->pos++;
    return false;
}

bool bk__json_key(bk__json *j, size_t *off) {
    bk__json_ws(j);
    if (!bk__json_string(j, off)) return false;
    bk__json_ws(j);
    j->pos++; /* ':' */
    bk__json_ws(j);
    return true;
}

bool bk__json_object_more(bk__json *j) {
    bk__json_ws(j);
    return j->s[j->pos++] == ','; /* else '}' */
}

bool bk__json_check(bk__json *j) {
    j->pos = 0;
    if (!json_skip(j, 1)) return false;
    bk__json_ws(j);
    if (j->pos < j->n) return json_fail(j, "unexpected data after the top-level value");
    return true;
}

void bk__json_quote(bk__str *b, const char *s) {
    bk__str_putn(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            bk__str_putn(b, esc, 2);
        } else if (c < 0x20) {
            const char *named = c == '\n'   ? "\\n"
                                : c == '\t' ? "\\t"
                                : c == '\r' ? "\\r"
                                : c == '\b' ? "\\b"
                                : c == '\f' ? "\\f"
                                            : NULL;
            if (named) {
                bk__str_puts(b, named);
            } else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                bk__str_puts(b, esc);
            }
        } else {
            bk__str_putn(b, (const char *)&c, 1);
        }
    }
    bk__str_putn(b, "\"", 1);
}

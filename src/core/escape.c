/* escape.c - strings from files made safe to print, and the UTF-8 decoder behind it.
 *
 * A tensor name, a metadata value or a class name comes from a file that anyone may have
 * written. Printed raw, a newline in it forges a line of output ("x\nbrick eval: all good")
 * and an ESC starts a terminal control sequence (colours, cursor moves, a window title, on
 * some terminals a reply typed into the shell). bk_escape turns every such byte into a
 * visible escape, and bk_set_error passes every library message through it, so no message
 * of brick's can carry one.
 *
 * What is escaped (everything else, valid UTF-8 included, is copied):
 *   - C0 controls and DEL: \n, \r, \t as such, the others as \xNN;
 *   - C1 controls U+0080..U+009F (0x9B is CSI on some terminals) and the bidirectional
 *     overrides and isolates U+202A..U+202E, U+2066..U+2069 (they reorder what a line
 *     shows) as \uNNNN;
 *   - each byte that does not start a valid UTF-8 sequence (overlong forms, surrogates,
 *     code points past U+10FFFF, truncated sequences) as \xNN.
 * A backslash itself is not escaped: the function is idempotent (escaping its output
 * changes nothing), so a message that quotes an escaped name can be escaped again as a
 * whole without doubling anything. The price: a name holding a literal "\x1b" prints like
 * one holding ESC; the purpose is a safe terminal, not a reversible encoding.
 */
#include "internal.h"

size_t bk__utf8_next(const unsigned char *s, size_t n, uint32_t *cp_out) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp_out = c;
        return 1;
    }
    size_t len;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    *cp_out = cp;
    return len;
}

/* Code points printed as \uNNNN although they are valid UTF-8. */
static bool escaped_code_point(uint32_t cp) {
    return (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

/* The printed form of the character at p (left bytes remain, left >= 1) into piece (at
 * most 7 bytes); *used gets the bytes of p it stands for. Returns the piece's length. */
static size_t escape_piece(const unsigned char *p, size_t left, char *piece, size_t *used) {
    static const char hex[] = "0123456789abcdef";
    uint32_t cp = 0;
    size_t len = bk__utf8_next(p, left, &cp), k = 0;
    if (len == 0) { /* not UTF-8: this byte alone */
        cp = p[0];
        len = 1;
        piece[k++] = '\\';
        piece[k++] = 'x';
        piece[k++] = hex[cp >> 4];
        piece[k++] = hex[cp & 15];
    } else if (cp < 0x20 || cp == 0x7F) {
        piece[k++] = '\\';
        if (cp == '\n' || cp == '\r' || cp == '\t') {
            piece[k++] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
        } else {
            piece[k++] = 'x';
            piece[k++] = hex[cp >> 4];
            piece[k++] = hex[cp & 15];
        }
    } else if (escaped_code_point(cp)) {
        piece[k++] = '\\';
        piece[k++] = 'u';
        for (int d = 12; d >= 0; d -= 4) piece[k++] = hex[(cp >> d) & 15];
    } else {
        memcpy(piece, p, len);
        k = len;
    }
    *used = len;
    return k;
}

const char *bk_escape(const char *s, char *buf, size_t n) {
    if (!buf || n == 0) return "";
    if (!s) s = "(null)";
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s), total = 0;
    char piece[8];
    for (size_t i = 0, used; i < left; i += used) total += escape_piece(p + i, left - i, piece, &used);
    /* Too long: whole pieces while "..." and the NUL still fit after them. */
    size_t room = total < n ? n - 1 : n >= 4 ? n - 4 : 0, out = 0;
    for (size_t i = 0, used; i < left; i += used) {
        size_t k = escape_piece(p + i, left - i, piece, &used);
        if (out + k > room) break;
        memcpy(buf + out, piece, k);
        out += k;
    }
    if (total >= n && n >= 4) {
        memcpy(buf + out, "...", 3);
        out += 3;
    }
    buf[out] = '\0';
    return buf;
}

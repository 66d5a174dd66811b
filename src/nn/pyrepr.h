/* pyrepr.h - numbers written the way Python's repr() writes them, for the extra_repr of
 * blocks whose settings are floats (eps=1e-05, momentum=0.1, p=0.5), so that print(net)
 * matches PyTorch's text exactly. Private to src/nn/.
 *
 * A float setting is printed as the shortest decimal that reads back as the same float32
 * (what the user most likely typed), in Python's layout: positional for decimal exponents
 * -4 <= e < 16 with at least one digit after the point ("0.1", "1.0"), otherwise
 * scientific with a two-digit exponent ("1e-05", "2.5e+16").
 */
#ifndef BRICK_NN_PYREPR_H
#define BRICK_NN_PYREPR_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void py_float_repr(float v, char *buf, size_t n) {
    if (isnan(v) || isinf(v) || v == 0.0f) {
        snprintf(buf, n, "%s",
                 isnan(v)   ? "nan"
                 : isinf(v) ? (v < 0 ? "-inf" : "inf")
                            : (signbit(v) ? "-0.0" : "0.0"));
        return;
    }
    char sci[32];
    for (int prec = 1; prec <= 9; prec++) { /* 9 significant digits always round-trip */
        snprintf(sci, sizeof sci, "%.*e", prec - 1, (double)v);
        if (strtof(sci, NULL) == v) break;
    }
    /* sci is "[-]d[.ddd]e[+-]xx": collect the digits without trailing zeros, and e */
    char digits[16];
    int nd = 0;
    const char *p = sci + (sci[0] == '-');
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < (int)sizeof digits - 1) digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';
    int e = *p == 'e' ? atoi(p + 1) : 0;
    char out[64];
    size_t k = 0;
    if (v < 0) out[k++] = '-';
    if (e >= -4 && e < 16) {
        if (e < 0) {
            out[k++] = '0', out[k++] = '.';
            for (int i = 0; i < -e - 1; i++) out[k++] = '0';
            for (int i = 0; i < nd; i++) out[k++] = digits[i];
        } else {
            for (int i = 0; i <= e; i++) out[k++] = i < nd ? digits[i] : '0';
            out[k++] = '.';
            if (nd > e + 1)
                for (int i = e + 1; i < nd; i++) out[k++] = digits[i];
            else out[k++] = '0';
        }
        out[k] = '\0';
    } else {
        out[k++] = digits[0];
        if (nd > 1) {
            out[k++] = '.';
            for (int i = 1; i < nd; i++) out[k++] = digits[i];
        }
        snprintf(out + k, sizeof out - k, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    size_t len = strlen(out); /* copied by hand: snprintf("%s") trips -Wformat-truncation */
    if (n == 0) return;
    if (len >= n) len = n - 1;
    memcpy(buf, out, len);
    buf[len] = '\0';
}

#endif /* BRICK_NN_PYREPR_H */

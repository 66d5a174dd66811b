/* fuzz_escape.c - names and strings from files as they are printed (bk_escape, and every
 * library message, which bk_set_error escapes).
 *
 * The input: byte 0 picks the output buffer size (0: a large one, 2048 bytes; else 1..255),
 * the rest is the name (up to its first NUL, as C strings end). Invariants:
 *   - the output fits the buffer, is valid UTF-8 (no overlong form, surrogate or code point
 *     past U+10FFFF) and holds no control character: no C0 byte, no DEL, no C1 control
 *     (U+0080..U+009F), no bidirectional override or isolate;
 *   - with the large buffer nothing is cut and escaping the output again changes nothing;
 *   - with a small one the output is a cut of the full output at a character boundary,
 *     followed by "..." (when the buffer holds 4 bytes or more);
 *   - a message quoting the name (bk_set_error) is escaped the same way;
 *   - a state dict holding a tensor of that name, loaded strictly into a Linear, fails with
 *     a message that quotes it escaped, on one line (the way `brick eval` prints it).
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp */
#endif
#include "fuzz.h"

#define ESCAPE_BIG 2048

/* Valid UTF-8 with nothing a terminal would act on. */
static bool escape_printable(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = bk__utf8_next(p + i, n - i, &cp);
        if (len == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) ||
            (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069))
            return false;
        i += len;
    }
    return true;
}

FUZZ_TARGET(escape) {
    if (size < 1) return 0;
    fuzz_begin();
    size_t n = data[0] ? data[0] : ESCAPE_BIG;
    char *name = malloc(size); /* size - 1 bytes and a NUL */
    FUZZ_ASSERT(name != NULL);
    memcpy(name, data + 1, size - 1);
    name[size - 1] = '\0';

    static char full[ESCAPE_BIG * 8], again[ESCAPE_BIG * 8], out[ESCAPE_BIG];
    bk_escape(name, full, sizeof full); /* never cut: 7 bytes per input byte at most */
    FUZZ_ASSERT(strlen(full) < sizeof full && escape_printable(full));
    FUZZ_ASSERT(strlen(full) <= 7 * strlen(name));                    /* \u202e: 3 bytes to 6; \x1b: 1 to 4 */
    FUZZ_ASSERT(!strcmp(bk_escape(full, again, sizeof again), full)); /* idempotent */

    memset(out, 'Z', sizeof out);
    const char *got = bk_escape(name, out, n);
    size_t len = strlen(got);
    FUZZ_ASSERT(len < n && escape_printable(got));
    if (strlen(full) < n) {
        FUZZ_ASSERT(!strcmp(got, full));
    } else if (n >= 4) {
        FUZZ_ASSERT(len >= 3 && !memcmp(got + len - 3, "...", 3));
        FUZZ_ASSERT(!strncmp(got, full, len - 3)); /* a cut of the full form */
    }

    bk_set_error("name: %s", name);
    FUZZ_ASSERT(escape_printable(bk_last_error()));
    if (strlen(full) < ESCAPE_BIG - 16) FUZZ_ASSERT(!strncmp(bk_last_error() + 6, full, strlen(full)));

    /* A state dict with a tensor of that name, as a hostile file brings it. */
    if (strlen(name) < 512) {
        bk_module *lin = bk_nn_linear(1, 1);
        const char *path = fuzz_path("out");
        const char *names[1] = {name};
        const bk_tensor *ts[1] = {lin ? lin->params[0].tensor : NULL};
        bk_clear_error();
        if (lin && bk_safetensors_save(path, 1, names, ts, 0, NULL, NULL) == 0) {
            bk_clear_error();
            FUZZ_ASSERT(bk_module_load(lin, path, true) != 0 || !strcmp(name, "weight"));
        }
        FUZZ_ASSERT(escape_printable(bk_last_error())); /* the save's or the load's message */
        bk_module_free(lin);
    }
    free(name);
    fuzz_end();
    return 0;
}

/* error.c - the thread-local "last error" that every brick function reports through.
 *
 * Invariant: a failing function sets a message and returns NULL or -1; a function that
 * merely propagates a NULL input keeps the first message (see bk__inputs_ok in
 * tensor/tensor.c), so the message a user reads names the op that actually failed.
 *
 * Every message is stored through bk_escape: a name or value quoted from a file (a tensor
 * name, metadata, a class name) cannot put a control character, an ESC sequence or invalid
 * UTF-8 into a message, which callers print on a terminal or a log line.
 */
#include "internal.h"

#include <stdio.h>

#define BK_ERROR_MAX 2048

static _Thread_local char error_buf[BK_ERROR_MAX];
static _Thread_local bool error_set;

const char *bk_last_error(void) { return error_buf; }

void bk_clear_error(void) {
    error_buf[0] = '\0';
    error_set = false;
}

bool bk__error_pending(void) { return error_set; }

void bk_set_error(const char *fmt, ...) {
    if (!fmt) {
        snprintf(error_buf, sizeof error_buf, "set_error: format is NULL");
        error_set = true;
        return;
    }
    char raw[BK_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    bk_escape(raw, error_buf, sizeof error_buf);
    error_set = true;
}

bool bk__file_error(const char *who, const char *path, const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    bk_set_error("%s: %s: %s", who, path, msg);
    return false;
}

void bk__error_prefix(const char *fmt, ...) {
    char raw[512], prefix[512], old[BK_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    bk_escape(raw, prefix, sizeof prefix); /* (old was escaped when it was set) */
    memcpy(old, error_buf, sizeof old);
    /* prefix + ": " + old, truncated to the buffer (gcc can't prove snprintf fits) */
    size_t k = strlen(prefix);
    if (k > sizeof error_buf - 3) k = sizeof error_buf - 3;
    memcpy(error_buf, prefix, k);
    if (!old[0]) { /* nothing to prefix: the prefix is the whole message (no dangling ": ") */
        error_buf[k] = '\0';
        error_set = true;
        return;
    }
    memcpy(error_buf + k, ": ", 2);
    size_t rest = sizeof error_buf - k - 3, n = strlen(old);
    if (n > rest) n = rest;
    memcpy(error_buf + k + 2, old, n);
    error_buf[k + 2 + n] = '\0';
    error_set = true;
}

/* block_stack.c - which block is running, per thread, for anomaly messages.
 *
 * bk_forward pushes the block it runs and pops it after, always (two thread-local
 * stores), so anomaly mode can be switched on at any point. A path is written from the
 * outermost block in, each level "<registered name>:<class>" when the block is a child of
 * the level above ("Sequential/1:Linear"), else just the class.
 *
 * Autograd (autograd/anomaly.c) sits below blocks and does not know them: this file hands
 * it the path and the owner of a tensor as two hooks (bk__anomaly_set_where), installed
 * on a thread by the first push there.
 */
#include "internal.h"

#include <stdio.h>

#define BLOCK_STACK_MAX 64 /* deeper nesting is counted but not named */
#define PATH_MAX_CHARS 512

static _Thread_local const bk_module *block_stack[BLOCK_STACK_MAX];
static _Thread_local int block_depth;

/* The registered name of child under parent, or NULL. */
static const char *child_name(const bk_module *parent, const bk_module *child) {
    for (int i = 0; parent && i < parent->n_children; i++)
        if (parent->children[i].module == child) return parent->children[i].name;
    return NULL;
}

/* Writes the current block path ("Sequential/1:Linear", "" outside any block) to buf.
 * Deep paths keep their two outermost and four innermost levels around "/.../". */
static void block_path(char *buf, size_t n) {
    size_t k = 0;
    int depth = block_depth < BLOCK_STACK_MAX ? block_depth : BLOCK_STACK_MAX;
    buf[0] = '\0';
    for (int i = 0; i < depth && k < n; i++) {
        if (depth > 8 && i == 2) {
            int w = snprintf(buf + k, n - k, "/...(%d levels)...", depth - 6);
            if (w < 0) break;
            k += (size_t)w;
            i = depth - 5; /* continues at depth - 4 */
            continue;
        }
        const bk_module *m = block_stack[i];
        const char *name = i ? child_name(block_stack[i - 1], m) : NULL;
        int w = snprintf(buf + k, n - k, "%s%s%s%s", i ? "/" : "", name ? name : "", name ? ":" : "",
                         bk_module_name(m));
        if (w < 0) break;
        k += (size_t)w;
    }
    if (block_depth > BLOCK_STACK_MAX && k < n) /* the innermost levels were not kept */
        snprintf(buf + k, n - k, "/...(%d more)", block_depth - BLOCK_STACK_MAX);
}

/* "parameter 'weight' of Sequential/1:Linear" when t is a parameter or buffer of the
 * innermost running block, else "". */
static void owner_of(const bk_tensor *t, char *buf, size_t n) {
    buf[0] = '\0';
    if (block_depth == 0 || block_depth > BLOCK_STACK_MAX) return;
    const bk_module *m = block_stack[block_depth - 1];
    char path[PATH_MAX_CHARS];
    for (int pass = 0; pass < 2; pass++) {
        const bk_named_tensor *list = pass ? m->buffers : m->params;
        int count = pass ? m->n_buffers : m->n_params;
        for (int i = 0; i < count; i++)
            if (list[i].tensor == t) {
                block_path(path, sizeof path);
                snprintf(buf, n, "%s '%s' of %s", pass ? "buffer" : "parameter", list[i].name, path);
                return;
            }
    }
}

static const bk__where_hooks HOOKS = {block_path, owner_of};

void bk__block_push(const bk_module *m) {
    if (block_depth == 0) bk__anomaly_set_where(&HOOKS);
    if (block_depth < BLOCK_STACK_MAX) block_stack[block_depth] = m;
    block_depth++;
}

void bk__block_pop(void) {
    if (block_depth > 0) block_depth--;
}

/* fuzz_safetensors.c - the safetensors reader, and what reads through it.
 *
 * The input is a whole file. bk_safetensors_load must return NULL with an error naming
 * the file, or a table whose every tensor is consistent (shape product = element count,
 * the data bytes add up to the file's data section). A loaded table then goes through the
 * public getters, a non-strict and a strict bk_module_load_from into a small MLP, and
 * bk_checkpoint_load into the MLP with an Adam optimizer (names of the seeds match them,
 * so the mutations reach the matching code). Finally it must round-trip: saved with
 * bk_safetensors_save and read back, every name, shape and bit is the same.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* mkdtemp */
#endif
#include "fuzz.h"

/* Linear(4, 3) -> ReLU -> Linear(3, 2): state names 0.weight, 0.bias, 2.weight, 2.bias. */
static bk_module *safetensors_model(void) {
    return bk_nn_sequential(3, bk_nn_linear(4, 3), bk_nn_relu(), bk_nn_linear(3, 2));
}

/* Saves everything st holds and reads it back: the same names, shapes and bits. */
static void safetensors_round_trip(const bk_safetensors *st) {
    int n = bk_safetensors_count(st);
    const char **names = malloc(((size_t)n + 1) * sizeof *names);
    const bk_tensor **ts = malloc(((size_t)n + 1) * sizeof *ts);
    FUZZ_ASSERT(names && ts);
    for (int i = 0; i < n; i++) {
        names[i] = bk_safetensors_name(st, i);
        ts[i] = bk_safetensors_get(st, names[i]);
    }
    const char *out = fuzz_path("out");
    /* A save may fail only for lack of memory (the cap); then there is nothing to compare. */
    if (bk_safetensors_save(out, n, names, ts, 0, NULL, NULL) == 0) {
        bk_safetensors *back = bk_safetensors_load(out);
        FUZZ_ASSERT(back || strstr(bk_last_error(), "out of memory"));
        for (int i = 0; back && i < n; i++) {
            FUZZ_ASSERT(!strcmp(bk_safetensors_name(back, i), names[i]));
            const bk_tensor *a = ts[i], *b = bk_safetensors_get(back, names[i]);
            FUZZ_ASSERT(b && bk_same_shape(a, b));
            FUZZ_ASSERT(!memcmp(a->data, b->data, (size_t)a->numel * sizeof(float)));
        }
        FUZZ_ASSERT(!back || bk_safetensors_count(back) == n);
        bk_safetensors_free(back);
    } else {
        FUZZ_ASSERT(strstr(bk_last_error(), "out of memory"));
    }
    free(names);
    free(ts);
}

FUZZ_TARGET(safetensors) {
    fuzz_begin();
    const char *path = fuzz_file("in0", data, size);
    bk_safetensors *st = bk_safetensors_load(path);
    if (!st) {
        FUZZ_ASSERT(strstr(bk_last_error(), path)); /* every failure names the file */
        fuzz_end();
        return 0;
    }
    int n = bk_safetensors_count(st);
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++) {
        const char *name = bk_safetensors_name(st, i);
        FUZZ_ASSERT(name);
        const bk_tensor *t = bk_safetensors_get(st, name);
        FUZZ_ASSERT(t && t->ndim >= 0 && t->ndim <= BK_MAX_DIMS);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
        FUZZ_ASSERT(numel == t->numel);
        /* the bytes of the dtype the file stored (F16 and BF16 2, F64 and I64 8, ...),
         * which bk_safetensors_get has converted to float32 */
        const char *dt = bk_safetensors_dtype(st, name);
        FUZZ_ASSERT(dt);
        uint64_t width = strstr(dt, "64") ? 8 : strstr(dt, "16") ? 2 : 4;
        bytes += (uint64_t)t->numel * width;
    }
    FUZZ_ASSERT(size >= 8);
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = hlen << 8 | data[k];
    FUZZ_ASSERT(bytes == size - 8 - hlen); /* the tensors tile the data section */
    (void)bk_safetensors_meta(st, "format");
    (void)bk_safetensors_meta(st, "brick.arch");

    bk_module *m = safetensors_model();
    bk_optim *o = m ? bk_optim_adam(m, BK_ADAM_DEFAULTS(0.01)) : NULL;
    if (o) {
        bk_module_load_from(m, st, false);
        bk_module_load_from(m, st, true);
        bk_checkpoint_load(path, m, o);
        bk_checkpoint_load(path, m, NULL);
    }
    bk_optim_free(o);
    bk_module_free(m);
    safetensors_round_trip(st);
    bk_safetensors_free(st);
    fuzz_end();
    return 0;
}

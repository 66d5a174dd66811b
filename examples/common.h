/* common.h - the scaffolding every example shares: D2L's synthetic regression data, the
 * reporting (shapes, a block and its output, a summary of a block's parameters: what
 * PyTorch users print with named_parameters()) and the exit. Header-only: each
 * example (examples/NN_name.c) is its own program and includes what it needs;
 * `static inline` keeps a helper that one example does not use from warning.
 */
#ifndef BRICK_EXAMPLES_COMMON_H
#define BRICK_EXAMPLES_COMMON_H

#include "brick.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Prints "<label>: (2, 20)", e.g. print(X.shape). */
static inline void print_shape(const char *label, const bk_tensor *t) {
    char s[64];
    printf("%s: %s\n", label, bk_shape_str(t, s, sizeof s));
}

/* Prints one line per tensor of a list: dotted name, shape, and whether a backward has
 * filled its gradient. */
static inline void print_tensor_list(const bk_param_list *l) {
    size_t width = 0;
    for (int i = 0; i < l->n; i++)
        if (strlen(l->names[i]) > width) width = strlen(l->names[i]);
    for (int i = 0; i < l->n; i++) {
        const bk_tensor *t = l->tensors[i];
        char s[64];
        printf("  %-*s  %-10s  %s\n", (int)width, l->names[i], bk_shape_str(t, s, sizeof s),
               t->grad            ? "grad: yes"
               : t->requires_grad ? "grad: none yet"
                                  : "grad: no (constant)");
    }
}

/* The parameter summary: every parameter under its dotted name (named_parameters()),
 * then the totals (sum(p.numel() for p in net.parameters())). Returns 0 or -1. */
static inline int print_parameters(const bk_module *net) {
    bk_param_list *l = bk_module_named(net, BK_PARAMS);
    if (!l) return -1;
    printf("parameters (named_parameters):\n");
    print_tensor_list(l);
    bk_param_list_free(l);
    int64_t total = bk_module_num_params(net, false), trainable = bk_module_num_params(net, true);
    if (total < 0 || trainable < 0) return -1;
    printf("total: %" PRId64 " parameters (%" PRId64 " trainable)\n", total, trainable);
    return 0;
}

/* print(net), then the shapes of its input X and output Y and, with values, "Y = " and Y:
 * what the block examples show after their forward. */
static inline void print_forward(const bk_module *net, const bk_tensor *X, const bk_tensor *Y, bool values) {
    bk_module_print(net, stdout);
    print_shape("input X shape", X);
    print_shape("output Y shape", Y);
    if (values) {
        printf("Y = ");
        bk_print(Y, stdout);
    }
}

/* D2L 3.3's synthetic_data: n samples of 2 features x ~ N(0, 1) and targets
 * y = x w + b + N(0, 0.01^2) noise, drawn from a generator of their own (seed 1), so the
 * data do not depend on the default generator that initialises the model. */
static inline void synthetic_data(int n, const float w[2], float b, float *x, float *y) {
    bk_rng rng;
    bk_rng_seed(&rng, 1);
    for (int i = 0; i < n; i++) {
        x[2 * i] = bk_rng_normal(&rng);
        x[2 * i + 1] = bk_rng_normal(&rng);
        y[i] = x[2 * i] * w[0] + x[2 * i + 1] * w[1] + b + 0.01f * bk_rng_normal(&rng);
    }
}

/* The end of an example's main: the error, if status says it failed, then the thread's
 * clean-up (the caller has freed what it made). Returns status. */
static inline int example_exit(const char *example, int status) {
    if (status) fprintf(stderr, "%s: %s\n", example, bk_last_error());
    bk_thread_cleanup();
    return status;
}

#endif /* BRICK_EXAMPLES_COMMON_H */

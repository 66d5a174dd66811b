/* common.h - the reporting every example shares: shapes, and a summary of a block's
 * parameters (what PyTorch users print with named_parameters()). Header-only: each
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
               t->grad ? "grad: yes" : t->requires_grad ? "grad: none yet" : "grad: no (constant)");
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

#endif /* BRICK_EXAMPLES_COMMON_H */

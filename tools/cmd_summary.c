/* cmd_summary.c - `brick summary FILE | --model SPEC`: the block tree as print(net) shows
 * it, then a table of every block: dotted name, class, output shape, parameter count.
 *
 * Output shapes come from one forward pass of a zero batch of 1 (grad off, eval mode)
 * during which every block of the tree is "spied on": its class pointer is swapped for a
 * copy whose forward calls the original one and records the output's shape. This works
 * for any block, whatever its forward does with its children (not only Sequential), and
 * the original classes are put back before anything else happens. A block registered
 * twice shows the shape of its last call.
 */
#define _XOPEN_SOURCE 700 /* strdup */

#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f) {
    fprintf(f,
            "usage: brick summary FILE\n"
            "       brick summary --model SPEC [--in-shape 1,28,28] [--classes 10] [PLAIN]\n"
            "\n"
            "Prints a model's block tree (as PyTorch's print(net)) and a table of its\n"
            "blocks: dotted name, class, output shape for a batch of 1, parameter count.\n"
            "FILE is a model file or checkpoint written by `brick train`; SPEC is a model\n"
            "name or name:key=value,..., with PLAIN its weights as a plain state dict saved\n"
            "from PyTorch (checked against the model; docs/pytorch.md) (models: ");
    for (const char *const *n = bk_model_names(); *n; n++) fprintf(f, "%s%s", *n, n[1] ? ", " : ")\n");
    fprintf(f,
            "\n"
            "options:\n"
            "  --model SPEC      summarise a model from the zoo instead of a file\n"
            "  --in-shape DIMS   its input shape without the batch (default 1,28,28)\n"
            "  --classes N       its number of classes (default 10)\n"
            "  --non-strict      with PLAIN: load what matches, list the other names\n"
            "  -h, --help        this help\n");
}

typedef struct spy {
    bk_module *m;
    const bk_module_class *orig;
    bk_module_class cls; /* orig with forward = spy_forward */
    char shape[96];
} spy;

typedef struct row {
    char *name;
    bk_module *m;
    int depth;
} row;

static spy *spies;
static int n_spies;

static spy *spy_find(const bk_module *m) {
    for (int i = 0; i < n_spies; i++)
        if (spies[i].m == m) return &spies[i];
    return NULL;
}

static bk_tensor *spy_forward(bk_module *self, bk_tensor *x) {
    spy *s = spy_find(self);
    bk_tensor *y = s->orig->forward(self, x);
    if (y) bk_shape_str(y, s->shape, sizeof s->shape);
    return y;
}

/* Lists the blocks under m in pre-order (rows) and spies on each distinct one. */
static bool collect(bk_module *m, const char *name, int depth, row **rows, int *n, int *cap) {
    if (depth > 64) return false;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 32;
        row *r = realloc(*rows, (size_t)*cap * sizeof *r);
        spy *s = realloc(spies, (size_t)*cap * sizeof *s);
        if (r) *rows = r;
        if (s) spies = s;
        if (!r || !s) return false;
    }
    (*rows)[*n] = (row){strdup(name), m, depth};
    if (!(*rows)[(*n)++].name) return false;
    if (!spy_find(m)) {
        spy *s = &spies[n_spies++];
        s->m = m;
        s->orig = m->cls;
        s->cls = *m->cls;
        s->cls.forward = spy_forward;
        snprintf(s->shape, sizeof s->shape, "-");
    }
    for (int i = 0; i < m->n_children; i++) {
        size_t len = strlen(name) + strlen(m->children[i].name) + 2;
        char *child = malloc(len);
        if (!child) return false;
        snprintf(child, len, "%s%s%s", name, name[0] ? "." : "", m->children[i].name);
        bool ok = collect(m->children[i].module, child, depth + 1, rows, n, cap);
        free(child);
        if (!ok) return false;
    }
    return true;
}

/* "203,530" */
static const char *grouped(int64_t v, char *buf, size_t n) {
    char digits[32];
    snprintf(digits, sizeof digits, "%" PRId64, v);
    size_t len = strlen(digits), k = 0;
    for (size_t i = 0; i < len && k + 2 < n; i++) {
        if (i && (len - i) % 3 == 0 && digits[0] != '-') buf[k++] = ',';
        buf[k++] = digits[i];
    }
    buf[k] = '\0';
    return buf;
}

static int summarise(bk_module *net, int in_ndim, const int64_t *in_shape, const char *title) {
    row *rows = NULL;
    int n = 0, cap = 0, rc = CLI_OK;
    spies = NULL;
    n_spies = 0;
    if (!collect(net, "", 0, &rows, &n, &cap)) {
        rc = cli_fail("out of memory");
        goto done;
    }
    /* forward a zero batch of 1 with every block spied on */
    int64_t shape[BK_MAX_DIMS];
    shape[0] = 1;
    for (int d = 0; d < in_ndim; d++) shape[d + 1] = in_shape[d];
    char in_str[96];
    bool prev = bk_set_grad_enabled(false);
    bk_module_train(net, false);
    for (int i = 0; i < n_spies; i++) spies[i].m->cls = &spies[i].cls;
    bk_tensor *x = bk_zeros(in_ndim + 1, shape);
    bk_shape_str(x, in_str, sizeof in_str);
    bk_tensor *y = bk_forward(net, x);
    for (int i = 0; i < n_spies; i++) spies[i].m->cls = spies[i].orig;
    bk_set_grad_enabled(prev);
    bk_arena_reset(NULL);
    if (!y) {
        rc = cli_fail("forward of a zero batch %s failed: %s", in_str, bk_last_error());
        goto done;
    }

    printf("%s\n", title);
    bk_module_print(net, stdout);
    int name_w = 7, class_w = 5, shape_w = 12;
    for (int i = 1; i < n; i++) {
        int w = 2 * (rows[i].depth - 1) + (int)strlen(rows[i].name);
        if (w > name_w) name_w = w;
        if ((int)strlen(bk_module_name(rows[i].m)) > class_w)
            class_w = (int)strlen(bk_module_name(rows[i].m));
        if ((int)strlen(spy_find(rows[i].m)->shape) > shape_w)
            shape_w = (int)strlen(spy_find(rows[i].m)->shape);
    }
    if ((int)strlen(bk_module_name(net)) > class_w) class_w = (int)strlen(bk_module_name(net));
    if ((int)strlen(in_str) > shape_w) shape_w = (int)strlen(in_str);
    char num[32];
    printf("\n%-*s  %-*s  %-*s  %12s\n", name_w, "name", class_w, "class", shape_w, "output shape", "params");
    int total_w = name_w + class_w + shape_w + 18;
    for (int i = 0; i < total_w; i++) putchar('-');
    printf("\n%-*s  %-*s  %s\n", name_w, "(input)", class_w, "", in_str);
    for (int i = 1; i < n; i++) {
        int indent = 2 * (rows[i].depth - 1);
        printf("%*s%-*s  %-*s  %-*s  %12s\n", indent, "", name_w - indent, rows[i].name, class_w,
               bk_module_name(rows[i].m), shape_w, spy_find(rows[i].m)->shape,
               grouped(bk_module_num_params(rows[i].m, false), num, sizeof num));
    }
    for (int i = 0; i < total_w; i++) putchar('-');
    printf("\n%-*s  %-*s  %-*s  %12s\n", name_w, "(total)", class_w, bk_module_name(net), shape_w,
           spy_find(net)->shape, grouped(bk_module_num_params(net, false), num, sizeof num));
    printf("total parameters: %s", grouped(bk_module_num_params(net, false), num, sizeof num));
    printf(" (trainable %s)\n", grouped(bk_module_num_params(net, true), num, sizeof num));
done:
    for (int i = 0; i < n; i++) free(rows[i].name);
    free(rows);
    free(spies);
    spies = NULL;
    n_spies = 0;
    return rc;
}

int cmd_summary(int argc, char **argv) {
    cli_plain plain = CLI_PLAIN_DEFAULTS;
    cli_option opts[] = {CLI_OPTS_PLAIN(&plain)};
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, CLI_COUNT(opts), pos, 1, &n_pos, help);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos == 0 && !plain.model) return cli_usage("expected a model FILE or --model SPEC (see --help)");
    if (cli_opt(opts, CLI_COUNT(opts), "--class-names")->given)
        return cli_usage("--class-names goes with eval, predict and import");
    if (n_pos == 0 && plain.non_strict) return cli_usage("--non-strict goes with a PLAIN file");
    if ((rc = cli_plain_check(&plain, opts, CLI_COUNT(opts)))) return rc;
    if (cli_parse_only) return CLI_OK;
    if (n_pos == 1) {
        if ((rc = cli_need_file(NULL, pos[0]))) return rc;
        cli_model cm;
        if ((rc = cli_model_open(pos[0], &plain, &cm))) return rc;
        char title[512];
        snprintf(title, sizeof title, "%s: %s", pos[0], cm.arch);
        rc = summarise(cm.m, cm.in_ndim, cm.in_shape, title);
        cli_model_free(&cm);
        return rc;
    }
    char canon[256];
    bk_module *net = bk_model_build(plain.model, plain.in_ndim, plain.shape, (int)plain.classes, canon,
                                    sizeof canon);
    if (!net) return cli_fail(NULL);
    rc = summarise(net, plain.in_ndim, plain.shape, canon);
    bk_module_free(net);
    return rc;
}

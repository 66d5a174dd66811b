/* cmd_summary.c - `brick summary FILE | --model SPEC`: the block tree as print(net) shows
 * it, then a table of every block: dotted name, class, output shape, parameter count,
 * multiply-adds; then what the model costs: multiply-adds per sample and the memory of
 * parameters, gradients and activations for a batch (as torchinfo reports them).
 *
 * Multiply-adds are counted as torchinfo counts them: a Linear or convolution block's
 * weight elements times the output positions each is used at (weight numel x output numel
 * / output channels), per call; other blocks (norms, activations, pooling, attention's
 * score products) count 0. A block's figure includes its children's. Activations: the
 * output of every block without children, all kept for the backward pass.
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
            "usage: brick summary FILE [--batch-size B]\n"
            "       brick summary --model SPEC [--in-shape 1,28,28] [--classes 10] [--batch-size B] [PLAIN]\n"
            "\n"
            "Prints a model's block tree (as PyTorch's print(net)) and a table of its\n"
            "blocks: dotted name, class, output shape for a batch of 1, parameter count,\n"
            "multiply-adds per sample (a Linear or convolution block's weight elements times\n"
            "the output positions, with its children's, as torchinfo counts them); then the\n"
            "memory of parameters, gradients and activations (every output of a block\n"
            "without children) for a training batch of B.\n"
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
            "  --batch-size B    the batch of the memory estimate (default 1)\n"
            "  --non-strict      with PLAIN: load what matches, list the other names\n"
            "  -h, --help        this help\n");
}

typedef struct spy {
    bk_module *m;
    const bk_module_class *orig;
    bk_module_class cls; /* orig with forward = spy_forward */
    char shape[96];
    int64_t out_numel; /* of the last call, batch 1 */
    int64_t macs;      /* its own multiply-adds, summed over its calls */
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
    if (!y) return y;
    bk_shape_str(y, s->shape, sizeof s->shape);
    s->out_numel = y->numel;
    const char *cls = bk_module_name(self);
    bk_tensor *w = !strcmp(cls, "Linear") || !strncmp(cls, "Conv", 4) ? bk_module_get(self, "weight") : NULL;
    if (w && w->ndim >= 2 && w->shape[0] > 0) s->macs += w->numel * (y->numel / w->shape[0]);
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
        s->out_numel = s->macs = 0;
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

/* m's multiply-adds with its descendants'. */
static int64_t macs_of(const bk_module *m) {
    int64_t total = spy_find(m)->macs;
    for (int i = 0; i < m->n_children; i++) total += macs_of(m->children[i].module);
    return total;
}

/* "1.5 MiB" */
static const char *bytes(double b, char *buf, size_t n) {
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) b /= 1024, u++;
    snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
    return buf;
}

static int summarise(bk_module *net, int in_ndim, const int64_t *in_shape, int64_t batch, const char *title) {
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
    char num[32], num2[32];
    printf("\n%-*s  %-*s  %-*s  %12s  %14s\n", name_w, "name", class_w, "class", shape_w, "output shape",
           "params", "mult-adds");
    int total_w = name_w + class_w + shape_w + 34;
    for (int i = 0; i < total_w; i++) putchar('-');
    printf("\n%-*s  %-*s  %s\n", name_w, "(input)", class_w, "", in_str);
    for (int i = 1; i < n; i++) {
        int indent = 2 * (rows[i].depth - 1);
        printf("%*s%-*s  %-*s  %-*s  %12s  %14s\n", indent, "", name_w - indent, rows[i].name, class_w,
               bk_module_name(rows[i].m), shape_w, spy_find(rows[i].m)->shape,
               grouped(bk_module_num_params(rows[i].m, false), num, sizeof num),
               grouped(macs_of(rows[i].m), num2, sizeof num2));
    }
    for (int i = 0; i < total_w; i++) putchar('-');
    printf("\n%-*s  %-*s  %-*s  %12s  %14s\n", name_w, "(total)", class_w, bk_module_name(net), shape_w,
           spy_find(net)->shape, grouped(bk_module_num_params(net, false), num, sizeof num),
           grouped(macs_of(net), num2, sizeof num2));
    printf("total parameters: %s", grouped(bk_module_num_params(net, false), num, sizeof num));
    printf(" (trainable %s)\n", grouped(bk_module_num_params(net, true), num, sizeof num));
    /* the cost: per sample, then the memory of one training step on a batch */
    int64_t acts = 0; /* outputs of the blocks without children, per sample */
    for (int i = 0; i < n; i++)
        if (rows[i].m->n_children == 0) acts += spy_find(rows[i].m)->out_numel;
    if (n == 1) acts = spy_find(net)->out_numel;
    printf("multiply-adds per sample: %s (Linear and convolution weights)\n",
           grouped(macs_of(net), num, sizeof num));
    double p = 4.0 * (double)bk_module_num_params(net, false),
           g = 4.0 * (double)bk_module_num_params(net, true);
    double a = 4.0 * (double)acts * (double)batch;
    char pb[32], gb[32], ab[32], tb[32];
    printf("memory for a batch of %" PRId64
           " (float32): parameters %s, gradients %s, activations %s, total %s\n",
           batch, bytes(p, pb, sizeof pb), bytes(g, gb, sizeof gb), bytes(a, ab, sizeof ab),
           bytes(p + g + a, tb, sizeof tb));
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
    int64_t batch = 1;
    cli_option opts[] = {CLI_OPTS_PLAIN(&plain), {"--batch-size", CLI_INT, &batch, 1, 1e9, false, NULL}};
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
        rc = summarise(cm.m, cm.in_ndim, cm.in_shape, batch, title);
        cli_model_free(&cm);
        return rc;
    }
    char canon[256];
    bk_module *net = bk_model_build(plain.model, plain.in_ndim, plain.shape, (int)plain.classes, canon,
                                    sizeof canon);
    if (!net) return cli_fail(NULL);
    rc = summarise(net, plain.in_ndim, plain.shape, batch, canon);
    bk_module_free(net);
    return rc;
}

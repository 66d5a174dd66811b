/* cli.c - what the brick commands share: messages and exit statuses, option parsing,
 * paths and the default data directory, atomic text files, and rebuilding a model from
 * the metadata of a file the tool wrote.
 */
#define _XOPEN_SOURCE 700 /* readlink, clock_gettime, strdup */

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


const char *cli_prog = "brick";
bool cli_parse_only = false;

/* ---- messages ------------------------------------------------------------------------- */

/* One line, escaped (bk_escape): a name or value from a file that a message quotes
 * cannot end the line early or send control sequences to the terminal. (Library messages
 * are escaped already; escaping again changes nothing.) */
static void vreport(const char *fmt, va_list ap) {
    char msg[2048], safe[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "%s: %s\n", cli_prog, bk_escape(msg, safe, sizeof safe));
}

int cli_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    return CLI_USAGE;
}

int cli_fail(const char *fmt, ...) {
    if (!fmt) {
        const char *e = bk_last_error();
        fprintf(stderr, "%s: %s\n", cli_prog, e[0] ? e : "unknown error");
        return CLI_RUNTIME;
    }
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    return CLI_RUNTIME;
}

/* ---- options ---------------------------------------------------------------------------- */

bool cli_parse_i64(const char *s, int64_t *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno) return false;
    *out = (int64_t)v;
    return true;
}

bool cli_value_parse(const cli_option *o, const char *v, void *out, char *why, size_t n) {
    switch (o->kind) {
    case CLI_STR: {
        bool ok = *v != '\0' && !o->choices;
        for (const char *const *c = o->choices; c && *c && !ok; c++) ok = !strcmp(v, *c);
        if (ok) {
            *(const char **)out = v;
            return true;
        }
        if (!o->choices) {
            snprintf(why, n, "needs a non-empty value");
            return false;
        }
        size_t k = (size_t)snprintf(why, n, "must be one of");
        for (const char *const *c = o->choices; *c && k < n; c++)
            k += (size_t)snprintf(why + k, n - k, "%s %s", c == o->choices ? "" : ",", *c);
        return false;
    }
    case CLI_INT:
    case CLI_FLOAT:
    case CLI_F32: {
        bool integer = o->kind == CLI_INT;
        int64_t i = 0;
        double x = NAN;
        char *end = NULL;
        errno = 0;
        if (integer && cli_parse_i64(v, &i)) {
            x = (double)i;
        } else if (!integer) {
            x = strtod(v, &end);
            if (!*v || *end || errno) x = NAN;
        }
        /* THE rounding of a float32 setting (the lr and the optimizer's other settings): the
         * value the optimizer uses, the one its metadata holds (%.9g gives it back exactly
         * through this parser) and the one a resume compares, whether it came from a flag or
         * a file. */
        bool overflow = o->kind == CLI_F32 && isfinite(x) && !isfinite((float)x);
        if (o->kind == CLI_F32) x = (float)x;
        if (isfinite(x) && x >= o->min && x <= o->max) {
            if (integer) *(int64_t *)out = i;
            else *(double *)out = x;
            return true;
        }
        const char *what = integer ? "an integer" : "a number";
        if (overflow) snprintf(why, n, "must be a number a float holds (at most %g)", (double)FLT_MAX);
        else if (o->max >= (integer ? 9e18 : 1e300))
            snprintf(why, n, "must be %s >= %.*g", what, integer ? 19 : 6, o->min);
        else if (integer) snprintf(why, n, "must be an integer in %.0f..%.0f", o->min, o->max);
        else snprintf(why, n, "must be a number in [%g, %g]", o->min, o->max);
        return false;
    }
    default: snprintf(why, n, "has an unknown kind (internal error)"); return false;
    }
}

static int set_value(cli_option *o, const char *v) {
    char why[256];
    if (cli_value_parse(o, v, o->out, why, sizeof why)) return CLI_OK;
    if (o->kind == CLI_STR && !o->choices) return cli_usage("%s %s", o->name, why);
    return cli_usage("%s %s, got '%s'", o->name, why, v);
}

int cli_parse(int argc, char **argv, cli_option *opts, int n_opts, const char **pos, int max_pos, int *n_pos,
              void (*help)(FILE *f)) {
    bool options_done = false;
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || !strcmp(a, "-")) {
            if (*n_pos >= max_pos)
                return max_pos ? cli_usage("unexpected argument '%s' (see --help)", a)
                               : cli_usage("takes no arguments, got '%s' (see --help)", a);
            pos[(*n_pos)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            options_done = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            help(stdout);
            return -1;
        }
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        cli_option *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (strlen(opts[k].name) == len && !strncmp(opts[k].name, a, len)) o = &opts[k];
        if (!o) return cli_usage("unknown option '%.*s' (see --help)", (int)len, a);
        if (o->kind == CLI_FLAG) {
            if (eq) return cli_usage("%s takes no value", o->name);
            *(bool *)o->out = true;
            o->given = true;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) return cli_usage("%s needs a value", o->name);
            v = argv[++i];
        }
        int rc = set_value(o, v);
        if (rc) return rc;
        o->given = true;
    }
    return CLI_OK;
}

cli_option *cli_opt(cli_option *opts, int n_opts, const char *name) {
    for (int k = 0; k < n_opts; k++)
        if (!strcmp(opts[k].name, name)) return &opts[k];
    return NULL;
}

/* ---- files and data ----------------------------------------------------------------------- */

bool cli_is_dir(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool cli_is_file(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int cli_need_file(const char *flag, const char *path) {
    struct stat st;
    const char *why = stat(path, &st) != 0   ? "no such file"
                      : !S_ISREG(st.st_mode) ? "not a regular file"
                                             : NULL;
    if (!why) return CLI_OK;
    return cli_usage("%s%s%s: %s", flag ? flag : "", flag ? " " : "", path, why);
}

bool cli_parent_is_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return true;
    if (slash == path) return true;
    char dir[PATH_MAX];
    if ((size_t)(slash - path) >= sizeof dir) return false;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    return cli_is_dir(dir);
}

static const char *const FASHION_FILES[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

/* Whether dir holds FASHION_FILES[i], plain or .gz. */
static bool has_fashion_file(const char *dir, int i) {
    char p[PATH_MAX], gz[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dir, FASHION_FILES[i]);
    snprintf(gz, sizeof gz, "%s/%s.gz", dir, FASHION_FILES[i]);
    return cli_is_file(p) || cli_is_file(gz);
}

int cli_need_out(const char *out) {
    if (cli_is_dir(out)) return cli_usage("--out %s is a directory (give a file name)", out);
    if (!cli_parent_is_dir(out)) return cli_usage("--out %s: its directory does not exist", out);
    return CLI_OK;
}

bool cli_has_fashion_file(const char *dir) {
    if (!cli_is_dir(dir)) return false;
    for (int i = 0; i < 4; i++)
        if (has_fashion_file(dir, i)) return true;
    return false;
}

bool cli_has_fashion_mnist(const char *dir) {
    if (!cli_is_dir(dir)) return false;
    for (int i = 0; i < 4; i++)
        if (!has_fashion_file(dir, i)) return false;
    return true;
}

int cli_need_fashion_mnist(const char *dir, bool train) {
    char missing[256] = "";
    size_t k = 0;
    int n_missing = 0;
    for (int i = train ? 0 : 2; i < 4; i++)
        if (!has_fashion_file(dir, i) && k < sizeof missing)
            k += (size_t)snprintf(missing + k, sizeof missing - k, "%s%s[.gz]", n_missing++ ? ", " : "",
                                  FASHION_FILES[i]);
    if (!n_missing) return CLI_OK;
    return cli_usage("--data %s: no Fashion-MNIST files there: %s %s missing", dir, missing,
                     n_missing > 1 ? "are" : "is");
}

bool cli_bundled(const char *rel, char *buf, size_t n) {
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return false;
    exe[len] = '\0';
    for (int up = 0; up < 2; up++) { /* <repo>/build/brick or <prefix>/bin/brick */
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
    }
    static const char *const dirs[] = {"data", "share/brick"};
    for (int i = 0; i < 2; i++) {
        int k = snprintf(buf, n, "%s/%s/%s", exe, dirs[i], rel);
        if (k > 0 && (size_t)k < n && access(buf, R_OK) == 0) return true;
    }
    return false;
}

const char *cli_default_data(char *buf, size_t n, const char **why) {
    const char *env = getenv("BRICK_DATA");
    if (env && *env) {
        *why = "from $BRICK_DATA";
        snprintf(buf, n, "%s", env);
        return buf;
    }
    if (cli_has_fashion_mnist("/usr/share/datasets/fashion-mnist")) {
        *why = "the full data set";
        snprintf(buf, n, "/usr/share/datasets/fashion-mnist");
        return buf;
    }
    if (cli_bundled("fashion-mnist-subset", buf, n) && cli_has_fashion_mnist(buf)) {
        *why = "the bundled subset (no /usr/share/datasets/fashion-mnist)";
        return buf;
    }
    *why = "the bundled subset, from the current directory";
    snprintf(buf, n, "data/fashion-mnist-subset");
    return buf;
}

void cli_buf_printf(cli_buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)k < b->cap) {
            b->len += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap <= b->len + (size_t)k) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

void cli_buf_free(cli_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int cli_write_atomic(const char *path, const cli_buf *b) {
    if (b->oom) {
        bk_set_error("%s: out of memory", path);
        return -1;
    }
    return bk_file_write_atomic(path, b->p, b->len);
}

char *cli_sibling(const char *path, const char *suffix) {
    static const char ext[] = ".safetensors";
    size_t len = strlen(path), el = strlen(ext);
    if (len > el && !strcmp(path + len - el, ext)) len -= el;
    char *out = malloc(len + strlen(suffix) + 1);
    if (!out) return NULL;
    memcpy(out, path, len);
    strcpy(out + len, suffix);
    return out;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_set_threads(int n) { bk_set_num_threads(n); }

bool cli_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return !strcmp(a, b);
}

int cli_check_writable(const char *what, const char *path, int64_t bytes) {
    if (cli_is_dir(path)) return cli_usage("%s %s is a directory (give a file name)", what, path);
    /* the writer's own temporary file, with the room the file will take: a full disk or a
     * file size limit shows now rather than after the first epoch */
    if (bk_file_check_writable(path, bytes) != 0) return cli_fail("%s %s", what, bk_last_error());
    return CLI_OK;
}

/* ---- models from files --------------------------------------------------------------------- */

bool cli_parse_shape(const char *s, int *ndim, int64_t *shape) {
    int d = 0;
    char part[32];
    while (s && *s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        if (d >= BK_MAX_DIMS || len == 0 || len >= sizeof part) return false;
        memcpy(part, s, len);
        part[len] = '\0';
        if (!cli_parse_i64(part, &shape[d]) || shape[d] <= 0) return false;
        d++;
        s = comma ? comma + 1 : NULL;
    }
    *ndim = d;
    return d > 0;
}

int cli_meta_value(const char *path, const bk_safetensors *st, const char *key, const cli_option *range,
                   bool required, void *out) {
    const char *v = bk_safetensors_meta(st, key);
    if (!v) return required ? cli_fail("%s: metadata %s is missing", path, key) : CLI_OK;
    char why[256];
    if (cli_value_parse(range, v, out, why, sizeof why)) return CLI_OK;
    if (range->name[0] == '-')
        return cli_fail("%s: metadata %s \"%.64s\" %s (as %s)", path, key, v, why, range->name);
    return cli_fail("%s: metadata %s \"%.64s\" %s", path, key, v, why);
}

int cli_check_finite(const char *path, const bk_safetensors *st) {
    for (int i = 0; i < bk_safetensors_count(st); i++) {
        const char *name = bk_safetensors_name(st, i);
        const bk_tensor *t = name ? bk_safetensors_get(st, name) : NULL;
        for (int64_t k = 0; t && k < t->numel; k++)
            if (!isfinite(t->data[k]))
                return cli_fail(
                    "%s: tensor \"%s\" holds a non-finite value (%g at element "
                    "%" PRId64
                    "): the file is damaged, or saved from a run that "
                    "diverged",
                    path, name, (double)t->data[k], k);
    }
    return CLI_OK;
}

/* Fills cm->class_names from "a,b,c" (escaped: they are printed). */
static void set_class_names(cli_model *cm, const char *names) {
    for (int c = 0; names && *names && c < cm->n_classes; c++) {
        const char *comma = strchr(names, ',');
        size_t len = comma ? (size_t)(comma - names) : strlen(names);
        char raw[256], safe[256];
        snprintf(raw, sizeof raw, "%.*s", (int)(len < sizeof raw ? len : sizeof raw - 1), names);
        cm->class_names[c] = strdup(bk_escape(raw, safe, sizeof safe));
        names = comma ? comma + 1 : names + len;
    }
}

int cli_model_load(const char *path, cli_model *cm) {
    memset(cm, 0, sizeof *cm);
    /* Read once: the metadata rebuilds the model and the same tensors fill it (reading the
     * file again would hold its tensors twice at the peak, and could find another file). */
    bk_safetensors *st = bk_safetensors_load(path);
    if (!st) return cli_fail(NULL);
    int rc = CLI_RUNTIME;
    const char *format = bk_safetensors_meta(st, "brick.format");
    const char *arch = bk_safetensors_meta(st, "brick.arch");
    const char *in_shape = bk_safetensors_meta(st, "brick.in_shape");
    const char *n_classes = bk_safetensors_meta(st, "brick.n_classes");
    const char *names = bk_safetensors_meta(st, "brick.class_names");
    int64_t nc = 0;
    if (!format || (strcmp(format, CLI_MODEL_FORMAT) && strcmp(format, CLI_CKPT_FORMAT))) {
        cli_fail("%s: not a brick model file (metadata brick.format is %s%s%s, expected \"" CLI_MODEL_FORMAT
                 "\")",
                 path, format ? "\"" : "missing", format ? format : "", format ? "\"" : "");
        goto done;
    }
    if (!arch || !in_shape || !n_classes) {
        cli_fail("%s: metadata brick.%s is missing", path,
                 !arch       ? "arch"
                 : !in_shape ? "in_shape"
                             : "n_classes");
        goto done;
    }
    if (!cli_parse_shape(in_shape, &cm->in_ndim, cm->in_shape)) {
        cli_fail("%s: metadata brick.in_shape \"%s\" is not a shape like 1,28,28", path, in_shape);
        goto done;
    }
    if (!cli_parse_i64(n_classes, &nc) || nc < 1 || nc > CLI_MAX_CLASSES) {
        cli_fail("%s: metadata brick.n_classes \"%s\" is not in 1..%d", path, n_classes, CLI_MAX_CLASSES);
        goto done;
    }
    /* NaN weights would evaluate to "test loss nan" and exit 0: refuse them, by name */
    if (cli_check_finite(path, st)) goto done;
    if (cli_prep_from_meta(path, st, in_shape, &cm->prep)) goto done;
    cm->n_classes = (int)nc;
    /* What is printed (the arch, the class names) is kept escaped: it comes from the file. */
    bk_escape(arch, cm->arch, sizeof cm->arch);
    set_class_names(cm, names);
    /* a model of a CSV table: its task and standardisation (n_features: its input) */
    if (cli_tabular_from_meta(path, st, cm->in_ndim == 1 ? cm->in_shape[0] : 0, &cm->tab)) goto done;
    cm->m = bk_model_build(arch, cm->in_ndim, cm->in_shape, cm->n_classes, NULL, 0);
    if (!cm->m) {
        cli_fail("%s: cannot rebuild its model: %s", path, bk_last_error());
        goto done;
    }
    if (bk_checkpoint_load_from(st, cm->m, NULL) != 0) {
        cli_fail(NULL);
        goto done;
    }
    rc = CLI_OK;
done:
    bk_safetensors_free(st);
    if (rc) cli_model_free(cm);
    return rc;
}

/* "F32 x 60, I64 x 20": how many tensors of each dtype st holds, in the order met. */
static void dtype_counts(const bk_safetensors *st, char *out, size_t n) {
    const char *seen[16];
    int count[16], k = 0;
    for (int i = 0; i < bk_safetensors_count(st); i++) {
        const char *d = bk_safetensors_dtype(st, bk_safetensors_name(st, i));
        int j = 0;
        while (j < k && strcmp(seen[j], d) != 0) j++;
        if (j == k && k < 16) seen[k] = d, count[k++] = 0;
        if (j < k) count[j]++;
    }
    size_t len = 0;
    out[0] = '\0';
    for (int j = 0; j < k && len < n; j++)
        len += (size_t)snprintf(out + len, n - len, "%s%s x %d", j ? ", " : "", seen[j], count[j]);
}

int cli_plain_check(cli_plain *p, cli_option *opts, int n_opts) {
    static const char *const need_model[] = {"--in-shape", "--classes", "--class-names", "--non-strict"};
    for (int i = 0; i < 4; i++) {
        cli_option *o = cli_opt(opts, n_opts, need_model[i]);
        if (o && o->given && !p->model)
            return cli_usage("%s goes with --model (a brick model file records it)", need_model[i]);
    }
    if (!p->model) return CLI_OK;
    if (!cli_parse_shape(p->in_shape, &p->in_ndim, p->shape) || p->in_ndim >= BK_MAX_DIMS)
        return cli_usage("--in-shape must be positive sizes like 1,28,28, got '%s'", p->in_shape);
    /* a bad spec (or one over BK_MODEL_MAX_PARAMS) is usage */
    if (bk_model_num_params(p->model, p->in_ndim, p->shape, (int)p->classes, NULL, 0) < 0)
        return cli_usage("%s", bk_last_error());
    return CLI_OK;
}

int cli_model_open(const char *path, const cli_plain *p, cli_model *cm) {
    if (!p || !p->model) return cli_model_load(path, cm);
    memset(cm, 0, sizeof *cm);
    bk_safetensors *st = bk_safetensors_load(path);
    if (!st) return cli_fail(NULL);
    int rc = CLI_RUNTIME;
    bk_load_report rep = {0};
    if (cli_check_finite(path, st)) goto done;
    cm->in_ndim = p->in_ndim;
    memcpy(cm->in_shape, p->shape, sizeof cm->in_shape);
    cm->n_classes = (int)p->classes;
    char canon[256];
    cm->m = bk_model_build(p->model, p->in_ndim, p->shape, cm->n_classes, canon, sizeof canon);
    if (!cm->m) {
        cli_fail(NULL);
        goto done;
    }
    bk_escape(canon, cm->arch, sizeof cm->arch);
    set_class_names(cm, p->class_names);
    dtype_counts(st, cm->dtypes, sizeof cm->dtypes);
    if (bk_module_load_report(cm->m, st, !p->non_strict, &rep) != 0) {
        cli_fail("%s (the file does not hold --model %s's state dict%s)", bk_last_error(), cm->arch,
                 p->non_strict ? "" : "; --non-strict loads what matches");
        goto done;
    }
    if (rep.n_missing || rep.n_unexpected) {
        char *lists[2] = {rep.missing, rep.unexpected};
        const char *what[2] = {"missing (left as initialised)", "unexpected (ignored)"};
        int counts[2] = {rep.n_missing, rep.n_unexpected};
        for (int k = 0; k < 2; k++)
            if (counts[k]) {
                char *safe = malloc(strlen(lists[k]) * 4 + 1); /* bk_escape grows it at most 4x */
                fprintf(stderr, "%s: %s: --non-strict: %d %s: %s\n", cli_prog, path, counts[k], what[k],
                        safe ? bk_escape(lists[k], safe, strlen(lists[k]) * 4 + 1) : "(out of memory)");
                free(safe);
            }
    }
    rc = CLI_OK;
done:
    bk_load_report_free(&rep);
    bk_safetensors_free(st);
    if (rc) cli_model_free(cm);
    return rc;
}

void cli_model_free(cli_model *cm) {
    bk_module_free(cm->m);
    cm->m = NULL;
    cli_tabular_free(&cm->tab);
    for (int c = 0; c < CLI_MAX_CLASSES; c++) {
        free(cm->class_names[c]);
        cm->class_names[c] = NULL;
    }
}

const char *cli_class_name(cli_model *cm, int c) {
    if (c >= 0 && c < CLI_MAX_CLASSES && cm->class_names[c]) return cm->class_names[c];
    if (c < 0 || c >= CLI_MAX_CLASSES) return "?";
    snprintf(cm->name_buf[c], sizeof cm->name_buf[c], "class %d", c);
    return cm->name_buf[c];
}

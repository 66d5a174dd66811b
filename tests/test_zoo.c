/* test_zoo.c - model specs (src/models/zoo.c): typed settings (integers, numbers, booleans,
 * words), their errors, and canonical specs that parse back to the same model.
 *
 * "The same model": the canonical spec of the canonical spec is itself, and both specs
 * build modules that print alike (bk_module_print: every block and its settings) with the
 * same parameter count, which bk_model_num_params predicts.
 */
#include "test.h"

#define IMAGES BK_SHAPE(1, 28, 28) /* Fashion-MNIST's input shape */

/* The bk_module_print text of m (malloc'ed; NULL on failure). */
static char *printed(const bk_module *m) {
    FILE *f = tmpfile();
    if (!f) return NULL;
    bk_module_print(m, f);
    long n = ftell(f);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    rewind(f);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s) s[n] = '\0';
    fclose(f);
    return s;
}

/* spec builds; its canonical spec builds the same model and is its own canonical spec.
 * Returns the canonical spec in canon[256]. */
static void check_round_trip(const char *spec, char *canon) {
    char again[256] = "";
    bk_module *a = bk_model_build(spec, BK_SHAPE(1, 28, 28), 10, canon, 256);
    bk_module *b = a ? bk_model_build(canon, BK_SHAPE(1, 28, 28), 10, again, sizeof again) : NULL;
    CHECK(a != NULL && b != NULL);
    if (!a || !b) {
        fprintf(stderr, "       spec %s, canonical %s\n", spec, canon);
    } else {
        char *pa = printed(a), *pb = printed(b);
        CHECK(pa && pb && !strcmp(pa, pb));
        CHECK(!strcmp(canon, again));
        int64_t n = bk_module_num_params(a, false);
        CHECK(n == bk_module_num_params(b, false));
        CHECK(n == bk_model_num_params(canon, BK_SHAPE(1, 28, 28), 10, NULL, 0));
        if (strcmp(canon, again)) fprintf(stderr, "       %s -> %s -> %s\n", spec, canon, again);
        free(pa);
        free(pb);
    }
    bk_module_free(a);
    bk_module_free(b);
}

/* Every model of the zoo, at its defaults and with every setting changed. */
TEST(every_model_round_trips) {
    char canon[256];
    int n = 0;
    for (const char *const *name = bk_model_names(); *name; name++, n++) check_round_trip(*name, canon);
    CHECK(n == 5); /* a new model: add its settings below */
    static const char *const specs[] = {
        "softmax:bias=false",
        "softmax:bias=true",
        "mlp:hidden=8",
        "mlp:act=gelu",
        "mlp:act=tanh,dropout=0.1",
        "mlp:dropout=0.25,hidden=16,act=sigmoid",
        "mlp:dropout=1e-3",
        "mlp:dropout=0",
        "mlp:act=relu,hidden=256",
        "lenet:act=sigmoid,pool=avg",
        "lenet:pool=max",
        "lenet:act=gelu",
        "resnet:width=4",
    };
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) check_round_trip(specs[i], canon);
}

/* Canonical specs name the settings of brick 0.1.0 always and the later ones only when
 * they are not at their default: the specs in existing checkpoints stay canonical. */
TEST(canonical_specs) {
    static const char *const cases[][2] = {
        {"mlp", "mlp:hidden=256"},
        {"mlp:act=relu,dropout=0", "mlp:hidden=256"},
        {"mlp:dropout=0.1", "mlp:hidden=256,dropout=0.1"},
        {"mlp:dropout=0.1,act=gelu,hidden=64", "mlp:hidden=64,act=gelu,dropout=0.1"},
        {"resnet", "resnet:width=32"},
        {"lenet", "lenet"},
        {"lenet:pool=avg,act=sigmoid", "lenet:act=sigmoid,pool=avg"},
        {"softmax:bias=true", "softmax"},
        {"softmax:bias=false", "softmax:bias=false"},
        {"googlenet", "googlenet"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char canon[256] = "";
        CHECK(bk_model_num_params(cases[i][0], BK_SHAPE(1, 28, 28), 10, canon, sizeof canon) > 0);
        CHECK(!strcmp(canon, cases[i][1]));
        if (strcmp(canon, cases[i][1]))
            fprintf(stderr, "       %s: %s, expected %s\n", cases[i][0], canon, cases[i][1]);
    }
}

/* The settings change the model they name. */
TEST(settings_build_what_they_say) {
    bk_module *m = bk_model_build("mlp:act=gelu,dropout=0.5", BK_SHAPE(1, 28, 28), 10, NULL, 0);
    char *p = m ? printed(m) : NULL;
    CHECK(p && strstr(p, "GELU") && strstr(p, "Dropout") && !strstr(p, "ReLU"));
    free(p);
    bk_module_free(m);
    m = bk_model_build("lenet:act=sigmoid,pool=avg", BK_SHAPE(1, 28, 28), 10, NULL, 0);
    p = m ? printed(m) : NULL;
    CHECK(p && strstr(p, "Sigmoid") && strstr(p, "AvgPool2d") && !strstr(p, "MaxPool2d") &&
          !strstr(p, "ReLU"));
    free(p);
    bk_module_free(m);
    /* no bias: 784 * 10 weights only */
    CHECK(bk_model_num_params("softmax:bias=false", BK_SHAPE(1, 28, 28), 10, NULL, 0) == 7840);
    CHECK(bk_model_num_params("softmax", BK_SHAPE(1, 28, 28), 10, NULL, 0) == 7850);
    /* the mlp's dropout is active in training mode only */
    bk_manual_seed(1);
    m = bk_model_build("mlp:hidden=16,dropout=0.5", BK_SHAPE(4), 3, NULL, 0);
    bk_tensor *x = bk_ones(BK_SHAPE(2, 4));
    CHECK(m && x);
    if (m && x) {
        bk_module_train(m, false);
        bk_tensor *a = bk_forward(m, x), *b = bk_forward(m, x);
        CHECK(a && b && !memcmp(a->data, b->data, sizeof(float) * (size_t)a->numel));
    }
    bk_module_free(m);
}

/* Bad values: the message names the spec, the setting and the value. */
TEST(bad_values_are_named) {
    static const struct {
        const char *spec, *err;
    } cases[] = {
        {"mlp:act=swish",
         "model: mlp:act=swish: act must be one of relu, sigmoid, tanh, gelu, got \"swish\""},
        {"mlp:dropout=1.5", "model: mlp:dropout=1.5: dropout must be a number in [0, 1], got \"1.5\""},
        {"mlp:dropout=nan", "dropout must be a number in [0, 1], got \"nan\""},
        {"mlp:dropout=", "dropout must be a number in [0, 1], got \"\""},
        {"mlp:hidden=2.5",
         "model: mlp:hidden=2.5: hidden must be a positive integer (at most 4294967296), got \"2.5\""},
        {"softmax:bias=yes", "model: softmax:bias=yes: bias must be true or false, got \"yes\""},
        {"lenet:pool=median,act=relu",
         "model: lenet:pool=median,act=relu: pool must be one of max, avg, got \"median\""},
        {"googlenet:act=relu", "model googlenet has no setting \"act\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK_ERR(bk_model_build(cases[i].spec, IMAGES, 10, NULL, 0), cases[i].err);
    /* a value longer than any setting takes */
    char long_spec[200] = "mlp:act=";
    memset(long_spec + 8, 'r', 100);
    CHECK_ERR(bk_model_build(long_spec, IMAGES, 10, NULL, 0), "act is too long");
}

/* bk_model_describe and bk_model_setting_info: every model has a description; every
 * setting a key, a type, a default and what it accepts; "name:key=default" builds the
 * model at its defaults (the same canonical spec as "name"), and "name:key=V" for the
 * ends of a range and every word builds too. */
TEST(every_model_is_described) {
    static const char *const TYPES[] = {"integer", "number", "boolean", "word"};
    int n_models = 0, n_described = 0;
    for (const char *const *name = bk_model_names(); *name; name++, n_models++) {
        int n = -1;
        const char *doc = bk_model_describe(*name, &n);
        CHECK(doc && strlen(doc) > 20 && n >= 0);
        if (!doc) continue;
        n_described++;
        char plain[256] = "", spec[512];
        CHECK(bk_model_num_params(*name, IMAGES, 10, plain, sizeof plain) > 0);
        int k = snprintf(spec, sizeof spec, "%s", *name);
        for (int i = 0; i < n; i++) {
            bk_model_setting st;
            CHECK(bk_model_setting_info(*name, i, &st) == 0);
            bool typed = false;
            for (size_t t = 0; t < 4; t++) typed |= !strcmp(st.type, TYPES[t]);
            CHECK(typed && st.key[0] && st.def[0] && st.values[0]);
            k += snprintf(spec + k, sizeof spec - (size_t)k, "%c%s=%s", i ? ',' : ':', st.key, st.def);
            /* each end of a range, or each word, is a value the setting takes */
            char one[160], copy[96];
            snprintf(copy, sizeof copy, "%s", st.values);
            const char *sep = strchr(st.type, 'w') || st.type[0] == 'b' ? "|" : "..";
            for (char *v = copy, *next; v; v = next) {
                next = strstr(v, sep);
                if (next) {
                    *next = '\0';
                    next += strlen(sep);
                }
                /* (the top of a size is refused by BK_MODEL_MAX_PARAMS, not by the setting) */
                snprintf(one, sizeof one, "%s:%s=%s", *name, st.key, v);
                bk_module *m = bk_model_build(one, BK_SHAPE(4), 2, NULL, 0);
                CHECK(m || (strstr(bk_last_error(), "BK_MODEL_MAX_PARAMS") && !next) ||
                      strstr(bk_last_error(), "image inputs"));
                if (!m) m = bk_model_build(one, IMAGES, 10, NULL, 0);
                CHECK(m || (strstr(bk_last_error(), "BK_MODEL_MAX_PARAMS") && !next));
                if (!m && !strstr(bk_last_error(), "BK_MODEL_MAX_PARAMS"))
                    fprintf(stderr, "       %s: %s\n", one, bk_last_error());
                bk_module_free(m);
            }
        }
        CHECK(bk_model_setting_info(*name, n, &(bk_model_setting){0}) < 0);
        /* the defaults, written out, build the model the plain name builds */
        char canon[256] = "";
        bk_module *m = bk_model_build(spec, IMAGES, 10, canon, sizeof canon);
        CHECK(m && !strcmp(canon, plain));
        if (!m || strcmp(canon, plain))
            fprintf(stderr, "       %s -> %s, %s -> %s\n", spec, canon, *name, plain);
        bk_module_free(m);
    }
    CHECK(n_models == 5 && n_described == n_models);
    /* what the CLI's list shows for the mlp */
    bk_model_setting st;
    CHECK(bk_model_setting_info("mlp", 0, &st) == 0 && !strcmp(st.key, "hidden") &&
          !strcmp(st.type, "integer") && !strcmp(st.def, "256") && !strcmp(st.values, "1..4294967296"));
    CHECK(bk_model_setting_info("mlp", 1, &st) == 0 && !strcmp(st.def, "relu") &&
          !strcmp(st.values, "relu|sigmoid|tanh|gelu"));
    CHECK(bk_model_setting_info("mlp", 2, &st) == 0 && !strcmp(st.type, "number") && !strcmp(st.def, "0") &&
          !strcmp(st.values, "0..1"));
    CHECK(bk_model_setting_info("softmax", 0, &st) == 0 && !strcmp(st.type, "boolean") &&
          !strcmp(st.def, "true") && !strcmp(st.values, "true|false"));
}

/* CIFAR-10's and image folders' inputs: every model of the zoo builds for (3, 32, 32), its
 * first layer takes 3 channels (the parameter count says so), and a forward pass of a
 * batch of 2 gives (2, 10). */
TEST(every_model_takes_rgb_32x32) {
    for (const char *const *name = bk_model_names(); *name; name++) {
        bk_module *m = bk_model_build(*name, BK_SHAPE(3, 32, 32), 10, NULL, 0);
        CHECK(m != NULL);
        if (!m) continue;
        CHECK(bk_module_num_params(m, false) == bk_model_num_params(*name, BK_SHAPE(3, 32, 32), 10, NULL, 0));
        CHECK(bk_model_num_params(*name, BK_SHAPE(3, 32, 32), 10, NULL, 0) >
              bk_model_num_params(*name, BK_SHAPE(1, 32, 32), 10, NULL, 0));
        bk_module_train(m, false);
        bk_tensor *y = bk_forward(m, bk_full(BK_SHAPE(2, 3, 32, 32), 0.5f));
        CHECK(y && y->ndim == 2 && y->shape[0] == 2 && y->shape[1] == 10);
        if (!y || y->shape[1] != 10) fprintf(stderr, "       %s: %s\n", *name, bk_last_error());
        bk_arena_reset(NULL);
        bk_module_free(m);
    }
}

int main(void) {
    RUN(every_model_round_trips);
    RUN(every_model_takes_rgb_32x32);
    RUN(canonical_specs);
    RUN(settings_build_what_they_say);
    RUN(bad_values_are_named);
    RUN(every_model_is_described);
    return test_summary("test_zoo");
}

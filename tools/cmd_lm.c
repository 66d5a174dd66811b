/* cmd_lm.c - `brick train-lm` and `brick generate`: a character-level language model,
 * a decoder-only Transformer or D2L's recurrent one (docs/text.md).
 *
 * --arch transformer ("char-gpt", the default): token Embedding(V, d) + positions (learned,
 * or the sinusoidal PositionalEncoding) -> TransformerEncoder of N norm_first layers run
 * with the causal mask, its final LayerNorm(d) -> Linear(d, V). Dropout is 0.
 * --arch lstm | gru (D2L's RNNModel, "Concise Implementation of Recurrent Neural
 * Networks"): one-hot ids (B, T, V) -> LSTM / GRU(V, d, N layers, batch_first) from zero
 * states -> Linear(d, V) on every step.
 *
 * train-lm (lm_train.c) trains it on a text file; the file it writes is described here,
 * next to generate, which reads it.
 *
 * The model file is a safetensors state dict with metadata "brick.format" = "brick-lm-1",
 * "brick.lm.vocab" (the vocabulary, as one string in id order) and the hyperparameters
 * ("brick.lm.arch" (absent in files older than it: transformer), "brick.lm.context",
 * "brick.lm.d_model", "brick.lm.layers", "brick.lm.heads", "brick.lm.ff",
 * "brick.lm.positions"), so that generate rebuilds it from the file alone.
 *
 * Exit statuses as every command: 0, 1 runtime failure, 2 usage error (one line).
 */
#define _XOPEN_SOURCE 700

#include "lm.h"

#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the model ------------------------------------------------------------------------ */

const char *const LM_ARCHS[LM_ARCH_COUNT + 1] = {"transformer", "lstm", "gru", NULL};
const char *const LM_POSITIONS[3] = {"learned", "sinusoidal", NULL};

int lm_arch_of(const char *name) {
    for (int i = 0; i < LM_ARCH_COUNT; i++)
        if (!strcmp(name, LM_ARCHS[i])) return i;
    return -1;
}

typedef struct lm_model {
    bk_module base;
    bk_module *tok, *pos, *enc, *head;
} lm_model;

/* x: ids (B, T) as floats -> logits (B*T, V). */
static bk_tensor *lm_forward(bk_module *self, bk_tensor *x) {
    lm_model *m = (lm_model *)self;
    if (!x || x->ndim != 2) {
        bk_set_error("char-gpt: expected ids (B, T)");
        return NULL;
    }
    int64_t b = x->shape[0], t = x->shape[1];
    bk_tensor *h = bk_forward(m->tok, x);
    h = bk_forward(m->pos, h);
    bk_tensor *mask = h ? bk_causal_mask(t) : NULL;
    h = mask ? bk_transformer_encoder_forward(m->enc, h, mask, NULL) : NULL;
    if (!h) return NULL;
    h = bk_reshape(h, BK_SHAPE(b * t, h->shape[2]));
    return bk_forward(m->head, h);
}

static const bk_module_class LM_CLASS = {"CharGPT", lm_forward, NULL, NULL};

/* D2L's RNNModel: one-hot ids -> LSTM / GRU -> Linear on every step. */
typedef struct lm_rnn {
    bk_module base;
    bk_module *rnn, *head;
    int64_t vocab;
} lm_rnn;

/* x: ids (B, T) as floats -> logits (B*T, V). */
static bk_tensor *lm_rnn_forward(bk_module *self, bk_tensor *x) {
    lm_rnn *m = (lm_rnn *)self;
    if (!x || x->ndim != 2) {
        bk_set_error("char-rnn: expected ids (B, T)");
        return NULL;
    }
    int64_t b = x->shape[0], t = x->shape[1], V = m->vocab;
    bk_tensor *onehot = bk_zeros(BK_SHAPE(b, t, V)); /* F.one_hot(x, V), batch first */
    if (!onehot) return NULL;
    for (int64_t i = 0; i < b * t; i++) {
        float id = x->data[i];
        if (!(id >= 0 && id < (float)V)) {
            bk_set_error("char-rnn: id %g is outside the vocabulary of %" PRId64, (double)id, V);
            return NULL;
        }
        onehot->data[i * V + (int64_t)id] = 1.0f;
    }
    bk_tensor *h = bk_rnn_forward(m->rnn, onehot, NULL, NULL, NULL, NULL, NULL); // (B, T, d)
    if (!h) return NULL;
    return bk_forward(m->head, bk_reshape(h, BK_SHAPE(b * t, h->shape[2])));
}

static const bk_module_class LM_RNN_CLASS = {"CharRNN", lm_rnn_forward, NULL, NULL};

static bk_module *lm_rnn_build(const lm_hparams *hp) {
    lm_rnn *m = (lm_rnn *)bk_module_new(&LM_RNN_CLASS, sizeof(lm_rnn));
    if (!m) return NULL;
    m->vocab = hp->vocab;
    bk_rnn_config cfg = BK_RNN_DEFAULTS(hp->arch == LM_LSTM ? BK_LSTM : BK_GRU, hp->vocab, hp->d_model);
    cfg.num_layers = hp->layers;
    cfg.batch_first = true;
    m->rnn = bk_module_add(&m->base, "rnn", bk_nn_rnn(cfg));
    m->head = bk_module_add(&m->base, "head", bk_nn_linear(hp->d_model, hp->vocab));
    if (!m->rnn || !m->head) {
        bk_module_free(&m->base);
        return NULL;
    }
    return &m->base;
}

bk_module *lm_build(const lm_hparams *hp) {
    if (hp->arch != LM_TRANSFORMER) return lm_rnn_build(hp);
    lm_model *m = (lm_model *)bk_module_new(&LM_CLASS, sizeof(lm_model));
    if (!m) return NULL;
    bk_transformer_config cfg = BK_TRANSFORMER_DEFAULTS(hp->d_model, hp->heads);
    cfg.dim_feedforward = hp->ff;
    cfg.dropout = 0.0f;
    cfg.batch_first = true;
    cfg.norm_first = true;
    cfg.activation = BK_ACTIVATION_GELU;
    m->tok = bk_module_add(&m->base, "tok_emb", bk_nn_embedding(hp->vocab, hp->d_model));
    m->pos = bk_module_add(&m->base, "pos",
                           hp->learned ? bk_nn_learned_positional_embedding(hp->context, hp->d_model)
                                       : bk_nn_positional_encoding(hp->d_model, 0.0f, hp->context));
    bk_module *layer = bk_nn_transformer_encoder_layer(cfg);
    bk_module *norm = bk_nn_layer_norm(1, (const int64_t[]){hp->d_model}, 1e-5f);
    m->enc = layer
                 ? bk_module_add(&m->base, "encoder", bk_nn_transformer_encoder(layer, (int)hp->layers, norm))
                 : NULL;
    if (!layer) bk_module_free(norm);
    m->head = bk_module_add(&m->base, "head", bk_nn_linear(hp->d_model, hp->vocab));
    if (!m->tok || !m->pos || !m->enc || !m->head) {
        bk_module_free(&m->base);
        return NULL;
    }
    return &m->base;
}

/* ---- text ------------------------------------------------------------------------------ */

unsigned char *lm_read_text(const char *path, int64_t *n) {
    FILE *f = bk_file_open_read(path); /* a regular file only: a FIFO would block */
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *p = malloc(cap);
    int c;
    while (p && (c = fgetc(f)) != EOF) {
        if (c == 0 || c == '\r' || c >= 128) continue;
        if (len == cap) {
            unsigned char *q = realloc(p, cap * 2);
            if (!q) {
                free(p);
                p = NULL;
                break;
            }
            p = q;
            cap *= 2;
        }
        p[len++] = (unsigned char)c;
    }
    bool err = ferror(f);
    fclose(f);
    if (!p || err) {
        bk_set_error("%s: %s", path, p ? "read error" : "out of memory");
        free(p);
        return NULL;
    }
    *n = (int64_t)len;
    return p;
}

/* ---- the model file ---------------------------------------------------------------------- */

void lm_meta_add(lm_meta *md, const char *key, const char *fmt, ...) {
    if (md->n >= LM_META_MAX) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(md->val[md->n], sizeof md->val[md->n], fmt, ap);
    va_end(ap);
    md->keys[md->n] = key;
    md->vals[md->n] = md->val[md->n];
    md->n++;
}

void lm_meta_model(lm_meta *md, const char *format, const lm_hparams *hp, const char *vocab) {
    lm_meta_add(md, "brick.format", "%s", format);
    lm_meta_add(md, "brick.lm.vocab", "%s", ""); /* (longer than val[]: borrowed below) */
    md->vals[md->n - 1] = vocab;
    lm_meta_add(md, "brick.lm.context", "%" PRId64, hp->context);
    lm_meta_add(md, "brick.lm.d_model", "%" PRId64, hp->d_model);
    lm_meta_add(md, "brick.lm.layers", "%" PRId64, hp->layers);
    lm_meta_add(md, "brick.lm.heads", "%" PRId64, hp->heads);
    lm_meta_add(md, "brick.lm.ff", "%" PRId64, hp->ff);
    lm_meta_add(md, "brick.lm.positions", "%s", hp->learned ? "learned" : "sinusoidal");
    lm_meta_add(md, "brick.lm.arch", "%s", LM_ARCHS[hp->arch]);
}

/* ---- generate ----------------------------------------------------------------------------- */

static void help_generate(FILE *f) {
    fprintf(f,
            "usage: brick generate FILE [options]\n"
            "\n"
            "Samples text from a model written by `brick train-lm`: prints the prompt and then\n"
            "N sampled characters (softmax of the logits / T), and a newline.\n"
            "\n"
            "options:\n"
            "  --prompt TEXT       the start of the text, characters of the model's vocabulary\n"
            "                      (default \"\\n\" when it is in the vocabulary)\n"
            "  --length N          characters to sample (default 200)\n"
            "  --temperature T     softmax temperature; 0 picks the likeliest (default 0.8)\n"
            "  --seed S            seed of the sampling (default 0)\n"
            "  --threads T         compute threads (default: the library's)\n"
            "  -h, --help          this help\n");
}

static bool meta_i64(const bk_safetensors *st, const char *key, int64_t *v) {
    const char *s = bk_safetensors_meta(st, key);
    return s && cli_parse_i64(s, v) && *v > 0 && *v <= 65536;
}

int cmd_generate(int argc, char **argv) {
    const char *prompt = NULL;
    int64_t length = 200, seed = 0, threads = 0;
    double temp = 0.8;
    cli_option opts[] = {
        {"--prompt", CLI_STR, &prompt, 0, 0, false, NULL},
        {"--length", CLI_INT, &length, 0, 1e8, false, NULL},
        {"--temperature", CLI_FLOAT, &temp, 0, 100, false, NULL},
        {"--seed", CLI_INT, &seed, 0, 9.0e15, false, NULL},
        CLI_OPT_THREADS(&threads),
    };
    int n_opts = CLI_COUNT(opts), n_pos = 0;
    const char *pos[1];
    int rc = cli_parse(argc, argv, opts, n_opts, pos, 1, &n_pos, help_generate);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos != 1) return cli_usage("expected one model FILE (see --help)");
    if (prompt && !*prompt) return cli_usage("--prompt is empty");
    if ((rc = cli_need_file(NULL, pos[0]))) return rc;
    if (cli_parse_only) return CLI_OK;
    if (cli_opt(opts, n_opts, "--threads")->given) cli_set_threads((int)threads);

    bk_safetensors *st = bk_safetensors_load(pos[0]);
    if (!st) return cli_fail(NULL);
    const char *fmt = bk_safetensors_meta(st, "brick.format");
    const char *vocab = bk_safetensors_meta(st, "brick.lm.vocab");
    const char *posk = bk_safetensors_meta(st, "brick.lm.positions");
    const char *archk = bk_safetensors_meta(st, "brick.lm.arch");
    int arch = archk ? lm_arch_of(archk) : LM_TRANSFORMER;
    lm_hparams hp = {0};
    if (!fmt || strcmp(fmt, LM_FORMAT) || !vocab || strlen(vocab) < 2 || strlen(vocab) > 128 || !posk ||
        !meta_i64(st, "brick.lm.context", &hp.context) || !meta_i64(st, "brick.lm.d_model", &hp.d_model) ||
        !meta_i64(st, "brick.lm.layers", &hp.layers) || !meta_i64(st, "brick.lm.heads", &hp.heads) ||
        !meta_i64(st, "brick.lm.ff", &hp.ff) || hp.d_model % hp.heads || hp.layers > 64 || arch < 0) {
        /* (the message first: fmt belongs to st) */
        rc = cli_fail("%s: not a language model written by brick train-lm (format %s)", pos[0],
                      fmt ? fmt : "missing");
        bk_safetensors_free(st);
        return rc;
    }
    hp.vocab = (int64_t)strlen(vocab);
    hp.learned = !strcmp(posk, "learned");
    hp.arch = (lm_arch)arch;
    char vocab_buf[129]; /* the metadata string dies with st */
    memcpy(vocab_buf, vocab, (size_t)hp.vocab + 1);
    vocab = vocab_buf;
    int id_of[256];
    for (int c = 0; c < 256; c++) id_of[c] = -1;
    for (int64_t i = 0; i < hp.vocab; i++) id_of[(unsigned char)vocab[i]] = (int)i;
    if (!prompt) prompt = id_of['\n'] >= 0 ? "\n" : (const char[]){vocab[0], 0};
    for (const char *p = prompt; *p; p++)
        if (id_of[(unsigned char)*p] < 0) {
            bk_safetensors_free(st);
            return cli_usage("--prompt: character 0x%02x is not in the model's vocabulary",
                             (unsigned)(unsigned char)*p);
        }
    bk_module *m = lm_build(&hp);
    if (!m || bk_module_load_from(m, st, true)) {
        bk_module_free(m);
        bk_safetensors_free(st);
        return cli_fail(NULL);
    }
    bk_safetensors_free(st);
    bk_module_train(m, false);
    bk_set_grad_enabled(false);

    size_t plen = strlen(prompt);
    int64_t total = (int64_t)plen + length;
    float *seq = malloc(sizeof(float) * (size_t)total);
    double *prob = malloc(sizeof(double) * (size_t)hp.vocab);
    if (!seq || !prob) {
        free(seq), free(prob), bk_module_free(m);
        return cli_fail("out of memory");
    }
    for (size_t i = 0; i < plen; i++) seq[i] = (float)id_of[(unsigned char)prompt[i]];
    fputs(prompt, stdout);
    bk_rng rng;
    bk_rng_seed(&rng, (uint64_t)seed * 0x9E3779B97F4A7C15ull + 7);
    rc = CLI_OK;
    for (int64_t len = (int64_t)plen; len < total; len++) {
        int64_t t = len < hp.context ? len : hp.context;
        bk_tensor *x = bk_from_data(BK_SHAPE(1, t), seq + len - t);
        bk_tensor *logits = x ? bk_forward(m, x) : NULL;
        if (!logits) {
            rc = cli_fail(NULL);
            break;
        }
        const float *row = logits->data + (t - 1) * hp.vocab;
        int64_t pick = 0;
        if (temp == 0) {
            for (int64_t v = 1; v < hp.vocab; v++)
                if (row[v] > row[pick]) pick = v;
        } else {
            double mx = row[0], sum = 0;
            for (int64_t v = 1; v < hp.vocab; v++) mx = row[v] > mx ? row[v] : mx;
            for (int64_t v = 0; v < hp.vocab; v++) sum += prob[v] = exp((row[v] - mx) / temp);
            double u = (double)bk_rng_uniform(&rng) * sum, acc = 0;
            pick = hp.vocab - 1;
            for (int64_t v = 0; v < hp.vocab; v++) {
                acc += prob[v];
                if (u < acc) {
                    pick = v;
                    break;
                }
            }
        }
        seq[len] = (float)pick;
        putchar(vocab[pick]);
        bk_arena_reset(NULL);
    }
    putchar('\n');
    fflush(stdout);
    free(seq), free(prob);
    bk_module_free(m);
    bk_arena_reset(NULL);
    return rc;
}

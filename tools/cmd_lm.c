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
 * train-lm reads a text file (bytes >= 128, '\r' and NUL are dropped, so the vocabulary is
 * ASCII), splits it 90/10 by position into train and validation, trains with AdamW on
 * random windows of --context characters (cosine learning-rate decay to a tenth; each step
 * is brick train's, cli_train_step: a NaN or infinite loss stops it before the backward),
 * and reports the validation loss in nats per character next to the add-one-smoothed bigram
 * baseline counted on the train split and evaluated on the same validation targets.
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

#include "cli.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LM_FORMAT "brick-lm-1"
#define LM_EVAL_BATCH 32

/* ---- the model ------------------------------------------------------------------------ */

/* --arch, in the order of LM_ARCHS */
typedef enum { LM_TRANSFORMER, LM_LSTM, LM_GRU, LM_ARCH_COUNT } lm_arch;
static const char *const LM_ARCHS[LM_ARCH_COUNT] = {"transformer", "lstm", "gru"};

typedef struct lm_hparams {
    int64_t vocab, context, d_model, layers, heads, ff;
    bool learned; /* learned positions, else sinusoidal */
    lm_arch arch;
} lm_hparams;

static int lm_arch_of(const char *name) {
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

static bk_module *lm_build(const lm_hparams *hp) {
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

/* The file's bytes without NUL, '\r' and bytes >= 128; malloc'ed, NULL with the error
 * set (naming the file). */
static unsigned char *read_text(const char *path, int64_t *n) {
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

/* ---- train-lm ---------------------------------------------------------------------------- */

static void help_train(FILE *f) {
    fprintf(f,
            "usage: brick train-lm [options]\n"
            "\n"
            "Trains a character-level language model (a decoder-only Transformer, or D2L's\n"
            "LSTM / GRU model) on a text file (90%% train / 10%% validation by position) and\n"
            "writes it to FILE. Prints the validation loss (nats/char) and the add-one bigram\n"
            "baseline on the same split.\n"
            "\n"
            "options:\n"
            "  --text FILE         the training text (default: brick's data/text/fortunes-sample.txt,\n"
            "                      in the source tree or installed under PREFIX/share/brick)\n"
            "  --arch ARCH         transformer, lstm or gru (default transformer)\n"
            "  --context N         context length in characters (default 64)\n"
            "  --d-model N         model width; the hidden size of an LSTM / GRU (default 64)\n"
            "  --layers N          Transformer or recurrent layers (default 2)\n"
            "  --heads N           attention heads, dividing --d-model (default 4; transformer)\n"
            "  --ff N              feed-forward width (default 256; transformer)\n"
            "  --positions KIND    learned or sinusoidal (default learned; transformer)\n"
            "  --steps N           optimizer steps (default 2000)\n"
            "  --batch-size B      windows per step (default 32)\n"
            "  --lr LR             AdamW peak learning rate, cosine-decayed to LR/10 (default 3e-3)\n"
            "  --eval-every N      validation every N steps, 0: only at the end (default 250)\n"
            "  --seed S            seed of the init and the sampling of windows (default 0)\n"
            "  --threads T         compute threads (default: the library's)\n"
            "  --out FILE          the model file (default lm.safetensors)\n"
            "  -h, --help          this help\n");
}

typedef struct lm_split {
    const float *ids; /* all ids */
    int64_t n_train, n_val;
} lm_split;

/* Mean validation loss over the non-overlapping full windows of the validation split;
 * *bigram gets the baseline on the same targets. */
static int evaluate(bk_module *m, const float *val, int64_t n_val, int64_t ctx, const double *logp, int64_t V,
                    double *loss, double *bigram) {
    int64_t windows = (n_val - 1) / ctx;
    if (windows < 1) {
        bk_set_error("the validation split (%" PRId64 " characters) is shorter than the context + 1", n_val);
        return -1;
    }
    bool prev_grad = bk_set_grad_enabled(false);
    bk_module_train(m, false);
    double sum = 0, bsum = 0;
    int64_t *tgt = malloc(sizeof(int64_t) * LM_EVAL_BATCH * ctx);
    int rc = tgt ? 0 : -1;
    for (int64_t w0 = 0; rc == 0 && w0 < windows; w0 += LM_EVAL_BATCH) {
        int64_t nb = windows - w0 < LM_EVAL_BATCH ? windows - w0 : LM_EVAL_BATCH;
        bk_tensor *x = bk_empty(BK_SHAPE(nb, ctx));
        if (!x) {
            rc = -1;
            break;
        }
        for (int64_t b = 0; b < nb; b++)
            for (int64_t t = 0; t < ctx; t++) {
                int64_t i = (w0 + b) * ctx + t;
                x->data[b * ctx + t] = val[i];
                tgt[b * ctx + t] = (int64_t)val[i + 1];
                bsum -= logp[(int64_t)val[i] * V + (int64_t)val[i + 1]];
            }
        bk_tensor *l = bk_cross_entropy(bk_forward(m, x), tgt, nb * ctx, BK_REDUCTION_SUM);
        if (!l) rc = -1;
        else sum += bk_item(l);
        bk_arena_reset(NULL);
    }
    free(tgt);
    bk_module_train(m, true);
    bk_set_grad_enabled(prev_grad);
    *loss = sum / (double)(windows * ctx);
    *bigram = bsum / (double)(windows * ctx);
    return rc;
}

static int save_lm(const char *path, bk_module *m, const lm_hparams *hp, const char *vocab) {
    char v[7][32];
    snprintf(v[0], 32, "%" PRId64, hp->context);
    snprintf(v[1], 32, "%" PRId64, hp->d_model);
    snprintf(v[2], 32, "%" PRId64, hp->layers);
    snprintf(v[3], 32, "%" PRId64, hp->heads);
    snprintf(v[4], 32, "%" PRId64, hp->ff);
    snprintf(v[5], 32, "%s", hp->learned ? "learned" : "sinusoidal");
    snprintf(v[6], 32, "%s", LM_ARCHS[hp->arch]);
    const char *keys[] = {"brick.format",     "brick.lm.vocab",     "brick.lm.context",
                          "brick.lm.d_model", "brick.lm.layers",    "brick.lm.heads",
                          "brick.lm.ff",      "brick.lm.positions", "brick.lm.arch"};
    const char *vals[] = {LM_FORMAT, vocab, v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
    return bk_checkpoint_save(path, m, NULL, 9, keys, vals);
}

int cmd_train_lm(int argc, char **argv) {
    const char *text = "data/text/fortunes-sample.txt", *out = "lm.safetensors", *positions = "learned",
               *arch_name = "transformer";
    int64_t ctx = 64, d = 64, layers = 2, heads = 4, ff = 256, steps = 2000, batch = 32, seed = 0,
            every = 250, threads = 0;
    double lr = 3e-3;
    cli_option opts[] = {
        {"--text", CLI_STR, &text, 0, 0, false, NULL},
        {"--arch", CLI_STR, &arch_name, 0, 0, false, NULL},
        {"--context", CLI_INT, &ctx, 1, 4096, false, NULL},
        {"--d-model", CLI_INT, &d, 1, 4096, false, NULL},
        {"--layers", CLI_INT, &layers, 1, 64, false, NULL},
        {"--heads", CLI_INT, &heads, 1, 256, false, NULL},
        {"--ff", CLI_INT, &ff, 1, 65536, false, NULL},
        {"--positions", CLI_STR, &positions, 0, 0, false, NULL},
        {"--steps", CLI_INT, &steps, 0, 1e9, false, NULL},
        {"--batch-size", CLI_INT, &batch, 1, 65536, false, NULL},
        {"--lr", CLI_FLOAT, &lr, 0, 10, false, NULL},
        {"--eval-every", CLI_INT, &every, 0, 1e9, false, NULL},
        {"--seed", CLI_INT, &seed, 0, 9.0e15, false, NULL},
        CLI_OPT_THREADS(&threads),
        {"--out", CLI_STR, &out, 0, 0, false, NULL},
    };
    int n_opts = CLI_COUNT(opts), n_pos = 0;
    const char *pos[1];
    int rc = cli_parse(argc, argv, opts, n_opts, pos, 0, &n_pos, help_train);
    if (rc) return rc < 0 ? CLI_OK : rc;
    bool learned = !strcmp(positions, "learned");
    if (!learned && strcmp(positions, "sinusoidal"))
        return cli_usage("--positions must be learned or sinusoidal (got '%s')", positions);
    int arch = lm_arch_of(arch_name);
    if (arch < 0) return cli_usage("--arch must be transformer, lstm or gru (got '%s')", arch_name);
    if (d % heads) return cli_usage("--d-model %" PRId64 " is not divisible by --heads %" PRId64, d, heads);
    if (!cli_parent_is_dir(out)) return cli_usage("--out %s: its directory does not exist", out);
    char bundled[PATH_MAX]; /* the default text from any directory, in the tree or installed */
    if (!cli_opt(opts, n_opts, "--text")->given &&
        cli_bundled("text/fortunes-sample.txt", bundled, sizeof bundled))
        text = bundled;
    if ((rc = cli_need_file("--text", text))) return rc;
    if (cli_parse_only) return CLI_OK;
    if (cli_opt(opts, n_opts, "--threads")->given) cli_set_threads((int)threads);

    int64_t n = 0;
    unsigned char *raw = read_text(text, &n);
    if (!raw) return cli_fail(NULL);
    /* vocabulary: the distinct bytes, sorted */
    int id_of[128];
    char vocab[129];
    int V = 0;
    bool seen[128] = {false};
    for (int64_t i = 0; i < n; i++) seen[raw[i]] = true;
    for (int c = 0; c < 128; c++) {
        id_of[c] = seen[c] ? V : -1;
        if (seen[c]) vocab[V++] = (char)c;
    }
    vocab[V] = 0;
    int64_t n_train = n * 9 / 10, n_val = n - n_train;
    if (V < 2 || n_train < ctx + 2 || n_val < ctx + 2) {
        free(raw);
        return cli_fail("%s: %" PRId64 " usable characters (%d distinct) are too few for --context %" PRId64,
                        text, n, V, ctx);
    }
    float *ids = malloc(sizeof(float) * (size_t)n);
    double *logp = malloc(sizeof(double) * (size_t)V * (size_t)V);
    int64_t *tgt = malloc(sizeof(int64_t) * (size_t)(batch * ctx));
    if (!ids || !logp || !tgt) {
        free(raw), free(ids), free(logp), free(tgt);
        return cli_fail("out of memory");
    }
    for (int64_t i = 0; i < n; i++) ids[i] = (float)id_of[raw[i]];
    free(raw);
    /* the bigram baseline: add-one smoothed counts of the train split */
    {
        double *cnt = logp;
        for (int64_t i = 0; i < (int64_t)V * V; i++) cnt[i] = 1.0;
        for (int64_t i = 0; i + 1 < n_train; i++) cnt[(int64_t)ids[i] * V + (int64_t)ids[i + 1]] += 1.0;
        for (int a = 0; a < V; a++) {
            double row = 0;
            for (int b = 0; b < V; b++) row += cnt[a * V + b];
            for (int b = 0; b < V; b++) logp[a * V + b] = log(cnt[a * V + b] / row);
        }
    }

    lm_hparams hp = {V, ctx, d, layers, heads, ff, learned, (lm_arch)arch};
    bk_manual_seed((uint64_t)seed);
    bk_module *m = lm_build(&hp);
    bk_optim *o = m ? bk_optim_adamw(m, BK_ADAMW_DEFAULTS(lr)) : NULL;
    if (!o) {
        bk_module_free(m);
        free(ids), free(logp), free(tgt);
        return cli_fail(NULL);
    }
    bk_rng rng;
    bk_rng_seed(&rng, (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1);
    printf("text %s: %" PRId64 " characters, vocabulary %d; train %" PRId64 ", validation %" PRId64 "\n",
           text, n, V, n_train, n_val);
    if (arch == LM_TRANSFORMER)
        printf("model: context %" PRId64 ", d_model %" PRId64 ", %" PRId64 " layers, %" PRId64
               " heads, ff %" PRId64 ", %s positions, %" PRId64 " parameters\n",
               ctx, d, layers, heads, ff, learned ? "learned" : "sinusoidal", bk_module_num_params(m, true));
    else
        printf("model: %s, context %" PRId64 ", hidden %" PRId64 ", %" PRId64
               " layers, one-hot inputs, %" PRId64 " parameters\n",
               LM_ARCHS[arch], ctx, d, layers, bk_module_num_params(m, true));
    fflush(stdout);
    /* train_s: the time of the steps alone (forward, backward, optimizer step), without the
     * sampling of windows and the evaluations, for the tokens/s figure */
    double vloss = 0, bigram = 0, t0 = cli_now(), run = 0, train_s = 0;
    int64_t run_n = 0;
    rc = CLI_OK;
    bk_module_train(m, true);
    for (int64_t step = 1; step <= steps && rc == CLI_OK; step++) {
        double frac = steps > 1 ? (double)(step - 1) / (double)(steps - 1) : 0;
        bk_optim_set_lr(o, lr * (0.1 + 0.9 * 0.5 * (1 + cos(M_PI * frac))));
        bk_tensor *x = bk_empty(BK_SHAPE(batch, ctx));
        if (!x) {
            rc = cli_fail(NULL);
            break;
        }
        for (int64_t b = 0; b < batch; b++) {
            int64_t s = (int64_t)(bk_rng_uniform(&rng) * (float)(n_train - ctx - 1));
            if (s > n_train - ctx - 1) s = n_train - ctx - 1;
            for (int64_t t = 0; t < ctx; t++) {
                x->data[b * ctx + t] = ids[s + t];
                tgt[b * ctx + t] = (int64_t)ids[s + t + 1];
            }
        }
        double ts = cli_now(), lv = 0;
        /* the step of brick train (NaN or infinite: stopped before the backward) */
        cli_step_result st = cli_train_step(m, o, x, tgt, batch * ctx, 0, &lv, NULL);
        if (st == CLI_STEP_BAD_LOSS) {
            rc = cli_fail("step %" PRId64 ": the loss is %g; stopping", step, lv);
            break;
        }
        if (st != CLI_STEP_DONE) {
            rc = cli_fail(NULL);
            break;
        }
        bk_arena_reset(NULL);
        train_s += cli_now() - ts;
        run += lv;
        run_n++;
        if ((every > 0 && step % every == 0) || step == steps) {
            if (evaluate(m, ids + n_train, n_val, ctx, logp, V, &vloss, &bigram)) {
                rc = cli_fail(NULL);
                break;
            }
            printf("step %6" PRId64 "  train %.4f  val %.4f nats/char  (bigram %.4f)  %.1fs  %.0f tok/s\n",
                   step, run / (double)run_n, vloss, bigram, cli_now() - t0,
                   (double)(step * batch * ctx) / train_s);
            fflush(stdout);
            run = 0;
            run_n = 0;
        }
    }
    if (rc == CLI_OK && steps == 0) {
        if (evaluate(m, ids + n_train, n_val, ctx, logp, V, &vloss, &bigram)) rc = cli_fail(NULL);
    }
    if (rc == CLI_OK) {
        printf("final: val loss %.4f nats/char, bigram baseline %.4f nats/char (%s by %.4f)\n", vloss, bigram,
               vloss < bigram ? "better" : "WORSE", fabs(bigram - vloss));
        if (steps > 0)
            printf("training: %" PRId64 " steps, %" PRId64 " tokens in %.2f s: %.0f tokens/s\n", steps,
                   steps * batch * ctx, train_s, (double)(steps * batch * ctx) / train_s);
        if (save_lm(out, m, &hp, vocab)) rc = cli_fail(NULL);
        else printf("wrote %s\n", out);
    }
    bk_optim_free(o);
    bk_module_free(m);
    free(ids), free(logp), free(tgt);
    bk_arena_reset(NULL);
    return rc;
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

/* 07_seq2seq_reverse.c - an encoder-decoder Transformer (nn.TransformerEncoder +
 * nn.TransformerDecoder) that learns to reverse digit sequences of length 5 to 8.
 *
 *   source  3 1 4 1 5 9          target  BOS 9 5 1 4 1 3  ->  9 5 1 4 1 3 EOS
 *
 * Tokens 0-9 are digits, 10 is BOS, 11 is EOS. Every batch holds sequences of one length,
 * so no padding masks are needed; the decoder gets the causal mask. Sequences whose hash
 * is 0 mod 10 are held out: training never sees them, and the accuracy is the exact-match
 * rate of greedy decoding (BOS, then the argmax token, L + 1 times, EOS included) on 400
 * of them. The default run (400 steps; it runs inside `make test`, so it must be quick)
 * already reaches 100%; BRICK_EXAMPLE_FULL=1 trains 2000 steps. Either way the bar is
 * >= 99% exact matches, and the program exits 1 below it.
 */
#include "brick.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BOS = 10, EOS = 11, VOCAB = 12, MIN_LEN = 5, MAX_LEN = 8, D_MODEL = 64, HEADS = 4, FF = 128 };

typedef struct seq2seq {
    bk_module base;
    bk_module *src_emb, *tgt_emb, *src_pos, *tgt_pos, *encoder, *decoder, *out;
} seq2seq;

static bk_tensor *no_forward(bk_module *self, bk_tensor *x) {
    (void)self, (void)x;
    bk_set_error("Seq2Seq: use encode/decode");
    return NULL;
}
static const bk_module_class SEQ2SEQ = {"Seq2Seq", no_forward, NULL, NULL};

static seq2seq *build(void) {
    seq2seq *m = (seq2seq *)bk_module_new(&SEQ2SEQ, sizeof(seq2seq));
    if (!m) return NULL;
    bk_transformer_config cfg = BK_TRANSFORMER_DEFAULTS(D_MODEL, HEADS);
    cfg.dim_feedforward = FF;
    cfg.dropout = 0.0f;
    cfg.batch_first = true;
    cfg.norm_first = true;
    const int64_t d[] = {D_MODEL};
    m->src_emb = bk_module_add(&m->base, "src_emb", bk_nn_embedding(VOCAB, D_MODEL));
    m->tgt_emb = bk_module_add(&m->base, "tgt_emb", bk_nn_embedding(VOCAB, D_MODEL));
    m->src_pos = bk_module_add(&m->base, "src_pos", bk_nn_learned_positional_embedding(MAX_LEN + 2, D_MODEL));
    m->tgt_pos = bk_module_add(&m->base, "tgt_pos", bk_nn_learned_positional_embedding(MAX_LEN + 2, D_MODEL));
    m->encoder = bk_module_add(&m->base, "encoder",
                               bk_nn_transformer_encoder(bk_nn_transformer_encoder_layer(cfg), 1,
                                                         bk_nn_layer_norm(1, d, 1e-5f)));
    m->decoder = bk_module_add(&m->base, "decoder",
                               bk_nn_transformer_decoder(bk_nn_transformer_decoder_layer(cfg), 1,
                                                         bk_nn_layer_norm(1, d, 1e-5f)));
    m->out = bk_module_add(&m->base, "out", bk_nn_linear(D_MODEL, VOCAB));
    if (!m->src_emb || !m->tgt_emb || !m->src_pos || !m->tgt_pos || !m->encoder || !m->decoder || !m->out) {
        bk_module_free(&m->base);
        return NULL;
    }
    return m;
}

/* src (B, L) ids -> memory (B, L, d) */
static bk_tensor *encode(seq2seq *m, bk_tensor *src) {
    bk_tensor *h = bk_forward(m->src_pos, bk_forward(m->src_emb, src));
    return h ? bk_transformer_encoder_forward(m->encoder, h, NULL, NULL) : NULL;
}

/* tgt (B, T) ids, memory -> logits (B*T, VOCAB) */
static bk_tensor *decode(seq2seq *m, bk_tensor *tgt, bk_tensor *memory) {
    int64_t b = tgt->shape[0], t = tgt->shape[1];
    bk_tensor *h = bk_forward(m->tgt_pos, bk_forward(m->tgt_emb, tgt));
    bk_tensor *mask = bk_causal_mask(t);
    h = h && mask ? bk_transformer_decoder_forward(m->decoder, h, memory, mask, NULL, NULL, NULL) : NULL;
    return h ? bk_forward(m->out, bk_reshape(h, BK_SHAPE(b * t, D_MODEL))) : NULL;
}

static bool held_out(const int *s, int len) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < len; i++) h = (h ^ (uint64_t)s[i]) * 1099511628211ull;
    h ^= h >> 29;
    return h % 10 == 0;
}

/* A random sequence of length len; held == whether it must be a held-out one. */
static void sample(bk_rng *rng, int *s, int len, bool held) {
    do {
        for (int i = 0; i < len; i++) s[i] = (int)(bk_rng_uniform(rng) * 10.0f) % 10;
    } while (held_out(s, len) != held);
}

#define CHECK(x)                                                          \
    do {                                                                  \
        if (!(x)) {                                                       \
            fprintf(stderr, "07_seq2seq_reverse: %s\n", bk_last_error()); \
            goto fail;                                                    \
        }                                                                 \
    } while (0)

int main(void) {
    const bool full = getenv("BRICK_EXAMPLE_FULL") && !strcmp(getenv("BRICK_EXAMPLE_FULL"), "1");
    const int steps = full ? 2000 : 400, batch = 64, n_test = 400;
    const double bar = 0.99;
    int status = 1;
    bk_set_num_threads(1);
    bk_manual_seed(7);
    seq2seq *m = build();
    bk_optim *o = m ? bk_optim_adam(&m->base, BK_ADAM_DEFAULTS(3e-3)) : NULL;
    if (!o) {
        fprintf(stderr, "07_seq2seq_reverse: %s\n", bk_last_error());
        bk_module_free(m ? &m->base : NULL);
        return 1;
    }
    printf("Seq2Seq reversal: %" PRId64 " parameters, %d steps of %d sequences (%s run)\n",
           bk_module_num_params(&m->base, true), steps, batch, full ? "full" : "short");
    bk_rng rng;
    bk_rng_seed(&rng, 2024);
    int64_t tgt_y[64 * (MAX_LEN + 1)];
    int s[MAX_LEN];
    for (int step = 1; step <= steps; step++) {
        int len = MIN_LEN + (step % (MAX_LEN - MIN_LEN + 1));
        bk_optim_set_lr(o, 3e-3 * (step > steps * 3 / 4 ? 0.3 : 1.0));
        bk_tensor *src = bk_empty(BK_SHAPE(batch, len)), *tin = bk_empty(BK_SHAPE(batch, len + 1));
        CHECK(src && tin);
        for (int b = 0; b < batch; b++) {
            sample(&rng, s, len, false);
            tin->data[b * (len + 1)] = BOS;
            for (int i = 0; i < len; i++) {
                src->data[b * len + i] = (float)s[i];
                tin->data[b * (len + 1) + i + 1] = (float)s[len - 1 - i];
                tgt_y[b * (len + 1) + i] = s[len - 1 - i];
            }
            tgt_y[b * (len + 1) + len] = EOS;
        }
        bk_tensor *loss = bk_cross_entropy(decode(m, tin, encode(m, src)), tgt_y, (int64_t)batch * (len + 1),
                                           BK_REDUCTION_MEAN);
        CHECK(loss);
        if (step % 200 == 0 || step == 1) printf("step %4d  loss %.4f\n", step, (double)bk_item(loss));
        bk_optim_zero_grad(o);
        CHECK(bk_backward(loss) == 0 && bk_optim_step(o) == 0);
        bk_arena_reset(NULL);
    }

    /* greedy decoding of held-out sequences, n_test / 4 per length */
    bk_module_train(&m->base, false);
    bk_set_grad_enabled(false);
    bk_rng test_rng;
    bk_rng_seed(&test_rng, 99);
    int correct = 0, total = 0;
    for (int len = MIN_LEN; len <= MAX_LEN; len++) {
        int nb = n_test / (MAX_LEN - MIN_LEN + 1);
        int *seqs = malloc(sizeof(int) * (size_t)(nb * len));
        float *pred = malloc(sizeof(float) * (size_t)(nb * (len + 2)));
        if (!seqs || !pred) {
            free(seqs), free(pred);
            goto fail;
        }
        bk_tensor *src = bk_empty(BK_SHAPE(nb, len));
        bool ok_alloc = src != NULL;
        for (int b = 0; ok_alloc && b < nb; b++) {
            sample(&test_rng, seqs + b * len, len, true);
            for (int i = 0; i < len; i++) src->data[b * len + i] = (float)seqs[b * len + i];
            pred[b * (len + 2)] = BOS;
        }
        bk_tensor *memory = ok_alloc ? encode(m, src) : NULL;
        for (int t = 1; memory && t <= len + 1; t++) {
            bk_tensor *tin = bk_empty(BK_SHAPE(nb, t));
            if (!tin) {
                memory = NULL;
                break;
            }
            for (int b = 0; b < nb; b++)
                memcpy(tin->data + b * t, pred + b * (len + 2), sizeof(float) * (size_t)t);
            bk_tensor *logits = decode(m, tin, memory);
            if (!logits) {
                memory = NULL;
                break;
            }
            for (int b = 0; b < nb; b++) {
                const float *row = logits->data + ((int64_t)b * t + t - 1) * VOCAB;
                int best = 0;
                for (int v = 1; v < VOCAB; v++)
                    if (row[v] > row[best]) best = v;
                pred[b * (len + 2) + t] = (float)best;
            }
        }
        if (!memory) {
            free(seqs), free(pred);
            CHECK(false);
        }
        int len_correct = 0;
        for (int b = 0; b < nb; b++) {
            bool ok = pred[b * (len + 2) + len + 1] == EOS;
            for (int i = 0; ok && i < len; i++)
                ok = pred[b * (len + 2) + 1 + i] == seqs[b * len + len - 1 - i];
            len_correct += ok;
        }
        printf("length %d: %d / %d exact\n", len, len_correct, nb);
        correct += len_correct;
        total += nb;
        free(seqs), free(pred);
        bk_arena_reset(NULL);
    }
    double acc = (double)correct / total;
    printf("held-out exact-match accuracy (greedy): %.4f (%d / %d); required >= %.2f\n", acc, correct, total,
           bar);
    status = acc >= bar ? 0 : 1;
    if (status) printf("FAILED: accuracy below the bar\n");
fail:
    bk_arena_reset(NULL);
    bk_optim_free(o);
    bk_module_free(&m->base);
    return status;
}

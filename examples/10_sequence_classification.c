/* 10_sequence_classification.c - a bidirectional LSTM classifies variable-length token
 * sequences, padded into one batch and run with their lengths (pack_padded_sequence).
 *
 * Each sequence has 4 to 16 tokens from 1..9 (0 pads a batch to its longest sequence); its
 * class is which of the tokens 1, 2 and 3 occurs most often in it (sequences with a tie
 * are redrawn). The model, in PyTorch:
 *
 *   class Classifier(nn.Module):
 *       def __init__(self):
 *           super().__init__()
 *           self.emb = nn.Embedding(10, 16, padding_idx=0)
 *           self.lstm = nn.LSTM(16, 32, batch_first=True, bidirectional=True)
 *           self.out = nn.Linear(64, 3)
 *       def forward(self, X, lengths):
 *           packed = pack_padded_sequence(self.emb(X), lengths, batch_first=True,
 *                                         enforce_sorted=False)
 *           _, (h_n, _) = self.lstm(packed)              # h_n (2, B, 32)
 *           return self.out(h_n.permute(1, 0, 2).reshape(-1, 64))
 *
 * Here the lengths go to bk_rnn_forward: each sequence's final state is the one at its own
 * last token (the reverse direction starts there), so the padding changes nothing. The run
 * trains 300 steps of 64 sequences with Adam and reports the accuracy on 1,000 fresh
 * sequences; it exits 1 below 95% (BRICK_EXAMPLE_FULL=1 trains 1500 steps). Seen: 100%.
 */
#include "brick.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { VOCAB = 10, EMB = 16, HIDDEN = 32, CLASSES = 3, MIN_LEN = 4, MAX_LEN = 16 };

typedef struct classifier {
    bk_module base;
    bk_module *emb, *lstm, *out;
} classifier;

/* X (B, T) padded ids, lengths (B) -> logits (B, CLASSES) */
static bk_tensor *classify(classifier *m, bk_tensor *X, const int64_t *lengths) {
    bk_tensor *h_n = NULL;
    bk_tensor *y = bk_rnn_forward(m->lstm, bk_forward(m->emb, X), NULL, NULL, lengths, &h_n, NULL);
    if (!y) return NULL;
    bk_tensor *both = bk_permute(h_n, (const int[]){1, 0, 2}); // (B, 2, HIDDEN)
    return bk_forward(m->out, bk_reshape(both, BK_SHAPE(-1, 2 * HIDDEN)));
}

static bk_tensor *no_forward(bk_module *self, bk_tensor *x) {
    (void)self, (void)x;
    bk_set_error("Classifier: call classify(X, lengths)");
    return NULL;
}
static const bk_module_class CLASSIFIER = {"Classifier", no_forward, NULL, NULL};

static classifier *build(void) {
    classifier *m = (classifier *)bk_module_new(&CLASSIFIER, sizeof(classifier));
    if (!m) return NULL;
    bk_rnn_config cfg = BK_RNN_DEFAULTS(BK_LSTM, EMB, HIDDEN);
    cfg.batch_first = true;
    cfg.bidirectional = true;
    m->emb = bk_module_add(&m->base, "emb", bk_nn_embedding_padded(VOCAB, EMB, 0));
    m->lstm = bk_module_add(&m->base, "lstm", bk_nn_rnn(cfg));
    m->out = bk_module_add(&m->base, "out", bk_nn_linear(2 * HIDDEN, CLASSES));
    if (!m->emb || !m->lstm || !m->out) {
        bk_module_free(&m->base);
        return NULL;
    }
    return m;
}

/* A batch of n sequences padded to the longest: ids into X (n, MAX_LEN) row-major (the
 * caller uses the first T columns), lengths and labels. Returns T. */
static int64_t sample_batch(bk_rng *rng, int n, float *X, int64_t *lengths, int64_t *labels) {
    int64_t T = 0;
    for (int b = 0; b < n; b++) {
        int count[VOCAB], len;
        do {
            len = MIN_LEN + (int)(bk_rng_uniform(rng) * (MAX_LEN - MIN_LEN + 1));
            if (len > MAX_LEN) len = MAX_LEN;
            memset(count, 0, sizeof count);
            for (int t = 0; t < MAX_LEN; t++) {
                int tok = 0;
                if (t < len) {
                    tok = 1 + (int)(bk_rng_uniform(rng) * (VOCAB - 1));
                    if (tok >= VOCAB) tok = VOCAB - 1;
                }
                X[b * MAX_LEN + t] = (float)tok;
                count[tok]++;
            }
        } while (count[1] == count[2] || count[1] == count[3] || count[2] == count[3] ||
                 (count[1] == 0 && count[2] == 0 && count[3] == 0));
        labels[b] = count[1] > count[2] ? (count[1] > count[3] ? 0 : 2) : (count[2] > count[3] ? 1 : 2);
        lengths[b] = len;
        T = len > T ? len : T;
    }
    return T;
}

/* The first T columns of X (n, MAX_LEN) as an arena tensor (n, T). */
static bk_tensor *batch_tensor(const float *X, int n, int64_t T) {
    bk_tensor *t = bk_empty(BK_SHAPE(n, T));
    for (int b = 0; t && b < n; b++) memcpy(t->data + b * T, X + b * MAX_LEN, sizeof(float) * (size_t)T);
    return t;
}

#define CHECK(x)                                                                  \
    do {                                                                          \
        if (!(x)) {                                                               \
            fprintf(stderr, "10_sequence_classification: %s\n", bk_last_error()); \
            goto fail;                                                            \
        }                                                                         \
    } while (0)

int main(void) {
    const bool full = getenv("BRICK_EXAMPLE_FULL") && !strcmp(getenv("BRICK_EXAMPLE_FULL"), "1");
    enum { BATCH = 64, N_TEST = 1000 };
    const int steps = full ? 1500 : 300;
    const double bar = 0.95;
    int status = 1;
    bk_set_num_threads(1);
    bk_manual_seed(3);
    classifier *m = build();
    bk_optim *o = m ? bk_optim_adam(&m->base, BK_ADAM_DEFAULTS(1e-2)) : NULL;
    if (!o) {
        fprintf(stderr, "10_sequence_classification: %s\n", bk_last_error());
        bk_module_free(m ? &m->base : NULL);
        return 1;
    }
    bk_module_print(&m->base, stdout);
    printf("%" PRId64 " parameters, %d steps of %d sequences of %d to %d tokens (%s run)\n",
           bk_module_num_params(&m->base, true), steps, BATCH, MIN_LEN, MAX_LEN, full ? "full" : "short");
    bk_rng rng;
    bk_rng_seed(&rng, 2024);
    static float X[N_TEST * MAX_LEN];
    static int64_t lengths[N_TEST], labels[N_TEST];
    double run = 0;
    for (int step = 1; step <= steps; step++) {
        bk_optim_set_lr(o, 1e-2 * (step > steps * 3 / 4 ? 0.2 : 1.0));
        int64_t T = sample_batch(&rng, BATCH, X, lengths, labels);
        bk_tensor *loss = bk_cross_entropy(classify(m, batch_tensor(X, BATCH, T), lengths), labels, BATCH,
                                           BK_REDUCTION_MEAN);
        CHECK(loss);
        run += bk_item(loss);
        if (step % 100 == 0) {
            printf("step %4d  loss %.4f\n", step, run / 100);
            run = 0;
        }
        bk_optim_zero_grad(o);
        CHECK(bk_backward(loss) == 0 && bk_optim_step(o) == 0);
        bk_arena_reset(NULL);
    }

    /* accuracy on fresh sequences, in one padded batch */
    bk_module_train(&m->base, false);
    bk_set_grad_enabled(false);
    bk_rng test_rng;
    bk_rng_seed(&test_rng, 99);
    int64_t T = sample_batch(&test_rng, N_TEST, X, lengths, labels);
    bk_tensor *logits = classify(m, batch_tensor(X, N_TEST, T), lengths);
    CHECK(logits);
    int correct = 0;
    for (int b = 0; b < N_TEST; b++) {
        const float *row = logits->data + b * CLASSES;
        int best = 0;
        for (int c = 1; c < CLASSES; c++)
            if (row[c] > row[best]) best = c;
        correct += best == labels[b];
    }
    double acc = (double)correct / N_TEST;
    printf("accuracy on %d fresh sequences: %.4f (%d / %d); required >= %.2f\n", N_TEST, acc, correct, N_TEST,
           bar);
    status = acc >= bar ? 0 : 1;
    if (status) printf("FAILED: accuracy below the bar\n");
fail:
    bk_arena_reset(NULL);
    bk_optim_free(o);
    bk_module_free(&m->base);
    return status;
}

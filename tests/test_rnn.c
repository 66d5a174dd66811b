/* test_rnn.c - the recurrent cells and layers (src/nn/rnn.c) on their own: gradchecks of
 * every cell and of multi-layer, bidirectional layers with and without lengths (random
 * sizes), dropout between layers, the shape errors, and bk_forward. PyTorch parity is in
 * test_parity_rnn.c. */
#include "gradcheck.h"
#include "test.h"
#include "test_rng.h"

#include <math.h>

static bk_module *cell_;
static bk_module *layer_;
static const int64_t *lengths_;

/* gradcheck functions: the cell's h' (and c' after it, for an LSTMCell); the layer's
 * output, h_n (and c_n) flattened and concatenated. Inputs: x, h (or h0), then c (or c0)
 * when ud is not NULL (an LSTM), then any parameters to check (used through the block). */
static bk_tensor *f_cell(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    bk_tensor *c = NULL;
    bk_tensor *h = bk_rnn_cell_forward(cell_, in[0], in[1], ud ? in[2] : NULL, &c);
    return c ? bk_concat(2, (bk_tensor *[]){h, c}, -1) : h;
}

static bk_tensor *f_layer(bk_tensor *const *in, int n, void *ud) {
    (void)n;
    bk_tensor *hn = NULL, *cn = NULL;
    bk_tensor *y = bk_rnn_forward(layer_, in[0], in[1], ud ? in[2] : NULL, lengths_, &hn, &cn);
    bk_tensor *parts[3] = {bk_flatten(y, 0, -1), bk_flatten(hn, 0, -1), cn ? bk_flatten(cn, 0, -1) : NULL};
    return bk_concat(cn ? 3 : 2, parts, 0);
}

static bk_tensor *leaf(int ndim, const int64_t *shape) {
    return bk_requires_grad(bk_randn(ndim, shape), true);
}

static bool away_from_kink(bk_module *cell, bk_tensor *x, bk_tensor *h) {
    bk_tensor *z = bk_add(bk_linear(x, bk_module_get(cell, "weight_ih"), bk_module_get(cell, "bias_ih")),
                          bk_linear(h, bk_module_get(cell, "weight_hh"), bk_module_get(cell, "bias_hh")));
    for (int64_t i = 0; z && i < z->numel; i++)
        if (fabsf(z->data[i]) < 0.02f) return false;
    return z != NULL;
}

TEST(cell_gradchecks) {
    for (int trial = 0; trial < 8; trial++) {
        bk_rnn_mode mode = (bk_rnn_mode)(trial % BK_RNN_MODE_COUNT);
        int64_t I = rand_int(1, 5), H = rand_int(1, 5), B = rand_int(1, 4);
        bool bias = trial < 4;
        cell_ = bk_nn_rnn_cell(mode, I, H, bias);
        CHECK(cell_ != NULL);
        if (!cell_) return;
        bk_tensor *in[3] = {leaf(BK_SHAPE(B, I)), leaf(BK_SHAPE(B, H)), leaf(BK_SHAPE(B, H))};
        // relu: redraw x until no pre-activation lies within 0.02 of the kink, where a
        // central difference (eps 1e-3 on a weight moves it by up to eps |x|) straddles it
        for (int k = 0; mode == BK_RNN_RELU && k < 100 && !away_from_kink(cell_, in[0], in[1]); k++)
            bk_fill_normal(in[0], NULL, 0.0f, 1.0f);
        char what[96];
        snprintf(what, sizeof what, "%s I=%lld H=%lld B=%lld bias=%d", bk_module_name(cell_), (long long)I,
                 (long long)H, (long long)B, bias);
        void *lstm = mode == BK_LSTM ? cell_ : NULL;
        CHECK(gradcheck_ok(what, f_cell, in, lstm ? 3 : 2, lstm));
        // the parameters, through the same function, the inputs held fixed
        bk_param_list *ps = bk_module_named(cell_, BK_PARAMS);
        for (int i = 0; i < 3; i++) bk_requires_grad(in[i], false);
        for (int i = 0; ps && i < ps->n; i++) {
            bk_tensor *all[4] = {in[0], in[1], in[2], ps->tensors[i]};
            if (!lstm) all[2] = ps->tensors[i];
            CHECK(gradcheck_ok(ps->names[i], f_cell, all, lstm ? 4 : 3, lstm));
        }
        bk_param_list_free(ps);
        bk_module_free(cell_);
        bk_arena_reset(NULL);
    }
}

TEST(layer_gradchecks) {
    for (int trial = 0; trial < 6; trial++) {
        bk_rnn_mode mode = (bk_rnn_mode)(trial % BK_RNN_MODE_COUNT);
        if (mode == BK_RNN_RELU)
            continue; // the through-time machinery is the same for every mode; relu's
                      // kink makes a central difference over T steps unreliable
        bk_rnn_config c = BK_RNN_DEFAULTS(mode, rand_int(1, 4), rand_int(1, 4));
        c.num_layers = rand_int(1, 2);
        c.bidirectional = trial % 2 == 0;
        c.batch_first = trial % 3 == 0;
        layer_ = bk_nn_rnn(c);
        CHECK(layer_ != NULL);
        if (!layer_) return;
        int64_t T = rand_int(2, 4), B = 3, D = c.bidirectional ? 2 : 1;
        int64_t lens[3] = {T, 1, rand_int(1, (int)T)};
        lengths_ = trial >= 3 ? lens : NULL;
        bk_tensor *x = c.batch_first ? leaf(BK_SHAPE(B, T, c.input_size))
                                     : leaf(BK_SHAPE(T, B, c.input_size));
        bk_tensor *in[3] = {x, leaf(BK_SHAPE(c.num_layers * D, B, c.hidden_size)),
                            leaf(BK_SHAPE(c.num_layers * D, B, c.hidden_size))};
        char what[128];
        snprintf(what, sizeof what, "%s layers=%lld bi=%d bf=%d T=%lld lengths=%d", bk_module_name(layer_),
                 (long long)c.num_layers, c.bidirectional, c.batch_first, (long long)T, lengths_ != NULL);
        void *lstm = mode == BK_LSTM ? layer_ : NULL;
        CHECK(gradcheck_ok(what, f_layer, in, lstm ? 3 : 2, lstm));
        bk_param_list *ps = bk_module_named(layer_, BK_PARAMS);
        for (int i = 0; i < 3; i++) bk_requires_grad(in[i], false);
        for (int i = 0; ps && i < ps->n; i += 3) { // a sample of the parameters
            bk_tensor *all[4] = {x, in[1], in[2], ps->tensors[i]};
            if (!lstm) all[2] = ps->tensors[i];
            CHECK(gradcheck_ok(ps->names[i], f_layer, all, lstm ? 4 : 3, lstm));
        }
        bk_param_list_free(ps);
        bk_module_free(layer_);
        bk_arena_reset(NULL);
    }
    lengths_ = NULL;
}

/* Past its length a sequence's outputs are 0 and its state is kept: running the short
 * sequence alone gives the same final state. */
TEST(lengths_keep_the_state) {
    bk_rnn_config c = BK_RNN_DEFAULTS(BK_GRU, 3, 4);
    c.bidirectional = true;
    bk_module *m = bk_nn_rnn(c);
    bk_tensor *x = bk_randn(BK_SHAPE(5, 2, 3)), *hn = NULL, *hn1 = NULL;
    bk_tensor *y = bk_rnn_forward(m, x, NULL, NULL, (const int64_t[]){5, 2}, &hn, NULL);
    bk_tensor *x1 = bk_slice(bk_slice(x, 1, 1, 2), 0, 0, 2); // sequence 1's two valid steps
    bk_tensor *y1 = bk_rnn_forward(m, x1, NULL, NULL, NULL, &hn1, NULL);
    CHECK(y && hn && y1 && hn1);
    if (!y || !hn || !y1 || !hn1) goto done;
    for (int64_t t = 2; t < 5; t++)
        for (int64_t j = 0; j < 8; j++) CHECK(y->data[(t * 2 + 1) * 8 + j] == 0.0f);
    for (int64_t t = 0; t < 2; t++)
        for (int64_t j = 0; j < 8; j++) CHECK_CLOSE(y->data[(t * 2 + 1) * 8 + j], y1->data[t * 8 + j], 1e-6);
    for (int64_t d = 0; d < 2; d++)
        for (int64_t j = 0; j < 4; j++)
            CHECK_CLOSE(hn->data[(d * 2 + 1) * 4 + j], hn1->data[d * 4 + j], 1e-6);
done:
    bk_module_free(m);
    bk_arena_reset(NULL);
}

/* Dropout acts between layers in training mode only. */
TEST(dropout_between_layers) {
    bk_rnn_config c = BK_RNN_DEFAULTS(BK_LSTM, 3, 6);
    c.num_layers = 2;
    c.dropout = 0.5f;
    bk_module *m = bk_nn_rnn(c);
    bk_tensor *x = bk_randn(BK_SHAPE(4, 2, 3));
    bk_module_train(m, false);
    bk_tensor *e1 = bk_forward(m, x), *e2 = bk_forward(m, x);
    bk_module_train(m, true);
    bk_tensor *t1 = bk_forward(m, x);
    CHECK(e1 && e2 && t1);
    if (e1 && e2 && t1) {
        CHECK(memcmp(e1->data, e2->data, (size_t)e1->numel * sizeof(float)) == 0);
        CHECK(memcmp(e1->data, t1->data, (size_t)e1->numel * sizeof(float)) != 0);
    }
    // one layer: nothing to drop
    c.num_layers = 1;
    bk_module *one = bk_nn_rnn(c);
    bk_tensor *a = bk_forward(one, x);
    bk_module_train(one, false);
    bk_tensor *b = bk_forward(one, x);
    CHECK(a && b && memcmp(a->data, b->data, (size_t)a->numel * sizeof(float)) == 0);
    bk_module_free(m);
    bk_module_free(one);
    bk_arena_reset(NULL);
}

TEST(shapes_and_errors) {
    bk_rnn_config c = BK_RNN_DEFAULTS(BK_LSTM, 3, 4);
    c.num_layers = 2;
    c.bidirectional = true;
    c.batch_first = true;
    bk_module *m = bk_nn_rnn(c), *cell = bk_nn_rnn_cell(BK_GRU, 3, 4, true);
    bk_tensor *hn = NULL, *cn = NULL;
    bk_tensor *y = bk_rnn_forward(m, bk_randn(BK_SHAPE(2, 5, 3)), NULL, NULL, NULL, &hn, &cn);
    CHECK(y && y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 5 && y->shape[2] == 8);
    CHECK(hn && cn && hn->shape[0] == 4 && hn->shape[1] == 2 && cn->shape[2] == 4);
    CHECK_ERR(bk_forward(m, bk_randn(BK_SHAPE(2, 5, 7))),
              "LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True): input (2, 5, 7) should be (N, "
              "L, "
              "input_size)");
    CHECK_ERR(bk_rnn_forward(m, bk_randn(BK_SHAPE(2, 5, 3)), bk_zeros(BK_SHAPE(2, 2, 4)), NULL, NULL, NULL,
                             NULL),
              "h0 (2, 2, 4) should be (num_layers * num_directions, N, hidden_size) = (4, 2, 4)");
    CHECK_ERR(bk_rnn_forward(m, bk_randn(BK_SHAPE(2, 5, 3)), NULL, NULL, (const int64_t[]){5, 6}, NULL, NULL),
              "lengths[1]=6 should be in [1, 5]");
    CHECK_ERR(bk_rnn_cell_forward(cell, bk_randn(BK_SHAPE(2, 3)), NULL, bk_zeros(BK_SHAPE(2, 4)), NULL),
              "GRUCell(3, 4): takes no cell state c");
    CHECK_ERR(bk_rnn_cell_forward(cell, bk_randn(BK_SHAPE(2, 3)), bk_zeros(BK_SHAPE(3, 4)), NULL, NULL),
              "GRUCell(3, 4): h (3, 4) should be (batch, hidden_size) for input (2, 3)");
    CHECK_ERR(bk_forward(cell, bk_randn(BK_SHAPE(2, 5))), "GRUCell(3, 4): input (2, 5) should be");
    CHECK_ERR(bk_rnn_forward(cell, bk_randn(BK_SHAPE(2, 3)), NULL, NULL, NULL, NULL, NULL), "got GRUCell");
    CHECK_ERR(bk_rnn_cell_forward(m, bk_randn(BK_SHAPE(2, 3)), NULL, NULL, NULL), "got LSTM");
    CHECK(bk_forward(cell, bk_randn(BK_SHAPE(3))) != NULL); // unbatched
    bk_module_free(m);
    bk_module_free(cell);
    bk_arena_reset(NULL);
}

/* From the second identical step on, a bidirectional LSTM's forward and backward through
 * time (with lengths) makes no arena allocation. */
TEST(warm_step_allocates_nothing) {
    bk_arena *a = bk_arena_new();
    bk_arena *prev = bk_arena_use(a);
    bk_rnn_config c = BK_RNN_DEFAULTS(BK_LSTM, 5, 8);
    c.num_layers = 2;
    c.bidirectional = true;
    bk_module *m = bk_nn_rnn(c);
    bk_tensor *x = bk_tensor_new(BK_SHAPE(7, 3, 5));
    CHECK(m && x);
    uint64_t allocs[4] = {0};
    for (int s = 0; m && x && s < 4; s++) {
        bk_fill_normal(x, &g_rng, 0, 1);
        bk_tensor *hn = NULL;
        bk_tensor *y = bk_rnn_forward(m, x, NULL, NULL, (const int64_t[]){7, 2, 5}, &hn, NULL);
        CHECK(y && bk_backward(bk_add(bk_sum(y), bk_sum(hn))) == 0);
        bk_module_zero_grad(m);
        bk_arena_reset(a);
        allocs[s] = bk_arena_allocations(a);
    }
    CHECK(allocs[2] == allocs[1] && allocs[3] == allocs[1]);
    bk_tensor_free(x);
    bk_module_free(m);
    bk_arena_use(prev);
    bk_arena_free(a);
}

int main(void) {
    test_rng_seed("test_rnn");
    RUN(cell_gradchecks);
    RUN(layer_gradchecks);
    RUN(lengths_keep_the_state);
    RUN(dropout_between_layers);
    RUN(shapes_and_errors);
    RUN(warm_step_allocates_nothing);
    return test_summary("test_rnn");
}

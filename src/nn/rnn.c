/* rnn.c - nn.RNNCell / nn.LSTMCell / nn.GRUCell and nn.RNN / nn.LSTM / nn.GRU, built from
 * autograd ops (backward through time is autograd's; no op of its own).
 *
 * One step (gate order and formulas as in include/brick/nn.h and torch's docs), for gi =
 * x W_ih^T + b_ih and gh = h W_hh^T + b_hh, both (B, G H):
 *   RNN:  h' = act(gi + gh)
 *   LSTM: [i f g o] = gi + gh; c' = sig(f) c + sig(i) tanh(g); h' = sig(o) tanh(c')
 *   GRU:  r = sig(gi_r + gh_r), z = sig(gi_z + gh_z), n = tanh(gi_n + r gh_n),
 *         h' = n + z (h - n)  (= (1 - z) n + z h)
 * The layers compute gi for every step of a layer at once (one (T B, in) x (in, G H)
 * product), then run the steps. A sequence's steps past its length (lengths given) keep
 * the state: h = h + m (h' - h) with m = 1 while t < length, else 0, and output m h.
 *
 * Init (torch's RNNBase.reset_parameters and RNNCellBase's): every parameter
 * U(-1/sqrt(H), 1/sqrt(H)), in registration order, from the thread's default generator.
 */
#include "internal.h"
#include "pyrepr.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

static const int GATES[BK_RNN_MODE_COUNT] = {1, 1, 4, 3};

/* The four tensors of one cell (b_ih, b_hh NULL without bias). */
typedef struct rnn_weights {
    bk_tensor *w_ih, *w_hh, *b_ih, *b_hh;
} rnn_weights;

/* ---- one step --------------------------------------------------------------------------- */

static bk_tensor *gate(bk_tensor *g, int64_t k, int64_t H) { return bk_slice(g, -1, k * H, (k + 1) * H); }

/* h' (and *c_new for an LSTM) from gi (x's projection, bias included), the state and the
 * hidden-to-hidden weights. Inputs (B, G H), (B, H); NULL propagates. */
static bk_tensor *step(bk_rnn_mode mode, int64_t H, bk_tensor *gi, bk_tensor *h, bk_tensor *c,
                       const rnn_weights *w, bk_tensor **c_new) {
    bk_tensor *gh = bk_linear(h, w->w_hh, w->b_hh);
    switch (mode) {
    case BK_RNN_TANH: return bk_tanh(bk_add(gi, gh));
    case BK_RNN_RELU: return bk_relu(bk_add(gi, gh));
    case BK_LSTM: {
        bk_tensor *g = bk_add(gi, gh);
        bk_tensor *i = bk_sigmoid(gate(g, 0, H)), *f = bk_sigmoid(gate(g, 1, H));
        bk_tensor *cand = bk_tanh(gate(g, 2, H)), *o = bk_sigmoid(gate(g, 3, H));
        bk_tensor *cn = bk_add(bk_mul(f, c), bk_mul(i, cand));
        *c_new = cn;
        return bk_mul(o, bk_tanh(cn));
    }
    case BK_GRU: {
        bk_tensor *r = bk_sigmoid(bk_add(gate(gi, 0, H), gate(gh, 0, H)));
        bk_tensor *z = bk_sigmoid(bk_add(gate(gi, 1, H), gate(gh, 1, H)));
        bk_tensor *n = bk_tanh(bk_add(gate(gi, 2, H), bk_mul(r, gate(gh, 2, H))));
        return bk_add(n, bk_mul(z, bk_sub(h, n)));
    }
    default: return NULL;
    }
}

/* Registers weight_ih{suffix} .. bias_hh{suffix} on m and draws them. 0 or -1. */
static int add_weights(bk_module *m, const char *suffix, int64_t in, int64_t H, int G, bool bias,
                       rnn_weights *w) {
    char name[64];
    snprintf(name, sizeof name, "weight_ih%s", suffix);
    w->w_ih = bk_module_param(m, name, BK_SHAPE(G * H, in));
    snprintf(name, sizeof name, "weight_hh%s", suffix);
    w->w_hh = bk_module_param(m, name, BK_SHAPE(G * H, H));
    if (bias) {
        snprintf(name, sizeof name, "bias_ih%s", suffix);
        w->b_ih = bk_module_param(m, name, BK_SHAPE(G * H));
        snprintf(name, sizeof name, "bias_hh%s", suffix);
        w->b_hh = bk_module_param(m, name, BK_SHAPE(G * H));
    }
    if (!w->w_ih || !w->w_hh || (bias && (!w->b_ih || !w->b_hh))) return -1;
    float bound = 1.0f / sqrtf((float)H);
    bk_tensor *all[4] = {w->w_ih, w->w_hh, w->b_ih, w->b_hh};
    for (int i = 0; i < 4; i++)
        if (all[i]) bk_fill_uniform(all[i], NULL, -bound, bound);
    return 0;
}

static bool args_ok(const char *cls, bk_rnn_mode mode, int64_t input_size, int64_t hidden_size) {
    if ((unsigned)mode >= BK_RNN_MODE_COUNT) {
        bk_set_error("%s: unknown mode %d", cls, (int)mode);
        return false;
    }
    if (input_size < 1 || hidden_size < 1 || hidden_size > INT64_MAX / 4 / hidden_size) {
        bk_set_error("%s: input_size=%" PRId64 " and hidden_size=%" PRId64 " must be positive (and not huge)",
                     cls, input_size, hidden_size);
        return false;
    }
    return true;
}

/* Is t (not NULL) shaped (rows..., H) with rows given by ndim - 1 leading sizes? */
static bool state_shape_ok(const bk_tensor *t, int ndim, const int64_t *lead, int64_t H) {
    if (t->ndim != ndim || t->shape[ndim - 1] != H) return false;
    for (int i = 0; i < ndim - 1; i++)
        if (t->shape[i] != lead[i]) return false;
    return true;
}

/* ======================================================================================
 * Cells
 * ====================================================================================== */

typedef struct rnn_cell {
    bk_module base;
    bk_rnn_mode mode;
    int64_t input_size, hidden_size;
    bool bias;
    rnn_weights w;
} rnn_cell;

static bk_tensor *cell_forward(bk_module *m, bk_tensor *x) {
    return bk_rnn_cell_forward(m, x, NULL, NULL, NULL);
}

static void cell_repr(const bk_module *m, char *buf, size_t n) {
    const rnn_cell *self = (const rnn_cell *)m;
    snprintf(buf, n, "%" PRId64 ", %" PRId64 "%s%s", self->input_size, self->hidden_size,
             self->bias ? "" : ", bias=False", self->mode == BK_RNN_RELU ? ", nonlinearity=relu" : "");
}

static const bk_module_class CELL_CLASSES[BK_RNN_MODE_COUNT] = {
    {"RNNCell", cell_forward, cell_repr, NULL},
    {"RNNCell", cell_forward, cell_repr, NULL},
    {"LSTMCell", cell_forward, cell_repr, NULL},
    {"GRUCell", cell_forward, cell_repr, NULL},
};

/* m if it is of one of the classes (one per mode), else NULL. */
static bk_module *of_class(bk_module *m, const bk_module_class *classes) {
    for (int i = 0; m && i < BK_RNN_MODE_COUNT; i++)
        if (m->cls == &classes[i]) return m;
    return NULL;
}

bk_module *bk_nn_rnn_cell(bk_rnn_mode mode, int64_t input_size, int64_t hidden_size, bool bias) {
    const char *cls = (unsigned)mode < BK_RNN_MODE_COUNT ? CELL_CLASSES[mode].name : "rnn_cell";
    if (!args_ok(cls, mode, input_size, hidden_size)) return NULL;
    rnn_cell *self = (rnn_cell *)bk_module_new(&CELL_CLASSES[mode], sizeof(rnn_cell));
    if (!self) return NULL;
    self->mode = mode;
    self->input_size = input_size;
    self->hidden_size = hidden_size;
    self->bias = bias;
    if (add_weights(&self->base, "", input_size, hidden_size, GATES[mode], bias, &self->w) != 0) {
        bk_module_free(&self->base);
        return NULL;
    }
    return &self->base;
}

static void cell_name(const rnn_cell *self, char *buf, size_t n) {
    char repr[96];
    cell_repr(&self->base, repr, sizeof repr);
    snprintf(buf, n, "%s(%s)", self->base.cls->name, repr);
}

bk_tensor *bk_rnn_cell_forward(bk_module *cell, bk_tensor *x, bk_tensor *h, bk_tensor *c, bk_tensor **c_out) {
    if (c_out) *c_out = NULL;
    rnn_cell *self = (rnn_cell *)of_class(cell, CELL_CLASSES);
    if (!self) {
        if ((cell || !bk__error_pending()) && bk__module_ok(cell, "rnn_cell"))
            bk_set_error("rnn_cell: expected an RNNCell, LSTMCell or GRUCell, got %s", bk_module_name(cell));
        return NULL;
    }
    char name[128], s1[64], s2[64];
    cell_name(self, name, sizeof name);
    if (!bk__inputs_ok(name, 1, &x)) return NULL;
    if ((h && !bk_tensor_ok(h, "rnn_cell: h")) || (c && !bk_tensor_ok(c, "rnn_cell: c"))) return NULL;
    int64_t H = self->hidden_size;
    if (c && self->mode != BK_LSTM) {
        bk_set_error("%s: takes no cell state c (only an LSTMCell has one)", name);
        return NULL;
    }
    if ((x->ndim != 1 && x->ndim != 2) || x->shape[x->ndim - 1] != self->input_size) {
        bk_set_error("%s: input %s should be (batch, input_size) or (input_size), input_size=%" PRId64, name,
                     bk_shape_str(x, s1, sizeof s1), self->input_size);
        return NULL;
    }
    bool batched = x->ndim == 2;
    int64_t B = batched ? x->shape[0] : 1;
    bk_tensor *st[2] = {h, c};
    for (int i = 0; i < 2; i++)
        if (st[i] && !state_shape_ok(st[i], x->ndim, &B, H)) {
            bk_set_error("%s: %s %s should be %s for input %s", name, i ? "c" : "h",
                         bk_shape_str(st[i], s2, sizeof s2),
                         batched ? "(batch, hidden_size)" : "(hidden_size)", bk_shape_str(x, s1, sizeof s1));
            return NULL;
        }
    bk_tensor *xb = batched ? x : bk_reshape(x, BK_SHAPE(1, self->input_size));
    bk_tensor *hb = h ? (batched ? h : bk_reshape(h, BK_SHAPE(1, H))) : bk_zeros(BK_SHAPE(B, H));
    bk_tensor *cb = NULL, *cn = NULL;
    if (self->mode == BK_LSTM)
        cb = c ? (batched ? c : bk_reshape(c, BK_SHAPE(1, H))) : bk_zeros(BK_SHAPE(B, H));
    bk_tensor *hn = step(self->mode, H, bk_linear(xb, self->w.w_ih, self->w.b_ih), hb, cb, &self->w, &cn);
    if (!batched) {
        hn = bk_reshape(hn, BK_SHAPE(H));
        if (cn) cn = bk_reshape(cn, BK_SHAPE(H));
    }
    if (!hn) {
        bk__error_prefix("%s", name);
        return NULL;
    }
    if (c_out) *c_out = cn;
    return hn;
}

/* ======================================================================================
 * Layers
 * ====================================================================================== */

typedef struct rnn_layer {
    bk_module base;
    bk_rnn_config cfg;
    rnn_weights *w; /* num_layers * D, layer-major */
} rnn_layer;

static int dirs(const rnn_layer *self) { return self->cfg.bidirectional ? 2 : 1; }

static bk_tensor *layer_forward(bk_module *m, bk_tensor *x) {
    return bk_rnn_forward(m, x, NULL, NULL, NULL, NULL, NULL);
}

static void layer_repr(const bk_module *m, char *buf, size_t n) {
    const bk_rnn_config *c = &((const rnn_layer *)m)->cfg;
    char layers[48] = "", p[40] = "", drop[56] = "";
    if (c->num_layers != 1) snprintf(layers, sizeof layers, ", num_layers=%" PRId64, c->num_layers);
    if (c->dropout != 0.0f) {
        py_float_repr(c->dropout, p, sizeof p);
        snprintf(drop, sizeof drop, ", dropout=%s", p);
    }
    snprintf(buf, n, "%" PRId64 ", %" PRId64 "%s%s%s%s%s", c->input_size, c->hidden_size, layers,
             c->bias ? "" : ", bias=False", c->batch_first ? ", batch_first=True" : "", drop,
             c->bidirectional ? ", bidirectional=True" : "");
}

static void layer_destroy(bk_module *m) { bk__free(((rnn_layer *)m)->w); }

static const bk_module_class LAYER_CLASSES[BK_RNN_MODE_COUNT] = {
    {"RNN", layer_forward, layer_repr, layer_destroy},
    {"RNN", layer_forward, layer_repr, layer_destroy},
    {"LSTM", layer_forward, layer_repr, layer_destroy},
    {"GRU", layer_forward, layer_repr, layer_destroy},
};

bk_module *bk_nn_rnn(bk_rnn_config cfg) {
    const char *cls = (unsigned)cfg.mode < BK_RNN_MODE_COUNT ? LAYER_CLASSES[cfg.mode].name : "rnn";
    if (!args_ok(cls, cfg.mode, cfg.input_size, cfg.hidden_size)) return NULL;
    if (cfg.num_layers < 1 || cfg.num_layers > 4096) {
        bk_set_error("%s: num_layers=%" PRId64 " must be in [1, 4096]", cls, cfg.num_layers);
        return NULL;
    }
    if (!(cfg.dropout >= 0.0f && cfg.dropout <= 1.0f)) {
        bk_set_error("%s: dropout should be a number in range [0, 1], got %g", cls, (double)cfg.dropout);
        return NULL;
    }
    rnn_layer *self = (rnn_layer *)bk_module_new(&LAYER_CLASSES[cfg.mode], sizeof(rnn_layer));
    if (!self) return NULL;
    self->cfg = cfg;
    int D = dirs(self);
    self->w = (rnn_weights *)bk__calloc((size_t)(cfg.num_layers * D), sizeof(rnn_weights));
    if (!self->w) {
        bk_module_free(&self->base);
        return NULL;
    }
    for (int64_t l = 0; l < cfg.num_layers; l++)
        for (int d = 0; d < D; d++) {
            char suffix[40];
            snprintf(suffix, sizeof suffix, "_l%" PRId64 "%s", l, d ? "_reverse" : "");
            int64_t in = l == 0 ? cfg.input_size : D * cfg.hidden_size;
            if (add_weights(&self->base, suffix, in, cfg.hidden_size, GATES[cfg.mode], cfg.bias,
                            &self->w[l * D + d]) != 0) {
                bk_module_free(&self->base);
                return NULL;
            }
        }
    return &self->base;
}

static void layer_name(const rnn_layer *self, char *buf, size_t n) {
    char repr[160];
    layer_repr(&self->base, repr, sizeof repr);
    snprintf(buf, n, "%s(%s)", self->base.cls->name, repr);
}

/* Checks the forward's arguments; sets *T, *B. */
static bool layer_check(const rnn_layer *self, const char *name, const bk_tensor *x, const bk_tensor *h0,
                        const bk_tensor *c0, const int64_t *lengths, int64_t *T, int64_t *B) {
    const bk_rnn_config *c = &self->cfg;
    char s1[64], s2[64];
    if (c0 && c->mode != BK_LSTM) {
        bk_set_error("%s: takes no c0 (only an LSTM has a cell state)", name);
        return false;
    }
    if ((x->ndim != 2 && x->ndim != 3) || x->shape[x->ndim - 1] != c->input_size) {
        bk_set_error("%s: input %s should be %s or unbatched (L, input_size), input_size=%" PRId64, name,
                     bk_shape_str(x, s1, sizeof s1),
                     c->batch_first ? "(N, L, input_size) (batch_first)" : "(L, N, input_size)",
                     c->input_size);
        return false;
    }
    bool batched = x->ndim == 3;
    *T = batched && c->batch_first ? x->shape[1] : x->shape[0];
    *B = batched ? (c->batch_first ? x->shape[0] : x->shape[1]) : 1;
    if (*T < 1) {
        bk_set_error("%s: input %s has no time steps", name, bk_shape_str(x, s1, sizeof s1));
        return false;
    }
    int64_t lead[2] = {c->num_layers * dirs(self), *B};
    const bk_tensor *st[2] = {h0, c0};
    for (int i = 0; i < 2; i++)
        if (st[i] && !state_shape_ok(st[i], batched ? 3 : 2, lead, c->hidden_size)) {
            if (batched)
                bk_set_error("%s: %s %s should be (num_layers * num_directions, N, hidden_size) = (%" PRId64
                             ", %" PRId64 ", %" PRId64 ") for input %s",
                             name, i ? "c0" : "h0", bk_shape_str(st[i], s2, sizeof s2), lead[0], *B,
                             c->hidden_size, bk_shape_str(x, s1, sizeof s1));
            else
                bk_set_error("%s: %s %s should be (num_layers * num_directions, hidden_size) = (%" PRId64
                             ", %" PRId64 ") for unbatched input %s",
                             name, i ? "c0" : "h0", bk_shape_str(st[i], s2, sizeof s2), lead[0],
                             c->hidden_size, bk_shape_str(x, s1, sizeof s1));
            return false;
        }
    for (int64_t b = 0; lengths && b < *B; b++)
        if (lengths[b] < 1 || lengths[b] > *T) {
            bk_set_error("%s: lengths[%" PRId64 "]=%" PRId64 " should be in [1, %" PRId64
                         "] (the input's time steps, input %s)",
                         name, b, lengths[b], *T, bk_shape_str(x, s1, sizeof s1));
            return false;
        }
    return true;
}

/* State s of layer/direction k from h0 (L D, B, H), or zeros. */
static bk_tensor *initial(bk_tensor *s0, int64_t k, int64_t B, int64_t H) {
    return s0 ? bk_select(s0, 0, k) : bk_zeros(BK_SHAPE(B, H));
}

/* The step mask (B, 1) for time t: 1 where t < lengths[b]; NULL when every sequence is
 * still running (no mask needed). *err on failure. */
static bk_tensor *step_mask(const int64_t *lengths, int64_t B, int64_t t, bool *err) {
    bool all = true;
    for (int64_t b = 0; lengths && b < B; b++) all = all && t < lengths[b];
    if (all) return NULL;
    bk_tensor *m = bk_empty(BK_SHAPE(B, 1));
    if (!m) {
        *err = true;
        return NULL;
    }
    for (int64_t b = 0; b < B; b++) m->data[b] = t < lengths[b] ? 1.0f : 0.0f;
    return m;
}

/* One layer in one direction over the whole sequence: in (T, B, in) -> (T, B, H); *h and
 * *c hold the initial state and get the final one. NULL propagates. */
static bk_tensor *run_direction(const rnn_layer *self, const rnn_weights *w, bk_tensor *in, bool reverse,
                                const int64_t *lengths, bk_tensor **h, bk_tensor **c, bk_tensor **ys) {
    const bk_rnn_config *cfg = &self->cfg;
    int64_t T = in->shape[0], B = in->shape[1], H = cfg->hidden_size;
    bk_tensor *gi_all = bk_linear(in, w->w_ih, w->b_ih); // (T, B, G H)
    bool err = false;
    for (int64_t s = 0; s < T; s++) {
        int64_t t = reverse ? T - 1 - s : s;
        bk_tensor *cn = NULL;
        bk_tensor *hn = step(cfg->mode, H, bk_select(gi_all, 0, t), *h, *c, w, &cn);
        bk_tensor *m = step_mask(lengths, B, t, &err);
        bk_tensor *y = hn;
        if (m) { // finished sequences keep their state and output 0
            hn = bk_add(*h, bk_mul(m, bk_sub(hn, *h)));
            if (cn) cn = bk_add(*c, bk_mul(m, bk_sub(cn, *c)));
            y = bk_mul(m, hn);
        }
        if (!hn || err) return NULL;
        *h = hn;
        *c = cn;
        ys[t] = bk_reshape(y, BK_SHAPE(1, B, H));
    }
    return bk_concat((int)T, ys, 0);
}

bk_tensor *bk_rnn_forward(bk_module *m, bk_tensor *x, bk_tensor *h0, bk_tensor *c0, const int64_t *lengths,
                          bk_tensor **h_n, bk_tensor **c_n) {
    if (h_n) *h_n = NULL;
    if (c_n) *c_n = NULL;
    rnn_layer *self = (rnn_layer *)of_class(m, LAYER_CLASSES);
    if (!self) {
        if ((m || !bk__error_pending()) && bk__module_ok(m, "rnn"))
            bk_set_error("rnn: expected an RNN, LSTM or GRU, got %s", bk_module_name(m));
        return NULL;
    }
    const bk_rnn_config *cfg = &self->cfg;
    char name[200];
    layer_name(self, name, sizeof name);
    if (!bk__inputs_ok(name, 1, &x)) return NULL;
    if ((h0 && !bk_tensor_ok(h0, "rnn: h0")) || (c0 && !bk_tensor_ok(c0, "rnn: c0"))) return NULL;
    int64_t T, B, H = cfg->hidden_size;
    if (!layer_check(self, name, x, h0, c0, lengths, &T, &B)) return NULL;
    bool batched = x->ndim == 3, lstm = cfg->mode == BK_LSTM;
    int D = dirs(self);
    int64_t LD = cfg->num_layers * D;
    if (T > INT32_MAX || LD > INT32_MAX / 2) {
        bk_set_error("%s: %" PRId64 " time steps are too many", name, T);
        return NULL;
    }
    // Work time-major and batched: (T, B, in); states (L D, B, H).
    bk_tensor *in = !batched           ? bk_reshape(x, BK_SHAPE(T, 1, cfg->input_size))
                    : cfg->batch_first ? bk_transpose(x, 0, 1)
                                       : x;
    if (!batched) {
        if (h0) h0 = bk_reshape(h0, BK_SHAPE(LD, 1, H));
        if (c0) c0 = bk_reshape(c0, BK_SHAPE(LD, 1, H));
    }
    // ys: T step outputs; hs, cs: the final states (1, B, H) of each layer and direction
    // (in the arena: a warmed-up step allocates nothing)
    bk_tensor **ys = (bk_tensor **)bk__arena_alloc(bk_arena_current(),
                                                   ((size_t)T + 2 * (size_t)LD) * sizeof(bk_tensor *));
    if (!ys) return NULL;
    bk_tensor **hs = ys + T, **cs = hs + LD;
    for (int64_t l = 0; l < cfg->num_layers && in; l++) {
        bk_tensor *outs[2] = {NULL, NULL};
        for (int d = 0; d < D; d++) {
            int64_t k = l * D + d;
            bk_tensor *h = initial(h0, k, B, H), *c = lstm ? initial(c0, k, B, H) : NULL;
            outs[d] = run_direction(self, &self->w[k], in, d == 1, lengths, &h, &c, ys);
            hs[k] = bk_reshape(h, BK_SHAPE(1, B, H));
            cs[k] = lstm ? bk_reshape(c, BK_SHAPE(1, B, H)) : NULL;
        }
        in = D == 2 ? bk_concat(2, outs, 2) : outs[0]; // (T, B, D H)
        if (l + 1 < cfg->num_layers && cfg->dropout > 0.0f)
            in = bk_dropout(in, cfg->dropout, m->training, NULL);
    }
    bk_tensor *out = in, *hn = in ? bk_concat((int)LD, hs, 0) : NULL, *cn = NULL;
    if (lstm && hn) cn = bk_concat((int)LD, cs, 0);
    if (out && !batched) {
        out = bk_reshape(out, BK_SHAPE(T, D * H));
        hn = bk_reshape(hn, BK_SHAPE(LD, H));
        if (cn) cn = bk_reshape(cn, BK_SHAPE(LD, H));
    } else if (out && cfg->batch_first) out = bk_transpose(out, 0, 1);
    if (!out || !hn || (lstm && !cn)) {
        bk__error_prefix("%s", name);
        return NULL;
    }
    if (h_n) *h_n = hn;
    if (c_n) *c_n = cn;
    return out;
}

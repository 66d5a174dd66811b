#!/usr/bin/python3
"""gen_transformer.py - PyTorch reference data for tests/test_parity_transformer.c.

Usage:  /usr/bin/python3 tests/parity/gen_transformer.py --out build/parity --seed 123

Builds nn.Embedding, D2L's PositionalEncoding, a learned positional embedding,
nn.MultiheadAttention (self- and cross-attention, key-padding, causal, additive, boolean and
per-head 3-d masks, returned weights averaged or per head, with and without biases, a
fully masked row), nn.TransformerEncoderLayer / nn.TransformerDecoderLayer (both norm
orders, relu and gelu, both layouts) and the stacks nn.TransformerEncoder /
nn.TransformerDecoder with a final LayerNorm, and the whole nn.Transformer, in float32 and in training mode with
dropout 0 (torch 1.13's standard path: its eval-mode fast path only runs without grad).
Every parameter is jittered after the default init, so that biases and LayerNorm weights
are not 0 and 1 and the layers of a stack differ.

For every case, like gen_reference.py (whose safetensors writer and conventions it uses):
  trf_<case>.safetensors      the state_dict under PyTorch's names, metadata format=pt.
  trf_<case>.ref.safetensors  the inputs (metadata "inputs"; those with a gradient in
                              "grad_inputs" get "<name>.grad"), the masks ("masks"; bool
                              masks are stored as 0/1 floats, and "bool_masks" lists the
                              attention masks that were bool), the outputs ("outputs", each
                              with "<name>.upstream"), "grad.<param>" for every parameter,
                              and metadata: kind, cfg.* (the constructor arguments), case,
                              seed, torch, param_names, state_names, buffer_names, repr
                              (print(model)), and f32err.<tensor> (torch's own float32 error,
                              measured against a float64 rerun, over the finite entries).
The loss is L = sum over outputs of (output * upstream).sum(). A case with ReLU layers whose
draw puts a ReLU input within RELU_MARGIN of 0 (where brick's rounding may fall on the other
side of the kink and change the gradients by O(1)) is drawn again from the next seed
(metadata "redraws"). NaN entries (the fully
masked case) are part of the reference: the C test requires NaN exactly where torch has it.
"""
import copy
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brick_torch  # noqa: E402
from brick_torch import check_reload, f32_errors, generator_args, report, write_case  # noqa: E402


def case_seed(seed, name):
    return brick_torch.case_seed(seed, "trf_" + name)


# ---------------------------------------------------------------------------------------
# The two positional modules (torch has none built in)
# ---------------------------------------------------------------------------------------

class PositionalEncoding(nn.Module):
    """D2L's PositionalEncoding (chapter "Self-Attention and Positional Encoding"); the table
    is a non-persistent buffer "P" (D2L keeps a plain attribute) and is built in the
    module's dtype, so the float64 rerun gets the exact table. Odd widths work too."""

    def __init__(self, num_hiddens, dropout, max_len=1000):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.num_hiddens, self.max_len = num_hiddens, max_len
        self.register_buffer("P", self.table(torch.float32), persistent=False)

    def table(self, dtype):
        P = torch.zeros((1, self.max_len, self.num_hiddens), dtype=dtype)
        X = torch.arange(self.max_len, dtype=dtype).reshape(-1, 1) / torch.pow(
            10000, torch.arange(0, self.num_hiddens, 2, dtype=dtype) / self.num_hiddens)
        P[:, :, 0::2] = torch.sin(X)
        P[:, :, 1::2] = torch.cos(X[:, :self.num_hiddens // 2])
        return P

    def retable(self, dtype):
        self.P = self.table(dtype)

    def forward(self, X):
        X = X + self.P[:, :X.shape[-2], :].to(X.device)
        return self.dropout(X)


class LearnedPositionalEmbedding(nn.Module):
    """A learned table "weight" (max_len, d), N(0, 1) like nn.Embedding over positions."""

    def __init__(self, max_len, num_hiddens):
        super().__init__()
        self.max_len, self.num_hiddens = max_len, num_hiddens
        self.weight = nn.Parameter(torch.randn(max_len, num_hiddens))

    def forward(self, X):
        return X + self.weight[:X.shape[-2]]

    def extra_repr(self):
        return f"max_len={self.max_len}, num_hiddens={self.num_hiddens}"


# ---------------------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------------------

def causal(n):
    return torch.triu(torch.full((n, n), float("-inf")), diagonal=1)


def padding(B, S, lengths):
    """(B, S) bool: True at positions >= length (trailing padding)."""
    return torch.arange(S).reshape(1, S) >= torch.tensor(lengths).reshape(B, 1)


# ---------------------------------------------------------------------------------------
# Cases: each returns (model, inputs {name: (tensor, wants_grad)}, masks {name: tensor},
# forward(model, inputs, masks) -> {output name: tensor}, cfg {key: value}, kind)
# ---------------------------------------------------------------------------------------

def case_embedding_padded():
    m = nn.Embedding(20, 8, padding_idx=3)
    ids = torch.randint(0, 20, (4, 6)).float()
    ids[0, 1] = ids[2, 5] = 3
    ids[1, 0] = ids[1, 4] = 7  # a repeated id: its gradient rows add up
    return (m, {"input": (ids, False)}, {}, lambda m, i, k: {"output": m(i["input"].long())},
            {"num_embeddings": 20, "embedding_dim": 8, "padding_idx": 3}, "embedding")


def case_embedding_freq():
    """scale_grad_by_freq with padding: repeated ids' gradients are divided by their counts."""
    m = nn.Embedding(10, 6, padding_idx=0, scale_grad_by_freq=True)
    ids = torch.randint(0, 10, (3, 7)).float()
    ids[0, 0] = ids[1, 1] = ids[2, 2] = 5  # id 5 at least three times
    ids[0, 3] = 0
    return (m, {"input": (ids, False)}, {}, lambda m, i, k: {"output": m(i["input"].long())},
            {"num_embeddings": 10, "embedding_dim": 6, "padding_idx": 0, "scale_grad_by_freq": 1}, "embedding")


def case_embedding_1d():
    m = nn.Embedding(12, 5)
    ids = torch.randint(0, 12, (9,)).float()
    return (m, {"input": (ids, False)}, {}, lambda m, i, k: {"output": m(i["input"].long())},
            {"num_embeddings": 12, "embedding_dim": 5, "padding_idx": -1}, "embedding")


def case_posenc_sin():
    m = PositionalEncoding(10, 0.0, max_len=50)
    return (m, {"input": (torch.randn(3, 12, 10), True)}, {}, lambda m, i, k: {"output": m(i["input"])},
            {"num_hiddens": 10, "max_len": 50}, "posenc")


def case_posenc_sin_odd():
    m = PositionalEncoding(7, 0.0, max_len=20)
    return (m, {"input": (torch.randn(2, 9, 7), True)}, {}, lambda m, i, k: {"output": m(i["input"])},
            {"num_hiddens": 7, "max_len": 20}, "posenc")


def case_posenc_learned():
    m = LearnedPositionalEmbedding(16, 8)
    return (m, {"input": (torch.randn(3, 10, 8), True)}, {}, lambda m, i, k: {"output": m(i["input"])},
            {"max_len": 16, "num_hiddens": 8}, "learnedpos")


def mha_forward(mode, need_weights, average):
    def fwd(m, i, k):
        if mode == "self":
            q = kk = v = i["input"]
        elif mode == "kv":
            q, kk, v = i["query"], i["memory"], i["memory"]
        else:
            q, kk, v = i["query"], i["key"], i["value"]
        out, w = m(q, kk, v, key_padding_mask=k.get("key_padding_mask"), need_weights=need_weights,
                   attn_mask=k.get("attn_mask"), average_attn_weights=average)
        return {"output": out, "weights": w} if need_weights else {"output": out}
    return fwd


def mha_cfg(E, H, bias, bf, mode, need_weights, average):
    return {"embed_dim": E, "num_heads": H, "bias": int(bias), "batch_first": int(bf), "mode": mode,
            "need_weights": int(need_weights), "average": int(average)}


def case_mha_self_causal_kpm():
    # (L, B, E) self-attention, causal float mask + trailing key padding, averaged weights
    E, H, L, B = 16, 4, 6, 3
    m = nn.MultiheadAttention(E, H, dropout=0.0)
    masks = {"attn_mask": causal(L), "key_padding_mask": padding(B, L, [6, 4, 2])}
    return (m, {"input": (torch.randn(L, B, E), True)}, masks, mha_forward("self", True, True),
            mha_cfg(E, H, True, False, "self", True, True), "mha")


def case_mha_cross_bf_perhead():
    # batch_first cross-attention on a memory (key is value), random additive float mask,
    # memory padding, weights per head
    E, H, L, S, B = 12, 3, 4, 7, 2
    m = nn.MultiheadAttention(E, H, dropout=0.0, batch_first=True)
    masks = {"attn_mask": torch.randn(L, S), "key_padding_mask": padding(B, S, [7, 5])}
    inputs = {"query": (torch.randn(B, L, E), True), "memory": (torch.randn(B, S, E), True)}
    return (m, inputs, masks, mha_forward("kv", True, False), mha_cfg(E, H, True, True, "kv", True, False), "mha")


def case_mha_qkv_nobias_bool3d():
    # distinct query, key, value; no biases; a boolean (B*H, L, S) mask (every row keeps a key)
    E, H, L, S, B = 8, 2, 5, 6, 2
    m = nn.MultiheadAttention(E, H, dropout=0.0, bias=False)
    am = torch.rand(B * H, L, S) < 0.4
    am[:, :, 0] = False
    inputs = {"query": (torch.randn(L, B, E), True), "key": (torch.randn(S, B, E), True),
              "value": (torch.randn(S, B, E), True)}
    return (m, inputs, {"attn_mask": am}, mha_forward("qkv", True, True),
            mha_cfg(E, H, False, False, "qkv", True, True), "mha")


def case_mha_fully_masked():
    # batch element 1 has every key padded: its rows are NaN in torch (1.13, train and
    # eval alike), and so is everything computed from them
    E, H, L, B = 8, 2, 3, 2
    m = nn.MultiheadAttention(E, H, dropout=0.0, batch_first=True)
    masks = {"key_padding_mask": padding(B, L, [3, 0])}
    return (m, {"input": (torch.randn(B, L, E), True)}, masks, mha_forward("self", True, True),
            mha_cfg(E, H, True, True, "self", True, True), "mha")


def layer_cfg(d, h, ff, act, eps, bf, nf):
    return {"d_model": d, "nhead": h, "dim_feedforward": ff, "activation": act, "layer_norm_eps": eps,
            "batch_first": int(bf), "norm_first": int(nf)}


def enc_layer_case(act, nf, bf, masked):
    d, h, ff, L, B = 16, 4, 32, 5, 3
    eps = 1e-6 if nf else 1e-5
    m = nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, activation=act, layer_norm_eps=eps,
                                   batch_first=bf, norm_first=nf)
    masks = {"src_mask": causal(L), "src_key_padding_mask": padding(B, L, [5, 3, 4])} if masked else {}

    def fwd(m, i, k):
        return {"output": m(i["src"], src_mask=k.get("src_mask"),
                            src_key_padding_mask=k.get("src_key_padding_mask"))}
    src = torch.randn(B, L, d) if bf else torch.randn(L, B, d)
    return m, {"src": (src, True)}, masks, fwd, layer_cfg(d, h, ff, act, eps, bf, nf), "encoder_layer"


def dec_layer_case(act, nf, bf):
    d, h, ff, L, S, B = 16, 4, 32, 5, 7, 2
    m = nn.TransformerDecoderLayer(d, h, ff, dropout=0.0, activation=act, batch_first=bf, norm_first=nf)
    masks = {"tgt_mask": causal(L), "tgt_key_padding_mask": padding(B, L, [5, 4]),
             "memory_key_padding_mask": padding(B, S, [6, 7])}
    if nf:
        masks["memory_mask"] = torch.randn(L, S)

    def fwd(m, i, k):
        return {"output": m(i["tgt"], i["memory"], tgt_mask=k.get("tgt_mask"), memory_mask=k.get("memory_mask"),
                            tgt_key_padding_mask=k.get("tgt_key_padding_mask"),
                            memory_key_padding_mask=k.get("memory_key_padding_mask"))}
    shape = (lambda T: (B, T, d)) if bf else (lambda T: (T, B, d))
    inputs = {"tgt": (torch.randn(shape(L)), True), "memory": (torch.randn(shape(S)), True)}
    return m, inputs, masks, fwd, layer_cfg(d, h, ff, act, 1e-5, bf, nf), "decoder_layer"


def case_encoder_stack():
    d, h, ff, L, B = 16, 4, 24, 6, 2
    layer = nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, activation="gelu")
    m = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(d), enable_nested_tensor=False)
    masks = {"mask": causal(L), "src_key_padding_mask": padding(B, L, [6, 4])}

    def fwd(m, i, k):
        return {"output": m(i["src"], mask=k["mask"], src_key_padding_mask=k["src_key_padding_mask"])}
    cfg = layer_cfg(d, h, ff, "gelu", 1e-5, False, False)
    cfg.update({"num_layers": 2, "final_norm": 1})
    return m, {"src": (torch.randn(L, B, d), True)}, masks, fwd, cfg, "encoder"


def case_decoder_stack():
    d, h, ff, L, S, B = 16, 2, 24, 4, 6, 3
    layer = nn.TransformerDecoderLayer(d, h, ff, dropout=0.0, batch_first=True, norm_first=True)
    m = nn.TransformerDecoder(layer, 2, norm=nn.LayerNorm(d))
    masks = {"tgt_mask": torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1),  # bool causal
             "memory_key_padding_mask": padding(B, S, [6, 3, 5])}

    def fwd(m, i, k):
        return {"output": m(i["tgt"], i["memory"], tgt_mask=k["tgt_mask"],
                            memory_key_padding_mask=k["memory_key_padding_mask"])}
    cfg = layer_cfg(d, h, ff, "relu", 1e-5, True, True)
    cfg.update({"num_layers": 2, "final_norm": 1})
    inputs = {"tgt": (torch.randn(B, L, d), True), "memory": (torch.randn(B, S, d), True)}
    return m, inputs, masks, fwd, cfg, "decoder"


def case_decoder_stack_nonorm():
    d, h, ff, L, S, B = 8, 2, 16, 3, 5, 2
    layer = nn.TransformerDecoderLayer(d, h, ff, dropout=0.0, activation="gelu")
    m = nn.TransformerDecoder(layer, 3)

    def fwd(m, i, k):
        return {"output": m(i["tgt"], i["memory"])}
    cfg = layer_cfg(d, h, ff, "gelu", 1e-5, False, False)
    cfg.update({"num_layers": 3, "final_norm": 0})
    inputs = {"tgt": (torch.randn(L, B, d), True), "memory": (torch.randn(S, B, d), True)}
    return m, inputs, {}, fwd, cfg, "decoder"


def transformer_case(act, nf, bf, n_dec, masked):
    """nn.Transformer; the causal tgt_mask is made on both sides (generate_square_subsequent_mask
    here, bk_causal_mask in C: cfg.causal_tgt), the other masks are stored."""
    def build():
        d, h, ff, S, T, B = 16, 4, 24, 6, 5, 2
        m = nn.Transformer(d, h, 2, n_dec, ff, dropout=0.0, activation=act, batch_first=bf, norm_first=nf)
        masks = {"src_key_padding_mask": padding(B, S, [6, 4]), "memory_key_padding_mask": padding(B, S, [6, 4]),
                 "tgt_key_padding_mask": padding(B, T, [5, 3])} if masked else {}

        def fwd(m, i, k):
            return {"output": m(i["src"], i["tgt"], tgt_mask=m.generate_square_subsequent_mask(T),
                                src_key_padding_mask=k.get("src_key_padding_mask"),
                                tgt_key_padding_mask=k.get("tgt_key_padding_mask"),
                                memory_key_padding_mask=k.get("memory_key_padding_mask"))}
        cfg = layer_cfg(d, h, ff, act, 1e-5, bf, nf)
        cfg.update({"num_encoder_layers": 2, "num_decoder_layers": n_dec, "causal_tgt": T})
        shape = (lambda L: (B, L, d)) if bf else (lambda L: (L, B, d))
        inputs = {"src": (torch.randn(shape(S)), True), "tgt": (torch.randn(shape(T)), True)}
        return m, inputs, masks, fwd, cfg, "transformer"
    return build


CASES = {
    "embedding_padded": case_embedding_padded,
    "embedding_1d": case_embedding_1d,
    "embedding_freq": case_embedding_freq,
    "posenc_sin": case_posenc_sin,
    "posenc_sin_odd": case_posenc_sin_odd,
    "posenc_learned": case_posenc_learned,
    "mha_self_causal_kpm": case_mha_self_causal_kpm,
    "mha_cross_bf_perhead": case_mha_cross_bf_perhead,
    "mha_qkv_nobias_bool3d": case_mha_qkv_nobias_bool3d,
    "mha_fully_masked": case_mha_fully_masked,
    "enc_post_relu": lambda: enc_layer_case("relu", False, False, True),
    "enc_post_gelu_bf": lambda: enc_layer_case("gelu", False, True, True),
    "enc_pre_relu_bf": lambda: enc_layer_case("relu", True, True, False),
    "enc_pre_gelu": lambda: enc_layer_case("gelu", True, False, True),
    "dec_post_relu": lambda: dec_layer_case("relu", False, False),
    "dec_post_gelu_bf": lambda: dec_layer_case("gelu", False, True),
    "dec_pre_relu_bf": lambda: dec_layer_case("relu", True, True),
    "dec_pre_gelu": lambda: dec_layer_case("gelu", True, False),
    "encoder_stack": case_encoder_stack,
    "decoder_stack": case_decoder_stack,
    "decoder_stack_nonorm": case_decoder_stack_nonorm,
    "transformer_post_relu": transformer_case("relu", False, False, 1, True),
    "transformer_pre_gelu_bf": transformer_case("gelu", True, True, 2, True),
    "transformer_nomask": transformer_case("relu", False, True, 2, False),
}


# ---------------------------------------------------------------------------------------
# Running a case
# ---------------------------------------------------------------------------------------

def run(model, inputs, masks, fwd, upstream=None):
    """Forward and backward; returns (outputs, upstream, input grads, param grads)."""
    model.zero_grad(set_to_none=True)
    outs = fwd(model, inputs, masks)
    if upstream is None:
        upstream = {k: torch.randn(v.shape) for k, v in outs.items()}
    loss = sum((v * upstream[k].to(v.dtype)).sum() for k, v in outs.items())
    loss.backward()
    return outs, upstream


RELU_MARGIN = 1e-4  # a ReLU input closer to 0 may round to the other side in brick (a kink)
MAX_DRAWS = 20


def relu_margin(model, inputs, masks, fwd):
    """The smallest |input| of the layers' ReLUs (their linear1 outputs) in one forward."""
    seen = []
    hooks = [mod.register_forward_hook(lambda m, i, o: seen.append(o.detach().abs().min().item()))
             for n, mod in model.named_modules() if n.endswith("linear1")]
    with torch.no_grad():
        fwd(model, {k: t for k, (t, _) in inputs.items()}, masks)
    for h in hooks:
        h.remove()
    return min(seen, default=float("inf"))


def make_case(name, builder, seed):
    cs = case_seed(seed, name)
    for redraws in range(MAX_DRAWS):  # ReLU layers: draw again (weights and inputs) near a kink
        torch.manual_seed(cs + redraws)
        model, inputs, masks, fwd, cfg, kind = builder()
        model = model.float().train()
        with torch.no_grad():  # non-default weights: biases, LayerNorm, and each layer of a stack
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        if cfg.get("activation") != "relu" or relu_margin(model, inputs, masks, fwd) > RELU_MARGIN:
            break
    else:
        raise AssertionError(f"{name}: no draw away from the ReLU kinks in {MAX_DRAWS} draws")
    ins = {k: (t.clone().requires_grad_(True) if g else t.clone()) for k, (t, g) in inputs.items()}
    outs, upstream = run(model, ins, masks, fwd)

    ref = {}
    for k, t in ins.items():
        ref[k] = t
    for k, t in masks.items():
        ref[k] = t.float() if t.dtype == torch.bool else t
    for k, t in outs.items():
        ref[k] = t
        ref[k + ".upstream"] = upstream[k]
    for k, t in ins.items():
        if t.requires_grad:
            ref[k + ".grad"] = t.grad
    params = list(model.named_parameters())
    for pname, p in params:
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        ref["grad." + pname] = p.grad

    # The same in float64 (same float32 values everywhere; the positional table rebuilt).
    model64 = copy.deepcopy(model).double()
    for mod in model64.modules():
        if isinstance(mod, PositionalEncoding):
            mod.retable(torch.float64)
    ins64 = {k: (t.detach().double().requires_grad_(True) if t.requires_grad else t.detach().double())
             for k, t in ins.items()}
    masks64 = {k: (t.double() if t.is_floating_point() else t) for k, t in masks.items()}
    outs64, _ = run(model64, ins64, masks64, fwd, upstream)
    exact = dict(outs64)
    exact.update({k + ".grad": t.grad for k, t in ins64.items() if t.requires_grad})
    exact.update({"grad." + n: p.grad for n, p in model64.named_parameters()})

    meta = {"case": name, "kind": kind, "seed": str(seed), "case_seed": str(cs), "torch": torch.__version__,
            "inputs": ",".join(ins), "grad_inputs": ",".join(k for k, t in ins.items() if t.requires_grad),
            "masks": ",".join(masks),
            "bool_masks": ",".join(k for k, t in masks.items()
                                   if t.dtype == torch.bool and "padding" not in k),
            "outputs": ",".join(outs),
            "param_names": ",".join(n for n, _ in params),
            "state_names": ",".join(model.state_dict().keys()),
            "buffer_names": ",".join(n for n, _ in model.named_buffers()),
            "repr": repr(model), "redraws": str(redraws)}
    meta.update({"cfg." + k: str(v) for k, v in cfg.items()})
    meta.update(f32_errors(ref, exact))
    return model, ref, meta, ins, masks, fwd


def main():
    args = generator_args(__doc__)
    count = 0
    for name, builder in CASES.items():
        if not args.wanted(name):
            continue
        model, ref, meta, ins, masks, fwd = make_case(name, builder, args.seed)
        wpath = write_case(args.out, "trf_" + name, ref, meta, model.state_dict())
        # The weight file alone reproduces the output in a fresh instance (another seed).
        torch.manual_seed(args.seed + 1)
        fresh = builder()[0].float().train()
        check_reload(name, wpath, fresh, lambda m: fwd(m, {k: t.detach() for k, t in ins.items()}, masks)["output"],
                     ref["output"])
        count += 1
    return report(args, "gen_transformer", count)


if __name__ == "__main__":
    sys.exit(main())

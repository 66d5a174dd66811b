#!/usr/bin/python3
"""gen_rnn.py - PyTorch reference data for tests/test_parity_rnn.c.

Usage:  /usr/bin/python3 tests/parity/gen_rnn.py --out build/parity --seed 123

Builds nn.RNNCell (tanh, relu), nn.LSTMCell, nn.GRUCell (batched and unbatched, with and
without biases and given states) and nn.RNN / nn.LSTM / nn.GRU (1 to 3 layers, one or two
directions, both layouts, unbatched, h0 / c0 given or not, dropout in eval mode, and
variable lengths through pack_padded_sequence(enforce_sorted=False) / pad_packed_sequence
(total_length=T)), in float32, with fresh random sizes drawn from the case's seed. Every
parameter is jittered after the default init (so that the layers and directions differ
from any fixed draw).

For every case, as gen_transformer.py (whose conventions the C side shares):
  rnn_<case>.safetensors      the state_dict under PyTorch's names, metadata format=pt.
  rnn_<case>.ref.safetensors  the inputs ("inputs"; all get "<name>.grad"), "lengths" (as
                              floats) when the case has them, the outputs ("outputs", each
                              with "<name>.upstream"), "grad.<param>" for every parameter,
                              and metadata: kind (cell or layer), cfg.* (the constructor
                              arguments), case, seed, torch, param_names, state_names, repr
                              and f32err.<tensor> (torch's own float32 error against a
                              float64 rerun).
The loss is L = sum over outputs of (output * upstream).sum().
"""
import copy
import os
import random
import sys

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brick_torch  # noqa: E402
from brick_torch import check_reload, f32_errors, generator_args, report, write_case  # noqa: E402
from gen_transformer import run  # noqa: E402  (forward, loss with upstream, backward)

MODES = {"tanh": 0, "relu": 1, "lstm": 2, "gru": 3}


def cell_case(mode, bias, batched, with_h):
    def build(rnd):
        I, H, B = rnd.randint(1, 9), rnd.randint(1, 9), rnd.randint(1, 5)
        if mode == "lstm":
            m = nn.LSTMCell(I, H, bias=bias)
        elif mode == "gru":
            m = nn.GRUCell(I, H, bias=bias)
        else:
            m = nn.RNNCell(I, H, bias=bias, nonlinearity=mode)
        lead = (B,) if batched else ()
        inputs = {"input": torch.randn(*lead, I)}
        if with_h:
            inputs["h"] = torch.randn(*lead, H)
            if mode == "lstm":
                inputs["c"] = torch.randn(*lead, H)

        def fwd(m, i, masks=None):
            if mode != "lstm":
                return {"h_next": m(i["input"], i.get("h"))}
            h, c = m(i["input"], (i["h"], i["c"]) if "h" in i else None)
            return {"h_next": h, "c_next": c}
        cfg = {"mode": MODES[mode], "input_size": I, "hidden_size": H, "bias": int(bias)}
        return m, inputs, None, fwd, cfg, "cell"
    return build


def layer_case(mode, layers, bi, bf, batched=True, states=True, dropout=0.0, train=True, lengths=False,
               bias=True):
    def build(rnd):
        I, H, B, T = rnd.randint(1, 8), rnd.randint(1, 8), rnd.randint(2, 4), rnd.randint(1, 7)
        if lengths:
            T = max(T, 3)
        kw = dict(num_layers=layers, bias=bias, batch_first=bf, dropout=dropout, bidirectional=bi)
        if mode == "lstm":
            m = nn.LSTM(I, H, **kw)
        elif mode == "gru":
            m = nn.GRU(I, H, **kw)
        else:
            m = nn.RNN(I, H, nonlinearity=mode, **kw)
        D = 2 if bi else 1
        if batched:
            inputs = {"input": torch.randn(B, T, I) if bf else torch.randn(T, B, I)}
            sshape = (layers * D, B, H)
        else:
            inputs = {"input": torch.randn(T, I)}
            sshape = (layers * D, H)
        if states:
            inputs["h0"] = torch.randn(*sshape)
            if mode == "lstm":
                inputs["c0"] = torch.randn(*sshape)
        lens = None
        if lengths:  # unsorted, at least one full-length sequence and one of length 1
            lens = [rnd.randint(1, T) for _ in range(B)]
            lens[rnd.randrange(B)] = T
            lens[(lens.index(T) + 1) % B] = 1

        def fwd(m, i, masks=None):
            x = i["input"]
            hx = None
            if "h0" in i:
                hx = (i["h0"], i["c0"]) if mode == "lstm" else i["h0"]
            if lens is not None:
                packed = pack_padded_sequence(x, torch.tensor(lens), batch_first=bf, enforce_sorted=False)
                out, hn = m(packed, hx)
                out, _ = pad_packed_sequence(out, batch_first=bf, total_length=T)
            else:
                out, hn = m(x, hx)
            if mode == "lstm":
                return {"output": out, "h_n": hn[0], "c_n": hn[1]}
            return {"output": out, "h_n": hn}
        cfg = {"mode": MODES[mode], "input_size": I, "hidden_size": H, "num_layers": layers, "bias": int(bias),
               "batch_first": int(bf), "bidirectional": int(bi), "dropout": repr(dropout), "train": int(train)}
        return m, inputs, lens, fwd, cfg, "layer"
    return build


CASES = {
    "cell_tanh": cell_case("tanh", True, True, True),
    "cell_relu_nobias_unbatched": cell_case("relu", False, False, False),
    "cell_lstm": cell_case("lstm", True, True, True),
    "cell_lstm_zero_state": cell_case("lstm", True, True, False),
    "cell_lstm_unbatched": cell_case("lstm", False, False, True),
    "cell_gru": cell_case("gru", True, True, True),
    "cell_gru_nobias_unbatched": cell_case("gru", False, False, True),
    "rnn_tanh": layer_case("tanh", 1, False, False),
    "rnn_relu_2l_bi_bf": layer_case("relu", 2, True, True),
    "rnn_tanh_nobias_nostate": layer_case("tanh", 2, False, False, states=False, bias=False),
    "lstm": layer_case("lstm", 1, False, False),
    "lstm_2l_bi": layer_case("lstm", 2, True, False),
    "lstm_3l_bf_nostate": layer_case("lstm", 3, False, True, states=False),
    "lstm_unbatched_bi": layer_case("lstm", 2, True, False, batched=False),
    "lstm_dropout_eval": layer_case("lstm", 2, False, True, dropout=0.5, train=False),
    "gru": layer_case("gru", 1, False, True),
    "gru_2l_bi_nobias": layer_case("gru", 2, True, False, bias=False),
    "gru_unbatched_nostate": layer_case("gru", 1, False, False, batched=False, states=False),
    "lengths_rnn_bf": layer_case("tanh", 1, False, True, lengths=True),
    "lengths_lstm_2l_bi": layer_case("lstm", 2, True, False, lengths=True),
    "lengths_lstm_bi_bf_nostate": layer_case("lstm", 1, True, True, lengths=True, states=False),
    "lengths_gru_2l_bi_bf": layer_case("gru", 2, True, True, lengths=True),
}


def make_case(name, builder, seed):
    cs = brick_torch.case_seed(seed, "rnn_" + name)
    torch.manual_seed(cs)
    model, inputs, lens, fwd, cfg, kind = builder(random.Random(cs))
    model = model.float().train(bool(cfg.get("train", 1)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ins = {k: t.clone().requires_grad_(True) for k, t in inputs.items()}
    outs, upstream = run(model, ins, {}, fwd)

    ref = dict(ins)
    if lens is not None:
        ref["lengths"] = torch.tensor(lens, dtype=torch.float32)
    for k, t in outs.items():
        ref[k] = t
        ref[k + ".upstream"] = upstream[k]
    for k, t in ins.items():
        ref[k + ".grad"] = t.grad
    params = list(model.named_parameters())
    for pname, p in params:
        ref["grad." + pname] = p.grad

    model64 = copy.deepcopy(model).double()
    ins64 = {k: t.detach().double().requires_grad_(True) for k, t in ins.items()}
    outs64, _ = run(model64, ins64, {}, fwd, upstream)
    exact = dict(outs64)
    exact.update({k + ".grad": t.grad for k, t in ins64.items()})
    exact.update({"grad." + n: p.grad for n, p in model64.named_parameters()})

    meta = {"case": name, "kind": kind, "seed": str(seed), "case_seed": str(cs), "torch": torch.__version__,
            "inputs": ",".join(ins), "outputs": ",".join(outs),
            "param_names": ",".join(n for n, _ in params),
            "state_names": ",".join(model.state_dict().keys()), "buffer_names": "",
            "repr": repr(model)}
    meta.update({"cfg." + k: str(v) for k, v in cfg.items()})
    meta.update(f32_errors(ref, exact))
    return model, ref, meta, ins, fwd


def main():
    args = generator_args(__doc__)
    count = 0
    for name, builder in CASES.items():
        if not args.wanted(name):
            continue
        model, ref, meta, ins, fwd = make_case(name, builder, args.seed)
        wpath = write_case(args.out, "rnn_" + name, ref, meta, model.state_dict())
        # The weight file alone reproduces the output in a fresh instance (another seed).
        cs = brick_torch.case_seed(args.seed, "rnn_" + name)
        torch.manual_seed(args.seed + 1)
        fresh = builder(random.Random(cs))[0].float().train(model.training)
        first = meta["outputs"].split(",")[0]
        check_reload(name, wpath, fresh, lambda m: fwd(m, {k: t.detach() for k, t in ins.items()})[first],
                     ref[first])
        count += 1
    return report(args, "gen_rnn", count)


if __name__ == "__main__":
    sys.exit(main())

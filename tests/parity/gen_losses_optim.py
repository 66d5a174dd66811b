#!/usr/bin/python3
"""gen_losses_optim.py - PyTorch references for losses and optimizers (tests/test_parity_optim.c).

Usage:  /usr/bin/python3 tests/parity/gen_losses_optim.py --out build/parity --seed 123

Writes into --out, next to gen_reference.py's files:

  loss_<case>.ref.safetensors   one loss or (log_)softmax call on fresh random inputs:
                                the differentiable inputs ("x", "t"), "target" for
                                cross-entropy (class indices stored as exact float32),
                                "output", "upstream" (for non-scalar outputs: the backward
                                is then of (output * upstream).sum()) and "<input>.grad".
                                Metadata: case, seed, torch, inputs ("x" or "x,t").
  optim_<case>.ref.safetensors  5 training steps of Sequential(Linear(6, 8), Tanh,
                                Linear(8, 3)) on one fixed batch with cross-entropy:
                                "init.<param>", "X", "y", "loss" (5,: the loss before each
                                step), "step<k>.<param>" (the parameters after step k,
                                k = 1..5) and "state.<param>.<slot>" (the optimizer's
                                state_dict() after the last step, under named_parameters
                                names; torch 1.13 keeps "step" as a float tensor).
                                Metadata: case, seed, torch, param_names, state_names
                                (the "<param>.<slot>" names present), steps, optimizer,
                                min_abs_grad and redraws (see ADAM_MIN_GRAD).
  clip_<case>.ref.safetensors   one backward of the same model, then clip_grad_norm_ or
                                clip_grad_value_: "init.<param>", "X", "y", "norm" (1,)
                                and "grad.<param>" (after clipping). Metadata: case, seed,
                                torch, param_names, clip, limit, norm_type.
  sched_<case>.ref.safetensors  a learning-rate scheduler stepped once per epoch, as brick
                                train steps it: "lr" (SCHED_EPOCHS,), the lr of each epoch
                                (param_groups[0]["lr"] before it; torch's recursive
                                formulas, in double, stored as float32).
                                Metadata: case, seed, torch, scheduler.
  lrs_<case>.ref.safetensors    a scheduler stepped once per optimizer step (LinearLR,
                                LambdaLR, OneCycleLR; ReduceLROnPlateau given "metric",
                                float32 (steps,), one value per step): metadata "lr" and
                                "momentum" (SGD's momentum or Adam's beta1), the values in
                                use at each step as repr() doubles, comma-separated.
                                Metadata also: case, seed, torch, scheduler.

Cases (the tables LOSS_CASES and OPTIM_CASES; tests/test_parity_optim.c has the same
names): cross-entropy on (7, 5) logits with mean/sum/none, on logits in +-1e4 ("big"),
the same plus one row with a near tie at 1e4 ("tie"), and with -inf in non-target
classes ("neginf"); MSE and BCE with logits (|x| up to 100) with mean/sum/none and the
target's gradient; log_softmax and softmax along dims 0, 1 of (7, 5) and -1 of (3, 4, 5);
SGD (plain, momentum, dampening + weight decay, Nesterov), Adam, Adam with weight decay
and amsgrad, AdamW, RMSprop (plain, momentum + weight decay, centered, all three),
Adagrad (plain; lr_decay + weight decay + initial accumulator); two param groups (the
biases without weight decay at half the lr) with SGD momentum, Adam and AdamW; SGD, Adam and
RMSprop under OneCycleLR, its momentum cycling included; clip_grad_norm_ (orders 2,
inf, 1, 3; one not clipping) and clip_grad_value_; CosineAnnealingLR (eta_min 0 and > 0, run past T_max, where the lr
rises again) and StepLR; per step: LinearLR (defaults, a warmup, a decay), LambdaLR,
OneCycleLR (defaults with SGD momentum cycling; linear three-phase with Adam's beta1; epochs
x steps_per_epoch), ReduceLROnPlateau (min rel with cooldown and min_lr; max abs, a NaN
metric).

Every case draws from its own stream (case_seed of gen_reference.py), so adding cases
changes no other. The safetensors writer is gen_reference.py's.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from brick_torch import backward_case, case_seed, generator_args, report, write_case  # noqa: E402

N, C = 7, 5  # cross-entropy batch and classes
STEPS = 5
ONE_CYCLE_STEPS = 8  # OneCycleLR's total_steps in the optimizer cases (as in the C test)
ONE_CYCLE = torch.optim.lr_scheduler.OneCycleLR


# ---------------------------------------------------------------------------------------
# Loss cases
# ---------------------------------------------------------------------------------------

def ce_logits(kind):
    """(logits (N, C), targets (N,)) for a cross-entropy case."""
    target = torch.randint(0, C, (N,))
    if kind == "normal":
        return torch.randn(N, C), target
    if kind in ("big", "tie"):
        # Uniform in +-1e4: exp of any unshifted logit overflows float32. A row whose top
        # two logits are within 30 is drawn again: when the target is the top one, its
        # loss log(1 + e^-gap) is tiny next to the logits, and an implementation that
        # forms max + log(sum) in float32 loses it to the spacing at 1e4 (9.8e-4). That
        # is tested on purpose, deterministically, by the "tie" case's row 0.
        x = torch.empty(N, C)
        for i in range(N):
            while True:
                row = (torch.rand(C) * 2 - 1) * 1e4
                top = row.topk(2).values
                if top[0] - top[1] >= 30:
                    break
            x[i] = row
        if kind == "tie":
            # Row 0: target logit 1e4, another 1e4 - 1, the rest far below: the loss is
            # log(1 + e^-1) = 0.3133, and the target's softmax 0.731.
            x[0] = (torch.rand(C) * 2 - 1) * 1e4 - 2e4
            x[0, target[0]] = 1e4
            x[0, (target[0] + 1) % C] = 1e4 - 1
        return x, target
    if kind == "neginf":
        # -inf in random non-target classes; row 0 has every non-target class at -inf
        # (loss exactly 0).
        x = torch.randn(N, C)
        mask = torch.rand(N, C) < 0.4
        mask[0] = True
        mask[torch.arange(N), target] = False
        x[mask] = -float("inf")
        return x, target
    raise ValueError(kind)


def bce_logits():
    # Half the elements anywhere in [-100, 100] (saturated sigmoid), half N(0, 1); the
    # two extremes are always present.
    x = (torch.rand(4, 6) * 2 - 1) * 100
    x[:2] = torch.randn(2, 6)
    x[3, 0], x[3, 1] = 100.0, -100.0
    return x


def make_loss_case(name, spec, seed):
    torch.manual_seed(case_seed(seed, name))
    ref = {}
    if spec[0] == "ce":
        _, kind, red = spec
        x, target = ce_logits(kind)
        x.requires_grad_(True)
        inputs = {"x": x}
        out = F.cross_entropy(x, target, reduction=red)
        ref["target"] = target.float()
    elif spec[0] in ("mse", "bce"):
        _, red = spec
        x = torch.randn(4, 6) if spec[0] == "mse" else bce_logits()
        t = torch.randn(4, 6) if spec[0] == "mse" else torch.rand(4, 6)
        inputs = {"x": x.requires_grad_(True), "t": t.requires_grad_(True)}
        fn = F.mse_loss if spec[0] == "mse" else F.binary_cross_entropy_with_logits
        out = fn(inputs["x"], inputs["t"], reduction=red)
    else:  # softmax / log_softmax
        op, shape, dim = spec
        x = torch.randn(*shape).requires_grad_(True)
        inputs = {"x": x}
        out = (F.log_softmax if op == "log_softmax" else F.softmax)(x, dim=dim)
    io, meta, _ = backward_case(name, "loss", seed, inputs, out)
    ref.update(io)
    return ref, meta


# Keep in step with LOSS_CASES in tests/test_parity_optim.c.
LOSS_CASES = {
    "loss_ce_mean": ("ce", "normal", "mean"),
    "loss_ce_sum": ("ce", "normal", "sum"),
    "loss_ce_none": ("ce", "normal", "none"),
    "loss_ce_big_mean": ("ce", "big", "mean"),
    "loss_ce_big_none": ("ce", "big", "none"),
    "loss_ce_tie_mean": ("ce", "tie", "mean"),
    "loss_ce_tie_none": ("ce", "tie", "none"),
    "loss_ce_neginf_mean": ("ce", "neginf", "mean"),
    "loss_ce_neginf_none": ("ce", "neginf", "none"),
    "loss_mse_mean": ("mse", "mean"),
    "loss_mse_sum": ("mse", "sum"),
    "loss_mse_none": ("mse", "none"),
    "loss_bce_mean": ("bce", "mean"),
    "loss_bce_sum": ("bce", "sum"),
    "loss_bce_none": ("bce", "none"),
    "loss_log_softmax_dim0": ("log_softmax", (N, C), 0),
    "loss_log_softmax_dim1": ("log_softmax", (N, C), 1),
    "loss_log_softmax_3d": ("log_softmax", (3, 4, 5), -1),
    "loss_softmax_dim0": ("softmax", (N, C), 0),
    "loss_softmax_dim1": ("softmax", (N, C), 1),
    "loss_softmax_3d": ("softmax", (3, 4, 5), -1),
}


# ---------------------------------------------------------------------------------------
# Optimizer cases
# ---------------------------------------------------------------------------------------

# Keep in step with OPTIM_CASES in tests/test_parity_optim.c.
OPTIM_CASES = {
    "optim_sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "optim_sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    "optim_sgd_damp_wd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1,
                                                   weight_decay=1e-2),
    "optim_sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    "optim_adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "optim_adam_wd_amsgrad": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2,
                                                        amsgrad=True),
    "optim_adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-1),
    "optim_rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-2),
    "optim_rmsprop_momentum_wd": lambda p: torch.optim.RMSprop(p, lr=1e-2, momentum=0.9,
                                                               weight_decay=1e-2),
    "optim_rmsprop_centered": lambda p: torch.optim.RMSprop(p, lr=1e-2, alpha=0.9, centered=True),
    "optim_rmsprop_centered_momentum_wd": lambda p: torch.optim.RMSprop(
        p, lr=1e-2, alpha=0.95, eps=1e-6, momentum=0.5, centered=True, weight_decay=1e-2),
    "optim_adagrad": lambda p: torch.optim.Adagrad(p, lr=0.1),
    "optim_adagrad_decay_wd_init": lambda p: torch.optim.Adagrad(
        p, lr=0.1, lr_decay=0.1, weight_decay=1e-2, initial_accumulator_value=0.1, eps=1e-8),
    # two param groups: the weights (rank 2) with the optimizer's settings, the biases (rank 1)
    # without weight decay and at half the lr (bk_optim_add_group with bk_param_is_bias_or_norm,
    # lr_scale 0.5)
    "optim_groups_sgd": lambda p: torch.optim.SGD(_two_groups(p, 0.1), lr=0.1, momentum=0.9,
                                                  weight_decay=0.1),
    "optim_groups_adamw": lambda p: torch.optim.AdamW(_two_groups(p, 1e-2), lr=1e-2, weight_decay=0.1),
    "optim_groups_adam": lambda p: torch.optim.Adam(_two_groups(p, 1e-2), lr=1e-2, weight_decay=1e-2),
    # (optimizer, scheduler stepped after each step): OneCycleLR over ONE_CYCLE_STEPS steps,
    # whose momentum cycling (cycle_momentum, the default) sets SGD's and RMSprop's momentum
    # and Adam's beta1 at each step (bk_optim_set_momentum)
    "optim_sgd_onecycle": (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
                           lambda o: ONE_CYCLE(o, max_lr=0.1, total_steps=ONE_CYCLE_STEPS)),
    "optim_adam_onecycle": (lambda p: torch.optim.Adam(p, lr=1e-2),
                            lambda o: ONE_CYCLE(o, max_lr=1e-2, total_steps=ONE_CYCLE_STEPS,
                                                anneal_strategy="linear")),
    "optim_rmsprop_onecycle": (lambda p: torch.optim.RMSprop(p, lr=1e-2, momentum=0.5),
                               lambda o: ONE_CYCLE(o, max_lr=1e-2, total_steps=ONE_CYCLE_STEPS,
                                                   base_momentum=0.5, max_momentum=0.8)),
}


def _two_groups(params, lr):
    ps = list(params)
    return [{"params": [p for p in ps if p.dim() > 1]},
            {"params": [p for p in ps if p.dim() <= 1], "weight_decay": 0.0, "lr": lr * 0.5}]


# Adam divides by sqrt(v) + eps, so its step is lr * g / (|g| + eps) at step 1: scale-free
# in g. Where an effective gradient (g + weight_decay * p for Adam) is a near-cancelling
# residue of size ~1e-7, float32 rounding of g (~1e-9 absolute here, for torch as for brick)
# is a relative error of 1e-2, and the step changes by lr * eps * dg / g^2, ~3e-6: observed
# once in 100 seeds (torch's own float32 step was then off from the float64 one by as much
# as from brick's). No float32 implementation can be compared at rtol 1e-5 on such data, so
# a draw whose effective gradients come within ADAM_MIN_GRAD of zero at any step is drawn
# again. With |g| >= 1e-5 the effect is below lr * eps * 3e-8 / 1e-10 = 3e-8.
# RMSprop and Adagrad divide by a root mean square of the gradients too (their first step
# is lr g / (sqrt(c) |g| + eps)), so the same holds for them and they are redrawn the same way.
ADAM_MIN_GRAD = 1e-5
SCALE_FREE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.Adagrad)


def run_optim(make_opt, make_sched=None):
    """One draw: weights, batch, STEPS steps (each followed by a step of the scheduler
    make_sched(opt), if given). Returns (ref, opt, named_parameters, min |g_eff|)."""
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    X = torch.randn(16, 6)
    y = torch.randint(0, 3, (16,))
    named = list(model.named_parameters())
    names = [n for n, _ in named]
    ref = {"init." + n: p.detach().clone() for n, p in model.named_parameters()}
    ref["X"], ref["y"] = X, y.float()
    opt = make_opt(model.parameters())
    sched = make_sched(opt) if make_sched else None
    coupled_wd = 0.0 if isinstance(opt, torch.optim.AdamW) else opt.defaults["weight_decay"]
    losses, min_g = [], math.inf
    for k in range(1, STEPS + 1):
        opt.zero_grad()
        loss = F.cross_entropy(model(X), y)
        loss.backward()
        for p in model.parameters():
            min_g = min(min_g, (p.grad + coupled_wd * p).abs().min().item())
        opt.step()
        if sched:
            sched.step()
        losses.append(loss.item())
        for n, p in model.named_parameters():
            ref[f"step{k}.{n}"] = p.detach().clone()
    ref["loss"] = torch.tensor(losses, dtype=torch.float32)
    return ref, opt, named, min_g


def make_optim_case(name, spec, seed):
    make_opt, make_sched = spec if isinstance(spec, tuple) else (spec, None)
    torch.manual_seed(case_seed(seed, name))
    for redraws in range(100):
        ref, opt, named, min_g = run_optim(make_opt, make_sched)
        if not isinstance(opt, SCALE_FREE) or min_g >= ADAM_MIN_GRAD:
            break
    else:
        raise RuntimeError(f"{name}: no draw with every |gradient| >= {ADAM_MIN_GRAD}")
    # The state of each parameter (state_dict()["state"] holds the same values, keyed by
    # the parameter's index over the groups in order).
    names = [n for n, _ in named]
    state_names = []
    for n, p in named:
        for slot, v in opt.state.get(p, {}).items():
            if v is None:  # SGD without momentum keeps momentum_buffer = None
                continue
            v = torch.as_tensor(v, dtype=torch.float32)
            ref[f"state.{n}.{slot}"] = v
            state_names.append(f"{n}.{slot}")
    meta = {"case": name, "kind": "optim", "seed": str(seed),
            "case_seed": str(case_seed(seed, name)), "torch": torch.__version__,
            "param_names": ",".join(names), "state_names": ",".join(state_names),
            "steps": str(STEPS), "optimizer": repr(opt).replace("\n", " "),
            "min_abs_grad": repr(min_g), "redraws": str(redraws)}
    return ref, meta


# ---------------------------------------------------------------------------------------
# Gradient clipping cases (brick's bk_clip_grad_norm, bk_clip_grad_value)
# ---------------------------------------------------------------------------------------

# Keep in step with CLIP_CASES in tests/test_parity_optim.c: (kind, max_norm or clip_value,
# norm_type). The limits are below the gradients' norms (about 0.3 to 3 here), so every
# case clips (checked below), except "clip_norm_none", whose limit is far above.
CLIP_CASES = {
    "clip_norm2": ("norm", 0.1, 2.0),
    "clip_norm_inf": ("norm", 0.02, math.inf),
    "clip_norm1": ("norm", 0.1, 1.0),
    "clip_norm3": ("norm", 0.1, 3.0),
    "clip_norm_none": ("norm", 1e3, 2.0),
    "clip_value": ("value", 0.02, None),
}


def make_clip_case(name, spec, seed):
    """One backward of the optimizer cases' model and batch, then the clip: "init.<param>",
    "X", "y", "norm" (1,: clip_grad_norm_'s result; 0 for clip_grad_value_) and
    "grad.<param>" (the gradients after clipping)."""
    kind, limit, norm_type = spec
    torch.manual_seed(case_seed(seed, name))
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    X = torch.randn(16, 6)
    y = torch.randint(0, 3, (16,))
    ref = {"init." + n: p.detach().clone() for n, p in model.named_parameters()}
    ref["X"], ref["y"] = X, y.float()
    F.cross_entropy(model(X), y).backward()
    before = [p.grad.clone() for p in model.parameters()]
    if kind == "norm":
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), limit, norm_type)
        assert (norm > limit) == (name != "clip_norm_none"), (name, norm)
    else:
        torch.nn.utils.clip_grad_value_(model.parameters(), limit)
        norm = torch.tensor(0.0)
        assert any((b.abs() > limit).any() for b in before), name
    ref["norm"] = norm.reshape(1).float()
    for n, p in model.named_parameters():
        ref["grad." + n] = p.grad.clone()
    meta = {"case": name, "kind": "clip", "seed": str(seed), "torch": torch.__version__,
            "param_names": ",".join(n for n, _ in model.named_parameters()),
            "clip": kind, "limit": repr(limit), "norm_type": repr(norm_type)}
    return ref, meta


# ---------------------------------------------------------------------------------------
# Learning-rate schedule cases (brick's bk_lr_cosine, bk_lr_step_decay)
# ---------------------------------------------------------------------------------------

SCHED_EPOCHS = 25

# Keep in step with SCHED_CASES in tests/test_parity_optim.c: (base lr, scheduler).
SCHED_CASES = {
    "sched_cosine": (0.05, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10)),
    "sched_cosine_min": (0.1, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=7,
                                                                                  eta_min=1e-3)),
    "sched_step": (0.1, lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
}


def make_sched_case(name, spec, seed):
    base_lr, make_sched = spec
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = make_sched(opt)
    lrs = []
    for _ in range(SCHED_EPOCHS):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # (no gradient: nothing changes; keeps torch from warning about the order)
        sched.step()
    ref = {"lr": torch.tensor(lrs, dtype=torch.float64)}
    meta = {"case": name, "kind": "sched", "seed": str(seed), "torch": torch.__version__,
            "scheduler": f"{type(sched).__name__} {sched.state_dict()}".replace("\n", " ")}
    return ref, meta


# ---------------------------------------------------------------------------------------
# Per-step schedule cases (bk_lr_linear, bk_lr_lambda, bk_lr_one_cycle, bk_lr_plateau)
# ---------------------------------------------------------------------------------------

def _plateau_metrics(seed, n):
    """A validation loss that falls, then wanders on a plateau (float32 values, so that the
    file holds them exactly), with a NaN at epoch 40."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64)
    loss = 2.0 * torch.exp(-t / 8) + 0.3 + 0.02 * torch.randn(n, generator=g, dtype=torch.float64)
    loss = loss.float()
    loss[40] = float("nan")
    return loss


SGD_M = lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)
ADAM = lambda p, lr: torch.optim.Adam(p, lr=lr)
S = torch.optim.lr_scheduler

# Keep in step with STEP_SCHED_CASES in tests/test_parity_optim.c:
# (optimizer, base lr, scheduler, steps, metric kind or None).
STEP_SCHED_CASES = {
    "lrs_linear_defaults": (SGD_M, 0.1, lambda o: S.LinearLR(o), 12, None),
    "lrs_linear_warmup": (SGD_M, 0.1, lambda o: S.LinearLR(o, start_factor=0.01, total_iters=50), 80, None),
    "lrs_linear_decay": (ADAM, 3e-3, lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.25,
                                                         total_iters=30), 40, None),
    "lrs_lambda": (SGD_M, 0.05, lambda o: S.LambdaLR(o, lambda k: 0.97 ** k), 100, None),
    "lrs_onecycle": (SGD_M, 0.1, lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=1000), 1000, None),
    "lrs_onecycle_linear3": (ADAM, 0.01, lambda o: S.OneCycleLR(
        o, max_lr=0.01, total_steps=250, pct_start=0.25, anneal_strategy="linear", three_phase=True,
        div_factor=10.0, final_div_factor=100.0), 250, None),
    "lrs_onecycle_epochs": (SGD_M, 0.5, lambda o: S.OneCycleLR(
        o, max_lr=0.5, epochs=7, steps_per_epoch=13, pct_start=0.4, base_momentum=0.8,
        max_momentum=0.9), 91, None),
    "lrs_plateau": (SGD_M, 0.1, lambda o: S.ReduceLROnPlateau(o, patience=3, factor=0.5, cooldown=2,
                                                              min_lr=1e-3), 80, "min"),
    "lrs_plateau_max_abs": (ADAM, 0.02, lambda o: S.ReduceLROnPlateau(
        o, mode="max", threshold_mode="abs", threshold=0.01, patience=2, factor=0.3), 80, "max"),
}


def make_step_sched_case(name, spec, seed):
    """The lr (and momentum: SGD's, or Adam's beta1) in use at each step, as repr() strings
    in the metadata: exact doubles, compared at 1e-12."""
    make_opt, base_lr, make_sched, steps, metric_kind = spec
    p = torch.zeros(1, requires_grad=True)
    opt = make_opt([p], base_lr)
    sched = make_sched(opt)
    metrics = _plateau_metrics(seed, steps) if metric_kind else None
    if metric_kind == "max":
        metrics = 3.0 - metrics  # an accuracy-like metric that rises
    lrs, moms = [], []
    for k in range(steps):
        g = opt.param_groups[0]
        lrs.append(g["lr"])
        moms.append(g["betas"][0] if "betas" in g else g["momentum"])
        opt.step()
        sched.step(float(metrics[k])) if metric_kind else sched.step()
    ref = {"metric": metrics if metrics is not None else torch.zeros(0)}
    meta = {"case": name, "kind": "step_sched", "seed": str(seed), "torch": torch.__version__,
            "lr": ",".join(repr(float(v)) for v in lrs),
            "momentum": ",".join(repr(float(v)) for v in moms),
            "scheduler": type(sched).__name__}
    return ref, meta


def main():
    args = generator_args(__doc__)
    count = 0
    cases = [LOSS_CASES, OPTIM_CASES, CLIP_CASES, SCHED_CASES, STEP_SCHED_CASES]
    for name, spec in [item for table in cases for item in table.items()]:
        if not args.wanted(name):
            continue
        if name.startswith("loss_"):
            ref, meta = make_loss_case(name, spec, args.seed)
        elif name.startswith("lrs_"):
            ref, meta = make_step_sched_case(name, spec, args.seed)
        elif name.startswith("sched_"):
            ref, meta = make_sched_case(name, spec, args.seed)
        elif name.startswith("clip_"):
            ref, meta = make_clip_case(name, spec, args.seed)
        else:
            ref, meta = make_optim_case(name, spec, args.seed)
        write_case(args.out, name, ref, meta)
        count += 1
    return report(args, "gen_losses_optim", count)


if __name__ == "__main__":
    sys.exit(main())

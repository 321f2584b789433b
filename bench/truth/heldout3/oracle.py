"""Label each model file in models/ by training it.

Plain PyTorch: every step draws a fresh batch from the file's example_inputs (so the model must
generalise), loss from the file's loss_fn, gradient-norm clipping at 1.0.
  Adam  lr 3e-3,             up to ADAM_STEPS steps, seeds 0 and 1
  SGD   lr 0.05 momentum 0.9, up to SGD_STEPS steps, seeds 0 and 1
Early stop when the mean training accuracy over the last 50 steps is >= 0.97.
At the end: accuracy on a fresh held-out batch of 512 (seed 10_000 + seed), model.eval().

LABEL RULE (fixed before any result was seen; written at the top of labels.yaml):
  chance = 1 / n_classes (0.125 for 8 classes, 0.25 for the 4-bin marker task)
  trains          : both Adam seeds reach held-out accuracy >= 0.5
  does-not-train  : both Adam seeds stay <= chance + 0.10
  ambiguous       : anything else
SGD results are recorded and reported, but do not enter the label.

usage: python oracle.py run [model ...]   (writes results.jsonl)
       python oracle.py report            (writes labels.yaml, kinds.yaml, summary.md)
"""
import glob
import importlib.util
import json
import multiprocessing as mp
import os
import random
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "models")
RESULTS = os.path.join(HERE, "results.jsonl")
BATCH = 32
ADAM_STEPS = 800
SGD_STEPS = 500
EVAL_BATCH = 512

# name -> (kind, n_classes, dependency length, sequence length, input, expectation before training, description)
META = {
    "tbptt_gru_k20": ("truncated-bptt", 8, "90-99", 100, "token ids", "fail",
                      "GRUCell loop, h.detach() every 20 steps; first-tenth recall in noise"),
    "tbptt_gru_k50_onehot": ("truncated-bptt", 8, "15-24", 100, "dict, float one-hot", "learn",
                             "GRUCell loop, detach every 50; signal inside last chunk (k > dependency)"),
    "tcn_short_rf": ("receptive-field", 8, "20 (fixed lag)", 64, "token ids", "fail",
                     "causal dilated Conv1d k=2, d=1,2,4: receptive field 8 < 21"),
    "tcn_full_rf_onehot": ("receptive-field", 8, "20 (fixed lag)", 64, "float one-hot", "learn",
                           "causal dilated Conv1d k=3, d=1,2,4,8: receptive field 31 >= 21"),
    "lru_half": ("diagonal-recurrence", 8, "90-99", 100, "token ids", "fail",
                 "complex LRU, |lambda| initialised at 0.5 (learnable); first-tenth recall in blanks"),
    "lru_unit_circle_onehot": ("diagonal-recurrence", 8, "90-99", 100, "float one-hot", "learn",
                               "complex LRU, |lambda| in [0.9, 0.999], phase <= pi/10; first-tenth recall"),
    "diag_half_short_lag": ("diagonal-recurrence", 8, "2-5", 60, "token ids", "learn",
                            "real diagonal recurrence with FIXED lambda 0.5, signal 2-5 steps before end"),
    "mamba_fast_decay": ("selective-scan", 8, "90-99", 100, "token ids", "fail",
                         "selective SSM (cumsum form), delta init 1-3, A=-(1..16): decay >= e^-1/step"),
    "mamba_slow_loop": ("selective-scan", 8, "90-99", 100, "dict token ids, dict output", "learn",
                        "selective scan Python loop, Mamba dt init [1e-3, 1e-1]"),
    "hand_gru_default": ("hand-written-cell", 8, "90-99", 100, "token ids", "fail",
                         "hand-written GRU, default Linear init/biases; first-tenth recall in noise"),
    "hand_lstm_default": ("hand-written-cell", 8, "90-99", 100, "token ids", "fail",
                          "hand-written LSTM, forget bias 0; first-tenth recall in blanks"),
    "hand_lstm_chrono": ("hand-written-cell", 8, "90-99", 100, "token ids", "learn",
                         "hand-written LSTM, chrono init (forget bias log U(1,99))"),
    "hand_gru_chrono_marker": ("hand-written-cell", 4, "72-79", 80, "float continuous (value, marker)", "learn",
                               "hand-written GRU, update-gate bias log U(1,79); recall marked value's quartile"),
    "causal_transformer": ("attention", 8, "90-99", 100, "token ids", "learn",
                           "2-layer pre-norm causal transformer, learned positions"),
    "local_attention_window8": ("receptive-field", 8, "90-99", 100, "token ids", "fail",
                                "2-layer transformer with sliding-window mask 8 (reach 15 steps)"),
    "gru_builtin_short_dep": ("other", 8, "3-10", 50, "token ids", "learn",
                              "built-in nn.GRU, default init, signal 3-10 steps before end"),
}


def load(name):
    path = os.path.join(MODELS, name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def call(model, x):
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, tuple):
        return model(*x)
    return model(x)


def train_one(job):
    name, opt_name, seed = job
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    random.seed(seed)
    mod = load(name)
    model = mod.build_model()
    model.train()
    if opt_name == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        max_steps = ADAM_STEPS
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        max_steps = SGD_STEPS
    t0 = time.time()
    accs, losses = [], []
    nonfinite = False
    step = 0
    for step in range(1, max_steps + 1):
        x = mod.example_inputs(BATCH)
        out = call(model, x)
        loss = mod.loss_fn(out, x)
        if not torch.isfinite(loss):
            nonfinite = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        accs.append(mod.accuracy(out, x))
        losses.append(loss.item())
        if len(accs) >= 50 and sum(accs[-50:]) / 50 >= 0.97:
            break
    model.eval()
    torch.manual_seed(10_000 + seed)
    with torch.no_grad():
        xe = mod.example_inputs(EVAL_BATCH)
        acc = mod.accuracy(call(model, xe), xe)
    res = dict(model=name, opt=opt_name, seed=seed, steps=step, heldout_acc=round(acc, 4),
               final_train_loss=round(sum(losses[-20:]) / max(1, len(losses[-20:])), 4) if losses else None,
               nonfinite=nonfinite, seconds=round(time.time() - t0, 1))
    with open(RESULTS, "a") as f:
        f.write(json.dumps(res) + "\n")
    print(json.dumps(res), flush=True)
    return res


def run(names):
    jobs = [(n, o, s) for n in names for o in ("adam", "sgd") for s in (0, 1)]
    t0 = time.time()
    with mp.get_context("fork").Pool(2) as pool:
        for _ in pool.imap_unordered(train_one, jobs):
            pass
    print(f"total wall {time.time() - t0:.0f} s", flush=True)


def report():
    rows = {}
    for line in open(RESULTS):
        r = json.loads(line)
        rows[(r["model"], r["opt"], r["seed"])] = r  # latest run wins
    labels, why = {}, {}
    lines = [
        "# Label rule (fixed before any result was seen):",
        "#   chance = 1/n_classes (0.125 for 8 classes; 0.25 for hand_gru_chrono_marker's 4 bins)",
        "#   trains         : both Adam seeds (lr 3e-3) reach held-out accuracy >= 0.5",
        "#   does-not-train : both Adam seeds stay <= chance + 0.10",
        "#   ambiguous      : anything else",
        "# SGD (lr 0.05, momentum 0.9) is recorded but does not enter the label.",
        f"# Training: fresh batch of {BATCH} per step, Adam up to {ADAM_STEPS} steps, SGD up to {SGD_STEPS},",
        "# grad-norm clip 1.0, early stop at 0.97 mean train accuracy over 50 steps;",
        f"# held-out accuracy on a fresh batch of {EVAL_BATCH}.",
        "",
    ]
    for name in META:
        kind, ncls, dep, T, inp, exp, desc = META[name]
        chance = 1.0 / ncls
        a = [rows.get((name, "adam", s)) for s in (0, 1)]
        g = [rows.get((name, "sgd", s)) for s in (0, 1)]
        if any(r is None for r in a):
            lab = "ambiguous"
        else:
            aa = [r["heldout_acc"] for r in a]
            if all(v >= 0.5 for v in aa):
                lab = "trains"
            elif all(v <= chance + 0.10 for v in aa):
                lab = "does-not-train"
            else:
                lab = "ambiguous"
        labels[name] = lab
        lines.append(f"{name}:")
        lines.append(f"  label: {lab}")
        lines.append(f"  chance: {chance:.3f}")
        for opt, rs in (("adam", a), ("sgd", g)):
            for s, r in zip((0, 1), rs):
                if r is None:
                    lines.append(f"  {opt}_seed{s}: null")
                else:
                    lines.append(f"  {opt}_seed{s}: {{heldout_acc: {r['heldout_acc']}, steps: {r['steps']}, "
                                 f"final_train_loss: {r['final_train_loss']}, nonfinite: {str(r['nonfinite']).lower()}}}")
    open(os.path.join(HERE, "labels.yaml"), "w").write("\n".join(lines) + "\n")
    open(os.path.join(HERE, "kinds.yaml"), "w").write("".join(f"{n}: {META[n][0]}\n" for n in META))
    return labels, rows


if __name__ == "__main__":
    if sys.argv[1] == "run":
        names = sys.argv[2:] or list(META)
        # slowest first, for load balancing
        run(names)
    else:
        report()

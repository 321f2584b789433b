"""Plain-PyTorch training oracle for the held-out sequence models in models/.

LABEL RULE (fixed before any model was trained):
  * Every task has 8 classes, chance = 0.125.
  * Each model is trained 4 times from scratch: Adam (lr 3e-3) with seeds 0 and 1, and
    SGD with momentum 0.9 (lr 0.05) with seeds 0 and 1. Batch 32, a fresh random batch
    from the model file's example_inputs() every step, loss from its loss_fn(), gradient
    norm clipped at 1.0, at most 700 steps. Every 50 steps accuracy is measured on a
    fresh batch of 256; training stops early once it reaches 0.95.
  * The reported accuracy of a run is the file's accuracy() on a fresh held-out batch of
    1024 after training (no_grad). A run whose loss became NaN/Inf is stopped and scored
    the same way.
  * label "trains"          : both Adam seeds >= 0.50
    label "does-not-train"  : both Adam seeds <= 0.225 (chance + 0.10)
    otherwise "ambiguous".  SGD results are recorded but do not enter the label.
  * Each task has a known-good control (a chrono-initialised nn.LSTM, bidirectional for
    the lookahead task) trained under the same protocol; a task whose control is not
    labelled "trains" must be redesigned before its models are labelled.
"""
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent
MAX_STEPS = 700
EVAL_EVERY = 50
EARLY_STOP = 0.95
BATCH = 32
THRESH_TRAINS = 0.50
THRESH_FAIL = 0.125 + 0.10


def load(path):
    spec = importlib.util.spec_from_file_location(Path(path).stem + "_oracle", path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(path).parent))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.pop(0)
    return mod


def call(model, inputs):
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def evaluate(model, mod, n):
    with torch.no_grad():
        x = mod.example_inputs(n)
        out = call(model, x)
        return float(mod.accuracy(out, x))


def train_run(mod, build, opt_name, seed):
    torch.manual_seed(seed)
    model = build()
    if opt_name == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    t0 = time.time()
    nan = False
    step = 0
    for step in range(1, MAX_STEPS + 1):
        x = mod.example_inputs(BATCH)
        loss = mod.loss_fn(call(model, x), x)
        if not torch.isfinite(loss):
            nan = True
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % EVAL_EVERY == 0 and evaluate(model, mod, 256) >= EARLY_STOP:
            break
    acc = evaluate(model, mod, 1024)
    if math.isnan(acc):
        acc = 0.0
    return {"acc": round(acc, 3), "steps": step, "nan": nan, "sec": round(time.time() - t0, 1)}


def label(adam_accs):
    if all(a >= THRESH_TRAINS for a in adam_accs):
        return "trains"
    if all(a <= THRESH_FAIL for a in adam_accs):
        return "does-not-train"
    return "ambiguous"


# ---------------------------------------------------------------- controls
def chrono_lstm(lstm, t_max):
    h = lstm.hidden_size
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith("bias_ih"):
                b = torch.log(torch.empty(h).uniform_(1, t_max - 1))
                p.zero_()
                p[h:2 * h] = b        # forget gate
                p[0:h] = -b           # input gate
            elif name.startswith("bias_hh"):
                p.zero_()


class TokenLSTM(nn.Module):
    def __init__(self, vocab, t_max, per_step=False, bidirectional=False):
        super().__init__()
        self.per_step = per_step
        self.embed = nn.Embedding(vocab, 32)
        self.lstm = nn.LSTM(32, 64, batch_first=True, bidirectional=bidirectional)
        chrono_lstm(self.lstm, t_max)
        self.head = nn.Linear(64 * (2 if bidirectional else 1), 8)

    def forward(self, tokens):
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out if self.per_step else out[:, -1])


class FloatLSTM(nn.Module):
    def __init__(self, d_in, t_max):
        super().__init__()
        self.lstm = nn.LSTM(d_in, 64, batch_first=True)
        chrono_lstm(self.lstm, t_max)
        self.head = nn.Linear(64, 8)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


CONTROLS = {
    # name: (task reference model file, builder)
    "control_recall_lstm": ("elman_tanh_recall", lambda: TokenLSTM(16, 80)),
    "control_marked_lstm": ("mingru_marked", lambda: FloatLSTM(9, 80)),
    "control_lookahead_bilstm": ("bigru_tagger", lambda: TokenLSTM(8, 50, per_step=True, bidirectional=True)),
    "control_majority_lstm": ("meanpool_bag", lambda: TokenLSTM(8, 64)),
}


def main():
    out_path = ROOT / "results.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    names = sys.argv[1:]
    jobs = []
    for n in names:
        if n in CONTROLS:
            ref, build = CONTROLS[n]
            mod = load(ROOT / "models" / f"{ref}.py")
            jobs.append((n, mod, build))
        else:
            mod = load(ROOT / "models" / f"{n}.py")
            jobs.append((n, mod, mod.build_model))
    for name, mod, build in jobs:
        if name in results and "label" in results[name]:
            print(name, "done already", flush=True)
            continue
        runs = {}
        for opt_name in ("adam", "sgd"):
            for seed in (0, 1):
                r = train_run(mod, build, opt_name, seed)
                runs[f"{opt_name}{seed}"] = r
                print(name, opt_name, seed, r, flush=True)
        lab = label([runs["adam0"]["acc"], runs["adam1"]["acc"]])
        results[name] = {"runs": runs, "label": lab}
        print("==>", name, lab, flush=True)
        out_path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

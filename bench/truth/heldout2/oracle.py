"""Ground-truth labels by plain training (no gradcheck).

LABELLING RULE (fixed before any result was looked at)
-----------------------------------------------------
score: classification -> accuracy on 2048 fresh eval samples; chance = majority-class rate of
       the eval labels.  regression -> R^2 = 1 - MSE/Var(target) on the eval set; chance = 0.
       (causal_transformer: per-position accuracy over positions t >= lag.)
       NaN/inf -> score = chance.
reference(seed) = best score of any control (both optimizers) for that seed.
progress(run) = (score - chance) / (reference - chance).
A control must "clearly learn": cls acc >= chance + 0.5*(1-chance), reg R^2 >= 0.5, under at
least one optimizer for each seed; otherwise the task is revised and everything re-run.
Label "trains"  iff for at least one optimizer (Adam or SGD+momentum) both seeds reach
                progress >= 0.7.
Label "does-not-train" otherwise; reason says "partial" when some run reaches progress >= 0.3.
Optimizers: Adam lr 1e-3 (1e-4 for the sine networks, the published SIREN lr); SGD momentum 0.9
lr 1e-2. Same for model and control. Batch 64. Steps per model below (same for control).
"""
import importlib.util
import json
import math
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "models")
OUT = os.path.join(HERE, "oracle_runs")


def load(name):
    spec = importlib.util.spec_from_file_location(f"hm_{name}", os.path.join(MODELS, name + ".py"))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def call(model, inputs):
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


# ---------------------------------------------------------------- controls
class FlatTokenMLP(nn.Module):
    """Standard reference for fixed-length token classification: embed, flatten, MLP."""

    def __init__(self, vocab, seq_len, n_out, key="tokens", d=8, width=256):
        super().__init__()
        self.key = key
        self.embed = nn.Embedding(vocab, d)
        self.mlp = nn.Sequential(nn.Linear(seq_len * d, width), nn.ReLU(), nn.Linear(width, n_out))

    def forward(self, **kw):
        x = self.embed(kw[self.key]).flatten(1)
        return {"logits": self.mlp(x)}


class FlatOneHotMLP(nn.Module):
    def __init__(self, seq_len, n_sym, width=256):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(seq_len * n_sym, width), nn.ReLU(),
                                 nn.Linear(width, n_sym))

    def forward(self, x):
        return self.mlp(x)


class MLP(nn.Module):
    def __init__(self, d_in, d_out, width=128, depth=3, key=None, out_key=None):
        super().__init__()
        layers, d = [], d_in
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        layers.append(nn.Linear(d, d_out))
        self.net = nn.Sequential(*layers)
        self.key, self.out_key = key, out_key

    def forward(self, *a, **kw):
        x = kw[self.key] if self.key else a[0]
        y = self.net(x)
        return {self.out_key: y} if self.out_key else y


class CausalConvLM(nn.Module):
    """Reference for the lagged-copy task: causal conv with receptive field >= lag+1."""

    def __init__(self, vocab, k, d=64):
        super().__init__()
        self.k = k
        self.embed = nn.Embedding(vocab, d)
        self.conv = nn.Conv1d(d, 128, k)
        self.out = nn.Linear(128, vocab)

    def forward(self, idx):
        x = self.embed(idx).transpose(1, 2)
        x = F.relu(self.conv(F.pad(x, (self.k - 1, 0)))).transpose(1, 2)
        return {"logits": self.out(x)}


def controls_for(name, m):
    """Return list of (control_name, builder)."""
    if name == "lstm_chrono_recall":
        c = m.CFG
        return [("flat_mlp", lambda: FlatTokenMLP(c.n_keys + c.n_noise, c.seq_len, c.n_keys))]
    if name == "gru_last_tokens":
        c = m.CFG

        class LastConv(nn.Module):
            # added after the first run: the flat MLP did not learn this task (see labels.yaml)
            def __init__(self):
                super().__init__()
                self.lm = CausalConvLM(c.vocab, 4)

            def forward(self, tokens):
                return {"logits": self.lm(tokens)["logits"][:, -1]}
        return [("flat_mlp", lambda: FlatTokenMLP(c.vocab, c.seq_len, c.vocab)),
                ("causal_conv_k4", LastConv)]
    if name == "gru_first_token":
        c = m.CFG

        def chrono_gru():
            net = m.GRUClassifier(c)
            h = c.d_hidden
            with torch.no_grad():   # gates r, z, n; z near 1 keeps the state
                net.encoder.bias_ih_l0.zero_()
                net.encoder.bias_hh_l0.zero_()
                net.encoder.bias_hh_l0[h:2 * h] = torch.log(torch.empty(h).uniform_(1, c.seq_len - 1))
            return net
        return [("flat_mlp", lambda: FlatTokenMLP(c.vocab, c.seq_len, c.vocab)),
                ("chrono_init_gru", chrono_gru)]
    if name == "rnn_cell_loop":
        c = m.CFG
        return [("flat_mlp", lambda: FlatOneHotMLP(c.seq_len, c.n_symbols))]
    if name == "tcn_short_rf":
        import dataclasses
        c = dataclasses.replace(m.CFG, dilations=(1, 2, 4, 8))
        return [("tcn_dilations_1_2_4_8", lambda: m.TCN(c))]
    if name == "causal_transformer":
        c = m.CFG
        return [("causal_conv_k8", lambda: CausalConvLM(c.vocab, 8))]
    if name == "siren":
        return [("relu_mlp", lambda: MLP(2, 1, 64, 4))]
    if name == "sine_net_default_init":
        s = load("siren")
        return [("siren_published_init", lambda: s.Siren(s.CFG)),
                ("relu_mlp", lambda: MLP(2, 1, 64, 4))]
    if name == "deep_mlp_small_init":
        def he_init():
            net = m.DeepMLP(m.MLPConfig(weight_scale=1.0))
            for mod in net.modules():
                if isinstance(mod, nn.Linear):
                    nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
                    nn.init.zeros_(mod.bias)
            return net
        return [("same_depth_he_init", he_init), ("mlp_3x128", lambda: MLP(16, 1, 128, 3))]
    if name == "fixup_resmlp":
        return [("mlp_3x128", lambda: MLP(16, 5, 128, 3, key="features", out_key="logits"))]
    if name == "layerscale_vit":
        import dataclasses
        c = dataclasses.replace(m.CFG, layerscale_init=1.0)
        return [("prenorm_no_layerscale", lambda: m.PatchTransformer(c))]
    if name == "nograd_batchnorm_bug":
        class Fixed(m.StandardizedRegressor):
            def forward(self, x):
                h = self.stem(x)
                with torch.no_grad():
                    mu = h.mean(dim=0, keepdim=True)
                    sd = h.std(dim=0, keepdim=True)
                h = (h - mu) / (sd + self.cfg.eps)
                return self.head(self.body(h))
        return [("stats_only_under_no_grad", lambda: Fixed(m.CFG))]
    if name == "vq_autoencoder":
        c = m.CFG

        class AE(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.Sequential(nn.Linear(c.d_in, c.d_hidden), nn.ReLU(),
                                             nn.Linear(c.d_hidden, c.d_latent))
                self.decoder = nn.Sequential(nn.Linear(c.d_latent, c.d_hidden), nn.ReLU(),
                                             nn.Linear(c.d_hidden, c.d_in))

            def forward(self, x):
                z = self.encoder(x)
                return {"recon": self.decoder(z), "z": z, "z_q": z}
        return [("plain_autoencoder", AE)]
    if name == "gru_tbptt_detach":
        class NoDetach(m.StepwiseGRU):
            def forward(self, tokens):
                x = self.embed(tokens)
                h = x.new_zeros(x.shape[0], self.cfg.d_hidden)
                for t in range(x.shape[1]):
                    h = self.cell(x[:, t], h)
                return {"logits": self.head(h)}
        return [("no_detach", lambda: NoDetach(m.CFG))]
    if name == "probe_stopgrad":
        c = m.CFG

        class Plain(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = m.Encoder(c)
                self.head = nn.Linear(c.d_feat, c.n_classes)

            def forward(self, x, x_aug):
                h = self.encoder(x)
                return {"logits": self.head(h), "pred": h, "target": h.detach(),
                        "probe": torch.zeros(x.shape[0])}
        return [("plain_mlp_classifier", Plain)]
    if name == "sparse_relu_bias":
        return [("bias_init_0", lambda: m.SparseMLP(m.SparseConfig(bias_init=0.0)))]
    raise KeyError(name)


# ---------------------------------------------------------------- per-model evaluation
STEPS = {
    "lstm_chrono_recall": 1000, "gru_last_tokens": 800, "gru_first_token": 1000,
    "rnn_cell_loop": 1000, "tcn_short_rf": 800, "causal_transformer": 800,
    "siren": 1000, "sine_net_default_init": 1000, "deep_mlp_small_init": 1000,
    "fixup_resmlp": 800, "layerscale_vit": 1000, "nograd_batchnorm_bug": 800,
    "vq_autoencoder": 1000, "gru_tbptt_detach": 1000, "probe_stopgrad": 800,
    "sparse_relu_bias": 800,
}
REGRESSION = {"siren", "sine_net_default_init", "deep_mlp_small_init", "nograd_batchnorm_bug",
              "vq_autoencoder"}
SINE = {"siren", "sine_net_default_init"}


def prediction(name, out):
    if isinstance(out, dict):
        return out["recon"] if name == "vq_autoencoder" else out["logits"]
    return out


@torch.no_grad()
def evaluate(name, m, model, eval_inputs):
    model.eval()
    out = call(model, eval_inputs)
    model.train()
    pred = prediction(name, out)
    tgt = m.make_targets(eval_inputs)
    if name in REGRESSION:
        mse = F.mse_loss(pred, tgt).item()
        var = tgt.var().item()
        score = 1 - mse / var
        chance = 0.0
    else:
        if pred.dim() == 3:
            mask = tgt != -100
            correct = (pred.argmax(-1) == tgt)[mask].float()
            acc = correct.mean().item()
            t = tgt[mask]
        else:
            acc = (pred.argmax(-1) == tgt).float().mean().item()
            t = tgt
        score = acc
        chance = torch.bincount(t).max().item() / t.numel()
    if not math.isfinite(score):
        score = chance
    return score, chance


def train_one(name, m, builder, opt_name, seed, steps, eval_inputs):
    torch.manual_seed(seed)
    model = builder()
    if opt_name == "adam":
        lr = 1e-4 if name in SINE else 1e-3
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        lr = 1e-2
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    t0 = time.time()
    for step in range(steps):
        inputs = m.example_inputs(64)
        loss = m.loss_fn(call(model, inputs), inputs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    score, chance = evaluate(name, m, model, eval_inputs)
    tail = [x for x in losses[-50:]]
    final = sum(tail) / len(tail)
    return {"optimizer": opt_name, "lr": lr, "seed": seed, "steps": steps,
            "initial_loss": round(losses[0], 5),
            "final_train_loss": round(final, 5) if math.isfinite(final) else str(final),
            "eval_score": round(score, 4), "chance": round(chance, 4),
            "seconds": round(time.time() - t0, 1)}


def run(name):
    m = load(name)
    steps = STEPS[name]
    torch.manual_seed(12345)
    eval_inputs = m.example_inputs(2048)
    result = {"model": name, "steps": steps, "metric": "R2" if name in REGRESSION else "accuracy",
              "runs": {"model": [], "controls": {}}}
    for seed in (0, 1):
        for opt_name in ("adam", "sgd"):
            r = train_one(name, m, m.build_model, opt_name, seed, steps, eval_inputs)
            result["runs"]["model"].append(r)
            print(name, "model", r, flush=True)
            for cname, builder in controls_for(name, m):
                r = train_one(name, m, builder, opt_name, seed, steps, eval_inputs)
                result["runs"]["controls"].setdefault(cname, []).append(r)
                print(name, cname, r, flush=True)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(result, f, indent=1)


def label(result):
    runs = result["runs"]
    metric_reg = result["metric"] == "R2"
    by = {}
    for seed in (0, 1):
        ctrl = [r for rs in runs["controls"].values() for r in rs if r["seed"] == seed]
        best = max(ctrl, key=lambda r: r["eval_score"])
        chance = best["chance"]
        need = 0.5 if metric_reg else chance + 0.5 * (1 - chance)
        by[seed] = (best["eval_score"], chance, best["eval_score"] >= need)
    prog = {}
    for r in runs["model"]:
        ref, chance, _ = by[r["seed"]]
        prog[(r["optimizer"], r["seed"])] = (r["eval_score"] - chance) / max(ref - chance, 1e-9)
    controls_ok = all(v[2] for v in by.values())
    trains = any(all(prog[(o, s)] >= 0.7 for s in (0, 1)) for o in ("adam", "sgd"))
    partial = any(p >= 0.3 for p in prog.values())
    return controls_ok, trains, partial, prog, by


if __name__ == "__main__":
    for n in sys.argv[1:]:
        run(n)

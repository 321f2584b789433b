"""Ground-truth labels by training in plain PyTorch (no gradcheck).

For each model file: a fixed synthetic training set drawn from the file's example_inputs
(the targets are the file's fixed teacher, read through its loss_fn), the model and a
known-good control (same file, same init, the suspect construct replaced by its ordinary
differentiable version; for healthy designs with no bug the control is either a plain variant
or the model itself), Adam lr 1e-3 and SGD momentum 0.9, 2 init seeds, 200 steps of batch 64.

Losses compared are the file's loss_fn, except for the two VQ files, where the reconstruction MSE
is compared (their codebook/commitment terms measure the quantisation error, not the task).

Label rule (fixed before running gradcheck):
  frozen_affecting = trainable parameters that stayed bit-identical in every run of the model
                     AND whose perturbation changes the loss (their values affect the loss)
  well_above(run)  = model_final > 1.25 * control_final and
                     (model_final - control_final) > 0.2 * (initial - control_final)
  does-not-train   if frozen_affecting is non-empty and well_above holds in >= 2 of the 4 runs,
                   or the model's loss never falls below 0.8 x its initial loss in any run;
  trains           otherwise.
"""

import copy
import importlib.util
import os
import sys
import types

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import yaml  # noqa: E402

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "models")
STEPS, BATCH, NDATA = 200, 64, 1024
SGD_LR = 0.02
SEEDS = (0, 1)


def load(name):
    path = os.path.join(MODELS, name + ".py")
    spec = importlib.util.spec_from_file_location("heldout_" + name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------- controls (bug removed)
def ctl_tabular_embedder(m):
    def forward(self, x):
        emb = self.encoder(x)
        return {"pred": self.head(emb), "embedding": emb.detach()}

    m.forward = types.MethodType(forward, m)


def ctl_frozen_export_backbone(m):
    m.forward = types.MethodType(lambda self, x: self.head(self.backbone(x)), m)


def ctl_vq_autoencoder(m):
    def forward(self, x):
        z = self.encoder(x)
        q, codes = self.quantizer(z)
        return {"recon": self.decoder(z + (q - z).detach()), "z": z, "q": q, "codes": codes}

    m.forward = types.MethodType(forward, m)


def ctl_cosine_classifier(m):
    def forward(self, feats):
        cos = F.normalize(feats, dim=-1) @ F.normalize(self.prototypes, dim=-1).t()
        return self.log_scale.exp().clamp(max=100.0) * cos

    m.head.forward = types.MethodType(forward, m.head)


def ctl_robust_clip_regressor(m):
    def _clip(self, z):
        lo = torch.quantile(z, self.cfg.lo_pct / 100, dim=0, keepdim=True)
        hi = torch.quantile(z, self.cfg.hi_pct / 100, dim=0, keepdim=True)
        return torch.minimum(torch.maximum(z, lo), hi)

    m._clip = types.MethodType(_clip, m)


def ctl_leaky_rnn(m):
    def forward(self, x):
        b, t, _ = x.shape
        h = x.new_zeros(b, self.cfg.hidden_size)
        for i in range(t):
            h = self.cell(x[:, i], h)
        return self.head(torch.cat([h, x[:, -1]], dim=-1))

    m.forward = types.MethodType(forward, m)


def ctl_learned_bucketing(m):
    bk = m.bucketizer

    def forward(self, x):
        pos = torch.sigmoid(self.scorer(x)).squeeze(-1) * (self.n_buckets - 1)
        lo = pos.detach().floor().clamp(0, self.n_buckets - 2)
        frac = (pos - lo).unsqueeze(-1)
        lo = lo.long()
        return (1 - frac) * self.table(lo) + frac * self.table(lo + 1), pos

    bk.forward = types.MethodType(forward, bk)


def ctl_vqvae_ste(m):  # plain continuous bottleneck
    def forward(self, z):
        return z, z, torch.zeros(z.shape[0], dtype=torch.long)

    m.vq.forward = types.MethodType(forward, m.vq)


def ctl_gumbel_codes(m):  # soft relaxation instead of hard straight-through
    m.bottleneck.cfg = copy.copy(m.bottleneck.cfg)
    m.bottleneck.cfg.hard = False


def ctl_rezero_mlp(m):  # ordinary residual (gate 1)
    with torch.no_grad():
        for b in m.blocks:
            b.alpha.fill_(1.0)


def ctl_calibrated_classifier(m):  # without the logging head call
    def forward(self, x):
        return self.cls_head(self.trunk(x))

    m.forward = types.MethodType(forward, m)


# extra training term a control needs to be a known-good version of the design
CONTROL_TRAIN_LOSS = {
    # VQ-VAE with straight-through also needs the commitment term (beta = 0.25); evaluation uses
    # the file's own loss_fn for model and control alike
    "vq_autoencoder": lambda mod, out, inp: (
        mod.loss_fn(out, inp) + 0.25 * F.mse_loss(out["z"], out["q"].detach())
    ),
}

# the quantity the label is judged on when the file's loss adds auxiliary terms (VQ codebook and
# commitment terms grow with the scale of z and say nothing about the task): the task loss
EVAL_METRIC = {
    "vq_autoencoder": lambda mod, out, inp: F.mse_loss(out["recon"], inp),
    "vqvae_ste": lambda mod, out, inp: F.mse_loss(out["recon"], inp),
}

MODELS_SPEC = {
    # name: (control, control description)
    "tabular_embedder": (ctl_tabular_embedder, "head reads the live embedding (no detach)"),
    "frozen_export_backbone": (ctl_frozen_export_backbone, "backbone called outside no_grad"),
    "vq_autoencoder": (ctl_vq_autoencoder, "straight-through z + (q - z).detach()"),
    "cosine_classifier": (ctl_cosine_classifier, "tensor logit scale instead of .item()"),
    "robust_clip_regressor": (ctl_robust_clip_regressor, "torch.quantile + clamp instead of NumPy"),
    "leaky_rnn": (ctl_leaky_rnn, "full BPTT (no per-step detach)"),
    "learned_bucketing": (ctl_learned_bucketing, "linear interpolation between adjacent rows"),
    "simsiam": (None, "identical (stop-gradient is the design)"),
    "vqvae_ste": (ctl_vqvae_ste, "continuous bottleneck (no quantiser)"),
    "dino_ema": (None, "identical (frozen EMA teacher is the design)"),
    "gumbel_codes": (ctl_gumbel_codes, "soft Gumbel-softmax (hard=False)"),
    "rezero_mlp": (ctl_rezero_mlp, "residual gates initialised to 1"),
    "calibrated_classifier": (ctl_calibrated_classifier, "no confidence head call"),
    "listing_ranker": (None, "identical (plain dict-in/dict-out model)"),
}


# ---------------------------------------------------------------- training
def call(model, inp):
    return model(**inp) if isinstance(inp, dict) else model(inp)


def take(data, idx):
    if isinstance(data, dict):
        return {k: v[idx] for k, v in data.items()}
    return data[idx]


def eval_loss(mod, model, data):
    torch.manual_seed(999)  # Gumbel noise etc.
    metric = EVAL_METRIC.get(mod.__name__.replace("heldout_", ""))
    with torch.no_grad():
        out = call(model, data)
        if metric is not None:
            return float(metric(mod, out, data))
        return float(mod.loss_fn(out, data))


def build(mod, seed, control):
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = mod.build_model()
    if control is not None:
        control(model)
    model.train()
    return model


def train_once(mod, data, seed, opt_name, control, train_loss=None):
    model = build(mod, seed, control)
    train_loss = train_loss or (lambda mod_, out_, inp_: mod_.loss_fn(out_, inp_))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    params = [p for p in model.parameters() if p.requires_grad]
    if opt_name == "adam":
        opt = torch.optim.Adam(params, lr=1e-3)
    else:
        opt = torch.optim.SGD(params, lr=SGD_LR, momentum=0.9)
    initial = eval_loss(mod, model, data)
    g = torch.Generator().manual_seed(100 + seed)
    losses = []
    for step in range(STEPS):
        idx = torch.randint(0, NDATA, (BATCH,), generator=g)
        inp = take(data, idx)
        out = call(model, inp)
        loss = train_loss(mod, out, inp)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if hasattr(model, "update_teacher"):
            model.update_teacher(out.get("teacher_logits") if isinstance(out, dict) else None)
        losses.append(float(loss))
    final = eval_loss(mod, model, data)
    frozen = [n for n in names if torch.equal(before[n], dict(model.named_parameters())[n])]
    moved = {}
    for n in names:
        top = n.split(".")[0]
        d = float((dict(model.named_parameters())[n].detach() - before[n]).abs().max())
        moved[top] = max(moved.get(top, 0.0), d)
    return {
        "initial": initial,
        "final": final,
        "frozen": frozen,
        "moved": moved,
        "finite": bool(np.isfinite(final)),
    }


def affects_loss(mod, data, seed, pname):
    """Does perturbing this parameter (at init) change the loss? (values matter?)"""
    model = build(mod, seed, None)
    sub = take(data, torch.arange(256))
    base = eval_loss(mod, model, sub)
    p = dict(model.named_parameters())[pname]
    with torch.no_grad():
        scale = max(float(p.abs().mean()), 1e-2)
        gen = torch.Generator().manual_seed(7)
        p.add_(torch.randn(p.shape, generator=gen) * 0.5 * scale + 0.5 * scale)
    return abs(eval_loss(mod, model, sub) - base) > 1e-6


def main(selected=None):
    results = {}
    labels = {}
    for name, (control, cdesc) in MODELS_SPEC.items():
        if selected and name not in selected:
            continue
        mod = load(name)
        torch.manual_seed(12345)
        np.random.seed(12345)
        data = mod.example_inputs(NDATA)
        runs = {}
        for opt_name in ("adam", "sgd"):
            for seed in SEEDS:
                r_m = train_once(mod, data, seed, opt_name, None)
                r_c = (
                    r_m
                    if control is None
                    else train_once(
                        mod, data, seed, opt_name, control, CONTROL_TRAIN_LOSS.get(name)
                    )
                )
                runs[f"{opt_name}_s{seed}"] = {"model": r_m, "control": r_c}
        frozen_all = set.intersection(*[set(r["model"]["frozen"]) for r in runs.values()])
        frozen_aff = sorted(p for p in frozen_all if affects_loss(mod, data, 0, p))
        well_above = 0
        any_progress = False
        for r in runs.values():
            mf, cf, ini = r["model"]["final"], r["control"]["final"], r["model"]["initial"]
            if not np.isfinite(mf) or (mf > 1.25 * cf and (mf - cf) > 0.2 * (ini - cf)):
                well_above += 1
            if np.isfinite(mf) and mf < 0.8 * ini:
                any_progress = True
        if (frozen_aff and well_above >= 2) or not any_progress:
            label = "does-not-train"
        else:
            label = "trains"
        if label == "does-not-train" and frozen_aff:
            reason = (
                f"{len(frozen_aff)} loss-affecting trainable tensor(s) never update "
                f"({', '.join(frozen_aff[:4])}{' ...' if len(frozen_aff) > 4 else ''}); "
                f"loss well above control in {well_above}/4 runs"
            )
        elif label == "does-not-train":
            reason = "loss never falls below 0.8x its initial value"
        else:
            extra = ""
            if frozen_all:
                extra = (
                    f"; bit-identical but not loss-affecting: {', '.join(sorted(frozen_all)[:4])}"
                    if not frozen_aff
                    else f"; frozen loss-affecting {', '.join(frozen_aff[:3])} but loss close to control"
                )
            reason = f"loss falls, all loss-affecting params update{extra}; well-above-control in {well_above}/4 runs"
        labels[name] = {
            "file": f"models/{name}.py",
            "label": label,
            "reason": reason,
            "control": cdesc,
            "frozen_loss_affecting_params": frozen_aff,
            "bit_identical_trainable_params": sorted(frozen_all),
            "losses": {
                k: {
                    "initial": round(v["model"]["initial"], 4),
                    "model_final": round(v["model"]["final"], 4),
                    "control_final": round(v["control"]["final"], 4),
                }
                for k, v in runs.items()
            },
            "max_abs_update_by_module": {
                k: {kk: float(f"{vv:.3g}") for kk, vv in v["model"]["moved"].items()}
                for k, v in runs.items()
                if k == "adam_s0"
            },
        }
        print(name, label, reason, flush=True)
        for k, v in runs.items():
            print(
                f"   {k}: init {v['model']['initial']:.4f} model {v['model']['final']:.4f} "
                f"control {v['control']['final']:.4f}",
                flush=True,
            )
        results[name] = labels[name]
    return results


if __name__ == "__main__":
    sel = sys.argv[1:] or None
    res = main(sel)
    out = os.path.join(HERE, "labels.yaml" if not sel else "labels_partial.yaml")
    with open(out, "w") as f:
        yaml.safe_dump(
            {
                "rule": __doc__.split("Label rule")[1].strip(),
                "sgd_lr": SGD_LR,
                "steps": STEPS,
                "batch": BATCH,
                "seeds": list(SEEDS),
                "models": res,
            },
            f,
            sort_keys=False,
            width=110,
        )
    print("wrote", out)

import json, glob, os, re
HERE = "/tmp/heldout5"
RULE = ("Adam(lr=1e-3) and SGD(lr=1e-2, momentum=0.9), seeds 0 and 1, 500 steps, fresh batch of 128 per step; "
        "score on a fresh held-out batch (accuracy, or R^2 for regression); chance = majority-class rate (R^2 0); "
        "control score = max over optimisers of the control's 2-seed mean; progress = (score-chance)/(control-chance); "
        "trains if for at least one optimiser both seeds reach progress >= 0.7; does-not-train if no run reaches 0.3; else ambiguous. "
        "NaN/Inf loss or score counts as chance.")
KINDS = {
 "deep_prenorm_resmlp": "deep-prenorm-residual-mlp", "highway_carry_bias": "highway-gated-mlp",
 "frozen_backbone_adapter": "frozen-backbone-finetune", "moe_top2_balanced": "mixture-of-experts",
 "moe_argmax_router": "mixture-of-experts-hard-router", "dead_relu_bias": "dead-relu-init",
 "double_softmax": "double-softmax-loss", "wrong_axis_logsoftmax": "wrong-axis-softmax",
 "zero_init_residual": "zero-init-residual", "deq_jfb": "deep-equilibrium-implicit",
 "numpy_bottleneck": "graph-cut-numpy", "deep_sigmoid_mlp": "deep-saturating-mlp",
 "ste_clamp_bug": "custom-autograd-bug", "vq_bottleneck": "vq-bottleneck-no-ste",
 "tied_verbalizer_preln": "transformer-weight-tying", "postln_deep_transformer": "post-ln-transformer",
 "vanilla_rnn": "vanilla-rnn", "padmask_transformer": "transformer-mask-bug",
 "tiny_init_bn_cnn": "tiny-init-batchnorm-cnn", "deep_gcn": "deep-gcn-oversmoothing",
}
ctrl = {}
for p in glob.glob(f"{HERE}/runs/controls__*.json"):
    r = json.load(open(p))
    means = {}
    for o in ("adam", "sgd"):
        means[o] = sum(x["score"] for x in r["runs"] if x["opt"] == o) / 2
    ctrl[r["task"]] = (max(means.values()), r)
rows, labels = [], {}
for p in sorted(glob.glob(f"{HERE}/runs/models__*.json")):
    r = json.load(open(p)); name = os.path.basename(p)[len("models__"):-5]
    cs, _ = ctrl[r["task"]]
    prog = {}
    for x in r["runs"]:
        x["progress"] = (x["score"] - x["chance"]) / (cs - x["chance"])
    ok = any(all(x["progress"] >= 0.7 for x in r["runs"] if x["opt"] == o) for o in ("adam", "sgd"))
    none = all(x["progress"] < 0.3 for x in r["runs"])
    lab = "trains" if ok else ("does-not-train" if none else "ambiguous")
    labels[name] = lab
    rows.append((name, r, cs, lab))
    json.dump(r, open(p, "w"), indent=1)
with open(f"{HERE}/labels.yaml", "w") as f:
    f.write("rule: '" + RULE.replace("'", "''") + "'\nmodels:\n")
    for n, l in sorted(labels.items()):
        f.write(f"  {n}: {{file: models/{n}.py, label: {l}}}\n")
with open(f"{HERE}/kinds.yaml", "w") as f:
    for n in sorted(labels):
        f.write(f"{n}: {KINDS[n]}\n")
exp = {}
for line in open(f"{HERE}/expectations.md"):
    m = re.match(r"\| (\w+) \| ([^|]+) \| ([^|]+) \|", line)
    if m and m.group(1) != "model":
        exp[m.group(1)] = m.group(2).strip()
with open(f"{HERE}/summary.md", "w") as f:
    f.write("# heldout5 summary\n\nRule: " + RULE + "\n\n")
    f.write("Controls (task: per-run scores adam s0, s1 / sgd s0, s1 -> control score):\n\n")
    for t, (cs, r) in sorted(ctrl.items()):
        f.write(f"- {t} ({r['file']}): " + ", ".join(f"{x['opt']}{x['seed']}={x['score']:.3f}" for x in r["runs"]) + f" -> {cs:.3f}\n")
    f.write("\n| model | task | description | adam s0 | adam s1 | sgd s0 | sgd s1 | control | label | expected (before training) |\n|---|---|---|---|---|---|---|---|---|---|\n")
    for n, r, cs, lab in rows:
        doc = open(f"{HERE}/models/{n}.py").read().split('"""')[1].strip().replace("|", "/")
        cells = [f"{x['score']:.3f} (p={x['progress']:.2f}{'' if x['status']=='ok' else ', ' + x['status']})" for x in r["runs"]]
        f.write(f"| {n} | {r['task']} | {doc} | " + " | ".join(cells) + f" | {cs:.3f} | {lab} | {exp.get(n,'?')} |\n")
print(open(f"{HERE}/labels.yaml").read())

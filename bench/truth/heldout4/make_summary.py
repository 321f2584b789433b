"""Builds labels.yaml, kinds.yaml and summary.md from results.json and expectations.yaml."""
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent
res = json.loads((ROOT / "results.json").read_text())
exp = yaml.safe_load((ROOT / "expectations.yaml").read_text())

INFO = {  # name: (kind, task, dependency / sequence length, description)
    "gru_reinit_in_loop": ("gru-cell-loop", "recall", "80 / 80", "GRUCell loop; hidden state re-initialised to zeros inside the time loop (bug)"),
    "gru_tbptt_k8": ("gru-tbptt", "recall", "80 / 80", "GRUCell loop with h.detach() every 8 steps (truncated BPTT shorter than the dependency)"),
    "elman_tanh_recall": ("elman-rnn", "recall", "80 / 80", "vanilla tanh nn.RNN, default init"),
    "lstm_forget_bias5": ("lstm", "recall", "80 / 80", "nn.LSTM with forget bias +5 (gate looks saturated at 0.993)"),
    "gru_update_bias8": ("gru", "recall", "80 / 80", "nn.GRU with update-gate bias +8 (z=0.9997: state kept, writes blocked)"),
    "transformer_tril_mask": ("causal-transformer", "recall", "80 / 80", "pre-LN Transformer, mask tril(diagonal=-1) as True=blocked: each position sees only itself and the future; reads last position"),
    "transformer_causal_ok": ("causal-transformer", "recall", "80 / 80", "same Transformer with a correct causal mask"),
    "causal_conv_rf15": ("causal-conv", "recall", "80 / 80 (RF 15)", "residual causal dilated convs, receptive field 15, read at the last step"),
    "tcn_dilated_rf128": ("tcn", "recall", "80 / 80 (RF 128)", "7-level TCN, kernel 2, dilations 1..64, residual"),
    "gru_frozen_embed_dict": ("gru", "recall", "80 / 80", "dataclass config, dict in / dict out; embedding lookup under no_grad (embedding never trains)"),
    "s4d_real_marked": ("ssm-s4d", "marked", "71-80 / 80", "S4D-Real diagonal SSM, dt log-uniform [1e-3, 1e-1]"),
    "s4d_real_logdt_bug": ("ssm-s4d", "marked", "71-80 / 80", "S4D-Real with log_dt drawn without the log: dt ~ 1, every mode decays >= e^-1 per step"),
    "mingru_marked": ("mingru", "marked", "71-80 / 80", "minGRU, input-only gates, default init"),
    "mingru_gate_bias4": ("mingru", "marked", "71-80 / 80", "minGRU with update-gate bias +4: state overwritten ~98% every step"),
    "attn_pool_marked": ("attention-pooling", "marked", "71-80 / 80", "no recurrence: per-step score MLP, softmax over time, linear values"),
    "attn_pool_softmax_lastdim": ("attention-pooling", "marked", "71-80 / 80", "same, softmax over the size-1 last dim (weights all 1: plain sum pooling)"),
    "indrnn_marked": ("indrnn", "marked", "71-80 / 80", "2-layer IndRNN, ReLU, recurrent weights U(0,1)"),
    "bigru_tagger": ("bidirectional-rnn", "lookahead", "4 (future) / 50", "nn.GRU(bidirectional=True) tagger"),
    "manual_bidir_noflip": ("bidirectional-rnn", "lookahead", "4 (future) / 50", "two GRUs, backward run on flipped input but its output not flipped back"),
    "alibi_attention_recall": ("alibi-attention", "recall", "80 / 80", "2-layer causal attention with ALiBi biases (slopes 1/2..1/16), no position embedding [added later]"),
    "rwkv_timemix_recall": ("rwkv-linear-attention", "recall", "80 / 80", "RWKV-4-style WKV time-mix, per-channel decays 0.993..0 [added later]"),
    "meanpool_bag": ("pooling-bag", "majority", "global / 64", "embedding mean-pool + MLP, no order information"),
}
TASKS = {
    "recall": "recall the first token (value 0-7) after 79 distractors (8-15); tokens",
    "marked": "predict the one-hot symbol at the marked step (marker in first 10 of 80); float (B,T,9), time_axis=1",
    "lookahead": "tag every step t with the token at t+4; tokens, 8 symbols",
    "majority": "most frequent of 8 symbols in 64 tokens (one symbol boosted to ~39%); tokens",
}
CONTROL_OF = {"recall": "control_recall_lstm", "marked": "control_marked_lstm",
              "lookahead": "control_lookahead_bilstm", "majority": "control_majority_lstm"}

rule = ("Adam lr 3e-3 seeds 0,1 and SGD lr 0.05 momentum 0.9 seeds 0,1; batch 32 fresh each step; "
        "grad-norm clip 1.0; <=700 steps, early stop at eval acc >= 0.95 (eval every 50 steps on 256); "
        "final accuracy on a fresh batch of 1024; 8 classes (chance 0.125). trains = both Adam seeds >= 0.50; "
        "does-not-train = both Adam seeds <= 0.225; else ambiguous. SGD recorded, not used for the label.")

labels = {"rule": rule, "models": {}}
kinds = {}
for n, (kind, task, dep, desc) in INFO.items():
    if n in res:
        labels["models"][n] = {"file": f"models/{n}.py", "label": res[n]["label"]}
    kinds[n] = kind
(ROOT / "labels.yaml").write_text(yaml.safe_dump(labels, sort_keys=False, width=1000))
(ROOT / "kinds.yaml").write_text(yaml.safe_dump(kinds, sort_keys=False))


def accs(r):
    ru = r["runs"]
    f = lambda k: f"{ru[k]['acc']:.2f}" + ("(NaN)" if ru[k]["nan"] else "")
    return f("adam0"), f("adam1"), f("sgd0"), f("sgd1")


lines = ["# Held-out sequence models (heldout4): training oracle labels", "", f"Rule: {rule}", "",
         "Tasks:", ""]
for t, d in TASKS.items():
    c = res.get(CONTROL_OF[t])
    ca = "/".join(accs(c)) if c else "-"
    lines.append(f"- **{t}**: {d}. Control `{CONTROL_OF[t]}` (chrono-init LSTM{', bidirectional' if t == 'lookahead' else ''}) "
                 f"Adam0/Adam1/SGD0/SGD1 = {ca} -> {c['label'] if c else '-'}")
lines += ["", "| model | kind | description | task | dep / len | Adam s0 | Adam s1 | SGD s0 | SGD s1 | control (Adam s0/s1) | expected (before) | label |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
for n, (kind, task, dep, desc) in INFO.items():
    if n not in res:
        continue
    a0, a1, s0, s1 = accs(res[n])
    c = res.get(CONTROL_OF[task])
    cc = f"{c['runs']['adam0']['acc']:.2f}/{c['runs']['adam1']['acc']:.2f}" if c else "-"
    lines.append(f"| {n} | {kind} | {desc} | {task} | {dep} | {a0} | {a1} | {s0} | {s1} | {cc} | {exp[n]['expect']} | **{res[n]['label']}** |")
lines += ["", "Steps used per run (Adam0/Adam1/SGD0/SGD1; 700 = no early stop):", ""]
for n in INFO:
    if n in res:
        ru = res[n]["runs"]
        lines.append(f"- {n}: " + "/".join(str(ru[k]["steps"]) for k in ("adam0", "adam1", "sgd0", "sgd1")))
lines += ["", (ROOT / "notes.md").read_text()]
(ROOT / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))

"""Plain-PyTorch training oracle for /tmp/heldout5 (no gradcheck import).

LABEL RULE (fixed before any model was trained):
  * Optimisers: Adam(lr=1e-3) and SGD(lr=1e-2, momentum=0.9); seeds 0 and 1 for each -> 4 runs per model.
  * Each run: torch.manual_seed(seed); model = build_model(); STEPS=500 steps, a fresh batch of 128
    from example_inputs() every step, loss = loss_fn(output, inputs); only parameters with
    requires_grad are given to the optimiser.  No clipping, no schedule, no warm-up.
  * Score on a fresh held-out batch (seeded 10_000+seed, 1024 samples; graphs: 128 graphs) in eval mode:
    accuracy for classification tasks, R^2 for regression.  A run whose loss or score becomes
    NaN/Inf is scored at chance.
  * Chance: classification = frequency of the majority class in the held-out batch; regression R^2 = 0.
  * Control: one plain, known-good model per task, trained with the same 4 runs.  Control score =
    max over the two optimisers of the mean of its two seeds.  (If a control fails to learn, the TASK is
    redesigned, never the models.)
  * progress = (score - chance) / (control_score - chance).
  * "trains"         if for at least one optimiser BOTH seeds reach progress >= 0.7;
    "does-not-train" if no run (of the 4) reaches progress 0.3;
    "ambiguous"      otherwise.
  Every run is recorded in runs/*.json.
"""
import importlib.util, json, math, sys, time, os
import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = int(os.environ.get("STEPS", 500))
BATCH = 128
OPTS = {"adam": lambda p: torch.optim.Adam(p, lr=1e-3),
        "sgd": lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9)}
SEEDS = [0, 1]


def load(path):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location("m_" + name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["m_" + name] = mod
    spec.loader.exec_module(mod)
    return mod


def call(model, inputs):
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def one_run(mod, opt_name, seed):
    torch.manual_seed(seed)
    model = mod.build_model()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = OPTS[opt_name](params)
    t0 = time.time()
    status, last_loss = "ok", None
    for step in range(STEPS):
        inputs = mod.example_inputs(BATCH)
        out = call(model, inputs)
        loss = mod.loss_fn(out, inputs)
        if not torch.isfinite(loss):
            status = f"nonfinite-loss@{step}"
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last_loss = float(loss)
    model.eval()
    torch.manual_seed(10_000 + seed)
    held = mod.example_inputs(getattr(mod, "EVAL_BATCH", 1024))
    with torch.no_grad():
        out = call(model, held)
        score = float(mod.score(out, held))
        chance = float(mod.chance(held))
    if status != "ok" or not math.isfinite(score):
        status = status if status != "ok" else "nonfinite-score"
        score = chance
    return {"opt": opt_name, "seed": seed, "score": score, "chance": chance, "status": status,
            "final_train_loss": last_loss, "seconds": round(time.time() - t0, 1)}


def run_file(path):
    mod = load(path)
    runs = []
    for o in OPTS:
        for s in SEEDS:
            r = one_run(mod, o, s)
            print(os.path.basename(path), r, flush=True)
            runs.append(r)
    return {"file": os.path.relpath(path, HERE), "task": mod.TASK, "runs": runs}


if __name__ == "__main__":
    for p in sys.argv[1:]:
        res = run_file(p)
        name = os.path.splitext(os.path.basename(p))[0]
        sub = "controls" if "/controls/" in os.path.abspath(p) else "models"
        with open(os.path.join(HERE, "runs", f"{sub}__{name}.json"), "w") as f:
            json.dump(res, f, indent=1)

"""Run by tests/test_distributed.py under torchrun: the Hugging Face callback in a Trainer that
runs DDP (gloo, CPU). Rank 0 writes the callback's report and, for the classifier, the gradient
RMS the Trainer's optimizer was about to use at each step (read by a plain TrainerCallback).
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from gradcheck_cli.integrations.huggingface import GradcheckCallback
from gradcheck_cli.stats import value


class ClassifierGradients(TrainerCallback):  # type: ignore[misc]
    """The classifier's gradient RMS before each optimizer step."""

    def __init__(self) -> None:
        self.rms: list[float] = []

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        layer = kwargs["model"].classifier
        grads = [p.grad for p in layer.parameters()]
        total = sum(float(g.double().square().sum()) for g in grads)
        self.rms.append(math.sqrt(total / sum(g.numel() for g in grads)))


def main(out: str) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=3,
    )
    g = torch.Generator().manual_seed(1)
    ids, labels = (
        torch.randint(0, 100, (64, 12), generator=g),
        torch.randint(0, 3, (64,), generator=g),
    )
    data = [{"input_ids": ids[i], "labels": labels[i]} for i in range(64)]
    args = TrainingArguments(
        output_dir=os.path.join(os.path.dirname(out), "trainer"),
        max_steps=3,
        per_device_train_batch_size=16 // world,
        learning_rate=0.1,
        max_grad_norm=0.0,  # no clipping: the optimizer gets the gradients backward left
        use_cpu=True,
        ddp_backend="gloo" if world > 1 else None,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
    )
    ours, theirs = GradcheckCallback(every=1), ClassifierGradients()
    Trainer(
        model=BertForSequenceClassification(config),
        args=args,
        train_dataset=data,
        callbacks=[ours, theirs],
    ).train()
    if int(os.environ.get("RANK", "0")) == 0:
        report = ours.report
        assert report is not None
        head = next(layer for layer in report.layers if layer.name == "classifier")
        data_out = {
            "run": {k: getattr(report.run, k) for k in ("steps", "shard", "world_size")},
            "classifier": value(head.grad_rms),
            "trainer": sorted(theirs.rms)[len(theirs.rms) // 2],  # the median, as reported
        }
        with open(out, "w", encoding="utf-8") as handle:
            json.dump(data_out, handle)
    # torch 2.13 (gloo, CPU) aborts at interpreter shutdown now and then when DDP's objects,
    # kept in reference cycles, outlive the process group; the run is over: end at once.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])

"""The Hugging Face Trainer adapter, run for real on a tiny model (skipped where not installed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def test_trainer_callback_reports_and_removes_hooks(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from gradcheck_cli.integrations.huggingface import GradcheckCallback

    config = transformers.BertConfig(
        num_hidden_layers=2,
        hidden_size=64,
        num_attention_heads=2,
        intermediate_size=128,
        vocab_size=200,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    data = [
        {"input_ids": torch.randint(0, 200, (16,)), "labels": torch.tensor(i % 2)}
        for i in range(32)
    ]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        max_steps=6,
        report_to=[],
        logging_strategy="no",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    callback = GradcheckCallback(every=2)
    transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()
    report = callback.report
    assert report is not None
    assert report.run.inputs.startswith("1 in 2 of")
    assert report.run.batch_size == 8
    assert report.status.value == "healthy"
    classifier = next(l for l in report.layers if l.name == "classifier")
    assert classifier.grad_rms.median > 0  # type: ignore[union-attr]
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    assert hooks == 0

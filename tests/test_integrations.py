"""The Hugging Face Trainer adapter, run for real on a tiny model (skipped where not installed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml


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


def test_lightning_callback_agrees_with_diagnose_and_removes_hooks(tmp_path: Path) -> None:
    lightning = pytest.importorskip("lightning")
    from torch import nn

    from gradcheck_cli import diagnose
    from gradcheck_cli.integrations.lightning import GradcheckCallback
    from gradcheck_cli.loading import load_model

    from .conftest import SAMPLES

    class Classifier(lightning.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.net = load_model(str(SAMPLES / "deep_sigmoid.py")).module

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int):  # type: ignore[no-untyped-def]
            x, y = batch
            # self.net, not self(x): the callback must not depend on the module's own forward
            loss = nn.functional.cross_entropy(self.net(x), y)
            self.seen.append(float(loss))
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    torch.manual_seed(0)
    module = Classifier()
    module.seen = []
    data = torch.utils.data.TensorDataset(torch.randn(160, 64), torch.randint(0, 10, (160,)))
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    callback = GradcheckCallback(every=3)
    trainer = lightning.Trainer(
        max_steps=7,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        callbacks=[callback],
    )
    trainer.fit(module, loader)
    report = callback.report
    assert report is not None
    assert report.run.inputs == "3 training steps, 1 in 3" and report.run.batch_size == 16
    # The losses training_step returned at the sampled steps 0, 3 and 6.
    assert report.losses == pytest.approx([module.seen[i] for i in (0, 3, 6)], rel=1e-6)
    reference = diagnose(load_model(str(SAMPLES / "deep_sigmoid.py")).module)
    assert {f.id: f.severity for f in report.findings} == {
        f.id: f.severity for f in reference.findings
    }
    assert {f.id for f in report.findings} == {"vanishing"}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())
    assert hooks == 0


def test_a_lightning_modules_example_input_array_is_its_input(tmp_path: Path) -> None:
    # The LightningModule says what forward takes (example_input_array, as for Lightning's
    # summary): 1x16x16 images and a token id per image; gradcheck draws batches shaped like
    # it (the ids in the example's range) instead of guessing from the first layer.
    pytest.importorskip("lightning")
    from click.testing import CliRunner

    from gradcheck_cli.cli import main

    (tmp_path / "lit.py").write_text(
        "import torch\n"
        "import lightning\n"
        "from torch import nn\n\n\n"
        "class Tagged(lightning.LightningModule):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(1, 4, 3, padding=1)\n"
        "        self.tag = nn.Embedding(5, 4)\n"
        "        self.head = nn.Linear(4, 3)\n"
        "        self.example_input_array = (torch.zeros(2, 1, 16, 16), torch.tensor([0, 4]))\n\n"
        "    def forward(self, image, tag):\n"
        "        assert image.shape[-2:] == (16, 16) and int(tag.max()) < 5\n"
        "        return self.head(self.conv(image).mean(dim=(2, 3)) + self.tag(tag))\n"
    )
    done = CliRunner().invoke(main, ["diagnose", str(tmp_path / "lit.py"), "--format", "yaml"])
    assert done.exit_code == 0, done.output
    report = yaml.safe_load(done.stdout)
    assert report["run"]["inputs"] == "example_input_array 1x16x16:float32, int64"
    assert report["run"]["batch_size"] == 16
    assert {layer["name"] for layer in report["layers"]} == {"conv", "tag", "head"}

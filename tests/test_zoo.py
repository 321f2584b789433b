"""Zoo specs: hf:ClassName[:config.json] builds offline from a config; missing zoos fail cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner

from gradcheck_cli.cli import main
from gradcheck_cli.zoo import _hf_inputs


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    "cls,config,loss",
    [
        (
            "GPT2LMHeadModel",
            {"n_layer": 2, "n_embd": 64, "n_head": 2, "vocab_size": 500},
            "model-output-loss",
        ),
        (
            "BertForSequenceClassification",
            {
                "num_hidden_layers": 2,
                "hidden_size": 64,
                "num_attention_heads": 2,
                "intermediate_size": 128,
                "vocab_size": 500,
            },
            "model-output-loss",
        ),
        (
            "ViTForImageClassification",
            {
                "num_hidden_layers": 2,
                "hidden_size": 64,
                "num_attention_heads": 2,
                "intermediate_size": 128,
                "image_size": 32,
                "patch_size": 8,
            },
            "model-output-loss",
        ),
        (
            # no pad token in GPT-2's config: gradcheck uses the end-of-text token, as HF advises
            "GPT2ForSequenceClassification",
            {"n_layer": 4, "n_embd": 64, "n_head": 2, "vocab_size": 500},
            "model-output-loss",
        ),
        (
            # no decoder start token in a bare T5 config: gradcheck uses the padding token
            "T5ForConditionalGeneration",
            {
                "num_layers": 2,
                "d_model": 64,
                "d_ff": 128,
                "num_heads": 2,
                "d_kv": 32,
                "vocab_size": 500,
            },
            "model-output-loss",
        ),
        (
            # BART pools at the end token: each row needs exactly one, as a tokenizer gives
            # (at width 256: BART's fixed init std 0.02 is 0.32 of 1/sqrt(width); at 64 it is
            # 0.16 and the encoder, reached only through cross-attention, starts 100x slower)
            "BartForSequenceClassification",
            {
                "encoder_layers": 2,
                "decoder_layers": 2,
                "d_model": 256,
                "encoder_ffn_dim": 512,
                "decoder_ffn_dim": 512,
                "encoder_attention_heads": 2,
                "decoder_attention_heads": 2,
                "vocab_size": 500,
            },
            "model-output-loss",
        ),
        (
            # neither a padding nor an end token: a last-token classifier needs one to pad
            "LlamaForSequenceClassification",
            {
                "num_hidden_layers": 2,
                "hidden_size": 64,
                "intermediate_size": 128,
                "num_attention_heads": 2,
                "vocab_size": 500,
                "pad_token_id": None,
                "eos_token_id": None,
                "bos_token_id": None,
            },
            "model-output-loss",
        ),
        (
            # a convolutional config with no image size: ImageNet's 224 (once "cannot tell its
            # inputs from the config")
            "ResNetForImageClassification",
            {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1]},
            "model-output-loss",
        ),
        (
            # raw audio (main_input_name input_values): one second at 16 kHz
            "Wav2Vec2ForSequenceClassification",
            {
                "num_hidden_layers": 2,
                "hidden_size": 32,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "conv_dim": [16, 16, 16, 16, 16, 16, 16],
                "num_conv_pos_embeddings": 16,
                "num_conv_pos_embedding_groups": 4,
            },
            "model-output-loss",
        ),
        (
            # log-mel frames (input_features): 2 x max_source_positions of them
            "WhisperForAudioClassification",
            {
                "encoder_layers": 2,
                "d_model": 64,
                "encoder_attention_heads": 2,
                "encoder_ffn_dim": 128,
                "num_mel_bins": 16,
                "max_source_positions": 50,
            },
            "model-output-loss",
        ),
        (
            # the vision config nested in a composite one; its attention-pooling head (an
            # nn.MultiheadAttention, which never calls its out_proj) runs but the classifier
            # mean-pools instead: information, not a warning that out_proj never ran
            "SiglipForImageClassification",
            {
                "vision_config": {
                    "num_hidden_layers": 2,
                    "hidden_size": 64,
                    "num_attention_heads": 2,
                    "intermediate_size": 128,
                    "image_size": 32,
                    "patch_size": 8,
                },
            },
            "model-output-loss",
        ),
        (
            "BertModel",
            {
                "num_hidden_layers": 2,
                "hidden_size": 64,
                "num_attention_heads": 2,
                "intermediate_size": 128,
                "vocab_size": 500,
            },
            "cross-entropy",
        ),
    ],
)
def test_hf_models_from_a_local_config(
    tmp_path: Path, cls: str, config: dict, loss: str, validate_report
) -> None:
    pytest.importorskip("transformers")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = run("diagnose", f"hf:{cls}:{path}", "--format", "yaml")
    assert result.exit_code == 0, result.stderr
    report = yaml.safe_load(result.stdout)
    validate_report(report)
    assert report["model"]["type"] == cls and report["run"]["loss"] == loss
    assert report["status"] == "healthy"


def test_unknown_class_and_missing_zoos() -> None:
    pytest.importorskip("transformers")
    bad = run("diagnose", "hf:NoSuchModel")
    assert bad.exit_code == 2 and "transformers has no model class 'NoSuchModel'" in bad.stderr
    for spec, package in (("torchvision:resnet50", "torchvision"), ("timm:resnet18", "timm")):
        try:
            __import__(package)
        except ImportError:
            result = run("diagnose", spec)
            assert result.exit_code == 2 and f"needs the '{package}' package" in result.stderr


def test_masked_lm_batches_mask_what_they_predict() -> None:
    transformers = pytest.importorskip("transformers")

    config = transformers.BertConfig(vocab_size=100)
    config.mask_token_id = 3  # as configs that define one (Funnel's tokenizer's [MASK])
    torch.manual_seed(0)
    batch = _hf_inputs("BertForMaskedLM", config)(64)
    predicted = batch["labels"] != -100
    assert 0.1 < predicted.float().mean().item() < 0.25  # about 15%
    assert bool((batch["input_ids"][predicted] == config.mask_token_id).all())
    assert bool((batch["input_ids"][~predicted] != config.mask_token_id).any())
    assert "use_cache" not in batch  # BertForMaskedLM.forward takes none
    causal = _hf_inputs("GPT2LMHeadModel", transformers.GPT2Config(vocab_size=100))(4)
    assert torch.equal(causal["labels"], causal["input_ids"]) and causal["use_cache"] is False


def test_special_tokens_from_awkward_configs() -> None:
    transformers = pytest.importorskip("transformers")
    from gradcheck_cli.zoo import _complete_special_tokens

    several = transformers.LlamaConfig(vocab_size=100, eos_token_id=[7, 8], pad_token_id=None)
    _complete_special_tokens(several)
    assert several.pad_token_id == 7  # the first of several end tokens
    past = transformers.LlamaConfig(vocab_size=100, eos_token_id=128001, pad_token_id=None)
    _complete_special_tokens(past)
    assert past.pad_token_id == 99  # an eos past the vocabulary cannot pad the table
    vision = transformers.HieraConfig()
    batch = _hf_inputs("HieraForImageClassification", vision)(2)
    assert batch["pixel_values"].shape == (2, 3, *vision.image_size)

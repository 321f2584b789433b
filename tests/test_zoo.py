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


# Each failed in the zoo sweep before its inputs were built (issue 29): the input kind, the
# length or the default the model needs, read from its config. Small configs; the findings
# each gets are asserted (information only: ids, severities and the layers they name).
_ONCE_FAILED: list[tuple[str, dict, dict[str, str]]] = [
    (  # X-MOD: one adapter per language; the first of config.languages is set
        "XmodForSequenceClassification",
        {
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "vocab_size": 500,
            "languages": ["en_XX", "de_DE"],
        },
        {"no-gradient": "info"},  # de_DE adapters run on the empty rows of an en_XX batch
    ),
    (  # Reformer trains only on sequences as long as its axial position shape's product
        "ReformerForSequenceClassification",
        {
            "axial_pos_shape": [4, 8],
            "axial_pos_embds_dim": [16, 48],
            "hidden_size": 64,
            "feed_forward_size": 128,
            "num_attention_heads": 2,
            "attention_head_size": 32,
            "attn_layers": ["local", "lsh"],
            "local_attn_chunk_length": 8,
            "lsh_attn_chunk_length": 8,
            "num_buckets": 4,
            "vocab_size": 320,
            "is_decoder": False,
        },
        {},
    ),
    (  # a translation model: its labels are the decoder's inputs too
        "MarianMTModel",
        {
            "encoder_layers": 2,
            "decoder_layers": 2,
            "d_model": 64,
            "encoder_ffn_dim": 128,
            "decoder_ffn_dim": 128,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "vocab_size": 500,
            "decoder_vocab_size": 500,
            "pad_token_id": 499,
            "decoder_start_token_id": 499,
        },
        {},
    ),
    (  # characters in: ids are Unicode code points (no vocab_size); the classifier reads [CLS]
        # from the deep encoder, so the final character encoder runs unread
        "CanineForSequenceClassification",
        {
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "num_hash_functions": 2,
            "num_hash_buckets": 256,
            "downsampling_rate": 4,
        },
        {"no-gradient": "info"},
    ),
    (  # NaFlex: rows of flattened patches with their grid shape and a mask; mean-pooled, so the
        # attention-pooling head runs unread
        "Siglip2ForImageClassification",
        {
            "vision_config": {
                "num_hidden_layers": 2,
                "hidden_size": 64,
                "num_attention_heads": 2,
                "intermediate_size": 128,
                "patch_size": 4,
                "num_patches": 16,
            }
        },
        {"no-gradient": "info"},
    ),
    (  # CvT's last stage splits its [CLS] token back off: the spatial query projection of the
        # last layer reaches no loss (information, once a blocked error)
        "CvtForImageClassification",
        {"embed_dim": [16, 32, 64], "num_heads": [1, 2, 2], "depth": [1, 2, 3]},
        {"no-gradient": "info"},
    ),
]

# The rest of issue 29's list: vision classifiers whose configs have no image size (224 pixels;
# TextNet's own image_size, small here), CLIP-style composites (their vision tower; the text
# tower never runs: information), raw-audio classifiers (one second at 16 kHz; SEW's 13-layer
# feature encoder kept at its default size).
_VIT = {
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "image_size": 32,
    "patch_size": 8,
}
_AUDIO = {
    "num_hidden_layers": 2,
    "hidden_size": 32,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": [16] * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}
_ONCE_FAILED += [
    (
        "RegNetForImageClassification",
        {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "groups_width": 8},
        {},
    ),
    (
        "BitForImageClassification",
        {"embedding_size": 32, "hidden_sizes": [32, 64], "depths": [1, 1], "num_groups": 8},
        {},
    ),
    ("CLIPForImageClassification", {"vision_config": _VIT}, {"no-gradient": "info"}),
    ("MetaClip2ForImageClassification", {"vision_config": _VIT}, {"no-gradient": "info"}),
    (
        "PoolFormerForImageClassification",
        {"hidden_sizes": [16, 32, 64, 128], "depths": [1] * 4},
        {},
    ),
    (
        "SegformerForImageClassification",
        {
            "hidden_sizes": [8, 16, 32, 64],
            "depths": [1] * 4,
            "num_attention_heads": [1] * 4,
            "decoder_hidden_size": 32,
        },
        {},
    ),
    ("HGNetV2ForImageClassification", {}, {}),
    ("PPLCNetForImageClassification", {}, {}),
    ("TextNetForImageClassification", {"image_size": [64, 64]}, {}),
    ("HubertForSequenceClassification", _AUDIO, {}),
    ("WavLMForSequenceClassification", _AUDIO, {}),
    ("UniSpeechForSequenceClassification", _AUDIO, {}),
    ("UniSpeechSatForSequenceClassification", _AUDIO, {}),
    ("Data2VecAudioForSequenceClassification", _AUDIO, {}),
    ("SEWForSequenceClassification", {"num_hidden_layers": 2}, {}),
    ("SEWDForSequenceClassification", {"num_hidden_layers": 2}, {}),
]


@pytest.mark.parametrize(
    ("cls", "config", "findings"), _ONCE_FAILED, ids=[c[0] for c in _ONCE_FAILED]
)
def test_hf_models_once_without_inputs_now_diagnose(
    tmp_path: Path, cls: str, config: dict, findings: dict[str, str], validate_report
) -> None:
    transformers = pytest.importorskip("transformers")
    if getattr(transformers, cls, None) is None:
        pytest.skip(f"transformers {transformers.__version__} has no {cls}")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = run("diagnose", f"hf:{cls}:{path}", "--format", "yaml", "--batch-size", "2")
    assert result.exit_code == 0, result.stderr
    report = yaml.safe_load(result.stdout)
    validate_report(report)
    # PP-LCNet's classifier takes no labels (it returns logits only): cross-entropy then
    own_loss = cls != "PPLCNetForImageClassification"
    assert report["run"]["loss"] == ("model-output-loss" if own_loss else "cross-entropy")
    assert {f["id"]: f["severity"] for f in report["findings"]} == findings
    if cls == "CvtForImageClassification":
        (finding,) = report["findings"]
        assert finding["evidence"]["reason"] == "not-read"
        assert all(name.startswith("cvt.encoder.stages.2.layers.2.attention.attention.convolution_projection_query")
                   for name in finding["layers"])  # fmt: skip


def test_text_inputs_read_the_nested_text_config_and_the_unpadded_vocabulary() -> None:
    from types import SimpleNamespace

    inner = SimpleNamespace(vocab_size=1000, unpadded_vocab_size=900, pad_token_id=3,
                            eos_token_id=5, mask_token_id=None)  # fmt: skip
    outer = SimpleNamespace(get_text_config=lambda: inner, num_labels=3)
    batch = _hf_inputs("FakeForSequenceClassification", outer, "input_ids")(64)
    ids = batch["input_ids"]
    assert ids.shape == (64, 64) and int(ids.max()) < 900
    assert (ids[:, -1] == 5).all() and not (ids[:, :-1] == 3).any()
    assert batch["labels"].shape == (64,)

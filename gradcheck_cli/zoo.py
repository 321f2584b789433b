"""Model zoos without writing a file: ``hf:ClassName[:config.json]``, ``torchvision:NAME``,
``timm:NAME``.

Models are built from a configuration with random weights; nothing is ever downloaded (the
Hugging Face hub is switched offline while building). Inputs and labels come from the model's
own metadata: token ids below ``vocab_size`` (and labels, so the model computes its own loss) for
text models, ``num_channels x image_size x image_size`` pixels for vision models.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gradcheck_cli.errors import ModelLoadError
from gradcheck_cli.imports import missing_package_message
from gradcheck_cli.memory import check_fits, count_on_meta
from gradcheck_cli.specs import ZOO_CONFIG, zoo_files

TEXT_LENGTH = 64
AUDIO_SAMPLES = 16_000  # one second at the 16 kHz audio models are trained on
UNICODE = 0x110000  # code points: the ids of a character-level model (CANINE)


def load_zoo(spec: str) -> tuple[nn.Module, Callable[[int], Any]]:
    """The model a zoo spec names, and an input factory that fits it."""
    zoo, _, rest = spec.partition(":")
    if zoo == "hf":
        return _huggingface(rest, spec)
    if zoo == "torchvision":
        module = _require("torchvision", spec)
        builder = getattr(module.models, rest, None)
        if builder is None:
            raise ModelLoadError(f"'{spec}': torchvision.models has no '{rest}'")
        check_fits(f"'{spec}'", count_on_meta(lambda: builder(weights=None)))
        model = builder(weights=None)  # random weights: nothing is downloaded
        return model, lambda b: torch.randn(b, 3, 224, 224)
    module = _require("timm", spec)
    check_fits(f"'{spec}'", count_on_meta(lambda: module.create_model(rest, pretrained=False)))
    try:
        model = module.create_model(rest, pretrained=False)
    except Exception as exc:
        raise ModelLoadError(f"'{spec}': timm cannot build '{rest}': {exc}") from exc
    size = model.default_cfg.get("input_size", (3, 224, 224))
    return model, lambda b: torch.randn(b, *size)


def _require(name: str, spec: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # exc.name is what is missing: the zoo itself, or a package it needs in turn.
        raise ModelLoadError(missing_package_message(f"'{spec}'", exc.name or name)) from None
    except Exception as exc:  # installed but broken, e.g. built for another torch
        raise ModelLoadError(
            f"'{spec}': importing {name} raised {type(exc).__name__}: {exc}; reinstall it for "
            f"torch {torch.__version__}"
        ) from exc


def _huggingface(rest: str, spec: str) -> tuple[nn.Module, Callable[[int], Any]]:
    transformers = _require("transformers", spec)
    class_name = rest.partition(":")[0]
    config_path = zoo_files(spec).get(ZOO_CONFIG)
    cls = getattr(transformers, class_name, None)
    if cls is None or not isinstance(cls, type) or not issubclass(cls, nn.Module):
        raise ModelLoadError(f"'{spec}': transformers has no model class '{class_name}'")
    config_class = getattr(cls, "config_class", None)
    if config_class is None:
        raise ModelLoadError(f"'{spec}': {class_name} has no config class to build it from")
    if config_path is not None:
        path = config_path
        if not path.is_file():
            raise ModelLoadError(f"'{spec}': config file '{path}' does not exist")
        try:
            config = config_class(**json.loads(path.read_text(encoding="utf-8")))
        except Exception as exc:  # transformers' own validation errors have their own types
            first = str(exc).strip().splitlines()
            raise ModelLoadError(
                f"'{spec}': '{path}' is not a valid {config_class.__name__}: "
                + (" ".join(line.strip() for line in first[:2]) if first else type(exc).__name__)
            ) from exc
    else:
        config = config_class()
    _complete_special_tokens(config, class_name)
    text_config = _text_config(config)
    if text_config is not config:  # a multimodal config: its text model pools too
        _complete_special_tokens(text_config, class_name)
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        # Counted on the meta device first: a default configuration can be billions of
        # parameters (LlamaForCausalLM: 6.7B, 27 GB in float32).
        check_fits(f"'{spec}'", count_on_meta(lambda: cls(config)))
        model = cls(config)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"'{spec}': building {class_name} from its config failed: {exc}"
        ) from exc
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous
    languages = getattr(config, "languages", None)
    set_language = getattr(model, "set_default_language", None)
    if callable(set_language) and languages:
        # X-MOD has one adapter per language and refuses input without one: the first of its
        # config, as transformers' own tests set it.
        set_language(languages[0])
    return model, _hf_inputs(class_name, config, str(getattr(cls, "main_input_name", "")))


def _first_eos(config: Any) -> int | None:
    eos = getattr(config, "eos_token_id", None)
    if isinstance(eos, (list, tuple)):
        eos = eos[0] if eos else None  # several end tokens (Cwm): the first pads
    return eos if isinstance(eos, int) else None


def _complete_special_tokens(config: Any, class_name: str = "") -> None:
    """Fill the token ids a bare config leaves unset and a training forward pass needs.

    GPT-2's config has no padding token, and its sequence classifier refuses batches without
    one: the padding token becomes the end-of-text token, as the Hugging Face docs advise (a
    sequence classifier whose config has neither gets the last id). T5's bare config has no
    decoder start token, which the forward pass needs to shift the labels: the padding token,
    which is what T5 uses. Values already set are kept.
    """
    eos = _first_eos(config)
    vocab = getattr(config, "vocab_size", None)
    if getattr(config, "pad_token_id", None) is None and isinstance(eos, int):
        # A default eos past a shrunk or small vocabulary (Arcee's 128001) cannot pad an
        # embedding table: the last id does.
        if isinstance(vocab, int) and vocab > 0 and not 0 <= eos < vocab:
            eos = vocab - 1
        config.pad_token_id = eos
    if (
        getattr(config, "pad_token_id", None) is None
        and "SequenceClassification" in class_name
        and isinstance(vocab, int)
        and vocab > 1
    ):
        config.pad_token_id = vocab - 1
    if (
        getattr(config, "is_encoder_decoder", False)
        and getattr(config, "pad_token_id", None) is None
    ):
        # A composite EncoderDecoderModel's bare config sets none; BERT's padding id is 0.
        config.pad_token_id = 0
    if (
        getattr(config, "is_encoder_decoder", False)
        and getattr(config, "decoder_start_token_id", None) is None
    ):
        config.decoder_start_token_id = getattr(config, "pad_token_id", None) or 0


def _hf_inputs(class_name: str, config: Any, main_input: str = "") -> Callable[[int], Any]:
    labels = int(getattr(config, "num_labels", 2))
    classifier = "Classification" in class_name
    if main_input == "input_values":
        # Raw audio (Wav2Vec2, HuBERT, WavLM, SEW, ...): one second at 16 kHz, what their
        # feature extractors default to; their conv feature encoders reduce it ~320x.
        def audio(b: int) -> dict[str, torch.Tensor]:
            batch = {"input_values": torch.randn(b, AUDIO_SAMPLES)}
            if classifier:
                batch["labels"] = torch.randint(0, labels, (b,))
            return batch

        return audio
    if main_input == "input_features" and hasattr(config, "num_mel_bins"):
        # Log-mel frames (Whisper, Speech2Text): as many as the encoder's positions take (Whisper
        # needs exactly 2 x max_source_positions, its conv stride being 2).
        mels = int(config.num_mel_bins)
        frames = 2 * int(getattr(config, "max_source_positions", 50) or 50)

        def features(b: int) -> dict[str, torch.Tensor]:
            batch = {"input_features": torch.randn(b, mels, frames)}
            if classifier:
                batch["labels"] = torch.randint(0, labels, (b,))
            return batch

        return features
    vision_config = getattr(config, "vision_config", None) or config
    channels_of = getattr(config, "num_channels", getattr(vision_config, "num_channels", None))
    patches = getattr(vision_config, "num_patches", None)
    if main_input == "pixel_values" and "spatial_shapes" in _forward_parameters(class_name):
        # NaFlex (SigLIP 2): images arrive as rows of flattened patches with their grid shape
        # and a mask of real patches; a square grid of the config's patch count.
        side = math.isqrt(int(patches or 256))
        width = int(channels_of or 3) * int(getattr(vision_config, "patch_size", 16)) ** 2

        def naflex(b: int) -> dict[str, torch.Tensor]:
            batch = {
                "pixel_values": torch.randn(b, side * side, width),
                "pixel_attention_mask": torch.ones(b, side * side, dtype=torch.long),
                "spatial_shapes": torch.tensor([[side, side]] * b),
            }
            if "ImageClassification" in class_name:
                batch["labels"] = torch.randint(0, labels, (b,))
            return batch

        return naflex
    if main_input == "pixel_values" or (
        main_input != "input_ids"  # Fuyu reads its image as patches within the text
        and hasattr(config, "image_size")
        and hasattr(config, "num_channels")
    ):
        # A convolutional config with no image size (ResNet, RegNet, Bit, CvT, PoolFormer,
        # SegFormer): ImageNet's 224, which their stride and patch structures take.
        image_size = getattr(config, "image_size", getattr(vision_config, "image_size", 224))
        if isinstance(image_size, (list, tuple)):  # (height, width) in Hiera and PVTv2
            image_size = image_size[0]
        size, channels = int(image_size or 224), int(channels_of or 3)

        def vision(b: int) -> dict[str, torch.Tensor]:
            batch = {"pixel_values": torch.randn(b, channels, size, size)}
            if "ImageClassification" in class_name:
                batch["labels"] = torch.randint(0, labels, (b,))
            return batch

        return vision
    text_config = _text_config(config)
    vocab = int(getattr(text_config, "vocab_size", 0) or 0)
    unpadded = getattr(text_config, "unpadded_vocab_size", None)
    if isinstance(unpadded, int) and 0 < unpadded < vocab:
        vocab = unpadded  # rows past it pad the table for speed (Inkling 2): not tokens
    if not vocab and getattr(config, "model_type", "") == "canine":
        vocab = UNICODE  # characters in: its ids are Unicode code points
    if not vocab:
        raise ModelLoadError(
            f"hf:{class_name}: cannot tell its inputs from the config; write a model file "
            "with example_inputs(batch_size)"
        )
    mask_id = getattr(text_config, "mask_token_id", None)
    eos = _first_eos(text_config)
    length = _text_length(config)
    codebooks = int(getattr(config, "num_codebooks", 0) or 0)
    parameters = _forward_parameters(class_name)
    seq2seq = bool(getattr(config, "is_encoder_decoder", False)) and "labels" in parameters
    # A captioner that prepends the image's features to the text (GIT) needs the pixels; a
    # model that places image tokens in the text (an image_token_id) runs on text alone.
    pixels = None
    if "pixel_values" in parameters and not any(
        hasattr(config, key) for key in ("image_token_id", "image_token_index")
    ):
        image_config = getattr(config, "vision_config", None)
        image_side = getattr(image_config, "image_size", None)
        if isinstance(image_side, int) and image_side > 0:
            pixels = (int(getattr(image_config, "num_channels", 3) or 3), image_side)
    special = sorted(
        {i for i in (getattr(text_config, "pad_token_id", None), eos) if isinstance(i, int)}
        & set(range(vocab))
    )
    filler = next((i for i in range(vocab) if i not in special), 0)

    def text(b: int) -> dict[str, Any]:
        if codebooks:  # MusicGen's decoder: one row of audio codes per codebook
            codes = torch.randint(0, vocab, (b, length, codebooks))
            return {"input_ids": codes.transpose(1, 2).reshape(b * codebooks, length),
                    "labels": codes, "use_cache": False}  # fmt: skip
        ids = torch.randint(0, vocab, (b, length))
        batch: dict[str, Any] = {"input_ids": ids}
        if pixels is not None:
            batch["pixel_values"] = torch.randn(b, pixels[0], pixels[1], pixels[1])
        if "SequenceClassification" in class_name:
            # One sequence per row, as a tokenizer makes it: no padding or end token inside,
            # one end token last (BART-style classifiers pool at it and need the same count
            # in every row; last-token classifiers read the token before the padding).
            for token in special:
                ids[ids == token] = filler
            if eos is not None and 0 <= eos < vocab:
                ids[:, -1] = eos
            batch["labels"] = torch.randint(0, labels, (b,))
        elif "MaskedLM" in class_name:
            # Masked as in pre-training (Devlin et al. 2019): 15% of the positions are replaced
            # and only those are predicted. Labels equal to the inputs everywhere let a model
            # with tied embeddings copy its input: a loss of exactly 0 (Funnel at its init).
            masked = torch.rand(b, length) < 0.15
            masked[:, 0] = True  # at least one predicted position per row
            replacement = (
                torch.full_like(ids, int(mask_id))
                if isinstance(mask_id, int) and 0 <= mask_id < vocab
                else torch.randint(0, vocab, ids.shape)
            )
            batch["input_ids"] = torch.where(masked, replacement, ids)
            batch["labels"] = torch.where(masked, ids, torch.full_like(ids, -100))
        elif seq2seq or any(
            k in class_name for k in ("LMHead", "CausalLM", "ConditionalGeneration")
        ):
            batch["labels"] = ids  # a translation model's targets: the decoder's inputs too
        if "use_cache" in parameters:
            batch["use_cache"] = False  # training: no key/value cache (hybrid models need none)
        return batch

    return text


def _text_config(config: Any) -> Any:
    """The configuration of the text model: the config itself, or the one a multimodal config
    nests (Gemma 3's ``text_config``), which holds the vocabulary and special tokens."""
    if getattr(config, "vocab_size", None):
        return config
    try:
        return config.get_text_config()
    except Exception:  # an older transformers, or a config without one
        return config


def _text_length(config: Any) -> int:
    """Tokens per row: TEXT_LENGTH, or the length a model requires while training. Reformer's
    axial position embeddings factor the sequence length: it must equal their product."""
    shape = getattr(config, "axial_pos_shape", None)
    if getattr(config, "axial_pos_embds", False) and shape:
        return math.prod(int(n) for n in shape)
    return TEXT_LENGTH


def _forward_parameters(class_name: str) -> frozenset[str]:
    """The parameter names of the Hugging Face class's forward."""
    transformers = sys.modules.get("transformers")
    cls = getattr(transformers, class_name, None) if transformers is not None else None
    if cls is None:
        return frozenset()
    return frozenset(inspect.signature(cls.forward).parameters)

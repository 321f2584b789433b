"""Healthy: a Hugging Face GPT-2 built from a small config, random weights (expect: nothing).

Needs ``transformers``; nothing is downloaded: the model is built from ``GPT2Config``. The
inputs carry ``labels``, so the model computes its own language-model loss.
"""

import torch
from transformers import GPT2Config, GPT2LMHeadModel

VOCAB = 1000


def build_model() -> torch.nn.Module:
    config = GPT2Config(
        n_layer=4,
        n_embd=128,
        n_head=4,
        vocab_size=VOCAB,
        n_positions=128,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config)


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    tokens = torch.randint(0, VOCAB, (batch_size, 64))
    return {"input_ids": tokens, "labels": tokens}

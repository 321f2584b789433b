"""Healthy: a Hugging Face BERT sequence classifier from a small config (expect: nothing).

BERT is post-LN (Xiong et al. 2020): its gradients are larger near the output at init, which is
within what gradcheck accepts. Built from ``BertConfig``; nothing is downloaded.
"""

import torch
from transformers import BertConfig, BertForSequenceClassification

VOCAB = 1000


def build_model() -> torch.nn.Module:
    config = BertConfig(
        num_hidden_layers=4,
        hidden_size=128,
        num_attention_heads=4,
        intermediate_size=512,
        vocab_size=VOCAB,
        num_labels=3,
    )
    return BertForSequenceClassification(config)


def example_inputs(batch_size: int) -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.randint(0, VOCAB, (batch_size, 64)),
        "labels": torch.randint(0, 3, (batch_size,)),
    }

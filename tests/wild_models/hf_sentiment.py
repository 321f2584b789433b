"""Sentiment classifier on a small BERT, built from a config (no download)."""

from transformers import BertConfig, BertForSequenceClassification


def build_model():
    config = BertConfig(
        vocab_size=500,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        num_labels=2,
    )
    return BertForSequenceClassification(config)

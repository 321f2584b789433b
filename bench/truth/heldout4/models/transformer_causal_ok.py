"""Small causal Transformer classifier (2 layers, d=32) reading the last position.

Causal mask from nn.Transformer.generate_square_subsequent_mask.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 80
VOCAB = 16
N_CLASSES = 8


class CausalTransformer(nn.Module):
    def __init__(self, d_model=32, n_heads=4, n_layers=2, max_len=SEQ_LEN):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d_model)
        self.pos = nn.Parameter(torch.randn(1, max_len, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=64,
                                           dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, N_CLASSES)

    def forward(self, tokens):
        T = tokens.size(1)
        h = self.tok(tokens) + self.pos[:, :T]
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device)
        h = self.encoder(h, mask=mask, is_causal=True)
        return self.head(self.norm(h[:, -1]))


def build_model():
    return CausalTransformer()


def example_inputs(batch_size):
    x = torch.randint(N_CLASSES, VOCAB, (batch_size, SEQ_LEN))
    x[:, 0] = torch.randint(0, N_CLASSES, (batch_size,))
    return x


def loss_fn(output, inputs):
    return F.cross_entropy(output, inputs[:, 0])


def accuracy(output, inputs):
    return (output.argmax(-1) == inputs[:, 0]).float().mean().item()

"""Causal attention classifier with ALiBi position biases (no position embeddings), two
layers, 4 heads (slopes 1/2 .. 1/16), reading the last position. Recall-first-token task:
the needed token is 79 steps back, where ALiBi's penalty is 5 to 40 logits."""
import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 80
VOCAB = 16
N_CLASSES = 8


def alibi_bias(n_heads, T, device):
    slopes = torch.tensor([2.0 ** -(i + 1) for i in range(n_heads)], device=device)
    pos = torch.arange(T, device=device)
    dist = (pos[:, None] - pos[None, :]).float()           # i - j
    bias = -slopes[:, None, None] * dist                    # (H, T, T)
    return bias.masked_fill(dist < 0, float("-inf"))        # causal


class AlibiBlock(nn.Module):
    def __init__(self, d_model, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))

    def forward(self, x, bias):
        B, T, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.proj(att.transpose(1, 2).reshape(B, T, D))
        return x + self.ff(self.norm2(x))


class AlibiClassifier(nn.Module):
    def __init__(self, d_model=32, n_heads=4, n_layers=2):
        super().__init__()
        self.n_heads = n_heads
        self.tok = nn.Embedding(VOCAB, d_model)
        self.blocks = nn.ModuleList([AlibiBlock(d_model, n_heads) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, N_CLASSES)

    def forward(self, tokens):
        x = self.tok(tokens)
        bias = alibi_bias(self.n_heads, tokens.size(1), tokens.device)
        for blk in self.blocks:
            x = blk(x, bias)
        return self.head(self.norm(x[:, -1]))


def build_model():
    return AlibiClassifier()


def example_inputs(batch_size):
    x = torch.randint(N_CLASSES, VOCAB, (batch_size, SEQ_LEN))
    x[:, 0] = torch.randint(0, N_CLASSES, (batch_size,))
    return x


def loss_fn(output, inputs):
    return F.cross_entropy(output, inputs[:, 0])


def accuracy(output, inputs):
    return (output.argmax(-1) == inputs[:, 0]).float().mean().item()

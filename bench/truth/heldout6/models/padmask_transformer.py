"""Small transformer classifier over padded token sequences, own attention implementation
with a key mask and masked mean pooling."""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---- task: padded token sequences (pad id 0); is token 1 more frequent than token 2? ----
PAD_ID = 0
VOCAB = 10
MAX_LEN = 12
TASK_KIND = "classification"


def example_inputs(batch_size: int):
    tokens = torch.randint(1, VOCAB, (batch_size, MAX_LEN))
    lengths = torch.randint(4, MAX_LEN + 1, (batch_size,))
    pad = torch.arange(MAX_LEN)[None, :] >= lengths[:, None]
    return tokens.masked_fill(pad, PAD_ID)


def targets(inputs):
    return ((inputs == 1).sum(1) > (inputs == 2).sum(1)).long()


# ---- model ----


class MaskedSelfAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x, mask):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        att = q @ k.transpose(-1, -2) / math.sqrt(d // self.h)
        att = att.masked_fill(~mask[:, None, None, :], -1e9)
        out = att.softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = MaskedSelfAttention(d, heads)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask):
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


class SeqClassifier(nn.Module):
    def __init__(self, vocab=VOCAB, d=32, heads=4, depth=2, n_classes=2):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(MAX_LEN, d)
        self.blocks = nn.ModuleList([Block(d, heads) for _ in range(depth)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_classes)

    def forward(self, tokens):
        mask = tokens == PAD_ID          # positions to keep
        x = self.tok(tokens) + self.pos(torch.arange(tokens.shape[1]))
        for blk in self.blocks:
            x = blk(x, mask)
        m = mask.float()[..., None]
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.head(self.ln(pooled))


def build_model():
    return SeqClassifier()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))

"""Control for task C: a standard healthy architecture."""
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
class TinyTransformer(nn.Module):
    def __init__(self, vocab=VOCAB, d=32, heads=4, layers=2, n_classes=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, d, padding_idx=PAD_ID)
        self.pos = nn.Parameter(torch.randn(MAX_LEN, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_classes)

    def forward(self, tokens):
        pad = tokens == PAD_ID
        h = self.encoder(self.embed(tokens) + self.pos, src_key_padding_mask=pad)
        keep = (~pad).float()[..., None]
        pooled = (h * keep).sum(1) / keep.sum(1).clamp(min=1)
        return self.head(self.norm(pooled))


def build_model():
    return TinyTransformer()


def predict(output):
    return output


def loss_fn(output, inputs):
    return F.cross_entropy(output, targets(inputs))

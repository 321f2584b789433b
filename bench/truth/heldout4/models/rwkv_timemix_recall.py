"""RWKV-4-style time-mixing classifier (WKV recurrence with per-channel decay and bonus u),
one block + channel MLP, recall-first-token task (length 80). Decays initialised across
channels as in RWKV: w = exp(time_decay), time_decay from -5 to 3 (per-step decay
exp(-w) from 0.993 down to ~0)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

SEQ_LEN = 80
VOCAB = 16
N_CLASSES = 8


class TimeMix(nn.Module):
    def __init__(self, d):
        super().__init__()
        ratio = torch.arange(d, dtype=torch.float32) / (d - 1)
        self.time_decay = nn.Parameter(-5 + 8 * ratio)
        self.time_first = nn.Parameter(torch.full((d,), 0.5))
        self.key = nn.Linear(d, d, bias=False)
        self.value = nn.Linear(d, d, bias=False)
        self.receptance = nn.Linear(d, d, bias=False)
        self.output = nn.Linear(d, d, bias=False)

    def forward(self, x):
        B, T, D = x.shape
        k, v, r = self.key(x), self.value(x), torch.sigmoid(self.receptance(x))
        decay = torch.exp(-torch.exp(self.time_decay))
        num = x.new_zeros(B, D)
        den = x.new_zeros(B, D)
        outs = []
        for t in range(T):
            ek = torch.exp(k[:, t].clamp(max=30))
            eu = torch.exp((self.time_first + k[:, t]).clamp(max=30))
            outs.append((num + eu * v[:, t]) / (den + eu))
            num = decay * num + ek * v[:, t]
            den = decay * den + ek
        return self.output(r * torch.stack(outs, dim=1))


class RWKVClassifier(nn.Module):
    def __init__(self, d=48):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        self.ln1 = nn.LayerNorm(d)
        self.att = TimeMix(d)
        self.ln2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        self.ln_out = nn.LayerNorm(d)
        self.head = nn.Linear(d, N_CLASSES)

    def forward(self, tokens):
        x = self.embed(tokens)
        x = x + self.att(self.ln1(x))
        x = x + self.ffn(self.ln2(x))
        return self.head(self.ln_out(x[:, -1]))


def build_model():
    return RWKVClassifier()


def example_inputs(batch_size):
    x = torch.randint(N_CLASSES, VOCAB, (batch_size, SEQ_LEN))
    x[:, 0] = torch.randint(0, N_CLASSES, (batch_size,))
    return x


def loss_fn(output, inputs):
    return F.cross_entropy(output, inputs[:, 0])


def accuracy(output, inputs):
    return (output.argmax(-1) == inputs[:, 0]).float().mean().item()

"""LSTM recall: the label is the key token shown at step 0 of a long sequence.

Forget-gate biases use chrono initialisation (Tallec & Ollivier, 2018):
b_f ~ log(U(1, T_max - 1)), b_i = -b_f, so some units keep memory for ~T_max steps.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class RecallConfig:
    n_keys: int = 8          # key tokens 0..7, shown at step 0
    n_noise: int = 4         # distractor tokens 8..11, steps 1..T-1
    seq_len: int = 80
    d_embed: int = 16
    d_hidden: int = 64
    t_max: int = 80          # chrono init horizon


CFG = RecallConfig()


class ChronoLSTMClassifier(nn.Module):
    def __init__(self, cfg: RecallConfig = CFG):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.n_keys + cfg.n_noise, cfg.d_embed)
        self.lstm = nn.LSTM(cfg.d_embed, cfg.d_hidden, batch_first=True)
        self.head = nn.Linear(cfg.d_hidden, cfg.n_keys)
        self.chrono_init_()

    @torch.no_grad()
    def chrono_init_(self):
        h = self.cfg.d_hidden
        b_f = torch.log(torch.empty(h).uniform_(1.0, self.cfg.t_max - 1))
        # gate order in nn.LSTM: input, forget, cell, output
        self.lstm.bias_ih_l0.zero_()
        self.lstm.bias_hh_l0.zero_()
        self.lstm.bias_hh_l0[h:2 * h] = b_f
        self.lstm.bias_hh_l0[0:h] = -b_f

    def forward(self, tokens):
        x = self.embed(tokens)
        out, _ = self.lstm(x)
        return {"logits": self.head(out[:, -1])}


def build_model():
    return ChronoLSTMClassifier(CFG)


def example_inputs(batch_size: int):
    keys = torch.randint(0, CFG.n_keys, (batch_size, 1))
    noise = torch.randint(CFG.n_keys, CFG.n_keys + CFG.n_noise, (batch_size, CFG.seq_len - 1))
    return {"tokens": torch.cat([keys, noise], dim=1)}


def make_targets(inputs):
    return inputs["tokens"][:, 0]


def loss_fn(output, inputs):
    return F.cross_entropy(output["logits"], make_targets(inputs))

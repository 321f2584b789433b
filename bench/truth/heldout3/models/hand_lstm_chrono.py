"""Hand-written LSTM (separate input/hidden Linear layers) with chrono initialisation
(Tallec & Ollivier 2018): forget bias = log(U(1, T_max - 1)), input bias = -forget bias.
Task: recall the signal token placed in the first tenth of a length-100 sequence of blanks;
dependency 90-99 steps."""
import torch
import torch.nn as nn
import torch.nn.functional as F

N_CLASSES = 8
T = 100


class ChronoLSTMCell(nn.Module):
    def __init__(self, n_in, n_hid, t_max=T):
        super().__init__()
        self.n_hid = n_hid
        self.ih = nn.Linear(n_in, 4 * n_hid)
        self.hh = nn.Linear(n_hid, 4 * n_hid, bias=False)
        with torch.no_grad():
            b = torch.log(torch.empty(n_hid).uniform_(1, t_max - 1))
            self.ih.bias.zero_()
            self.ih.bias[n_hid:2 * n_hid] = b      # forget gate
            self.ih.bias[:n_hid] = -b              # input gate

    def forward(self, x, h, c):
        g = self.ih(x) + self.hh(h)
        i, f, gg, o = g.split(self.n_hid, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class RecallLSTM(nn.Module):
    def __init__(self, d_emb=32, n_hid=64):
        super().__init__()
        self.emb = nn.Embedding(N_CLASSES + 1, d_emb)
        self.cell = ChronoLSTMCell(d_emb, n_hid)
        self.readout = nn.Linear(n_hid, N_CLASSES)

    def forward(self, tokens):
        x = self.emb(tokens)
        h = c = x.new_zeros(x.shape[0], self.cell.n_hid)
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], h, c)
        return self.readout(h)


def build_model():
    return RecallLSTM()


def example_inputs(batch_size):
    x = torch.zeros(batch_size, T, dtype=torch.long)
    pos = torch.randint(0, T // 10, (batch_size,))
    x[torch.arange(batch_size), pos] = torch.randint(1, N_CLASSES + 1, (batch_size,))
    return x


def loss_fn(output, inputs):
    return F.cross_entropy(output, inputs.amax(1) - 1)


def accuracy(output, inputs):
    return (output.argmax(-1) == inputs.amax(1) - 1).float().mean().item()

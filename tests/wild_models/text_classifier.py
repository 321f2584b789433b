import math

import torch
import torch.nn as nn

VOCAB_SIZE = 1000
MAX_LEN = 64


class TextClassifier(nn.Module):
    def __init__(self, vocab_size=VOCAB_SIZE, d_model=64, n_classes=4, max_len=MAX_LEN):
        super().__init__()
        # learned positions, registered on the model itself before the embedding
        self.pos = nn.Parameter(torch.randn(1, max_len, d_model) * 0.02)
        self.embed = nn.Embedding(vocab_size, d_model)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model, 4, 128, batch_first=True), num_layers=1
        )
        self.fc = nn.Linear(d_model, n_classes)
        self.scale = math.sqrt(d_model)

    def forward(self, ids):
        x = self.embed(ids) * self.scale + self.pos[:, : ids.shape[1]]
        return self.fc(self.encoder(x).mean(dim=1))


model = TextClassifier()

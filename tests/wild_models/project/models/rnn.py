import torch.nn as nn

from models.heads import ClassifierHead


class GRUClassifier(nn.Module):
    def __init__(self, input_size=8, hidden_size=32, num_classes=3, num_layers=1):
        super().__init__()
        self.gru = nn.GRU(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = ClassifierHead(hidden_size, num_classes)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1])


def build(hidden_size=32):
    return GRUClassifier(hidden_size=hidden_size)

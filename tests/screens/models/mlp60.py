"""A 60-layer ReLU MLP with He init, one layer of it mostly dead (expect: dead-units there).

60 Linear/ReLU pairs and a head, 121 rows. Healthy apart from ``net.71``: the Linear before it
gets a bias of -10 on 3/4 of its units, so 75% of that ReLU's units output zero for every input
(the rest still pass the gradient down). The long runs of identical healthy Linear/ReLU pairs
around it are what the terminal table folds into summary rows.
"""

import torch
from torch import nn

DEPTH = 60
WIDTH = 64


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(DEPTH):
            linear = nn.Linear(WIDTH, WIDTH)
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
            layers += [linear, nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(WIDTH, 10)
        with torch.no_grad():
            self.net[70].bias[: 3 * WIDTH // 4] = -10.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x))


def build_model() -> nn.Module:
    return MLP()

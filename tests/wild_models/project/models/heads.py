import torch.nn as nn


class ClassifierHead(nn.Sequential):
    def __init__(self, dim, num_classes):
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, num_classes))

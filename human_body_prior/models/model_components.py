"""Small layers of the VPoser v2 networks, at their upstream import path."""

import torch
import torch.nn as nn


class BatchFlatten(nn.Module):
    """(N, ...) -> (N, prod(...)): flattens everything but the batch dimension. No parameters."""

    def __init__(self):
        super().__init__()
        self._name = "batch_flatten"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

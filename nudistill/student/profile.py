"""Static cost of a student: parameters and multiply-accumulates (MACs) of one event, by forward hooks."""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Distinct trainable parameters (a shared backbone counts once)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module) -> int:
    """MACs of conv and linear layers for one event (batch 1) at the model's input size."""
    total = 0

    def conv_hook(mod: nn.Conv2d, _inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        total += out.numel() * k

    def linear_hook(mod: nn.Linear, _inp, out):
        nonlocal total
        total += out.numel() * mod.in_features

    hooks = [m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    cfg = model.cfg
    x = torch.zeros(1, cfg.height, cfg.width, dtype=torch.uint8)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x, x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total

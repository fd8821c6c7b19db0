"""Recompute BatchNorm running statistics before evaluation: after a short run they lag the weights.

With the default momentum 0.1, after a short run the running mean/variance still remember the random
initialisation's activations, so eval-mode outputs are at chance while the training loss is tiny. A pass
over a few training batches with a cumulative average (momentum None, as in SWA's ``update_bn``) replaces
them with the statistics of the current weights. Under DDP the ranks' statistics are averaged.
"""

from __future__ import annotations

import torch
from torch import nn


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader, batches: int, device: torch.device | str = "cpu") -> int:
    """Reset and recompute BN statistics over up to ``batches`` batches of ``loader``; return batches used."""
    bns = batchnorms(model)
    if not bns or batches <= 0:
        return 0
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average over the recalibration batches
    was_training = model.training
    model.train()
    used = 0
    for used, batch in enumerate(loader, start=1):
        model(batch["xz"].to(device), batch["yz"].to(device))
        if used >= batches:
            break
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    _average_over_ranks(bns)
    model.train(was_training)
    return used


def _average_over_ranks(bns) -> None:
    """Mean of each BN buffer over DDP ranks, so every rank evaluates (and saves) the same statistics."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for bn in bns:
        for buf in (bn.running_mean, bn.running_var):
            dist.all_reduce(buf)
            buf /= dist.get_world_size()

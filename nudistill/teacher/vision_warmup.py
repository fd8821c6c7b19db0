"""Vision warm-up for a from-scratch tiny teacher: supervised pre-training of the Mllama vision tower.

A real Mllama starts from a pretrained vision encoder. The tiny one starts from random weights, and
its image features then differ between events by ~7% of their size (sparse pixel maps are mostly
empty patches): the text decoder, which at first attends about uniformly over the image tokens, sees
almost the same thing for every event and learns the text alone. A short warm-up trains the vision
tower, through a throw-away linear head on the *mean* of its output tokens (what uniform
cross-attention sees), to predict the class and the concepts of each event. The model stays an
unmodified MllamaForConditionalGeneration.
"""

from __future__ import annotations

import numpy as np
import torch

from nudistill import CLASSES, CONCEPTS
from nudistill.events import concepts_to_multi_hot
from nudistill.log import progress
from nudistill.teacher.data import Labelled
from nudistill.teacher.inputs import pool_views, to_images
from nudistill.teacher.scoring import base_model


def vision_tokens(model, processor, views: np.ndarray, view_size: int | None) -> torch.Tensor:
    """Vision tower output for (B, 2, H, W) views: (B, 2 * tiles * patches, D_vision_out)."""
    enc = processor.image_processor(images=to_images(pool_views(views, view_size)), return_tensors="pt")
    device = next(model.parameters()).device
    out = base_model(model).model.vision_model(pixel_values=enc["pixel_values"].to(device),
                                               aspect_ratio_ids=enc["aspect_ratio_ids"].to(device),
                                               aspect_ratio_mask=enc["aspect_ratio_mask"].to(device))
    h = out.last_hidden_state
    return h.reshape(h.shape[0], -1, h.shape[-1])


def warm_up_vision(model, processor, data: Labelled, view_size: int | None, steps: int, batch_size: int = 32,
                   lr: float = 2e-3, seed: int = 0) -> list[float]:
    """Train the vision tower for ``steps`` on class (cross-entropy) + concepts (BCE); return the losses."""
    vision = base_model(model).model.vision_model
    dim = base_model(model).config.vision_config.vision_output_dim
    torch.manual_seed(seed)
    head = torch.nn.Linear(dim, len(CLASSES) + len(CONCEPTS))
    params = [p for p in vision.parameters() if p.requires_grad] + list(head.parameters())
    optim = torch.optim.AdamW(params, lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=lr, total_steps=max(steps, 2), pct_start=0.1)
    concepts = torch.from_numpy(concepts_to_multi_hot(data.concepts))  # (N, K)
    rng = np.random.default_rng([seed, 7])
    losses = []
    vision.train()
    for _ in progress(range(steps), desc="vision warm-up", unit="step"):
        idx = rng.choice(len(data), size=min(batch_size, len(data)), replace=False)
        logits = head(vision_tokens(model, processor, data.views[idx], view_size).mean(1).float().cpu())
        loss = torch.nn.functional.cross_entropy(logits[:, : len(CLASSES)], torch.from_numpy(data.y[idx])) + \
            torch.nn.functional.binary_cross_entropy_with_logits(logits[:, len(CLASSES):], concepts[idx])
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses

"""The prompt's fixed head (the physics context before the first image), run through the decoder once per
teacher instead of once per event.

Every token before the first ``<|image|>`` has an all-zero cross-attention mask, and under the reference
row masking (:mod:`.xattn`) it passes the cross-attention layers unchanged, so its self-attention keys and
values are the same for every event. :class:`PrefixCache` holds them for one copy of the prefix, from a
text-only pass (which skips the cross-attention layers). Each batch gets a fresh ``DynamicCache`` holding
B copies of them: ``DynamicLayer.update`` concatenates, so the forward calls that extend that cache never
write into the stored tensors. Only the tokens from the first image on run per event.

:func:`build_prefix_cache` checks that claim before any batch relies on it, on two probe events that differ:
the prefix token ids are the same for both and come before the first image token, their cross-attention
mask rows are all zero, and the model's own forward with the images in gives the prefix the keys and values
of the text-only pass. When a check fails, the teacher stays on the uncached path and one log line says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nudistill.log import get_logger

log = get_logger("teacher")


@dataclass
class PrefixCache:
    """Keys and values of the prompt's text before its first image, for one event."""

    ids: torch.Tensor
    """(P,) long: the prefix tokens."""
    kv: list
    """Per decoder layer: (keys, values), each (1, kv_heads, P, head_dim), or None (a cross-attention layer)."""
    config: object
    """The model's config, which lays out a ``DynamicCache``."""

    @property
    def length(self) -> int:
        return int(self.ids.numel())

    def covers(self, batch: dict) -> bool:
        """Whether ``batch`` starts with this prefix, unpadded and out of cross-attention."""
        p, ids = self.length, batch["input_ids"]
        return (ids.shape[1] > p and bool((ids[:, :p] == self.ids.to(ids.device)).all())
                and bool((batch["attention_mask"][:, :p] == 1).all())
                and not bool(batch["cross_attention_mask"][:, :p].any()))

    def expand(self, b: int):
        """A new DynamicCache holding the prefix for ``b`` events (its own copy: forward calls extend it)."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.config)
        for layer, kv in zip(cache.layers, self.kv):
            if kv is not None:
                layer.update(*(t.expand(b, -1, -1, -1) for t in kv))  # torch.cat inside: a copy
        return cache


def probe_views(size: int) -> np.ndarray:
    """(2, 2, size, size) uint8: an empty event and one with a lit track and a saturated blob in both views."""
    views = np.zeros((2, 2, size, size), np.uint8)
    views[1, :, size // 2, :] = 200
    views[1, :, : size // 4, : size // 4] = 255
    return views


def event_independent_length(enc: dict, image_token_id: int | None) -> tuple[int, str | None]:
    """(prefix length, None) when the text before the first image is the same for every event of ``enc``
    (processor tensors of at least two events) and masked out of cross-attention; else (0, the reason)."""
    ids = enc["input_ids"]
    if image_token_id is None:
        return 0, "the model config names no image token"
    if len(ids) < 2 or not bool((ids == ids[:1]).all()):
        return 0, "the prompt's token ids differ between events"
    images = (ids[0] == image_token_id).nonzero()
    if not len(images) or int(images[0]) == 0:
        return 0, "no text precedes the first image token"
    p = int(images[0])
    if not bool((enc["attention_mask"][:, :p] == 1).all()):
        return 0, "the text before the first image is padded"
    if bool(enc["cross_attention_mask"][:, :p].any()):
        return 0, "the cross-attention mask lets the text before the first image see an image"
    return p, None


@torch.no_grad()
def text_only_kv(net, ids: torch.Tensor) -> list:
    """Per decoder layer, the keys and values of ``ids`` (P,) run alone (cross-attention layers: None)."""
    out = net(input_ids=ids[None], attention_mask=torch.ones_like(ids[None]), use_cache=True, logits_to_keep=1)
    return [(layer.keys, layer.values) if layer.is_initialized and layer.keys.numel() else None
            for layer in out.past_key_values.layers]


def kv_mismatch(cached: list, full) -> float:
    """Largest |difference| between the cached prefix and a full forward's cache over the prefix, relative
    to the largest |value|: 0 when every self-attention layer agrees, inf when the layouts differ."""
    if len(cached) != len(full.layers) or all(kv is None for kv in cached):
        return float("inf")
    worst = 0.0
    for kv, layer in zip(cached, full.layers):
        if kv is None:
            continue
        for mine, theirs in zip(kv, (layer.keys, layer.values)):
            theirs = theirs[:, :, : mine.shape[2]].float()
            scale = float(theirs.abs().max()) or 1.0
            worst = max(worst, float((theirs - mine.float()).abs().max()) / scale)
    return worst


@torch.no_grad()
def build_prefix_cache(net, encode, device, view_size: int | None) -> PrefixCache | None:
    """The checked :class:`PrefixCache` of ``net`` (the unwrapped Mllama) for the prompt ``encode`` makes,
    or None, with a log line saying why, when the prompt or the model do not allow one.

    Keys and values in float32 may differ from the full forward's by 1e-4 of their largest value, in half
    precision by 2e-2 (the order of summation differs between the two passes).
    """
    enc = {k: v.to(device) for k, v in encode(probe_views(view_size or 64)).items()}
    p, reason = event_independent_length(enc, getattr(net.config, "image_token_index", None))
    if reason is None:
        cached = text_only_kv(net, enc["input_ids"][0, :p])
        full = net(**enc, use_cache=True, logits_to_keep=1).past_key_values  # the model's own path, images in
        worst = kv_mismatch(cached, full)
        dtypes = {t.dtype for kv in cached if kv is not None for t in kv}
        tol = 1e-4 if dtypes == {torch.float32} else 2e-2
        if not worst <= tol:
            reason = (f"the text before the first image depends on the event in this model (relative "
                      f"difference {worst:.2g} > {tol:g}; is its cross-attention row masking the reference one?)")
    if reason is not None:
        log.warning("the prompt prefix is not cached, every event runs the whole prompt: %s", reason)
        return None
    log.info("prompt prefix cached: %d tokens computed once, not per event", p)
    return PrefixCache(ids=enc["input_ids"][0, :p].clone(), kv=cached, config=net.config)

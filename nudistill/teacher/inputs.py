"""Model inputs: raw pixel maps to processor images, the shared prompt, and label-phrase token tables.

Views arrive at the dataset's resolution (512² in the study) with a log-like range: a sparse track is
~40 ADC and one pixel wide, a shower saturates at 255. A plain bilinear resize to the tiny tile (128 px)
averages a one-pixel track over 4x4 pixels, dimming it to ~10 ADC, near the noise; max-pooling first
keeps it at full height (see ``TeacherSpec.view_size``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nudistill.errors import UserError
from nudistill.teacher.prompt import ANSWER_PREFIX


def check_views(views: np.ndarray) -> np.ndarray:
    """Validate a (B, 2, H, W) uint8 array of XZ, YZ views."""
    views = np.asarray(views)
    if views.ndim != 4 or views.shape[1] != 2 or views.dtype != np.uint8:
        raise UserError(f"views must be a (B, 2, H, W) uint8 array, got {views.dtype} {views.shape}")
    return views


def pool_views(views: np.ndarray, size: int | None) -> np.ndarray:
    """Max-pool (B, 2, H, W) uint8 views to at most ``size`` per side; None or already small: unchanged."""
    b, v, h, w = views.shape
    if size is None or (h <= size and w <= size):
        return views
    import torch
    import torch.nn.functional as F

    oh, ow = min(size, h), min(size, w)
    x = torch.from_numpy(np.ascontiguousarray(views))
    if h % oh == 0 and w % ow == 0:  # the usual 512 -> 128: block max, staying in uint8
        return x.view(b, v, oh, h // oh, ow, w // ow).amax(dim=(3, 5)).numpy()
    pooled = F.adaptive_max_pool2d(x.reshape(b * v, 1, h, w).float(), (oh, ow)).to(torch.uint8)  # uneven windows
    return pooled.reshape(b, v, oh, ow).numpy()


def to_images(views: np.ndarray) -> list[list]:
    """Per event, [XZ, YZ] as Pillow "L" images (the Pillow image processor converts them to RGB)."""
    from PIL import Image

    return [[Image.fromarray(ev[0], "L"), Image.fromarray(ev[1], "L")] for ev in views]


def encode_prompt(processor, prompt: str, views: np.ndarray, view_size: int | None) -> dict:
    """Processor tensors for ``prompt + ANSWER_PREFIX`` and both views of each event.

    The prompt is the same for every event, so no padding: input_ids (B, Lp); pixel_values
    (B, 2, tiles, 3, S, S); cross_attention_mask (B, Lp, 2, tiles). add_special_tokens=False because
    the chat template already starts with BOS.
    """
    views = pool_views(check_views(views), view_size)
    text = [prompt + ANSWER_PREFIX] * len(views)
    return dict(processor(images=to_images(views), text=text, add_special_tokens=False, return_tensors="pt"))


@dataclass
class PhraseTable:
    """Token ids of each class's scored continuation ``" <phrase>."``, right padded.

    ids, mask: (K, Lc) long; lengths: (K,).
    """

    ids: "object"
    mask: "object"
    tokens: list[list[int]]


def phrase_table(tokenizer, phrases: list[str]) -> PhraseTable:
    """Tokenize ``" <phrase>."`` per class; refuse phrases the scorer cannot tell apart.

    The full phrase and its closing period are scored, so phrases sharing first tokens (or one phrase
    being a prefix of another) still get distinct probabilities. Identical token sequences do not.
    """
    import torch

    tokens = [tokenizer(f" {p}.", add_special_tokens=False)["input_ids"] for p in phrases]
    seen: dict[tuple[int, ...], str] = {}
    for phrase, ids in zip(phrases, tokens):
        if tuple(ids) in seen:
            raise UserError(f"label phrases {seen[tuple(ids)]!r} and {phrase!r} tokenize identically, "
                            "so the teacher cannot tell them apart; choose distinct phrases")
        seen[tuple(ids)] = phrase
    joint = tokenizer(ANSWER_PREFIX + f" {phrases[0]}.", add_special_tokens=False)["input_ids"]
    alone = tokenizer(ANSWER_PREFIX, add_special_tokens=False)["input_ids"] + tokens[0]
    if joint != alone:
        raise UserError("this tokenizer merges the answer prefix with the label phrase; "
                        "scoring needs them to tokenize separately")
    width = max(len(t) for t in tokens)
    ids = torch.full((len(tokens), width), tokenizer.pad_token_id or 0, dtype=torch.long)
    mask = torch.zeros((len(tokens), width), dtype=torch.long)
    for k, t in enumerate(tokens):
        ids[k, : len(t)] = torch.tensor(t)
        mask[k, : len(t)] = 1
    return PhraseTable(ids=ids, mask=mask, tokens=tokens)

"""Rationales: batched greedy text after "I classify the pixel maps as <phrase>.", and the policy that rations them.

Rationales cost far more than scores (tens of decoding steps against one pass), so a labelling run
chooses which events get one: ``all``, ``none``, ``below:<confidence>`` or ``fraction:<p>``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from nudistill.errors import UserError
from nudistill.teacher.inputs import PhraseTable
from nudistill.teacher.scoring import base_model


@dataclass(frozen=True)
class RationalePolicy:
    """Which events get a rationale: mode "all", "none", "below" (confidence < value) or "fraction"."""

    mode: str = "none"
    value: float = 0.0

    @classmethod
    def parse(cls, text: str) -> RationalePolicy:
        """Parse ``all``, ``none``, ``below:<confidence>`` or ``fraction:<p>``."""
        text = str(text).strip().lower()
        if text in ("all", "none"):
            return cls(text)
        mode, _, raw = text.partition(":")
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if mode not in ("below", "fraction") or not 0.0 <= value <= 1.0:
            raise UserError(f"rationale policy {text!r} must be all, none, below:<0..1> or fraction:<0..1>")
        return cls(mode, value)

    def select(self, probs: np.ndarray, event_ids: list[str]) -> np.ndarray:
        """A (B,) bool mask of events that get a rationale; fraction is a stable hash of event_id."""
        if self.mode == "all":
            return np.ones(len(event_ids), bool)
        if self.mode == "none":
            return np.zeros(len(event_ids), bool)
        if self.mode == "below":
            return np.asarray(probs).max(axis=1) < self.value
        return np.array([_unit_hash(e) < self.value for e in event_ids], bool)

    def __str__(self) -> str:
        return self.mode if self.mode in ("all", "none") else f"{self.mode}:{self.value:g}"


def _unit_hash(event_id: str) -> float:
    """A number in [0, 1) fixed by the event id (the same on every worker and rerun)."""
    digest = hashlib.sha256(str(event_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def answer_inputs(batch: dict, table: PhraseTable, class_idx: np.ndarray) -> dict:
    """Left-padded prompt + prefix + chosen phrase per event, with position ids and cross-attention mask."""
    ids, attn, xmask = batch["input_ids"], batch["attention_mask"], batch["cross_attention_mask"]
    rows = [torch.cat([ids[i], torch.tensor(table.tokens[c], dtype=ids.dtype)]) for i, c in enumerate(class_idx)]
    width = max(len(r) for r in rows)
    pad_id = 0
    out_ids = torch.full((len(rows), width), pad_id, dtype=ids.dtype)
    out_attn = torch.zeros((len(rows), width), dtype=attn.dtype)
    out_x = torch.zeros((len(rows), width, *xmask.shape[2:]), dtype=xmask.dtype)
    for i, r in enumerate(rows):
        n, lp = len(r), ids.shape[1]
        out_ids[i, width - n:] = r
        out_attn[i, width - n:] = torch.cat([attn[i], torch.ones(n - lp, dtype=attn.dtype)])
        out_x[i, width - n: width - n + lp] = xmask[i]
        out_x[i, width - n + lp:] = xmask[i, -1]
    pos = (out_attn.cumsum(-1) - 1).clamp(min=0)
    return dict(input_ids=out_ids, attention_mask=out_attn, position_ids=pos, cross_attention_mask=out_x)


@torch.no_grad()
def greedy_rationales(model, tokenizer, batch: dict, states: torch.Tensor, table: PhraseTable,
                      class_idx: np.ndarray, max_new_tokens: int) -> list[str]:
    """Greedy decoding after each event's label sentence, all events at once, KV cached."""
    net = base_model(model)
    inp = answer_inputs(batch, table, class_idx)
    eos = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end_of_text|>")} - {None}
    out = net(**inp, cross_attention_states=states, use_cache=True, logits_to_keep=1)
    cache, attn, pos = out.past_key_values, inp["attention_mask"], inp["position_ids"][:, -1:]
    xmask = inp["cross_attention_mask"][:, -1:]
    done = torch.zeros(len(class_idx), dtype=torch.bool)
    steps = []
    for _ in range(max_new_tokens):
        nxt = out.logits[:, -1].argmax(-1)  # (B,)
        done |= torch.isin(nxt, torch.tensor(sorted(eos)))
        steps.append(torch.where(done, -1, nxt))
        if bool(done.all()):
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        pos = pos + 1
        out = net(input_ids=nxt[:, None], attention_mask=attn, position_ids=pos, cross_attention_mask=xmask,
                  past_key_values=cache, use_cache=True)
    gen = torch.stack(steps, dim=1) if steps else torch.empty((len(class_idx), 0), dtype=torch.long)
    return [tokenizer.decode([t for t in row.tolist() if t >= 0], skip_special_tokens=True).strip() for row in gen]

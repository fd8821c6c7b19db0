"""The Teacher: soft class confidences, rationales and labels for batches of two-view events, and the
model passes behind them.

Views are (B, 2, H, W) uint8 numpy arrays (XZ, YZ) at any resolution. Work runs in chunks of
``batch_size`` events; each chunk encodes its images and prompt once.

Constrained scoring sums the log-probs of each full label phrase after the forced answer prefix. For B
events and K classes the expensive parts run once per event, not once per candidate: the vision tower
(its ``cross_attention_states`` are reused) and the prompt (its KV cache, repeated K times for the K
short continuations). Only the phrase tokens run K times.

Rationales cost far more than scores (tens of decoding steps against one pass), so a labelling run
chooses which events get one (:class:`RationalePolicy`): ``all``, ``none``, ``below:<confidence>`` or
``fraction:<p>``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nudistill import CLASSES
from nudistill.concepts import concepts_in_text
from nudistill.errors import UserError
from nudistill.metrics import softmax
from nudistill.teacher.inputs import PhraseTable, PromptEncoder, build_prompt, check_views, phrase_table
from nudistill.teacher.spec import TeacherSpec, teacher_id, weights_digests


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


# ---- model passes --------------------------------------------------------------------------------
def base_model(model):
    """The MllamaForConditionalGeneration under a peft wrapper (LoRA layers live inside it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@torch.no_grad()
def vision_states(model, batch: dict) -> torch.Tensor:
    """Projected vision tokens per event: (B, n_images * tiles * patches, D_text)."""
    mllama = base_model(model).model
    out = mllama.vision_model(pixel_values=batch["pixel_values"], aspect_ratio_ids=batch["aspect_ratio_ids"],
                              aspect_ratio_mask=batch["aspect_ratio_mask"])
    states = mllama.multi_modal_projector(out.last_hidden_state)  # (B, n_img, tiles, P, D)
    return states.reshape(batch["pixel_values"].shape[0], -1, states.shape[-1])


@torch.no_grad()
def prefix_pass(model, batch: dict, states: torch.Tensor, cache: bool = True):
    """Run prompt + answer prefix; return (log-probs of the next token (B, V) float32, KV cache)."""
    out = base_model(model)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            cross_attention_mask=batch["cross_attention_mask"], cross_attention_states=states,
                            use_cache=cache, logits_to_keep=1)
    return torch.log_softmax(out.logits[:, -1].float(), dim=-1), out.past_key_values


@torch.no_grad()
def phrase_logprobs(model, batch: dict, states: torch.Tensor, table: PhraseTable) -> torch.Tensor:
    """Summed log-probs of each label phrase (and its period): (B, K) float32."""
    b, lp = batch["input_ids"].shape
    k, lc = table.ids.shape
    device = batch["input_ids"].device
    first, cache = prefix_pass(model, batch, states)
    cand, cmask = table.ids.to(device), table.mask.to(device)  # (K, Lc)
    total = first[:, cand[:, 0]]  # (B, K): log p(first phrase token | prefix)
    if lc > 1:
        cache.batch_repeat_interleave(k)  # rows become event-major: b*K + k
        ids = cand.repeat(b, 1)  # (B*K, Lc)
        attn = torch.cat([batch["attention_mask"].repeat_interleave(k, 0), cmask.repeat(b, 1)], dim=1)
        pos = (lp + torch.arange(lc, device=device)).expand(b * k, lc)
        xmask = batch["cross_attention_mask"][:, -1:].repeat_interleave(k, 0).expand(-1, lc, -1, -1)
        out = base_model(model)(input_ids=ids, attention_mask=attn, position_ids=pos, cross_attention_mask=xmask,
                                past_key_values=cache, use_cache=True)
        logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)  # (B*K, Lc-1, V)
        nxt = ids[:, 1:]
        tok = logp.gather(-1, nxt.unsqueeze(-1)).squeeze(-1) * cmask.repeat(b, 1)[:, 1:]
        total = total + tok.sum(-1).view(b, k)
    return total


@torch.no_grad()
def unshared_phrase_logprobs(model, enc: dict, tokens: list[list[int]]) -> list[float]:
    """The naive reference for one event (``enc`` from encode_prompt, B=1): a full forward per phrase,
    the image re-encoded each time, no cache. The study's one-at-a-time method; tests compare to it."""
    lp = enc["input_ids"].shape[1]
    out = []
    for ids in tokens:
        x = torch.cat([enc["input_ids"], torch.tensor([ids])], 1)
        xmask = enc["cross_attention_mask"]
        xmask = torch.cat([xmask, xmask[:, -1:].expand(-1, len(ids), -1, -1)], 1)
        logits = model(input_ids=x, attention_mask=torch.ones_like(x), cross_attention_mask=xmask,
                       pixel_values=enc["pixel_values"], aspect_ratio_ids=enc["aspect_ratio_ids"],
                       aspect_ratio_mask=enc["aspect_ratio_mask"]).logits[0]
        logp = torch.log_softmax(logits[lp - 1: -1].double(), -1)  # (len(ids), V)
        out.append(float(logp[torch.arange(len(ids)), torch.tensor(ids)].sum()))
    return out


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


class Teacher:
    """A loaded vision-language teacher (see :func:`nudistill.teacher.load_teacher`)."""

    def __init__(self, model, processor, spec: TeacherSpec, root: Path, base_dir: Path,
                 adapter_dir: Path | None = None, quantize: str | None = None, device: str = "cpu",
                 batch_size: int = 16):
        self.model, self.processor, self.spec = model, processor, spec
        self.root, self.base_dir, self.adapter_dir = Path(root), Path(base_dir), adapter_dir
        self.quantize, self.device, self.batch_size = quantize, device, batch_size
        self.tokenizer = processor.tokenizer
        self.prompt = build_prompt(processor)
        self.encode = PromptEncoder(processor, self.prompt, spec.view_size)
        self.table = phrase_table(self.tokenizer, spec.phrases())  # refuses colliding phrases
        self._digests: tuple[str, str] | None = None

    # ---- identity -------------------------------------------------------------------------------
    @property
    def temperature(self) -> float:
        return float(self.spec.temperature)

    @temperature.setter
    def temperature(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"temperature must be positive, got {value}")
        self.spec.temperature = float(value)

    @property
    def teacher_id(self) -> str:
        """Hash over weights, adapter, prompt, label phrases, temperature and quantization."""
        if self._digests is None:
            self._digests = weights_digests(self.base_dir, self.adapter_dir)
        return teacher_id(self.spec, self.prompt, self.quantize, self._digests)

    # ---- scoring --------------------------------------------------------------------------------
    def _chunks(self, views: np.ndarray):
        views = check_views(views)
        for start in range(0, len(views), self.batch_size):
            chunk = views[start: start + self.batch_size]
            batch = self.encode(chunk)
            batch = {k: v.to(self.device) for k, v in batch.items()}
            yield start, batch, vision_states(self.model, batch)

    def logprobs(self, views: np.ndarray) -> np.ndarray:
        """(B, 3) summed label-phrase log-probs, in CLASSES order, before temperature."""
        out = [phrase_logprobs(self.model, batch, states, self.table).cpu() for _, batch, states in self._chunks(views)]
        return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, len(CLASSES)), np.float32)

    def score(self, views: np.ndarray) -> np.ndarray:
        """(B, 3) float32 calibrated class probabilities, in CLASSES order."""
        return self.probs_from_logprobs(self.logprobs(views))

    def probs_from_logprobs(self, logprobs: np.ndarray) -> np.ndarray:
        """(B, 3) float32 softmax(logprobs / T), T the calibrated temperature."""
        return softmax(logprobs, self.temperature)

    # ---- rationales -----------------------------------------------------------------------------
    def rationales(self, views: np.ndarray, class_idx) -> list[str]:
        """Greedy text after "I classify the pixel maps as <phrase>." for each event's given class."""
        class_idx = np.asarray(class_idx, dtype=int).reshape(-1)
        texts: list[str] = []
        for start, batch, states in self._chunks(views):
            idx = class_idx[start: start + len(batch["input_ids"])]
            batch = {k: v.cpu() for k, v in batch.items()}
            texts += greedy_rationales(self.model, self.tokenizer, batch, states, self.table, idx,
                                       self.spec.max_new_tokens)
        return texts

    def label(self, views: np.ndarray, event_ids: list[str], policy: RationalePolicy) -> dict:
        """probs (B, 3) float32, rationale (str or None per event), concepts (list per event).

        One pass scores every event; rationales are generated only for the events the policy selects,
        after the label the teacher chose.
        """
        views = check_views(views)
        if len(event_ids) != len(views):
            raise ValueError(f"{len(event_ids)} event ids for {len(views)} events")
        probs = self.score(views)
        chosen = np.flatnonzero(policy.select(probs, list(event_ids)))
        rationale: list[str | None] = [None] * len(views)
        if len(chosen):
            for i, text in zip(chosen, self.rationales(views[chosen], probs[chosen].argmax(1))):
                rationale[i] = text
        concepts = [concepts_in_text(r) for r in rationale]
        return dict(probs=probs, rationale=rationale, concepts=concepts)

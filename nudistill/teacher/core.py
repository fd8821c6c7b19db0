"""The Teacher: soft class confidences, rationales and labels for batches of two-view events, and the
model passes behind them.

Views are (B, 2, H, W) uint8 numpy arrays (XZ, YZ) at any resolution. Work runs in chunks of
``batch_size`` events; each chunk encodes its images and prompt once.

Constrained scoring sums the log-probs of each full label phrase after the forced answer prefix. For B
events and K classes the expensive parts run once per event, not once per candidate: the vision tower and
the prompt. One forward runs the prompt with the K phrases packed behind it, an attention mask keeping
each phrase to the prompt and its own earlier tokens (:func:`phrase_inputs`); a phrase's last token is
left out, as it predicts nothing scored. The prompt's text before the first image (the physics context)
runs once per Teacher, not per event (:mod:`.prefix`): each batch starts from a copy of its keys and values.

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
from nudistill.pooling import pool_views
from nudistill.teacher.inputs import PhraseTable, PromptEncoder, build_prompt, check_views, phrase_table
from nudistill.teacher.prefix import PrefixCache, build_prefix_cache
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
def forward_after(net, inputs: dict, states: torch.Tensor, prefix: PrefixCache | None, **kwargs):
    """``net`` on full-length ``inputs`` (input_ids, attention_mask, cross_attention_mask, optionally
    position_ids) with the image tokens ``states`` and a new KV cache; with ``prefix``, which the inputs start
    with, only the tokens after it run, on a copy of its cache (positions and a 2-D attention mask stay
    full-length; a 4-D one keeps the rows of the tokens that run)."""
    if prefix is None:
        return net(**inputs, cross_attention_states=states, use_cache=True, **kwargs)
    ids, mask, p = inputs["input_ids"], inputs["attention_mask"], prefix.length
    pos = inputs.get("position_ids")
    if pos is None:
        pos = torch.arange(ids.shape[1], device=ids.device).expand(len(ids), -1)
    return net(input_ids=ids[:, p:], attention_mask=mask[:, :, p:] if mask.dim() == 4 else mask,
               position_ids=pos[:, p:], cross_attention_mask=inputs["cross_attention_mask"][:, p:],
               past_key_values=prefix.expand(len(ids)), cross_attention_states=states, use_cache=True, **kwargs)


def packed_phrases(table: PhraseTable) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every phrase's tokens but its last (which predicts nothing scored), one phrase after another: ids,
    phrase and place in it, each (Lq,); and (K, Lc) ``source``, the row of [the prompt's last token, the
    packed tokens] whose logits predict each phrase token."""
    ids: list[int] = []
    phrase: list[int] = []
    place: list[int] = []
    source = torch.zeros_like(table.ids)
    for k, tokens in enumerate(table.tokens):
        source[k, 1: len(tokens)] = torch.arange(len(ids) + 1, len(ids) + len(tokens))
        ids += tokens[:-1]
        phrase += [k] * (len(tokens) - 1)
        place += range(len(tokens) - 1)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(phrase), torch.tensor(place), source


def phrase_inputs(batch: dict, table: PhraseTable, dtype: torch.dtype) -> tuple[dict, torch.Tensor]:
    """Full-length inputs for the prompt followed by the packed phrases (:func:`packed_phrases`), and their
    ``source``. The additive (B, 1, L, L) attention mask lets a phrase token see the prompt and its own
    phrase's earlier tokens only; it sits at the position it would have right after the prompt, and sees
    the images as the prompt's last token does: each phrase is scored as if it ran alone after the prompt."""
    ids, attn, xmask = batch["input_ids"], batch["attention_mask"], batch["cross_attention_mask"]
    (b, lp), device = ids.shape, ids.device
    fed, phrase, place, source = (t.to(device) for t in packed_phrases(table))
    lq = len(fed)
    seen = torch.ones(lp + lq, lp + lq, dtype=torch.bool, device=device).tril()  # (L, L) causal
    seen[lp:, lp:] &= phrase[:, None] == phrase[None, :]
    if not bool(attn.all()):  # a padded prompt: (B, L, L), no token sees a pad
        seen = seen & torch.cat([attn.bool(), attn.new_ones(b, lq, dtype=torch.bool)], 1)[:, None]
    mask = torch.zeros(seen.shape, dtype=dtype, device=device).masked_fill_(~seen, torch.finfo(dtype).min)
    mask = mask.view(-1, 1, lp + lq, lp + lq).expand(b, -1, -1, -1)  # (B, 1, L, L)
    inputs = dict(input_ids=torch.cat([ids, fed.expand(b, -1)], 1), attention_mask=mask,
                  position_ids=torch.cat([torch.arange(lp, device=device), lp + place]).expand(b, -1),
                  cross_attention_mask=torch.cat([xmask, xmask[:, -1:].expand(-1, lq, -1, -1)], 1))
    return inputs, source


@torch.no_grad()
def phrase_logprobs(model, batch: dict, states: torch.Tensor, table: PhraseTable,
                    prefix: PrefixCache | None = None) -> torch.Tensor:
    """Summed log-probs of each label phrase (and its period): (B, K) float32, from one forward over the
    prompt (after the cached ``prefix`` when given) and every phrase behind it (:func:`phrase_inputs`)."""
    inputs, source = phrase_inputs(batch, table, states.dtype)
    lq = inputs["input_ids"].shape[1] - batch["input_ids"].shape[1]
    out = forward_after(base_model(model), inputs, states, prefix, logits_to_keep=lq + 1)
    logp = torch.log_softmax(out.logits.float(), dim=-1)  # (B, 1 + Lq, V): the prompt's last token, the phrases
    ids, mask = table.ids.to(logp.device), table.mask.to(logp.device)
    return (logp[:, source.to(logp.device), ids] * mask).sum(-1)  # (B, K, Lc) -> (B, K)


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


def answer_inputs(batch: dict, table: PhraseTable, class_idx: np.ndarray, pad_at: int = 0) -> dict:
    """Prompt + prefix + chosen phrase per event, padded to one width at column ``pad_at`` (0: left padding;
    a cached prefix's length: after it, so the prefix keeps its place), with position ids and cross-attention
    mask, on the batch's device."""
    ids, attn, xmask = batch["input_ids"], batch["attention_mask"], batch["cross_attention_mask"]
    lp, device = ids.shape[1], ids.device
    lengths = [lp + len(table.tokens[c]) for c in class_idx]
    width = max(lengths)
    out_ids = torch.zeros((len(lengths), width), dtype=ids.dtype, device=device)
    out_attn = torch.zeros((len(lengths), width), dtype=attn.dtype, device=device)
    out_x = torch.zeros((len(lengths), width, *xmask.shape[2:]), dtype=xmask.dtype, device=device)
    for i, (c, n) in enumerate(zip(class_idx, lengths)):
        phrase = torch.tensor(table.tokens[c], dtype=ids.dtype, device=device)
        rows = (torch.cat([ids[i], phrase]), torch.cat([attn[i], torch.ones_like(phrase, dtype=attn.dtype)]),
                torch.cat([xmask[i], xmask[i, -1:].expand(n - lp, *xmask.shape[2:])]))
        for out, row in zip((out_ids, out_attn, out_x), rows):
            out[i, :pad_at], out[i, pad_at + width - n:] = row[:pad_at], row[pad_at:]
    pos = (out_attn.cumsum(-1) - 1).clamp(min=0)
    return dict(input_ids=out_ids, attention_mask=out_attn, position_ids=pos, cross_attention_mask=out_x)


@torch.no_grad()
def greedy_rationales(model, tokenizer, batch: dict, states: torch.Tensor, table: PhraseTable,
                      class_idx: np.ndarray, max_new_tokens: int, prefix: PrefixCache | None = None) -> list[str]:
    """Greedy decoding after each event's label sentence, all events at once, KV cached."""
    net = base_model(model)
    inp = answer_inputs(batch, table, class_idx, pad_at=prefix.length if prefix is not None else 0)
    device = inp["input_ids"].device
    eos = torch.tensor(sorted({tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end_of_text|>")} - {None}),
                       device=device)
    out = forward_after(net, inp, states, prefix, logits_to_keep=1)
    cache, attn, pos = out.past_key_values, inp["attention_mask"], inp["position_ids"][:, -1:]
    xmask = inp["cross_attention_mask"][:, -1:]
    done = torch.zeros(len(class_idx), dtype=torch.bool, device=device)
    steps = []
    for _ in range(max_new_tokens):
        nxt = out.logits[:, -1].argmax(-1)  # (B,)
        done |= torch.isin(nxt, eos)
        steps.append(torch.where(done, -1, nxt))
        if bool(done.all()):
            break
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
        pos = pos + 1
        out = net(input_ids=nxt[:, None], attention_mask=attn, position_ids=pos, cross_attention_mask=xmask,
                  past_key_values=cache, use_cache=True)
    gen = torch.stack(steps, dim=1).cpu() if steps else torch.empty((len(class_idx), 0), dtype=torch.long)
    return [tokenizer.decode([t for t in row.tolist() if t >= 0], skip_special_tokens=True).strip() for row in gen]


class Teacher:
    """A loaded vision-language teacher (see :func:`nudistill.teacher.load_teacher`)."""

    def __init__(self, model, processor, spec: TeacherSpec, root: Path, base_dir: Path,
                 adapter_dir: Path | None = None, quantize: str | None = None, device: str = "cpu",
                 batch_size: int = 16, prefix_cache: bool = True):
        self.model, self.processor, self.spec = model, processor, spec
        self.root, self.base_dir, self.adapter_dir = Path(root), Path(base_dir), adapter_dir
        self.quantize, self.device, self.batch_size = quantize, device, batch_size
        self.tokenizer = processor.tokenizer
        self.prompt = build_prompt(processor)
        self.encode = PromptEncoder(processor, self.prompt, spec.view_size, prepared=True)  # _chunks prepares
        self.table = phrase_table(self.tokenizer, spec.phrases())  # refuses colliding phrases
        self.use_prefix_cache = prefix_cache
        """Run the prompt's text before the images once per Teacher (off: once per event, as a reference)."""
        self._prefix: PrefixCache | None = None
        self._prefix_checked = False
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
    @property
    def prefix(self) -> PrefixCache | None:
        """The prompt's cached text before the images, built and checked on first use (once per Teacher, so
        once per labelling actor); None when ``use_prefix_cache`` is off or the check refused it."""
        if not self.use_prefix_cache:
            return None
        if not self._prefix_checked:
            self._prefix = build_prefix_cache(base_model(self.model), self.encode, self.device, self.spec.view_size)
            self._prefix_checked = True
        return self._prefix

    def prepare(self, views: np.ndarray) -> np.ndarray:
        """What the teacher sees of (B, 2, H, W) uint8 views: pooled to its tile, cosmic muons cleared
        (:func:`nudistill.pooling.pool_views`). Pure numpy, no model: labelling does the same in a CPU stage
        ahead of the replicas (:func:`nudistill.label.actor.prepare`) and passes the result with ``prepared=True``."""
        return pool_views(check_views(views), self.spec.view_size)

    def _chunks(self, views: np.ndarray, prepared: bool = False):
        """Per chunk: its start, processor tensors on the device, image tokens, and the prefix cache if it applies."""
        views = check_views(views) if prepared else self.prepare(views)
        for start in range(0, len(views), self.batch_size):
            chunk = views[start: start + self.batch_size]
            batch = self.encode(chunk)
            batch = {k: v.to(self.device) for k, v in batch.items()}
            prefix = self.prefix
            usable = prefix if prefix is not None and prefix.covers(batch) else None
            yield start, batch, vision_states(self.model, batch), usable

    def logprobs(self, views: np.ndarray, prepared: bool = False) -> np.ndarray:
        """(B, 3) summed label-phrase log-probs, in CLASSES order, before temperature. ``prepared``: the views are
        what :meth:`prepare` returns (as in every method below)."""
        out = [phrase_logprobs(self.model, batch, states, self.table, prefix).cpu()
               for _, batch, states, prefix in self._chunks(views, prepared)]
        return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, len(CLASSES)), np.float32)

    def score(self, views: np.ndarray, prepared: bool = False) -> np.ndarray:
        """(B, 3) float32 calibrated class probabilities, in CLASSES order."""
        return self.probs_from_logprobs(self.logprobs(views, prepared))

    def probs_from_logprobs(self, logprobs: np.ndarray) -> np.ndarray:
        """(B, 3) float32 softmax(logprobs / T), T the calibrated temperature."""
        return softmax(logprobs, self.temperature)

    # ---- rationales -----------------------------------------------------------------------------
    def rationales(self, views: np.ndarray, class_idx, prepared: bool = False) -> list[str]:
        """Greedy text after "I classify the pixel maps as <phrase>." for each event's given class."""
        class_idx = np.asarray(class_idx, dtype=int).reshape(-1)
        texts: list[str] = []
        for start, batch, states, prefix in self._chunks(views, prepared):
            idx = class_idx[start: start + len(batch["input_ids"])]
            texts += greedy_rationales(self.model, self.tokenizer, batch, states, self.table, idx,
                                       self.spec.max_new_tokens, prefix)
        return texts

    def label(self, views: np.ndarray, event_ids: list[str], policy: RationalePolicy, prepared: bool = False) -> dict:
        """probs (B, 3) float32, rationale (str or None per event), concepts (list per event).

        One pass scores every event; rationales are generated only for the events the policy selects,
        after the label the teacher chose.
        """
        views = check_views(views) if prepared else self.prepare(views)
        if len(event_ids) != len(views):
            raise ValueError(f"{len(event_ids)} event ids for {len(views)} events")
        probs = self.score(views, prepared=True)
        chosen = np.flatnonzero(policy.select(probs, list(event_ids)))
        rationale: list[str | None] = [None] * len(views)
        if len(chosen):
            for i, text in zip(chosen, self.rationales(views[chosen], probs[chosen].argmax(1), prepared=True)):
                rationale[i] = text
        concepts = [concepts_in_text(r) for r in rationale]
        return dict(probs=probs, rationale=rationale, concepts=concepts)

"""What the teacher is shown and asked: the prompt, the label phrases and their token table, and the views
pooled and encoded for the processor.

The prompt is one user turn: the physics context, the XZ image, the YZ image, then the question
(:func:`messages`). Mllama takes several images per turn; a side-by-side composite of both views in one
tile learned far worse on the tiny teacher. There is no system turn: Llama 3.2 Vision's chat template
refuses one beside images. The context comes before the images because text before the first image sees
no image, so it is the same for every event and the decoder runs it once per teacher (:mod:`.prefix`).

Views arrive at the dataset's resolution (512² in the study) with a log-like range: a sparse track is
~40 ADC and one pixel wide, a shower saturates at 255. A plain bilinear resize to the tiny tile (128 px)
averages a one-pixel track over 4x4 pixels, dimming it to ~10 ADC, near the noise; max-pooling first
keeps it at full height (see ``TeacherSpec.view_size``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nudistill import CLASSES
from nudistill.errors import UserError
from nudistill.pooling import pool_views

PROMPT_VERSION = "lartpc-2view-v8"
"""Bump when any text below, the layout of the turn, or what the views look like on the way in changes: it
enters the teacher id. v3: views pass an isolated-hit filter before pooling (:func:`pool_views`). v4: the
context leads the user turn, before the images (it used to follow them), and text before the first image is
kept out of cross-attention as in Meta's reference (:mod:`.xattn`). v5: through-going cosmic muons are cleared
from the views (:func:`pool_views`). v6: the views are shown in charge colours (:func:`charge_rgb`), not grey. v7: a map lit densely by noise has
its floor raised (:func:`pool_views`). v8: the floor also rises where the lit pixels fall steeply over two
levels of its ladder (a readout threshold just under one; :data:`nudistill.detector.NOISE_FLOOR_DROP_TWO`)."""

CONTEXT = (
    "You read neutrino events in a liquid argon time projection chamber (LArTPC). "
    "Each event has two views of one interaction, XZ and YZ, with z along the beam; pixels are charge in ADC. "
    "Electron neutrino charged current: an electromagnetic shower starts at the vertex. "
    "Muon neutrino charged current: a long straight minimum-ionising muon track. "
    "Neutral current: no lepton, hadronic activity only, such as proton stubs with a Bragg peak, "
    "kinked pion tracks, or displaced photon showers from a neutral pion. "
    "The first image is the XZ view, the second the YZ view."
)
"""Physics context before the images: the detector, the two views and their order, the three classes and
what marks each. It is the same for every event, so its length costs once per teacher, not per event."""

QUESTION = "Classify the event and explain."
"""After the two images: the only text of the turn that runs through the decoder for every event."""

ANSWER_PREFIX = "I classify the pixel maps as"
"""Forced before every label phrase; the scored text is ``ANSWER_PREFIX + " " + phrase + "."``."""

DEFAULT_PHRASES: dict[str, str] = {
    "nue_cc": "electron neutrino charged current",
    "numu_cc": "muon neutrino charged current",
    "nc": "neutral current",
}
assert tuple(DEFAULT_PHRASES) == CLASSES


def messages() -> list[dict]:
    """Chat messages for one event: a user turn of context, XZ image, YZ image, question; no system turn."""
    content = [{"type": "text", "text": f"{CONTEXT}\n"}, {"type": "image"}, {"type": "image"},
               {"type": "text", "text": QUESTION}]
    return [{"role": "user", "content": content}]


def build_prompt(processor) -> str:
    """The prompt text up to the assistant's first word, rendered by the processor's chat template."""
    if getattr(processor, "chat_template", None):
        return processor.apply_chat_template(messages(), add_generation_prompt=True, tokenize=False)
    # A base checkpoint without a chat template: the plain Mllama format.
    image = getattr(processor, "image_token", "<|image|>")
    bos = processor.tokenizer.bos_token or ""
    return f"{bos}{CONTEXT}\n{image}{image}{QUESTION}\n"


def answer_head(phrase: str) -> str:
    """The forced answer up to and including the label: ``"I classify the pixel maps as <phrase>."``."""
    return f"{ANSWER_PREFIX} {phrase}."


def answer_text(phrase: str, rationale: str | None) -> str:
    """The fine-tuning target after the prompt: label sentence, then the rationale when there is one."""
    head = answer_head(phrase)
    return f"{head} {rationale.strip()}" if rationale and rationale.strip() else head


def check_views(views: np.ndarray) -> np.ndarray:
    """Validate a (B, 2, H, W) uint8 array of XZ, YZ views."""
    views = np.asarray(views)
    if views.ndim != 4 or views.shape[1] != 2 or views.dtype != np.uint8:
        raise UserError(f"views must be a (B, 2, H, W) uint8 array, got {views.dtype} {views.shape}")
    return views


CHARGE_GAMMA = 3.0
"""Exponent of the heavy-ionisation channel of :func:`charge_rgb`."""


def charge_rgb(views: np.ndarray) -> np.ndarray:
    """(B, 2, H, W) uint8 ADC -> (B, 2, H, W, 3) uint8: each view in three transfer curves of its charge, as an
    event display's colour scale shows it. R: linear (ADC); G: logarithmic, log1p(ADC) / log 256 (faint
    deposits and MIP tracks as bright as showers); B: (ADC / 255) ** CHARGE_GAMMA (only heavily ionising
    charge: a Bragg peak, a shower core).

    Why: a vision transformer's patch embedding is linear in the pixel values, so from a grey map it cannot
    tell one saturated pixel from three at a third of it; a proton's Bragg peak is such a pixel. The per-pixel
    curves give it that nonlinearity before the patches. On the demo's test events, a logistic regression on
    the counts of pixels per ADC band ranks protons at 0.997 against truth; the grey-map teacher's tower, 0.71.
    """
    return _CHARGE_LUT[np.asarray(views, np.uint8)]


_ADC = np.arange(256, dtype=np.float32)
_CHARGE_LUT = np.rint(np.stack([_ADC, np.log1p(_ADC) * (255.0 / np.log(256.0)),
                                255.0 * (_ADC / 255.0) ** CHARGE_GAMMA], -1)).astype(np.uint8)
"""(256, 3): the colour of each ADC count, looked up per pixel on the scoring path."""


def to_images(views: np.ndarray) -> list[list]:
    """Per event, [XZ, YZ] as Pillow RGB images in charge colours (:func:`charge_rgb`)."""
    from PIL import Image

    rgb = charge_rgb(views)
    return [[Image.fromarray(ev[0], "RGB"), Image.fromarray(ev[1], "RGB")] for ev in rgb]


def encode_prompt(processor, prompt: str, views: np.ndarray, view_size: int | None, prepared: bool = False) -> dict:
    """Processor tensors for ``prompt + ANSWER_PREFIX`` and both views of each event (``prepared``: views as
    :func:`pool_views` returns them, used as given).

    The prompt is the same for every event, so no padding: input_ids (B, Lp); pixel_values
    (B, 2, tiles, 3, S, S); cross_attention_mask (B, Lp, 2, tiles). add_special_tokens=False because
    the chat template already starts with BOS.
    """
    views = check_views(views)
    return _processor_encode(processor, prompt, views if prepared else pool_views(views, view_size))


class PromptEncoder:
    """:func:`encode_prompt` for a fixed prompt, without the processor's per-event overheads.

    The prompt is the same for every event, so its tokens and cross-attention mask are computed once and
    repeated. When the views arrive at the image processor's tile size (the tiny teacher after
    :func:`pool_views`), pixel values are the rescaled, normalised charge colours (:func:`charge_rgb`),
    computed in one vectorised step. That shortcut is checked against the processor on the first events of
    each view shape, and the processor is used whenever the two differ (e.g. Llama 3.2 Vision's 560 px
    tiles on 512 px views, which the processor resizes).
    """

    def __init__(self, processor, prompt: str, view_size: int | None, prepared: bool = False):
        """``prepared``: the views arrive as :func:`pool_views` returns them (a fine-tune's loaded events), so
        they are not pooled and cleared again on every step."""
        self.processor, self.prompt, self.view_size, self.prepared = processor, prompt, view_size, prepared
        self._templates: dict[tuple[int, int], dict] = {}  # per view shape: one event's processor output
        self._fast_for: dict[tuple[int, int], bool] = {}

    def __call__(self, views: np.ndarray) -> dict:
        views = check_views(views) if self.prepared else pool_views(check_views(views), self.view_size)
        shape = views.shape[2:]
        if shape not in self._fast_for:
            self._fast_for[shape] = self._fast_matches(views[:2])
        if not self._fast_for[shape]:
            return _processor_encode(self.processor, self.prompt, views)
        return self._fast(views)

    def _fast(self, views: np.ndarray) -> dict:
        import torch

        ip, b, template = self.processor.image_processor, len(views), self._templates[views.shape[2:]]
        scale = float(ip.rescale_factor) if ip.do_rescale else 1.0
        mean = torch.tensor(ip.image_mean if ip.do_normalize else [0.0] * 3, dtype=torch.float32)
        std = torch.tensor(ip.image_std if ip.do_normalize else [1.0] * 3, dtype=torch.float32)
        x = torch.from_numpy(charge_rgb(views)).to(torch.float32).mul_(scale).permute(0, 1, 4, 2, 3)  # (B, 2, 3, S, S)
        px = (x[:, :, None] - mean.view(1, 1, 1, 3, 1, 1)) / std.view(1, 1, 1, 3, 1, 1)
        out = {k: v.expand(b, *v.shape[1:]).clone() for k, v in template.items() if k != "pixel_values"}
        out["pixel_values"] = px.contiguous()  # (B, 2 views, 1 tile, 3, S, S)
        return out

    def _fast_matches(self, probe: np.ndarray) -> bool:
        ref = _processor_encode(self.processor, self.prompt, probe)
        self._templates[probe.shape[2:]] = {k: v[:1] for k, v in ref.items()}
        ip = self.processor.image_processor
        if not all(hasattr(ip, a) for a in ("rescale_factor", "do_rescale", "image_mean", "image_std", "do_normalize")):
            return False
        fast = self._fast(probe)
        return all(fast[k].shape == ref[k].shape and bool((fast[k].double() - ref[k].double()).abs().max() <= 1e-6)
                   for k in ref)


def _processor_encode(processor, prompt: str, views: np.ndarray) -> dict:
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

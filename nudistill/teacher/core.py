"""The Teacher: soft class confidences, rationales and labels for batches of two-view events.

Views are (B, 2, H, W) uint8 numpy arrays (XZ, YZ) at any resolution. Work runs in chunks of
``batch_size`` events; each chunk encodes its images and prompt once (scoring.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nudistill import CLASSES
from nudistill.concepts import concepts_in_text
from nudistill.teacher import teacher_id as tid
from nudistill.teacher.inputs import PromptEncoder, check_views, phrase_table
from nudistill.teacher.prompt import PROMPT_VERSION, build_prompt
from nudistill.teacher.rationale import RationalePolicy, greedy_rationales
from nudistill.teacher.scoring import phrase_logprobs, temperature_softmax, vision_states
from nudistill.teacher.spec import TeacherSpec


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
            self._digests = (tid.weights_digest(self.base_dir), tid.weights_digest(self.adapter_dir))
        return tid.teacher_id(self._digests[0], self._digests[1], f"{PROMPT_VERSION}\n{self.prompt}",
                              self.spec.phrases(), self.temperature, self.quantize)

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
        return temperature_softmax(torch.as_tensor(logprobs), self.temperature).numpy()

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

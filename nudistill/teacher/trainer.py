"""One fine-tuning run's model, optimiser and batches (driven by finetune.py): build, step, checkpoint, save;
and the vision warm-up a from-scratch tiny teacher needs first.

Vision warm-up: a real Mllama starts from a pretrained vision encoder. The tiny one starts from random
weights, and its image features then differ between events by ~7% of their size (sparse pixel maps are
mostly empty patches): the text decoder, which at first attends about uniformly over the image tokens,
sees almost the same thing for every event and learns the text alone. A short warm-up trains the vision
tower, through a throw-away linear head on the *mean* of its output tokens (what uniform cross-attention
sees), to predict the class and the concepts of each event. The model stays a MllamaForConditionalGeneration
with its own weights and files (its cross-attention layers row-masked as in Meta's reference, :mod:`.xattn`,
as for scoring).
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from nudistill import CLASSES, CONCEPTS
from nudistill.errors import UserError
from nudistill.events import concepts_to_multi_hot
from nudistill.log import progress
from nudistill.teacher.core import Teacher, base_model
from nudistill.teacher.data import Labelled
from nudistill.teacher.inputs import PromptEncoder, build_prompt, phrase_table, to_images
from nudistill.teacher.spec import TeacherSpec

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "fc1", "fc2"]
"""Attention and MLP projections of the Mllama vision encoder (fc1/fc2) and text decoder."""


class Trainer:
    """Model (full, LoRA or QLoRA), AdamW + warm-up/cosine schedule, and the answer-only loss."""

    def __init__(self, cfg, model, processor, spec: TeacherSpec, base_dir: Path, device: str):
        self.cfg, self.model, self.processor, self.spec = cfg, model, processor, spec
        self.base_dir, self.device = base_dir, device
        self.tokenizer = processor.tokenizer
        self.prompt = build_prompt(processor)
        self.encode = PromptEncoder(processor, self.prompt, spec.view_size, prepared=True)  # data.py pooled them
        self.table = phrase_table(self.tokenizer, spec.phrases())
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optim = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = None

    @classmethod
    def build(cls, cfg, device: str) -> Trainer:
        from nudistill.teacher.loading import load_model, load_processor, resolve_dir

        base_dir = resolve_dir(cfg.base)
        spec = TeacherSpec.load(base_dir)
        if spec.base or spec.adapter:
            raise UserError(f"--base {cfg.base} is an adapter teacher; fine-tune from a full model directory")
        torch.manual_seed(cfg.seed)
        model = load_model(base_dir, "4bit" if cfg.mode == "qlora" else None, False, device)
        if cfg.mode == "full":
            model.requires_grad_(True)
        else:
            model = _with_lora(model, cfg)
        model.train()
        return cls(cfg, model, load_processor(base_dir, False), spec, base_dir, device)

    def schedule(self, total: int) -> None:
        """Linear warm-up, then cosine decay to 10% of the peak over ``total`` steps."""
        warm = min(self.cfg.warmup, max(1, total // 10))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.1 + 0.45 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        self.sched = torch.optim.lr_scheduler.LambdaLR(self.optim, factor)

    # ---- batches and loss -----------------------------------------------------------------------
    def answer_ids(self, y: int, rationale: str | None) -> list[int]:
        ids = list(self.table.tokens[y])
        if self.cfg.rationale and rationale:
            ids += self.tokenizer(" " + rationale.strip(), add_special_tokens=False)["input_ids"]
        return ids + [self.tokenizer.eos_token_id]

    def batch(self, data: Labelled) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """Model inputs (prompt + answers, right padded), answer ids (B, La) and their mask."""
        enc = self.encode(data.views)
        answers = [self.answer_ids(int(y), r) for y, r in zip(data.y, data.rationale)]
        width = max(len(a) for a in answers)
        ans = torch.full((len(answers), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ans)
        for i, a in enumerate(answers):
            ans[i, : len(a)], mask[i, : len(a)] = torch.tensor(a), 1
        xmask = enc["cross_attention_mask"]
        inputs = dict(input_ids=torch.cat([enc["input_ids"], ans], 1),
                      attention_mask=torch.cat([enc["attention_mask"], mask], 1),
                      cross_attention_mask=torch.cat([xmask, xmask[:, -1:].expand(-1, width, -1, -1)], 1),
                      pixel_values=enc["pixel_values"], aspect_ratio_ids=enc["aspect_ratio_ids"],
                      aspect_ratio_mask=enc["aspect_ratio_mask"])
        return {k: v.to(self.device) for k, v in inputs.items()}, ans.to(self.device), mask.to(self.device)

    def loss(self, data: Labelled) -> torch.Tensor:
        """Mean cross-entropy over answer tokens only (prompt and padding excluded)."""
        inputs, ans, mask = self.batch(data)
        width = ans.shape[1]
        logits = self.model(**inputs, use_cache=False, logits_to_keep=width + 1).logits[:, :width]  # (B, La, V)
        nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), ans, reduction="none")
        return (nll * mask).sum() / mask.sum()

    def step(self, data: Labelled) -> float:
        self.model.train()
        loss = self.loss(data)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optim.step()
        self.sched.step()
        return float(loss.detach())

    # ---- evaluation view, checkpoints, output -------------------------------------------------------
    def as_teacher(self):
        """The model being trained, wrapped as a Teacher (eval mode) for mid-run evaluation."""
        self.model.eval()
        return Teacher(self.model, self.processor, replace(self.spec), root=self.base_dir, base_dir=self.base_dir,
                       quantize="4bit" if self.cfg.mode == "qlora" else None, device=self.device)

    def checkpoint(self, directory: Path, step: int, history: list[dict]) -> None:
        """Atomically save trainable weights, optimiser, schedule and history."""
        directory.mkdir(parents=True, exist_ok=True)
        trainable = {n: p.detach().cpu() for n, p in self.model.named_parameters() if p.requires_grad}
        state = dict(trainable=trainable, optim=self.optim.state_dict(), sched=self.sched.state_dict(), step=step,
                     history=history, fingerprint=self.cfg.fingerprint())
        tmp = directory / "state.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, directory / "state.pt")

    def resume(self, directory: Path) -> tuple[int, list[dict]]:
        """Continue from ``directory/state.pt`` if a run with the same settings left one; else step 0."""
        path = directory / "state.pt"
        if not path.is_file():
            return 0, []
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state["fingerprint"] != self.cfg.fingerprint():
            raise UserError(f"{directory} holds a checkpoint of a run with other settings; "
                            "remove it or choose another --out")
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state["trainable"].items():
                params[name].copy_(value)
        self.optim.load_state_dict(state["optim"])
        self.sched.load_state_dict(state["sched"])
        return int(state["step"]), list(state["history"])

    def clear_checkpoint(self, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)

    def save(self, out: Path) -> None:
        """Write a loadable teacher: full weights, or the adapter plus a teacher.json naming the base."""
        out.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out)
        self.processor.save_pretrained(out)
        spec = replace(self.spec, temperature=1.0)
        if self.cfg.mode != "full":
            local = Path(self.cfg.base).expanduser()
            spec = replace(spec, base=str(local.resolve()) if local.is_dir() else self.cfg.base,
                           quantize="4bit" if self.cfg.mode == "qlora" else None)
        spec.save(out)


def _with_lora(model, cfg):
    """peft LoRA on the attention and MLP projections of vision and text (base weights frozen)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=LORA_TARGETS, bias="none")
    return get_peft_model(model, lora)


IMAGE_PATH = ("vision_model", "multi_modal_projector", "cross_attn")
"""Parameter-name parts of the image path: the vision tower, its projector and the gated cross-attention."""


def _param_groups(model, cfg) -> list[dict]:
    """Trainable parameters, with the image path at ``lr * image_lr_scale``."""
    image, text = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (image if any(k in name for k in IMAGE_PATH) else text).append(p)
    groups = [dict(params=text, lr=cfg.lr)]
    if image:
        groups.append(dict(params=image, lr=cfg.lr * cfg.image_lr_scale))
    return groups


def vision_tokens(model, processor, views: np.ndarray) -> torch.Tensor:
    """Vision tower output for (B, 2, h, w) views as `pooling.pool_views` returns them: (B, 2 * tiles * patches, D)."""
    enc = processor.image_processor(images=to_images(views), return_tensors="pt")
    device = next(model.parameters()).device
    out = base_model(model).model.vision_model(pixel_values=enc["pixel_values"].to(device),
                                               aspect_ratio_ids=enc["aspect_ratio_ids"].to(device),
                                               aspect_ratio_mask=enc["aspect_ratio_mask"].to(device))
    h = out.last_hidden_state
    return h.reshape(h.shape[0], -1, h.shape[-1])


def warm_up_vision(model, processor, data: Labelled, steps: int, batch_size: int = 32,
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
        logits = head(vision_tokens(model, processor, data.views[idx]).mean(1).float().cpu())
        loss = torch.nn.functional.cross_entropy(logits[:, : len(CLASSES)], torch.from_numpy(data.y[idx])) + \
            torch.nn.functional.binary_cross_entropy_with_logits(logits[:, len(CLASSES):], concepts[idx])
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses

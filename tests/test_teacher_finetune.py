"""Teacher fine-tuning (full, LoRA, QLoRA), adapters, 4-bit loading, resume and the teacher CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nudistill.cli import main
from nudistill.errors import UserError
from nudistill.teacher import load_teacher
from nudistill.teacher.data import load_labelled
from nudistill.teacher.finetune import FinetuneConfig, run_finetune
from nudistill.teacher.trainer import Trainer
from nudistill.teacher.tiny import TinyConfig, build_tiny_teacher

pytestmark = pytest.mark.slow

RATIONALES = ["One long straight track reads as a muon; a short dense stub at the vertex is a proton.",
              "An electromagnetic shower starts right at the vertex; no lepton, a photon shower."]


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return build_tiny_teacher(tmp_path_factory.mktemp("tiny_base"), TinyConfig(seed=1), rationales=RATIONALES)


def fixed_batch_loss(trainer: Trainer, data, n: int = 8) -> float:
    with torch.no_grad():
        trainer.model.train()
        return float(trainer.loss(data.take(range(n))))


def train_and_measure(base_dir, sim_dir, out, mode: str, steps: int, lr: float) -> tuple[float, float]:
    """Loss on a fixed batch before and after ``steps`` optimiser steps."""
    cfg = FinetuneConfig(base=str(base_dir), events=str(sim_dir), out=str(out), mode=mode, max_steps=steps,
                         batch_size=8, lr=lr, warmup=1, limit=64)
    trainer = Trainer.build(cfg, "cpu")
    trainer.schedule(steps)
    data = load_labelled(sim_dir, limit=64, view_size=trainer.spec.view_size)
    before = fixed_batch_loss(trainer, data)
    for s in range(steps):
        trainer.step(data.take(range(8 * (s % 4), 8 * (s % 4) + 8)))
    return before, fixed_batch_loss(trainer, data)


def test_full_finetune_lowers_loss(base_dir, sim_dir, tmp_path):
    before, after = train_and_measure(base_dir, sim_dir, tmp_path / "full", "full", steps=8, lr=2e-3)
    assert after < before - 0.5


def test_qlora_steps_lower_loss(base_dir, sim_dir, tmp_path):
    before, after = train_and_measure(base_dir, sim_dir, tmp_path / "qlora", "qlora", steps=6, lr=3e-3)
    assert after < before


def test_lora_adapter_round_trip(base_dir, sim_dir, tmp_path):
    out = tmp_path / "lora"
    result = run_finetune(FinetuneConfig(base=str(base_dir), events=str(sim_dir), out=str(out), mode="lora",
                                         max_steps=3, batch_size=4, lr=5e-3, warmup=1, limit=24))
    assert result.steps == 3 and (out / "adapter_config.json").is_file()
    assert json.loads((out / "teacher.json").read_text())["base"] == str(base_dir.resolve())
    views = load_labelled(sim_dir, limit=3).views
    a = load_teacher(out, device="cpu")
    b = load_teacher(base_dir, adapter=out, device="cpu")
    merged = load_teacher(out, merge_adapter=True, device="cpu")
    np.testing.assert_array_equal(a.score(views), b.score(views))
    np.testing.assert_array_equal(a.score(views), load_teacher(out, device="cpu").score(views))
    np.testing.assert_allclose(merged.logprobs(views), a.logprobs(views), atol=1e-4)
    plain = load_teacher(base_dir, device="cpu")
    assert not np.allclose(plain.logprobs(views), a.logprobs(views))
    assert len({plain.teacher_id, a.teacher_id}) == 2


def test_finetune_on_two_sets_sharing_event_ids(base_dir, sim_dir, tmp_path):
    """The same events under a second readout: each set is checked on its own, so repeated ids are not refused."""
    result = run_finetune(FinetuneConfig(base=str(base_dir), events=str(sim_dir), more_events=[str(sim_dir)],
                                         out=str(tmp_path / "two"), mode="full", max_steps=1, batch_size=4, limit=6))
    assert result.events == 12 and result.steps == 1
    saved = json.loads((tmp_path / "two" / "finetune_config.json").read_text())
    assert saved["more_events"] == [str(sim_dir)]


def test_4bit_loads_and_scores_close_to_fp32(base_dir, sim_dir):
    views = load_labelled(sim_dir, limit=6).views
    fp32 = load_teacher(base_dir, device="cpu")
    q4 = load_teacher(base_dir, quantize="4bit", device="cpu")
    assert "Linear4bit" in type(q4.model.model.language_model.layers[0].self_attn.q_proj).__name__
    assert type(q4.model.model.vision_model.transformer.layers[0].self_attn.q_proj).__name__ == "Linear"
    # Spread the probabilities first: a random model is near one-hot, which would hide any difference.
    lp = fp32.logprobs(views)
    for t in (fp32, q4):
        t.temperature = float(np.std(lp - lp.mean(1, keepdims=True))) + 1e-3
    p32, p4 = fp32.score(views), q4.score(views)
    assert p32.max() < 0.99
    assert np.abs(p32 - p4).max() < 0.05
    assert q4.teacher_id != fp32.teacher_id


def test_finetune_resumes_after_interruption(base_dir, sim_dir, tmp_path):
    def cfg(out):
        return FinetuneConfig(base=str(base_dir), events=str(sim_dir), out=str(out), mode="full", max_steps=4,
                              batch_size=4, lr=1e-3, warmup=1, limit=16, checkpoint_every=2)

    straight = run_finetune(cfg(tmp_path / "a"))

    def interrupt(teacher):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_finetune(cfg(tmp_path / "b"), eval_fn=interrupt, eval_every=3)
    assert (tmp_path / "b" / "checkpoint" / "state.pt").is_file()
    resumed = run_finetune(cfg(tmp_path / "b"))
    assert [h["step"] for h in resumed.history] == [1, 2, 3, 4]
    np.testing.assert_allclose([h["loss"] for h in resumed.history], [h["loss"] for h in straight.history], atol=1e-4)
    assert not (tmp_path / "b" / "checkpoint").exists()
    (tmp_path / "b" / "checkpoint").mkdir()
    torch.save(dict(fingerprint={"other": 1}), tmp_path / "b" / "checkpoint" / "state.pt")
    with pytest.raises(UserError, match="other settings"):
        run_finetune(cfg(tmp_path / "b"))


def test_cli_init_calibrate_eval(sim_dir, tmp_path, capsys):
    out = tmp_path / "t0"
    assert main(["teacher", "init", "--tiny", "--out", str(out)]) == 0
    assert main(["teacher", "calibrate", "--teacher", str(out), "--events", str(sim_dir), "--limit", "48"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-2])
    assert result["nll_after"] <= result["nll_before"] and result["ece_after"] < result["ece_before"]
    assert json.loads((out / "teacher.json").read_text())["temperature"] == pytest.approx(result["temperature_after"])
    assert main(["teacher", "eval", "--teacher", str(out), "--events", str(sim_dir), "--limit", "8",
                 "--rationales", "2"]) == 0
    evaluated = json.loads(capsys.readouterr().out.splitlines()[-1])  # after the resolved config's line
    assert 0 <= evaluated["accuracy"] <= 1 and "concept_f1" in evaluated
    assert main(["teacher", "calibrate", "--teacher", str(tmp_path / "none"), "--events", str(sim_dir)]) == 2

"""The tiny Mllama teacher: build, reload, scoring invariants, phrases, teacher id, rationale policy."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from nudistill import CLASSES
from nudistill.errors import UserError
from nudistill.pooling import max_pool
from nudistill.teacher import RationalePolicy, Teacher, TeacherSpec, load_teacher
from nudistill.teacher.core import unshared_phrase_logprobs
from nudistill.teacher.inputs import ANSWER_PREFIX, encode_prompt, phrase_table
from nudistill.teacher.tiny import TinyConfig, build_tiny_teacher

RATIONALES = [
    "One long, thin, straight track reads as a muon; a short dense stub at the vertex is a proton.",
    "An electromagnetic shower starts right at the vertex and branches downstream.",
    "No lepton: a photon shower starts a few centimetres from the vertex, typical of a pi0.",
]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return build_tiny_teacher(tmp_path_factory.mktemp("tiny_teacher"), TinyConfig(seed=0), rationales=RATIONALES)


@pytest.fixture(scope="session")
def teacher(tiny_dir):
    return load_teacher(tiny_dir, device="cpu")


def random_views(n: int, h: int = 96, w: int = 96, seed: int = 0) -> np.ndarray:
    """(n, 2, h, w) uint8: sparse hits on an empty map, like the detector's."""
    rng = np.random.default_rng(seed)
    views = np.zeros((n, 2, h, w), np.uint8)
    mask = rng.random(views.shape) < 0.05
    views[mask] = rng.integers(20, 256, mask.sum())
    return views


def with_spec(tiny_dir, tmp_path, **changes):
    """A copy of the tiny teacher directory with teacher.json changed."""
    d = tmp_path / "copy"
    shutil.copytree(tiny_dir, d)
    spec = json.loads((d / "teacher.json").read_text())
    spec.update(changes)
    (d / "teacher.json").write_text(json.dumps(spec))
    return d


def test_auto_classes_reload_offline(tiny_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor, MllamaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(tiny_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir)
    assert isinstance(model, MllamaForConditionalGeneration)
    assert type(processor.image_processor).__name__ == "MllamaImageProcessorPil"
    gates = [p for n, p in model.named_parameters() if n.endswith("cross_attn_attn_gate")]
    assert gates and all(float(g.detach().abs().min()) > 0 for g in gates)  # opened, or the text never sees the image
    assert processor.tokenizer.convert_tokens_to_ids("<|image|>") == model.config.image_token_index


def test_save_load_round_trip(tiny_dir, teacher, tmp_path):
    views = random_views(3)
    teacher.model.save_pretrained(tmp_path)
    teacher.processor.save_pretrained(tmp_path)
    teacher.spec.save(tmp_path)
    again = load_teacher(tmp_path, device="cpu")
    np.testing.assert_allclose(again.score(views), teacher.score(views), atol=1e-6)
    assert again.teacher_id == teacher.teacher_id


@pytest.mark.parametrize("shape", [(64, 64), (80, 120), (512, 512)])
def test_probs_sum_to_one(teacher, shape):
    probs = teacher.score(random_views(4, *shape))
    assert probs.shape == (4, len(CLASSES)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs >= 0).all()


def test_batched_equals_one_by_one(teacher):
    views = random_views(5, seed=1)
    batched = teacher.logprobs(views)
    single = np.concatenate([teacher.logprobs(views[i: i + 1]) for i in range(len(views))])
    np.testing.assert_allclose(batched, single, atol=1e-4)


def reference_logprobs(teacher: Teacher, views: np.ndarray) -> np.ndarray:
    """Naive scoring: one full forward per (event, phrase), images re-encoded every time, no cache."""
    return np.array([unshared_phrase_logprobs(teacher.model, encode_prompt(
        teacher.processor, teacher.prompt, views[i: i + 1], teacher.spec.view_size), teacher.table.tokens)
        for i in range(len(views))])


def test_phrases_sharing_first_tokens_scored_in_full(tiny_dir, tmp_path):
    phrases = {"nue_cc": "charged current electron", "numu_cc": "charged current muon", "nc": "charged current"}
    t = load_teacher(with_spec(tiny_dir, tmp_path, label_phrases=phrases), device="cpu")
    first = {tuple(ids[:2]) for ids in t.table.tokens}
    assert len(first) == 1  # all three share their first tokens; one is a prefix of the others
    views = random_views(2, seed=2)
    got = t.logprobs(views)
    np.testing.assert_allclose(got, reference_logprobs(t, views), atol=1e-4)
    assert len(np.unique(np.round(got[0], 5))) == 3


def test_default_phrases_match_reference(teacher):
    views = random_views(2, seed=3)
    np.testing.assert_allclose(teacher.logprobs(views), reference_logprobs(teacher, views), atol=1e-4)


def test_colliding_phrases_refused_at_load(tiny_dir, tmp_path):
    phrases = {"nue_cc": "neutral current", "numu_cc": "muon neutrino charged current", "nc": "neutral current"}
    with pytest.raises(UserError, match="tokenize identically"):
        load_teacher(with_spec(tiny_dir, tmp_path, label_phrases=phrases), device="cpu")


def test_phrase_table_checks_prefix_boundary(teacher):
    table = phrase_table(teacher.tokenizer, teacher.spec.phrases())
    joint = teacher.tokenizer(f"{ANSWER_PREFIX} {teacher.spec.phrases()[0]}.", add_special_tokens=False)["input_ids"]
    assert joint[-len(table.tokens[0]):] == table.tokens[0]


def test_teacher_id_follows_temperature_prompt_phrases(tiny_dir, teacher, tmp_path):
    again = load_teacher(tiny_dir, device="cpu")
    assert again.teacher_id == teacher.teacher_id and len(teacher.teacher_id) == 16
    base = again.teacher_id
    again.temperature = 2.0
    assert again.teacher_id != base
    again.temperature = teacher.temperature
    assert again.teacher_id == base
    again.prompt = again.prompt.replace("You read neutrino events", "You read events")
    assert again.prompt != teacher.prompt
    assert again.teacher_id != base
    other = load_teacher(with_spec(tiny_dir, tmp_path, label_phrases=dict(
        nue_cc="electron neutrino CC", numu_cc="muon neutrino CC", nc="neutral current")), device="cpu")
    assert other.teacher_id != base


def test_temperature_scales_probs(teacher):
    views = random_views(2, seed=4)
    lp = teacher.logprobs(views)
    hot = torch.softmax(torch.tensor(lp, dtype=torch.float64) / 7.0, -1).numpy()
    teacher_copy = load_teacher(teacher.root, device="cpu")
    teacher_copy.temperature = 7.0
    np.testing.assert_allclose(teacher_copy.score(views), hot, atol=1e-5)


def test_rationales_and_label(teacher):
    views = random_views(4, seed=5)
    texts = teacher.rationales(views, [0, 1, 2, 0])
    assert len(texts) == 4 and all(isinstance(t, str) for t in texts)
    assert texts == teacher.rationales(views, [0, 1, 2, 0])  # greedy: deterministic
    ids = [f"ev{i}" for i in range(4)]
    out = teacher.label(views, ids, RationalePolicy.parse("none"))
    assert out["rationale"] == [None] * 4 and out["concepts"] == [[]] * 4
    out = teacher.label(views, ids, RationalePolicy.parse("all"))
    assert all(isinstance(r, str) for r in out["rationale"]) and out["probs"].shape == (4, 3)


def test_prepared_views_label_as_raw_ones(teacher):
    """Labelling prepares views on CPU workers ahead of the replicas (``Teacher.prepare``); labels of prepared views
    equal those of raw ones, and ``prepared=True`` takes the views as given (a crossing muon stays in)."""
    size = 2 * teacher.spec.view_size
    views = random_views(3, size, size, seed=8)
    views[:, :, size // 3, :] = 60  # a muon crossing both views from border to border
    prepared = teacher.prepare(views)
    assert prepared.shape == (3, 2, teacher.spec.view_size, teacher.spec.view_size)
    ids, policy = ["a", "b", "c"], RationalePolicy.parse("all")
    raw, ready = teacher.label(views, ids, policy), teacher.label(prepared, ids, policy, prepared=True)
    np.testing.assert_allclose(raw["probs"], ready["probs"], atol=1e-6)
    assert raw["rationale"] == ready["rationale"]
    uncleared = max_pool(views, teacher.spec.view_size)
    assert (uncleared != prepared).any()  # the tagger cleared the muon
    cleared, kept = teacher.logprobs(prepared, prepared=True), teacher.logprobs(uncleared, prepared=True)
    np.testing.assert_allclose(teacher.logprobs(views), cleared, atol=1e-5)
    assert np.abs(kept - cleared).max() > 1e-3


def test_rationales_batched_equal_single(teacher):
    views = random_views(3, seed=6)
    batched = teacher.rationales(views, [0, 2, 1])
    single = [teacher.rationales(views[i: i + 1], [c])[0] for i, c in enumerate([0, 2, 1])]
    assert batched == single


def test_rationale_policy():
    assert RationalePolicy.parse("all").select(np.zeros((2, 3)), ["a", "b"]).all()
    assert not RationalePolicy.parse("none").select(np.zeros((2, 3)), ["a", "b"]).any()
    below = RationalePolicy.parse("below:0.8")
    assert below.select(np.array([[0.9, 0.05, 0.05], [0.5, 0.3, 0.2]]), ["a", "b"]).tolist() == [False, True]
    frac = RationalePolicy.parse("fraction:0.1")
    ids = [f"run1_ev{i}" for i in range(4000)]
    chosen = frac.select(np.zeros((4000, 3)), ids)
    assert 0.08 < chosen.mean() < 0.12
    assert (chosen == frac.select(np.zeros((4000, 3)), ids)).all()  # stable across calls and workers
    assert str(frac) == "fraction:0.1"
    for bad in ("some", "below:x", "fraction:1.5", "below"):
        with pytest.raises(UserError):
            RationalePolicy.parse(bad)


def test_pooling_keeps_one_pixel_tracks():
    views = np.zeros((1, 2, 512, 512), np.uint8)
    views[0, 0, 200, :] = 40  # a one-pixel-wide MIP track at ~40 ADC
    pooled = max_pool(views, 128)
    assert pooled.shape == (1, 2, 128, 128)
    assert pooled[0, 0, 50].min() == 40 and pooled[0, 1].max() == 0
    small = np.ones((1, 2, 64, 64), np.uint8)
    assert max_pool(small, 128) is small


@pytest.mark.parametrize("density", [0.005, 0.6])  # per lit pixel; over the whole map
@pytest.mark.parametrize("side,size", [(512, 128), (96, 32), (96, 40), (60, 32)])
def test_pooling_is_the_filter_then_a_max_pool(density, side, size):
    """Sparse views pool from their kept hits alone, others filter the map and max-pool it: the same bytes."""
    from nudistill.detector import suppress_isolated

    rng = np.random.default_rng(side + size)
    views = np.where(rng.random((3, 2, side, side)) < density, rng.integers(1, 256, (3, 2, side, side)), 0)
    views = views.astype(np.uint8)
    views[0, 0, 7, 3:side - 3] = 40  # a track, so some hits stay
    ref = torch.nn.functional.adaptive_max_pool2d(torch.from_numpy(suppress_isolated(views)).float(), size)
    assert np.array_equal(max_pool(views, size), ref.to(torch.uint8).numpy())


def test_bad_views_and_spec_rejected(teacher, tiny_dir, tmp_path):
    with pytest.raises(UserError, match="uint8"):
        teacher.score(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(UserError, match="must name exactly"):
        TeacherSpec(label_phrases={"nue_cc": "a"})
    with pytest.raises(UserError, match="unknown keys"):
        load_teacher(with_spec(tiny_dir, tmp_path, colour="blue"), device="cpu")
    with pytest.raises(UserError, match="not a directory"):
        load_teacher(tmp_path / "missing", device="cpu")


@pytest.mark.parametrize("side", [128, 256, 96])
def test_prompt_encoder_equals_processor(teacher, side):
    """The vectorised encoder gives the processor's tensors: on tile-sized views (256 max-pools to the
    128 px tile) by its shortcut, on 96 px views (which the processor resizes) by falling back to it."""
    from nudistill.teacher.inputs import PromptEncoder

    views = random_views(5, side, side, seed=side)
    enc = PromptEncoder(teacher.processor, teacher.prompt, teacher.spec.view_size)
    fast, ref = enc(views), encode_prompt(teacher.processor, teacher.prompt, views, teacher.spec.view_size)
    assert enc._fast_for == {(min(side, 128),) * 2: side >= 128}
    assert fast.keys() == ref.keys()
    for k in ref:
        assert fast[k].shape == ref[k].shape and fast[k].dtype == ref[k].dtype, k
        assert torch.allclose(fast[k].double(), ref[k].double(), atol=1e-6), k


def test_prompt_encoder_keeps_each_view_shape_apart(teacher):
    """One encoder fed 96 px (processor) then 128 px (shortcut) views still matches the processor."""
    from nudistill.teacher.inputs import PromptEncoder

    enc = PromptEncoder(teacher.processor, teacher.prompt, teacher.spec.view_size)
    for side in (96, 128, 96):
        views = random_views(3, side, side, seed=side)
        fast, ref = enc(views), encode_prompt(teacher.processor, teacher.prompt, views, teacher.spec.view_size)
        assert all(torch.equal(fast[k], ref[k]) or torch.allclose(fast[k].double(), ref[k].double(), atol=1e-6)
                   for k in ref)
    assert enc._fast_for == {(96, 96): False, (128, 128): True}


def test_prepared_views_are_not_prepared_again(teacher):
    """A fine-tune's loaded events are already pooled and cleared: its encoder must take them as they are."""
    from nudistill.teacher.inputs import PromptEncoder

    views = np.zeros((1, 2, 128, 128), np.uint8)
    views[0, :, 60, :] = 40  # border to border in both views over the same z: what the tagger clears
    raw = PromptEncoder(teacher.processor, teacher.prompt, teacher.spec.view_size)(views)["pixel_values"]
    kept = PromptEncoder(teacher.processor, teacher.prompt, teacher.spec.view_size, prepared=True)(views)
    assert raw.std() == 0 and kept["pixel_values"].std() > 0  # cleared to a blank map; kept as given

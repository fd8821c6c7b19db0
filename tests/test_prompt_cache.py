"""The prompt's layout through Llama 3.2 Vision's own chat template, the reference cross-attention row
masking, and the prompt prefix computed once per teacher: same scores and rationales as without it."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from nudistill.teacher import Teacher, TeacherSpec, load_teacher
from nudistill.teacher.inputs import CONTEXT, PROMPT_VERSION, QUESTION, PromptEncoder, build_prompt, messages
from nudistill.teacher.prefix import build_prefix_cache, event_independent_length, probe_views
from nudistill.teacher.spec import teacher_id
from nudistill.teacher.tiny import CHAT_TEMPLATE_FILE, TinyConfig, build_tiny_teacher

USER = "<|start_header_id|>user<|end_header_id|>\n\n"
ASSISTANT = "<|start_header_id|>assistant<|end_header_id|>\n\n"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return build_tiny_teacher(tmp_path_factory.mktemp("tiny_prefix"), TinyConfig(seed=3),
                              rationales=["A long straight track is a muon.", "A shower starts at the vertex."])


@pytest.fixture(scope="module")
def teacher(tiny_dir):
    return load_teacher(tiny_dir, device="cpu")


def sparse_views(n: int, side: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    views = np.where(rng.random((n, 2, side, side)) < 0.05, rng.integers(20, 256, (n, 2, side, side)), 0)
    return views.astype(np.uint8)


def images_first(teacher) -> dict:
    """Processor tensors of the probe events for the prompt with both images moved to its very start."""
    prompt = "<|image|><|image|>" + teacher.prompt.replace("<|image|>", "")
    return PromptEncoder(teacher.processor, prompt, None)(probe_views(64))


def test_real_template_builds_context_images_question(teacher):
    processor = teacher.processor
    assert processor.chat_template == CHAT_TEMPLATE_FILE.read_text()  # the saved teacher carries the real template
    assert teacher.prompt == f"<|begin_of_text|>{USER}{CONTEXT}\n<|image|><|image|>{QUESTION}<|eot_id|>{ASSISTANT}"
    assert "system" not in teacher.prompt and "Cutting Knowledge" not in teacher.prompt
    with pytest.raises(Exception, match="incompatible with system messages"):  # the real template's own refusal
        processor.apply_chat_template([{"role": "system", "content": CONTEXT}] + messages(), tokenize=False)
    ids = processor.tokenizer(teacher.prompt, add_special_tokens=False)["input_ids"]
    image = processor.tokenizer.convert_tokens_to_ids("<|image|>")
    first = ids.index(image)
    assert ids[first + 1] == image and ids.count(image) == 2 and first > 100  # the context precedes both images


def test_prefix_is_the_same_for_every_event(teacher):
    enc = teacher.encode(probe_views(64))
    image = teacher.model.config.image_token_index
    p, reason = event_independent_length(enc, image)
    assert reason is None and p == int((enc["input_ids"][0] == image).nonzero()[0])
    assert torch.equal(enc["input_ids"][0, :p], enc["input_ids"][1, :p])
    seen = enc["cross_attention_mask"].flatten(2).any(-1)  # (2, L): the row sees some image
    assert not seen[:, :p].any() and seen[:, p:].all()
    assert event_independent_length(images_first(teacher), image) == (0, "no text precedes the first image token")


def test_cached_prefix_scores_and_rationales_equal_uncached(teacher):
    views = sparse_views(5, seed=1)
    prefix = teacher.prefix
    assert prefix is not None and prefix.length > 100 and teacher.prefix is prefix  # built once per Teacher
    assert prefix.covers(teacher.encode(views))
    stored = [tuple(t.clone() for t in kv) for kv in prefix.kv if kv is not None]
    teacher.batch_size = 3  # a full chunk and a short one
    cached = teacher.logprobs(views), teacher.rationales(views, [0, 1, 2, 2, 0])
    teacher.use_prefix_cache = False
    try:
        uncached = teacher.logprobs(views), teacher.rationales(views, [0, 1, 2, 2, 0])
    finally:
        teacher.use_prefix_cache, teacher.batch_size = True, 16
    assert np.abs(cached[0] - uncached[0]).max() <= 1e-4
    assert cached[1] == uncached[1] and all(cached[1])
    assert all(torch.equal(a, b) for kv, old in zip([kv for kv in prefix.kv if kv is not None], stored)
               for a, b in zip(kv, old))  # forward calls extended copies, never the stored prefix


def test_without_reference_masking_the_cache_is_refused(tiny_dir, caplog):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    plain = AutoModelForImageTextToText.from_pretrained(tiny_dir).eval()  # transformers' own cross-attention
    t = Teacher(plain, AutoProcessor.from_pretrained(tiny_dir), TeacherSpec.load(tiny_dir), root=tiny_dir,
                base_dir=tiny_dir)
    with caplog.at_level(logging.WARNING, logger="nudistill"):
        probs = t.score(sparse_views(2))
    assert t.prefix is None and "not cached" in caplog.text and "depends on the event" in caplog.text
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_reference_masking_changes_only_rows_that_see_no_image(tiny_dir, teacher):
    """With every text row after an image, transformers' layer and the reference one agree exactly."""
    from transformers import AutoModelForImageTextToText

    plain = AutoModelForImageTextToText.from_pretrained(tiny_dir).eval()
    enc = images_first(teacher)
    with torch.no_grad():
        assert torch.allclose(plain(**enc).logits, teacher.model(**enc).logits, atol=1e-5)
    assert build_prefix_cache(plain, teacher.encode, "cpu", teacher.spec.view_size) is None


def test_prompt_version_enters_the_teacher_id(teacher, monkeypatch):
    assert PROMPT_VERSION == "lartpc-2view-v8"
    digests = ("w", "")
    now = teacher_id(teacher.spec, teacher.prompt, None, digests)
    monkeypatch.setattr("nudistill.teacher.spec.PROMPT_VERSION", "lartpc-2view-v4")
    assert teacher_id(teacher.spec, teacher.prompt, None, digests) != now
    assert build_prompt(teacher.processor) == teacher.prompt

"""A tiny Mllama (LLaMA 3.2 Vision architecture) teacher that builds on a CPU in a second.

`nudistill teacher init --tiny --out DIR` writes a directory that loads through ``AutoProcessor`` /
``AutoModelForImageTextToText`` exactly like ``meta-llama/Llama-3.2-11B-Vision-Instruct``: the real
model class with a small config, a byte-level BPE tokenizer trained here with ``tokenizers`` on the
prompt and rationale vocabulary, the Llama 3 special tokens the chat template needs, Llama 3.2 Vision
Instruct's own chat template (:data:`CHAT_TEMPLATE_FILE`), and a Pillow image processor with one small tile
per view (nudistill does not depend on torchvision).

Mllama's cross-attention gates start at zero (tanh(0)=0), so a from-scratch text decoder never sees
the image; the tiny build opens them (``GATE_INIT``). A pretrained checkpoint is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nudistill.concepts import CONCEPT_PHRASES
from nudistill.errors import UserError
from nudistill.teacher.inputs import ANSWER_PREFIX, CONTEXT, DEFAULT_PHRASES, QUESTION

# Llama 3 special tokens; <|image|> is added last so its id equals the text vocab size, as in the
# real checkpoint (it lies outside the output vocabulary: the scorer clamps it before gathering).
BOS, EOS, EOT, PAD = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>"
SPECIAL_TOKENS = (BOS, EOS, "<|start_header_id|>", "<|end_header_id|>", EOT, PAD, "<|python_tag|>")
IMAGE_TOKEN = "<|image|>"

CHAT_TEMPLATE_FILE = Path(__file__).with_name("chat_template_llama32_vision.jinja")
"""The chat template of meta-llama/Llama-3.2-11B-Vision-Instruct, unchanged below the comment that names
where it was copied from; the tiny processor carries it, so prompts are built as for the real model (which
refuses a system turn beside images)."""

GATE_INIT = 1.0
"""Initial value of the cross-attention gates of a from-scratch tiny model (tanh(1) = 0.76)."""


@dataclass
class TinyConfig:
    """Sizes of the tiny teacher (defaults: ~1M parameters, ~0.1 s to build)."""

    image_size: int = 128
    """Tile side in pixels; each view is one tile."""
    patch_size: int = 16
    """Vision patch side: (128/16)^2 = 64 patches per view."""
    vision_hidden: int = 64
    """Vision encoder width."""
    vision_layers: int = 2
    """Local vision encoder layers."""
    global_layers: int = 1
    """Global (gated) vision encoder layers."""
    text_hidden: int = 128
    """Text decoder width."""
    text_layers: int = 4
    """Text decoder layers, including the cross-attention ones."""
    cross_attention_layers: tuple[int, ...] = (1, 3)
    """Text layers that attend to the image."""
    vocab_size: int = 1024
    """Target size of the trained BPE vocabulary."""
    seed: int = 0
    """Seed for the random weights."""

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise UserError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        if any(not 0 <= i < self.text_layers for i in self.cross_attention_layers):
            raise UserError(f"cross-attention layers {self.cross_attention_layers} must lie in 0..{self.text_layers - 1}")


def tokenizer_corpus(extra: list[str] | None = None) -> list[str]:
    """Texts the tiny BPE is trained on: prompt, answers, concept phrases and (optionally) rationales."""
    texts = [CONTEXT, QUESTION, "system user assistant"]
    texts += [f"{ANSWER_PREFIX} {p}." for p in DEFAULT_PHRASES.values()]
    texts += [p for ps in CONCEPT_PHRASES.values() for p in ps]
    texts += list(extra or [])
    return texts


def sample_rationales(n: int = 120) -> list[str]:
    """Truth rationales from a few small simulated events, so the BPE learns their words."""
    from nudistill.simulate import simulate_table

    return [r for r in simulate_table(n, res=32, seed=12345).column("rationale").to_pylist() if r]


def build_tokenizer(cfg: TinyConfig, extra_texts: list[str] | None = None):
    """A Llama-3-style byte-level BPE fast tokenizer; <|image|> gets the last id."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = tokenizer_corpus(extra_texts)
    tok.train_from_iterator(corpus * 3, trainer=trainer)  # repeats let rare words reach min_frequency
    tok.add_special_tokens([IMAGE_TOKEN])
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                       special_tokens=[(BOS, bos_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOT, pad_token=PAD,
                                   extra_special_tokens={"image_token": IMAGE_TOKEN}, padding_side="left",
                                   model_input_names=["input_ids", "attention_mask"])
    return fast


def build_processor(cfg: TinyConfig, tokenizer):
    """MllamaProcessor with a Pillow image processor: one ``image_size`` tile per view."""
    from transformers.models.mllama import MllamaImageProcessorPil, MllamaProcessor

    # Mean 0 / std 1 instead of ImageNet's 0.5/0.5: an empty detector pixel must enter as 0, or the
    # constant background of ~97% empty patches swamps the few lit ones (image features then differed
    # between events by ~1% and a from-scratch tower did not learn in 400 steps).
    image_processor = MllamaImageProcessorPil(size={"height": cfg.image_size, "width": cfg.image_size},
                                              max_image_tiles=1, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0])
    return MllamaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                           chat_template=CHAT_TEMPLATE_FILE.read_text())


def build_model(cfg: TinyConfig, tokenizer):
    """A randomly initialised MllamaForConditionalGeneration with open cross-attention gates."""
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration

    image_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vision = dict(hidden_size=cfg.vision_hidden, num_hidden_layers=cfg.vision_layers,
                  num_global_layers=cfg.global_layers, attention_heads=4, intermediate_size=2 * cfg.vision_hidden,
                  vision_output_dim=2 * cfg.vision_hidden, intermediate_layers_indices=[cfg.vision_layers - 1],
                  image_size=cfg.image_size, patch_size=cfg.patch_size, max_num_tiles=1,
                  supported_aspect_ratios=[[1, 1]])
    text = dict(vocab_size=image_id, hidden_size=cfg.text_hidden, num_hidden_layers=cfg.text_layers,
                num_attention_heads=4, num_key_value_heads=2, intermediate_size=2 * cfg.text_hidden,
                cross_attention_layers=list(cfg.cross_attention_layers), max_position_embeddings=1024,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=image_id)
    torch.manual_seed(cfg.seed)
    model = MllamaForConditionalGeneration(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
                p.fill_(GATE_INIT)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def build_tiny_teacher(out: str | Path, cfg: TinyConfig | None = None, rationales: list[str] | None = None) -> Path:
    """Build and save a tiny teacher directory (HF files + teacher.json); return its path."""
    from nudistill.teacher.spec import TeacherSpec

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    cfg = cfg or TinyConfig()
    out = Path(out)
    if rationales is None:
        rationales = sample_rationales()
    tokenizer = build_tokenizer(cfg, rationales)
    processor = build_processor(cfg, tokenizer)
    model = build_model(cfg, tokenizer)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    TeacherSpec(view_size=cfg.image_size).save(out)
    return out

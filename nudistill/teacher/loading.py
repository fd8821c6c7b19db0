"""Load a teacher: AutoProcessor + AutoModelForImageTextToText from a directory or hub id, with
optional NF4 4-bit quantization (QLoRA recipe: double quantization, bf16 compute) and a peft adapter;
or only its id (:func:`teacher_id_of`), without loading weights.

The same path loads the tiny Mllama built here and ``meta-llama/Llama-3.2-11B-Vision-Instruct`` on a GPU.
Every model loaded here, for scoring and for fine-tuning alike, runs its cross-attention layers with the
reference row masking (:mod:`.xattn`).
bitsandbytes >= 0.49 also runs 4-bit layers on CPU, which is how the tests exercise it.
"""

from __future__ import annotations

from pathlib import Path

from nudistill.errors import UserError
from nudistill.log import get_logger
from nudistill.teacher.inputs import build_prompt
from nudistill.teacher.spec import TeacherSpec, teacher_id, weights_digests
from nudistill.teacher.xattn import use_reference_row_masking

log = get_logger("teacher")

# Kept in full precision under 4-bit: the vision tower, the projector and the output head (names match
# from the start of the module path, as llm_int8_skip_modules requires).
SKIP_4BIT = ["model.vision_model", "model.multi_modal_projector", "lm_head"]


def resolve_dir(path_or_hub_id: str | Path) -> Path:
    """A local directory for a path, or the cached snapshot of a hub id (honours HF_HUB_OFFLINE)."""
    path = Path(path_or_hub_id).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise UserError(f"teacher {path} is a file; give a teacher directory or a hub id")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(path_or_hub_id)))
    except Exception as exc:  # noqa: BLE001 - any hub failure reads the same to the user
        raise UserError(f"teacher {str(path_or_hub_id)!r} is not a directory here and could not be fetched "
                        f"from the hub ({type(exc).__name__})") from None


def default_device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def bnb_4bit_config():
    """NF4 + double quantization + bf16 compute (Dettmers et al. 2023), vision tower kept in full precision."""
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"4-bit loading needs bitsandbytes, which failed to import ({exc})") from None
    import torch

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16, llm_int8_skip_modules=SKIP_4BIT)


def load_model(directory: Path, quantize: str | None, trust_remote_code: bool, device: str):
    """The image-text-to-text model, optionally 4-bit, on ``device``."""
    import torch
    from transformers import AutoModelForImageTextToText
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs = dict(trust_remote_code=trust_remote_code, dtype=torch.float32 if device == "cpu" else torch.bfloat16)
    if quantize == "4bit":
        kwargs.update(quantization_config=bnb_4bit_config(), device_map={"": device})
    elif quantize is not None:
        raise UserError(f"quantize must be None or '4bit', got {quantize!r}")
    try:
        model = AutoModelForImageTextToText.from_pretrained(directory, **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a vision-language model from {directory}: {str(exc).splitlines()[0]}") from None
    except (RuntimeError, ImportError) as exc:
        if quantize:
            raise UserError(f"4-bit loading failed on {device} with this bitsandbytes "
                            f"({str(exc).splitlines()[0]}); load without quantize or use a GPU") from None
        raise
    use_reference_row_masking(model)
    return model if quantize else model.to(device)


def attach_adapter(model, adapter_dir: Path, merge: bool):
    """Wrap ``model`` with the peft adapter in ``adapter_dir``; fold it into the weights when ``merge``."""
    from peft import PeftModel

    if not (adapter_dir / "adapter_config.json").is_file():
        raise UserError(f"adapter {adapter_dir} has no adapter_config.json")
    model = PeftModel.from_pretrained(model, adapter_dir)
    return model.merge_and_unload() if merge else model


def load_processor(directory: Path, trust_remote_code: bool):
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(directory, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a processor from {directory}: {str(exc).splitlines()[0]}") from None


def _relative(root: Path, ref: str) -> Path | str:
    """A reference in teacher.json: a path relative to the teacher directory, an absolute path or a hub id."""
    candidate = root / ref
    return candidate if candidate.exists() else ref


def resolve_parts(path_or_hub_id: str | Path, quantize: str | None = None, adapter: str | Path | None = None):
    """``(root, spec, base_dir, adapter_dir, quantize)`` of a teacher, as teacher.json and the arguments say."""
    root = resolve_dir(path_or_hub_id)
    spec = TeacherSpec.load(root)
    base_dir = resolve_dir(_relative(root, spec.base)) if spec.base else root
    if adapter is not None:
        adapter_dir = resolve_dir(adapter)
    elif spec.adapter:
        adapter_dir = resolve_dir(_relative(root, spec.adapter))
    else:
        adapter_dir = root if spec.base else None
    return root, spec, base_dir, adapter_dir, (quantize if quantize is not None else spec.quantize)


def _load_processor_of(root: Path, base_dir: Path, trust_remote_code: bool):
    """The processor saved with the teacher (an adapter directory may carry one), else the base model's."""
    has_processor = any((root / f).is_file() for f in ("processor_config.json", "preprocessor_config.json"))
    return load_processor(root if has_processor else base_dir, trust_remote_code)


def teacher_id_of(path_or_hub_id: str | Path, quantize: str | None = None, adapter: str | Path | None = None,
                  trust_remote_code: bool = False) -> str:
    """The id that :func:`load_teacher` with the same arguments would report, without loading weights: what a
    Ray driver on a CPU head needs before labelling (the processor for the prompt, teacher.json, digests)."""
    root, spec, base_dir, adapter_dir, quantize = resolve_parts(path_or_hub_id, quantize, adapter)
    prompt = build_prompt(_load_processor_of(root, base_dir, trust_remote_code))
    return teacher_id(spec, prompt, quantize, weights_digests(base_dir, adapter_dir))


def load_teacher(path_or_hub_id: str | Path, quantize: str | None = None, adapter: str | Path | None = None,
                 merge_adapter: bool = False, trust_remote_code: bool = False, device: str | None = None):
    """Load a :class:`~nudistill.teacher.core.Teacher` from a teacher directory or hub id.

    ``teacher.json`` (if present) gives the label phrases and temperature; for an adapter-only
    directory it also names the base model. Colliding label phrases are refused here.
    """
    from nudistill.teacher.core import Teacher

    root, spec, base_dir, adapter_dir, quantize = resolve_parts(path_or_hub_id, quantize, adapter)
    device = default_device(device)
    processor = _load_processor_of(root, base_dir, trust_remote_code)
    model = load_model(base_dir, quantize, trust_remote_code, device)
    if adapter_dir is not None:
        model = attach_adapter(model, adapter_dir, merge_adapter)
    model.eval()
    log.info("teacher %s loaded (quantize=%s, adapter=%s, device=%s)", root, quantize, adapter_dir, device)
    return Teacher(model, processor, spec, root=root, base_dir=base_dir, adapter_dir=adapter_dir,
                   quantize=quantize, device=device)

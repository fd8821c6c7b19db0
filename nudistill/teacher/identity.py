"""The teacher id without loading weights: what a Ray driver on a CPU head needs before labelling.

Reads the processor (for the prompt), ``teacher.json`` and the weight-file digests only.
"""

from __future__ import annotations

from pathlib import Path


def teacher_id_of(path_or_hub_id: str | Path, quantize: str | None = None, adapter: str | Path | None = None,
                  trust_remote_code: bool = False) -> str:
    """The id that :func:`nudistill.teacher.load_teacher` with the same arguments would report."""
    from nudistill.teacher import teacher_id as tid
    from nudistill.teacher.loading import load_processor, resolve_parts
    from nudistill.teacher.prompt import PROMPT_VERSION, build_prompt

    root, spec, base_dir, adapter_dir, quantize = resolve_parts(path_or_hub_id, quantize, adapter)
    has_processor = any((root / f).is_file() for f in ("processor_config.json", "preprocessor_config.json"))
    processor = load_processor(root if has_processor else base_dir, trust_remote_code)
    return tid.teacher_id(tid.weights_digest(base_dir), tid.weights_digest(adapter_dir),
                          f"{PROMPT_VERSION}\n{build_prompt(processor)}", spec.phrases(), spec.temperature, quantize)

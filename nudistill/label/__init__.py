"""Labelling (docs/design.md, step 1): teacher replicas on Ray stream events into contract-2 labels.

    from nudistill.label import LabelConfig, run_label
    run_label(LabelConfig(events="events/", teacher="teacher/", out="labels/", replicas=2))
"""

from nudistill.label.config import LabelConfig


def run_label(cfg: LabelConfig) -> dict:
    """Label ``cfg.events`` into ``cfg.out`` on Ray (embedded local Ray when no cluster is set)."""
    from nudistill.label.pipeline import run_label as _run

    return _run(cfg)


__all__ = ["LabelConfig", "run_label"]

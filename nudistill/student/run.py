"""``run_distill(cfg)``: the one entry to a distillation run, for the CLI, the demo and the Ray job.

One worker trains in this process; more workers (or ``use_ray``) run the same loop under Ray Train. A Ray
job submitted to a cluster passes ``use_ray=True`` even for one worker, so training lands on a worker node
(a GPU) rather than on the CPU head that runs the job's driver.
"""

from __future__ import annotations

from nudistill.student.config import DistillConfig


def run_distill(cfg: DistillConfig, use_ray: bool = False) -> dict:
    """Train ``cfg.student`` into ``cfg.out`` (best checkpoint, last/, metrics.jsonl, distill_config.json), then
    calibrate the best checkpoint on ``cfg.calibration_events`` and fit its concept probe on ``cfg.concept_events``
    when given (rerunning a finished run only does these two)."""
    if use_ray or cfg.workers > 1:
        from nudistill.student.ray_train import train_with_ray

        result = train_with_ray(cfg)
    else:
        import torch

        from nudistill.student.train import train

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        result = train(cfg)
    if cfg.calibration_events:
        from nudistill.student.calibrate import calibrate_checkpoint

        result["calibration"] = calibrate_checkpoint(cfg.out, cfg.calibration_events, cfg.calibration,
                                                     batch_size=cfg.batch_size, skip_bad_files=cfg.skip_bad_files)
    if cfg.concept_events:
        from nudistill.student.concept_probe import fit_concept_probe

        result["concept_probe"] = fit_concept_probe(cfg.out, cfg.concept_events, cfg.concept_probe,
                                                    batch_size=cfg.batch_size, skip_bad_files=cfg.skip_bad_files,
                                                    seed=cfg.seed)
    return result

"""The Ray Train wrapper: the same :func:`train_loop` on N workers under ``TorchTrainer`` (DDP).

Only the Ray steps are added here, each marked ``# Ray:`` (STYLE 7, after Ray Train's fashion-MNIST
example): the worker's rank and device, ``prepare_model`` (DDP wrap), ``report`` with the epoch's
checkpoint, and resume from Ray's latest checkpoint. Data sharding by rank is in ``data.DistillDataset``,
and BN statistics / validation metrics are pooled over ranks in ``bn`` and ``evaluate_loop``.

Run (tiny CPU run, 2 workers)::

    nudistill distill --events /tmp/ev --out /tmp/st --alpha 0 --hard-labels truth --concept-source truth --workers 2
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from nudistill.log import get_logger
from nudistill.student.checkpoint import CONFIG, WEIGHTS
from nudistill.student.config import DistillConfig
from nudistill.student.train import Hooks, train_loop

log = get_logger("student.ray")


class RayHooks(Hooks):
    """Hooks of one Ray Train worker."""

    def __init__(self):
        import ray.train

        ctx = ray.train.get_context()  # Ray: this worker's place in the group
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()

    def device(self, cfg: DistillConfig) -> torch.device:
        import ray.train.torch

        return ray.train.torch.get_device()  # Ray: the device Ray assigned to this worker

    def resume_dir(self, out: Path) -> Path | None:
        import ray.train

        ckpt = ray.train.get_checkpoint()  # Ray: latest reported checkpoint of this run, if restored
        if ckpt is None:
            return super().resume_dir(out)
        return Path(ckpt.to_directory(tempfile.mkdtemp(prefix="nudistill-resume-")))

    def prepare_model(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)  # Ray: move to device, wrap in DistributedDataParallel

    def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
        import ray.train

        # Ray: every rank reports; rank 0 attaches the epoch's checkpoint (weights + optimiser state).
        ckpt = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=ckpt)


def _worker_loop(config: dict) -> None:
    torch.set_num_threads(max(1, config.pop("_threads_per_worker", 1)))
    train_loop(config, RayHooks())


def train_with_ray(config: dict | DistillConfig, storage: str | None = None) -> dict:
    """Train with ``config['workers']`` Ray Train workers (CPU, or one GPU each when available); return a summary."""
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from nudistill.ray_start import ensure_ray

    cfg = config if isinstance(config, DistillConfig) else DistillConfig(**config)
    out = Path(cfg.out).absolute()
    ensure_ray(num_cpus=max(cfg.workers, 2))  # Ray: RAY_ADDRESS's cluster (a submitted job), else an embedded one
    use_gpu = torch.cuda.is_available() and cfg.device != "cpu"
    loop_config = {**asdict(cfg), "out": str(out), "_threads_per_worker": cfg.threads or 1}
    trainer = TorchTrainer(
        _worker_loop,  # Ray: the same loop function as the single-process run
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=use_gpu, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name="distill", storage_path=storage or str(out / "ray_results"),
                             checkpoint_config=CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="val_loss",
                                                                checkpoint_score_order="min")),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    _materialise_best(result, out)
    return {"metrics": result.metrics, "checkpoint": result.checkpoint.path if result.checkpoint else None}


def _materialise_best(result, out: Path) -> None:
    """On a cluster rank 0 wrote ``out`` on its own node: bring the best checkpoint to the driver's ``out``."""
    if (out / WEIGHTS).is_file() or not result.best_checkpoints:
        return
    best, _ = min(result.best_checkpoints, key=lambda cm: cm[1].get("val_loss", float("inf")))
    with best.as_directory() as d:
        out.mkdir(parents=True, exist_ok=True)
        for name in (WEIGHTS, CONFIG):
            shutil.copy2(Path(d) / name, out / name)

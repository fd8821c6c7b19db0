"""The typed config of a distillation run (STYLE 2); written as ``distill_config.json`` next to the outputs."""

from __future__ import annotations

from dataclasses import dataclass, field

from nudistill.errors import UserError
from nudistill.student.calibrate import MODES as CALIBRATION_MODES
from nudistill.student.data import CONCEPT_SOURCES, HARD_SOURCES
from nudistill.student.registry import DEFAULT_STUDENT, list_students


@dataclass
class DistillConfig:
    """One student training run: data, targets, loss weights, optimisation and execution."""

    events: str
    """Events dataset (contract 1): file, directory, glob or URI."""
    out: str
    """Output directory: best checkpoint, last/ (resume state), metrics.jsonl, distill_config.json."""
    labels: str | None = None
    """Teacher labels (contract 2); None trains on truth alone."""
    student: str = DEFAULT_STUDENT
    """Registered student name."""
    student_overrides: dict = field(default_factory=dict)
    """Overrides of the student's registry config (height/width come from the events)."""
    epochs: int = 10
    """Epochs to train in total (a resumed run continues up to this count)."""
    batch_size: int = 32
    """Events per optimiser step per worker."""
    lr: float = 3e-3
    """Peak learning rate of AdamW (linear warm-up over the first epoch's 10%, then cosine to 0)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    ema: float = 0.0
    """Decay per step of an exponential moving average of the weights, which is validated and shipped instead of
    the last step's weights (0 = off; 0.98 averages over ~50 steps). On the default demo's labels 0.98 gave 0.896
    test accuracy against 0.904 without (README)."""
    alpha: float = 1.0
    """Weight of the soft-target KL term; 1 - alpha weighs the hard-label CE. Where the events carry truth (the
    simulation the teacher was fine-tuned on), ``--alpha 0.5 --hard-labels truth`` learns both targets, as the
    demo does (README, "Student loss"); real data has no truth, so the default distils the teacher alone."""
    temperature: float = 2.0
    """Distillation temperature T."""
    concept_weight: float = 2.0
    """beta: weight of the concept BCE (masked where no rationale); 2 lifted concept AUC over 0.5 at equal accuracy."""
    hard_labels: str = "teacher"
    """Hard labels for the CE term: teacher (argmax of probs) or truth (the events' label column)."""
    concept_source: str = "teacher"
    """Concept targets: teacher (from rationales), truth (the events' concepts column) or none."""
    val_fraction: float = 0.15
    """Fraction of events held out for validation, by a hash of event_id."""
    augment: bool = True
    """Shifts, a randomised detector readout (nudistill.shifts.DetectorAugment) and 2x degradation on training events."""
    detector_prob: float = 0.8
    """With --augment: the share of training events read out by a randomised detector (the rest keep their own)."""
    shuffle_buffer: int = 256
    """Events in the streaming shuffle buffer."""
    bn_recalibration_batches: int = 20
    """Augmented training batches used to recompute BatchNorm statistics before each validation (0 = off)."""
    seed: int = 0
    """Seed of initialisation, shuffling and augmentation."""
    device: str = "auto"
    """cpu, cuda or auto (cuda when available)."""
    loader_workers: int = -1
    """DataLoader worker processes (-1 = 2 on GPU, 0 on CPU)."""
    workers: int = 1
    """Ray Train workers; > 1 runs the same loop under TorchTrainer (DDP)."""
    max_steps_per_epoch: int = 0
    """Cap on optimiser steps per epoch (0 = one pass over the training split)."""
    resume: bool = True
    """Continue from out/last/ when it exists."""
    calibration_events: list[str] = field(default_factory=list)
    """Held-out datasets with truth labels (contract 1), comma-separated: after training, the shipped checkpoint's
    class logits get a temperature and a per-class bias fitted on them all (nudistill.student.calibrate), inside
    its ONNX export. A student learns its teacher's confidences: too soft for a model more accurate than its
    teacher, and leaning as the teacher leans. Give events read out as production will be, e.g. a nominal and a
    randomised-detector readout of the same events (the demo's calib and calib_randomized): on the default demo's
    labels that lifted test accuracy 0.876 -> 0.912 and 0.890 -> 0.910 (two seeds), worst shift -0.018. Empty:
    the student ships its teacher's confidences."""
    calibration: str = "bias"
    """With --calibration-events: bias (temperature and per-class bias; moves decisions to the calibration
    events' class mix) or temperature (one temperature; keeps every decision)."""
    concept_events: list[str] = field(default_factory=list)
    """Datasets with truth concepts (contract 1's ``concepts`` column), comma-separated: after training (and
    calibration), a concept probe is fitted on them over the student's frozen features and charge spectra and
    replaces its distilled concept head (nudistill.student.concept_probe); the class outputs do not change. The
    teacher's rationales name a proton in every event and a pion in almost none, so the distilled head ranks
    both at chance; on the default demo the probe ranks them at 0.99 and 0.78 (4,600 simulated events). Empty:
    the distilled concept head ships."""
    concept_probe: int = 32
    """With --concept-events: hidden units of the concept probe."""
    skip_bad_files: bool = False
    """Go on without input files that cannot be read as events; else refuse, naming them."""
    threads: int | None = None
    """torch CPU threads (None: torch's default in one process, 1 per Ray Train worker, its CPU reservation)."""

    CHOICES = {"student": tuple(list_students()), "hard_labels": HARD_SOURCES, "concept_source": CONCEPT_SOURCES,
               "device": ("auto", "cpu", "cuda"), "calibration": CALIBRATION_MODES}  # the CLI's choices (cli/dataclass_args.py)

    def __post_init__(self):
        if self.student not in list_students():
            raise UserError(f"--student: unknown student {self.student!r}; choose one of {', '.join(list_students())}")
        if not 0.0 <= self.alpha <= 1.0:
            raise UserError(f"--alpha must lie between 0 and 1, got {self.alpha}")
        for flag, value in (("--temperature", self.temperature), ("--lr", self.lr), ("--epochs", self.epochs),
                            ("--batch-size", self.batch_size), ("--workers", self.workers)):
            if not value > 0:
                raise UserError(f"{flag} must be positive, got {value}")
        if self.concept_weight < 0:
            raise UserError(f"--concept-weight must not be negative, got {self.concept_weight}")
        if self.hard_labels not in HARD_SOURCES:
            raise UserError(f"--hard-labels {self.hard_labels!r} must be one of {', '.join(HARD_SOURCES)}")
        if self.concept_source not in CONCEPT_SOURCES:
            raise UserError(f"--concept-source {self.concept_source!r} must be one of {', '.join(CONCEPT_SOURCES)}")
        if self.labels is None and (self.hard_labels == "teacher" or self.concept_source == "teacher"):
            # Without a teacher only truth can supervise: say so rather than train on nothing.
            raise UserError("without --labels only truth can supervise: pass --hard-labels truth --concept-source truth (or none)")
        if self.calibration not in CALIBRATION_MODES:
            raise UserError(f"--calibration {self.calibration!r} must be one of {', '.join(CALIBRATION_MODES)}")
        if not 0.0 <= self.ema < 1.0:
            raise UserError(f"--ema must lie in [0, 1), got {self.ema}")
        if not 0.0 <= self.detector_prob <= 1.0:
            raise UserError(f"--detector-prob must lie between 0 and 1, got {self.detector_prob}")
        if not 0.0 < self.val_fraction < 1.0:
            raise UserError(f"--val-fraction must lie strictly between 0 and 1, got {self.val_fraction}")
        if self.max_steps_per_epoch < 0:
            raise UserError(f"--max-steps-per-epoch must not be negative, got {self.max_steps_per_epoch}")
        if self.concept_probe < 1:
            raise UserError(f"--concept-probe must be at least 1, got {self.concept_probe}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be at least 1, got {self.threads}")

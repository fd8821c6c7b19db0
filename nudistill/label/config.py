"""LabelConfig: the settings of one labelling run (CLI `nudistill label` and ray_jobs/label_dataset.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nudistill.errors import UserError


@dataclass
class LabelConfig:
    """Label an events dataset with a teacher into a contract-2 directory."""

    events: str
    """Events: a Parquet file, directory, glob or URI (s3://, gs://)."""
    teacher: str
    """Teacher directory or hub id."""
    out: str
    """Output labels directory or URI; it belongs to one teacher id."""
    replicas: int = 1
    """Number of teacher actor replicas."""
    gpus_per_replica: float = 0.0
    """GPUs per replica (fractions allowed: 0.5 puts two replicas on one GPU)."""
    cpus_per_replica: float | None = None
    """CPUs reserved per replica; default 1 with GPUs, else a share that leaves one CPU for reading."""
    resources_per_replica: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each replica reserves, e.g. teacher_slot=1 to place one replica on each node
    that offers one (`ray start --resources`); a replica lost with its node restarts only where one is free."""
    batch_size: int = 16
    """Events per teacher call."""
    rationale: str = "fraction:0.1"
    """Rationale policy: all, none, below:<confidence> or fraction:<p>."""
    max_events: int | None = None
    """Label only the first N events of the dataset (in file order)."""
    quantize: str | None = None
    """Load the teacher's base model in '4bit' (NF4, QLoRA recipe)."""
    adapter: str | None = None
    """A peft adapter directory applied on top of the teacher."""
    max_attempts: int = 2
    """Process deaths tolerated on one batch, then on one row, before the row is quarantined."""
    no_progress_timeout_s: float = 900.0
    """Fail the run (resumable) when nothing progresses for this long."""
    skip_bad_files: bool = False
    """Label the other files when some cannot be read as events (summary.json lists them); else refuse."""
    fault_poison_event: str | None = None
    """Test-only fault hook: the actor process exits when it scores this event id. Off by default."""

    CHOICES = {"quantize": ("4bit",)}  # the CLI's choices (cli/dataclass_args.py)

    def __post_init__(self):
        if self.replicas < 1:
            raise UserError(f"--replicas must be at least 1, got {self.replicas}")
        if self.gpus_per_replica < 0:
            raise UserError(f"--gpus-per-replica must not be negative, got {self.gpus_per_replica}")
        if self.cpus_per_replica is not None and self.cpus_per_replica <= 0:
            raise UserError(f"--cpus-per-replica must be positive, got {self.cpus_per_replica}")
        for name, amount in self.resources_per_replica.items():
            if not isinstance(amount, (int, float)) or amount <= 0:
                raise UserError(f"--resources-per-replica {name}={amount!r}: the amount must be a positive number")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.max_events is not None and self.max_events < 1:
            raise UserError(f"--max-events must be at least 1, got {self.max_events}")
        if self.max_attempts < 1:
            raise UserError(f"--max-attempts must be at least 1, got {self.max_attempts}")
        if self.quantize not in (None, "4bit"):
            raise UserError(f"--quantize must be 4bit or absent, got {self.quantize!r}")
        from nudistill.teacher.core import RationalePolicy

        RationalePolicy.parse(self.rationale)  # raises a UserError naming the bad policy

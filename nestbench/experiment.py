"""What an experiment is, as plain typed objects: gin binds them, notebooks construct them directly.

Every hyper-parameter is documented once here; ``spec.py`` is the only place that knows gin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .task import DataSource, EvalSet, Task


@dataclass(frozen=True)
class EncoderSetup:
    """How the pretrained NEST encoder feeds the task.

    ``mode='frozen'``: encoder weights fixed; the task sees a learned combination of ``layers``
    (``aggregation='superb'``: one weight per layer, initialised equal, softmax, weighted sum — the
    SUPERB protocol; ``'nemo'``: raw weights initialised 1/L, no softmax — NeMo's
    ``ConformerMultiLayerFeaturePreprocessor`` protocol; ``'last'``: the last layer only).
    ``layer_temperature`` (``'superb'`` only): the softmax runs over weights / temperature; below 1 the
    learned weights move towards one layer faster, above 1 they stay closer to an even mix.
    ``mode='finetune'``: the whole encoder trains and the task sees the last layer (the NEST card's
    protocol for ASR, AST, diarization and SLU).
    ``init_include`` / ``init_exclude``: NeMo ``init_from_pretrained_model`` semantics — a weight is
    loaded from the checkpoint when its name (``encoder.…``/``preprocessor.…``) contains any include
    string (all when empty) and none of the exclude strings; the rest keep their fresh initialisation.
    ``freq_masks``/``time_masks``: SpecAugment on the log-mel features while training (NeMo's
    ``SpectrogramAugmentation``: masks of up to ``freq_width`` bins and ``time_width`` x length frames).
    ``cache_features`` (frozen only): compute each utterance's layers once into
    ``<cache_dir>/features/<key>/`` (``cache_dir``: default ``$NESTBENCH_CACHE`` or ``~/.cache/nestbench``)
    and train the head (and layer weights) from there; every later run with the same checkpoint,
    layers, preprocessing and audio skips the encoder. Fixed features cannot be SpecAugmented, so
    frozen + cache + masks is refused. ``cache_dtype='float16'`` halves the cache (NEST-L, all layers:
    about 1.7 GB per hour of audio in float32); the fill says how much it will write and refuses
    when the disk cannot hold it.
    """

    checkpoint: str
    mode: Literal["frozen", "finetune"] = "finetune"
    aggregation: Literal["superb", "nemo", "last"] = "superb"
    layers: str | Sequence[int] = "all"
    layer_norm: bool = False
    layer_temperature: float = 1.0
    init_include: Sequence[str] = ()
    init_exclude: Sequence[str] = ()
    freq_masks: int = 0
    freq_width: int = 27
    time_masks: int = 0
    time_width: float = 0.05
    cache_features: bool = True
    cache_dir: str | None = None
    cache_dtype: Literal["float32", "float16"] = "float32"

    def __post_init__(self) -> None:
        if self.cache_dtype not in ("float32", "float16"):
            raise ValueError(f"EncoderSetup.cache_dtype = {self.cache_dtype!r}: expected 'float32' or 'float16'")
        if self.uses_feature_cache and (self.freq_masks or self.time_masks):
            raise ValueError(
                f"EncoderSetup: mode='frozen' with cache_features=True computes each utterance's features once, "
                f"so SpecAugment (freq_masks={self.freq_masks}, time_masks={self.time_masks}) cannot be applied "
                "to them; set EncoderSetup.cache_features = False (run the encoder every step, with masks) "
                "or EncoderSetup.freq_masks = 0 and EncoderSetup.time_masks = 0"
            )

    @property
    def uses_feature_cache(self) -> bool:
        return self.mode == "frozen" and self.cache_features


@dataclass(frozen=True)
class OptimizerSetup:
    """AdamW with a warm-up schedule; separate learning rate for a fine-tuned encoder."""

    lr: float = 1e-3
    encoder_lr: float | None = None  # defaults to ``lr``
    weight_decay: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    schedule: Literal["warmup_cosine", "noam", "constant"] = "warmup_cosine"
    warmup_steps: int = 500
    min_lr: float = 1e-6


@dataclass(frozen=True)
class TrainerSetup:
    """Lightning trainer knobs; ``devices > 1`` trains with DDP.

    A batch holds at most ``batch_size`` examples and, with ``max_batch_duration``, at most that many
    seconds of padded input (longest example x examples; an example longer than the cap runs alone).
    Either may be ``None``, not both.
    """

    max_epochs: int = 50
    max_steps: int = -1
    batch_size: int | None = 16
    max_batch_duration: float | None = None
    accelerator: str = "auto"
    devices: int | str = 1
    precision: str = "32-true"
    accumulate_grad_batches: int = 1
    gradient_clip_val: float = 1.0
    val_check_interval: float | int = 1.0
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    num_workers: int = 0
    deterministic: bool = True
    limit_train_batches: float | int = 1.0
    cpu_threads: int | None = None  # PyTorch CPU threads (default: PyTorch's choice). CPU results depend on it,
    # so a replay that must match exactly (a sweep's best.gin) binds it

    def __post_init__(self) -> None:
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"TrainerSetup.cpu_threads = {self.cpu_threads}: must be >= 1 (or None)")
        if self.batch_size is None and self.max_batch_duration is None:
            raise ValueError("TrainerSetup: batch_size and max_batch_duration are both None; set at least one")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"TrainerSetup.batch_size = {self.batch_size}: must be >= 1 (or None)")
        if self.max_batch_duration is not None and not self.max_batch_duration > 0:
            raise ValueError(f"TrainerSetup.max_batch_duration = {self.max_batch_duration}: must be > 0 seconds")


@dataclass(frozen=True)
class TrackingSetup:
    """Weights & Biases: offline unless an API key is set; runs sync later with ``wandb sync``."""

    wandb: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: str = "nestbench"
    entity: str | None = None
    group: str | None = None
    tags: Sequence[str] = ()


@dataclass(frozen=True)
class Experiment:
    name: str
    task: Task
    data: DataSource
    encoder: EncoderSetup
    optimizer: OptimizerSetup = field(default_factory=OptimizerSetup)
    trainer: TrainerSetup = field(default_factory=TrainerSetup)
    tracking: TrackingSetup = field(default_factory=TrackingSetup)
    seed: int = 0
    board: Literal["full", "quickstart"] = "full"  # leaderboard that its results go to
    notes: dict[str, Any] = field(default_factory=dict)
    # further named test sets beside the data source's: name -> manifest, or name -> {'manifest': ...,
    # <reference kind>: path} (e.g. {'trials': 'vox1_h.txt'}); `nestbench evaluate RUN --gin ...` binds them
    extra_tests: dict[str, Any] = field(default_factory=dict)

    def extra_eval_sets(self) -> list[EvalSet]:
        out = []
        for name, value in self.extra_tests.items():
            refs = dict(value) if isinstance(value, dict) else {"manifest": value}
            if "manifest" not in refs:
                raise ValueError(f"Experiment.extra_tests[{name!r}]: needs a 'manifest' (got keys {sorted(refs)})")
            manifest = Path(refs.pop("manifest"))
            out.append(EvalSet(name, manifest, {k: Path(v) for k, v in refs.items()}, {"bound_by": "extra_tests"}))
        return out

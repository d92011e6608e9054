"""What an experiment is, as plain typed objects: gin binds them, notebooks construct them directly.

Every hyper-parameter is documented once here; ``spec.py`` is the only place that knows gin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .task import DataSource, EvalSet, Task
from .validation import (
    NON_EMPTY,
    SEED,
    BindingError,
    Rule,
    at_least,
    between,
    check_fields,
    each,
    either,
    equal,
    greater,
)

# ``'all'``, ``'last'`` or ``'0,3,-1'`` (0-based, negatives from the end), or a non-empty list of ints;
# the bounds are checked when the encoder's depth is known
_LAYERS = Rule(
    lambda v: (v.strip().lower() in ("all", "last") or _int_list(v)) if isinstance(v, str) else len(v) > 0,
    "be 'all', 'last', comma-separated layer ids or a non-empty list of ids",
)
# Lightning's forms: a count (-1: every device), 'auto', or ids such as '0,1'
_DEVICES = Rule(
    lambda v: (v == -1 or v >= 1) if isinstance(v, int) else (v == "auto" or _int_list(v)),
    "be a count >= 1 (-1: all), 'auto' or device ids such as '0,1'",
)
# a fraction of the epoch (float) or a number of batches (int)
_FRACTION_OR_COUNT = Rule(
    lambda v: v >= 1 if isinstance(v, int) else 0 < v <= 1,
    "be a fraction in (0, 1] (float) or a number of batches >= 1 (int)",
)


def _int_list(text: str) -> bool:
    parts = [p.strip() for p in text.split(",")]
    return bool(parts) and all(p.lstrip("-").isdigit() for p in parts)


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
        check_fields(
            self,
            checkpoint=Rule(lambda v: bool(v.strip()), "name a .nemo file, a folder or a hub id"),
            layers=_LAYERS,
            layer_temperature=greater(0),
            freq_masks=at_least(0),
            freq_width=at_least(0),
            time_masks=at_least(0),
            time_width=between(0, 1),
        )
        if self.uses_feature_cache and (self.freq_masks or self.time_masks):
            raise BindingError(
                f"EncoderSetup: mode='frozen' with cache_features=True computes each utterance's features once, "
                f"so SpecAugment (freq_masks={self.freq_masks}, time_masks={self.time_masks}) cannot be applied "
                "to them; set EncoderSetup.cache_features = False (run the encoder every step, with masks) "
                "or EncoderSetup.freq_masks = 0 and EncoderSetup.time_masks = 0",
                ("EncoderSetup.mode", "EncoderSetup.cache_features")
                + tuple(f"EncoderSetup.{k}" for k in ("freq_masks", "time_masks") if getattr(self, k)),
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

    def __post_init__(self) -> None:
        check_fields(
            self,
            lr=greater(0),
            encoder_lr=at_least(0),  # 0 keeps a fine-tuned encoder's weights where they are
            weight_decay=at_least(0),
            betas=each(between(0, 1, high_open=True)),
            warmup_steps=at_least(0),
            min_lr=at_least(0),
        )
        # min_lr is the schedule's floor: above a base rate it would raise that rate instead
        for name in ("lr", "encoder_lr"):
            base = getattr(self, name)
            if base and self.min_lr > base:
                raise BindingError(
                    f"OptimizerSetup.min_lr = {self.min_lr!r} is above OptimizerSetup.{name} = {base!r}: "
                    "the schedule's floor must not exceed the rate it decays from",
                    ("OptimizerSetup.min_lr", f"OptimizerSetup.{name}"),
                )


@dataclass(frozen=True)
class TrainerSetup:
    """Lightning trainer knobs; ``devices > 1`` or ``num_nodes > 1`` trains with DDP.

    ``devices`` counts the processes (GPUs) per node and ``num_nodes`` the machines; several nodes are
    started by ``torchrun`` on each or by SLURM's ``srun`` (README, "Several machines"), and their world
    must be ``num_nodes`` x ``devices``. Global rank 0 alone writes the record and the W&B run.

    A batch holds at most ``batch_size`` examples and, with ``max_batch_duration``, at most that many
    seconds of padded input (longest example x examples; an example longer than the cap runs alone).
    Either may be ``None``, not both.
    """

    max_epochs: int = 50
    max_steps: int = -1
    batch_size: int | None = 16
    max_batch_duration: float | None = None
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    precision: Literal["32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"] = "32-true"
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
        check_fields(
            self,
            max_epochs=either(at_least(1), equal(-1)),  # -1: until max_steps
            max_steps=either(at_least(1), equal(-1)),  # -1: until max_epochs
            batch_size=at_least(1),
            max_batch_duration=greater(0),
            devices=_DEVICES,
            num_nodes=at_least(1),
            accumulate_grad_batches=at_least(1),
            gradient_clip_val=at_least(0),  # 0: no clipping
            val_check_interval=_FRACTION_OR_COUNT,
            check_val_every_n_epoch=at_least(1),
            log_every_n_steps=at_least(1),
            num_workers=at_least(0),
            limit_train_batches=_FRACTION_OR_COUNT,
            cpu_threads=at_least(1),
        )
        if self.batch_size is None and self.max_batch_duration is None:
            raise BindingError(
                "TrainerSetup: batch_size and max_batch_duration are both None; set at least one",
                ("TrainerSetup.batch_size", "TrainerSetup.max_batch_duration"),
            )
        if self.max_epochs == -1 and self.max_steps == -1:
            raise BindingError(
                "TrainerSetup: max_epochs = -1 and max_steps = -1 would train forever; set one of them",
                ("TrainerSetup.max_epochs", "TrainerSetup.max_steps"),
            )


@dataclass(frozen=True)
class TrackingSetup:
    """Weights & Biases: offline unless an API key is set; runs sync later with ``wandb sync``."""

    wandb: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: str = "nestbench"
    entity: str | None = None
    group: str | None = None
    tags: Sequence[str] = ()

    def __post_init__(self) -> None:
        check_fields(self, project=NON_EMPTY)


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

    def __post_init__(self) -> None:
        # the name is a folder under runs/: one plain path component
        name = Rule(lambda v: v.strip() not in ("", ".", "..") and "/" not in v and "\\" not in v, "be a folder name")
        check_fields(self, name=name, seed=SEED)

    def extra_eval_sets(self) -> list[EvalSet]:
        out = []
        for name, value in self.extra_tests.items():
            refs = dict(value) if isinstance(value, dict) else {"manifest": value}
            if "manifest" not in refs:
                raise ValueError(f"Experiment.extra_tests[{name!r}]: needs a 'manifest' (got keys {sorted(refs)})")
            manifest = Path(refs.pop("manifest"))
            out.append(EvalSet(name, manifest, {k: Path(v) for k, v in refs.items()}, {"bound_by": "extra_tests"}))
        return out

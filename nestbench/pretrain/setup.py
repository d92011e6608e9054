"""What a pretraining run is, as plain typed objects (gin binds them in ``nestbench.spec``).

``NestObjectiveSetup`` holds every value of NEST's objective (defaults: NeMo's
``nest_fast-conformer.yaml``) and builds a ``NestObjective`` around an encoder; ``PretrainExperiment``
ties it to the encoder to start from, the audio, the optimiser and the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..experiment import OptimizerSetup, TrackingSetup, TrainerSetup
from ..validation import SEED, BindingError, Rule, at_least, between, check_fields, greater

_RANGE = Rule(lambda v: len(v) == 2 and v[0] <= v[1], "be a (low, high) pair with low <= high")


@dataclass(frozen=True)
class NestObjectiveSetup:
    """NEST's targets, masking, loss and augmentation (NeMo's names in brackets).

    Targets (``quantizer``): ``num_classes``/``num_books``/``code_dim``/``dist_fn``; ``None`` means NEST's
    8192 / 1 / 16 / 'l2' from scratch, and the checkpoint's own when continuing, where a value that
    differs from the checkpoint's is refused (new codebooks would be new targets).
    Masking (``masking``): blocks of ``block_size`` mel frames start at each frame with probability
    ``mask_prob``, overlap allowed, replaced by the mask embedding (``mask_freeze``: NeMo's recipe keeps
    it a fixed random vector; ``False`` learns it). Loss: a combined step is masked when at least
    ``mask_threshold`` of its frames are. Augmentation (``train_ds.batch_augmentor``): with probability
    ``augment_prob`` a batch item gets noise (``noise_ratio`` of the time) or another item's speech mixed
    over ``mix_rate`` of its length, at ``speech_snr_db`` / ``noise_snr_db``; ``noise_required``: a missing
    or empty noise manifest is an error, unless ``False`` (then only other speech is mixed in).
    """

    num_classes: int | None = None
    num_books: int | None = None
    code_dim: int | None = None
    dist_fn: Literal["l2", "cosine"] | None = None
    mask_prob: float = 0.01
    block_size: int = 40
    mask_freeze: bool = True
    max_mask_ratio: float = 0.8
    mask_threshold: float = 0.8
    augment_prob: float = 0.5
    noise_ratio: float = 0.5
    speech_snr_db: tuple[float, float] = (-5.0, 5.0)
    noise_snr_db: tuple[float, float] = (-5.0, 20.0)
    mix_rate: tuple[float, float] = (0.5, 0.5)
    num_segments: tuple[int, int] = (1, 1)
    num_speakers: tuple[int, int] = (1, 1)
    noise_required: bool = True

    def __post_init__(self) -> None:
        check_fields(
            self,
            num_classes=at_least(2),
            num_books=at_least(1),
            code_dim=at_least(1),
            max_mask_ratio=Rule(lambda v: 0 < v <= 1, "be in (0, 1]"),
            mask_threshold=between(0, 1, high_open=True),
            augment_prob=between(0, 1),
            noise_ratio=between(0, 1),
            speech_snr_db=_RANGE,
            noise_snr_db=_RANGE,
            mix_rate=_RANGE,
            num_segments=_RANGE,
            num_speakers=_RANGE,
        )
        if self.mask_prob <= 0 or self.block_size <= 0:
            raise BindingError(
                f"NestObjectiveSetup: mask_prob = {self.mask_prob} and block_size = {self.block_size} mask nothing, "
                "so the masked-token loss would have no positions; both must be > 0 (NEST: 0.01 and 40)",
                ("NestObjectiveSetup.mask_prob", "NestObjectiveSetup.block_size"),
            )
        check_fields(self, mask_prob=between(0, 1))

    def targets(self) -> dict[str, Any]:
        """The quantizer values this spec binds (``None`` left out)."""
        given = {k: getattr(self, k) for k in ("num_classes", "num_books", "code_dim", "dist_fn")}
        return {k: v for k, v in given.items() if v is not None}

    def augmentation_kwargs(self) -> dict[str, Any]:
        """``MultiSpeakerNoiseAugmentation`` arguments."""
        return {
            "prob": self.augment_prob,
            "noise_ratio": self.noise_ratio,
            "min_r_speech": self.speech_snr_db[0],
            "max_r_speech": self.speech_snr_db[1],
            "min_r_noise": self.noise_snr_db[0],
            "max_r_noise": self.noise_snr_db[1],
            "min_mix_rate": self.mix_rate[0],
            "max_mix_rate": self.mix_rate[1],
            "min_num_segments": self.num_segments[0],
            "max_num_segments": self.num_segments[1],
            "min_num_speakers": self.num_speakers[0],
            "max_num_speakers": self.num_speakers[1],
        }

    def masking_kwargs(self) -> dict[str, Any]:
        return {
            "mask_prob": self.mask_prob,
            "block_size": self.block_size,
            "freeze": self.mask_freeze,
            "max_mask_ratio": self.max_mask_ratio,
        }


@dataclass(frozen=True)
class PretrainExperiment:
    """One pretraining run.

    ``checkpoint``: a NEST ``.nemo`` file, unpacked folder or hub id, or ``@make_tiny_nest()``.
    ``init='scratch'`` takes only its architecture (every weight freshly drawn from ``seed``);
    ``init='continue'`` continues NEST pretraining from it: encoder, quantizer, mask embedding and
    decoder all come from the checkpoint, which must be a NEST SSL checkpoint (e.g.
    ``nvidia/ssl_en_nest_large_v1.0``); one of another architecture is refused with its keys listed.
    ``max_seconds``: longer audio is randomly cropped to this length each epoch (NeMo's recipe: 60 s
    on GPUs). The run exports ``nest.nemo`` (NeMo's ``EncDecDenoiseMaskedTokenPredModel`` layout).
    """

    name: str
    checkpoint: str
    data: Any
    init: Literal["scratch", "continue"] = "scratch"
    objective: NestObjectiveSetup = field(default_factory=NestObjectiveSetup)
    max_seconds: float | None = 30.0
    optimizer: OptimizerSetup = field(default_factory=OptimizerSetup)
    trainer: TrainerSetup = field(default_factory=TrainerSetup)
    tracking: TrackingSetup = field(default_factory=TrackingSetup)
    seed: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = Rule(lambda v: v.strip() not in ("", ".", "..") and "/" not in v and "\\" not in v, "be a folder name")
        check_fields(self, name=name, seed=SEED, max_seconds=greater(0))

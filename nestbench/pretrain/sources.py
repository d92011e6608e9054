"""Where pretraining audio comes from: a user's manifests, or the project's synthetic speech.

A source is bound in a pretraining spec (``PretrainExperiment.data = @ManifestAudio()``) and prepared
once into ``PretrainManifests``: training and dev manifests (NeMo JSONL or lhotse cuts; any text in
them is ignored) and an optional noise manifest for the denoising augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..provenance import short_hash
from ..validation import SEED, at_least, checked


@dataclass(frozen=True)
class PretrainManifests:
    train: tuple[Path, ...]
    dev: tuple[Path, ...]
    noise: Path | None
    info: dict = field(default_factory=dict)

    def all(self) -> list[Path]:
        return [*self.train, *self.dev, *([self.noise] if self.noise else [])]


class ManifestAudio:
    """Unlabelled audio listed in NeMo manifests or lhotse cut manifests (``.jsonl`` / ``.jsonl.gz``).

    ``dev`` may be empty (then no dev curve is drawn and the last weights are exported); ``noise`` is a
    NeMo manifest of noise clips (MUSAN, DNS, ...), optional when the augmentation does not require it.
    """

    def __init__(self, train: Sequence[str] | str, dev: Sequence[str] | str = (), noise: str | None = None):
        as_list = lambda v: [v] if isinstance(v, str) else list(v)  # noqa: E731
        self.train, self.dev, self.noise = as_list(train), as_list(dev), noise
        if not self.train:
            raise ValueError("ManifestAudio.train: name at least one manifest of training audio")

    def missing(self) -> list[str]:
        return [f"{p}: manifest not found" for p in [*self.train, *self.dev] if not Path(p).is_file()]

    def prepare(self, work_dir: Path) -> PretrainManifests:
        return PretrainManifests(
            tuple(map(Path, self.train)), tuple(map(Path, self.dev)), Path(self.noise) if self.noise else None
        )


class SpeechMiniAudio:
    """The project's synthetic English speech (``nestbench.synth.speech_text_mini``), text discarded,
    plus synthetic noise clips (``nestbench.synth.noise_mini``): pretraining data that needs no download.

    ``exclude_variants``: espeak voice variants no speaker here may use. The quickstart spec lists every
    variant heard in a downstream quickstart's dev or test set, so the downstream evaluation stays on
    voices pretraining never heard (a test checks the list against the shipped specs). ``seed`` draws
    speakers and sentences apart from the downstream corpora's (seed 0).
    """

    @checked(n_train=at_least(1), n_dev=at_least(1), n_train_speakers=at_least(1), n_dev_speakers=at_least(1),
             seed=SEED, noise_clips=at_least(0))  # fmt: skip
    def __init__(
        self,
        n_train: int = 4000,
        n_dev: int = 200,
        n_train_speakers: int = 60,
        n_dev_speakers: int = 6,
        seed: int = 1,
        exclude_variants: Sequence[str] = (),
        noise_clips: int = 48,
    ):
        from ..synth.speech_text_mini import SpeechTextMiniConfig
        from ..synth.voices import VARIANTS

        variants = tuple(v for v in VARIANTS if v not in set(exclude_variants))
        unknown = sorted(set(exclude_variants) - set(VARIANTS))
        if unknown:
            raise ValueError(f"SpeechMiniAudio.exclude_variants: {unknown} are not voice variants of nestbench.synth")
        # the corpus maker wants a test split: one utterance, never used
        self.config = SpeechTextMiniConfig(
            n_train=n_train, n_dev=n_dev, n_test=1, n_train_speakers=n_train_speakers,
            n_dev_speakers=n_dev_speakers, n_test_speakers=1, seed=seed, variants=variants,
        )  # fmt: skip
        self.noise_clips = noise_clips

    def missing(self) -> list[str]:
        return []

    def prepare(self, work_dir: Path) -> PretrainManifests:
        from ..synth.noise_mini import NoiseMiniConfig, make_noise_mini
        from ..synth.speech_text_mini import make_speech_text_mini

        corpus = make_speech_text_mini(Path(work_dir) / f"speech_mini-{short_hash(asdict(self.config))}", self.config)
        noise = None
        if self.noise_clips:
            config = NoiseMiniConfig(n_clips=self.noise_clips, seed=self.config.seed)
            noise = make_noise_mini(Path(work_dir) / f"noise_mini-{short_hash(asdict(config))}", config)
        info = {"corpus": "speech-text-mini (unlabelled)", "variants": list(self.config.variants)}
        return PretrainManifests((corpus.manifest("train"),), (corpus.manifest("dev"),), noise, info)

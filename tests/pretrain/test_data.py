"""Pretraining data: NeMo manifests and lhotse cuts read alike, too-short audio skipped and counted,
random crops fixed by (seed, epoch, index), and noise manifests that are missing or empty refused."""

import json
import logging

import lhotse
import numpy as np
import pytest
import soundfile as sf
import torch

from nestbench.pretrain.data import NoiseSet, UnlabelledAudio, collate_audio, min_pretrain_samples, noise_augmentation

SR = 16000


def _wav(path, seconds, seed=0):
    samples = (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)
    sf.write(path, samples, SR)
    return path


def _nemo_manifest(tmp_path, seconds, name="train.jsonl"):
    lines = []
    for i, s in enumerate(seconds):
        wav = _wav(tmp_path / f"{name}.{i}.wav", s, seed=i)
        lines.append(json.dumps({"audio_filepath": wav.name, "duration": s, "text": "ignored", "id": f"u{i}"}))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_min_samples_is_one_masking_block(tiny_objective):
    obj = tiny_objective()
    # 40 frames x 160-sample hop + a 400-sample window, above the encoder's 560-sample minimum
    assert min_pretrain_samples(obj) == 40 * 160 + 400 == 6800
    assert obj.nest.min_samples < 6800


def test_short_audio_is_skipped_and_counted(tmp_path, tiny_objective, caplog):
    manifest = _nemo_manifest(tmp_path, [1.0, 0.2, 0.5, 0.42, 0.43])  # 0.42 s = 6720 < 6800 <= 6880
    with caplog.at_level(logging.WARNING, logger="nestbench.pretrain.data"):
        data = UnlabelledAudio.for_objective(manifest, tiny_objective())
    assert data.skipped == ["u1", "u3"] and data.n_skipped == 2
    assert len(data) == 3
    assert "skipped 2 utterance(s) shorter than one masking block" in caplog.text
    batch = collate_audio([data[(i, 0)] for i in range(len(data))])
    assert batch["audio"].shape == (3, SR) and batch["audio_lengths"].tolist() == [16000, 8000, 6880]
    assert batch["ids"] == ["u0", "u2", "u4"]
    # every kept utterance goes through the objective without a short-input error
    out = tiny_objective()(batch["audio"], batch["audio_lengths"], torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"])


def test_everything_too_short_is_an_error(tmp_path):
    manifest = _nemo_manifest(tmp_path, [0.1, 0.2])
    with pytest.raises(ValueError, match="2 skipped as too short"):
        UnlabelledAudio(manifest, min_samples=6800)


def test_lhotse_cuts_and_nemo_manifests_read_alike(tmp_path):
    nemo = _nemo_manifest(tmp_path, [1.0, 0.75])
    cuts = []
    for i, s in enumerate([1.0, 0.75]):
        rec = lhotse.Recording.from_file(tmp_path / f"train.jsonl.{i}.wav", recording_id=f"r{i}")
        sup = lhotse.SupervisionSegment(id=f"u{i}", recording_id=rec.id, start=0.0, duration=s, text="ignored")
        cuts.append(lhotse.MonoCut(id=f"u{i}", start=0.0, duration=s, channel=0, recording=rec, supervisions=[sup]))
    lhotse_path = tmp_path / "cuts.jsonl.gz"
    lhotse.CutSet.from_cuts(cuts).to_file(lhotse_path)
    a, b = UnlabelledAudio(nemo, min_samples=6800), UnlabelledAudio(lhotse_path, min_samples=6800)
    assert a.durations == b.durations == [1.0, 0.75]
    for i in range(2):
        x, y = a[(i, 0)], b[(i, 0)]
        assert x["id"] == y["id"] == f"u{i}" and x["audio"].dtype == torch.float32
        assert torch.equal(x["audio"], y["audio"]) and x["length"] == y["length"]
    both = UnlabelledAudio([nemo, lhotse_path], min_samples=6800)  # ids are checked unique within a manifest only
    assert len(both) == 4


def test_long_files_are_cropped_by_seed_epoch_and_index(tmp_path):
    manifest = _nemo_manifest(tmp_path, [3.0, 0.5])
    data = UnlabelledAudio(manifest, min_samples=6800, max_seconds=1.0, seed=3)
    assert data.durations == [1.0, 0.5]
    full = data.reader.read(tmp_path / "train.jsonl.0.wav")
    crops = {}
    for epoch in (0, 1):
        item = data[(0, epoch)]
        assert item["length"] == SR
        start = int(round(data.window(0, epoch)[0] * SR))
        assert np.array_equal(item["audio"].numpy(), full[start : start + SR])
        crops[epoch] = item["audio"]
        assert torch.equal(
            UnlabelledAudio(manifest, min_samples=6800, max_seconds=1.0, seed=3)[(0, epoch)]["audio"], item["audio"]
        )
    assert not torch.equal(crops[0], crops[1])
    assert data[(1, 0)]["length"] == 8000  # short files are never cropped


def test_noise_set_reads_windows_lazily_and_feeds_the_augmentation(tmp_path):
    noise_manifest = _nemo_manifest(tmp_path, [2.0, 0.25], name="noise.jsonl")
    noise = NoiseSet(noise_manifest)
    assert len(noise) == 2
    gen = torch.Generator().manual_seed(0)
    clips = [noise(4000, gen) for _ in range(20)]
    assert {c.numel() for c in clips} == {4000}  # a window of the long clip, the whole short one (0.25 s)
    again = torch.Generator().manual_seed(0)
    assert all(torch.equal(c, noise(4000, again)) for c in clips)
    aug = noise_augmentation(noise, prob=1.0, noise_ratio=1.0)
    audio = 0.1 * torch.ones(2, 8000)
    noisy = aug(audio, torch.tensor([8000, 8000]), torch.Generator().manual_seed(1))
    assert not torch.equal(noisy, audio)


def test_missing_or_empty_noise_manifest_is_refused(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    with pytest.raises(ValueError, match=r"noise manifest .*nowhere\.jsonl does not exist"):
        NoiseSet(missing)
    with pytest.raises(ValueError, match="nowhere.jsonl"):
        NoiseSet.load(missing)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"noise manifest .*empty\.jsonl is unusable: .*no entries"):
        NoiseSet.load(empty)
    # optional noise: None, and the augmentation then mixes other speakers only
    assert NoiseSet.load(missing, required=False) is None and NoiseSet.load(empty, required=False) is None
    aug = noise_augmentation(NoiseSet.load(empty, required=False), prob=0.5, noise_ratio=0.5)
    assert aug.noise is None and aug.noise_ratio == 0.0
    # a manifest with broken lines is still an error
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"audio_filepath": "gone.wav"}\n')
    with pytest.raises(ValueError, match="gone.wav"):
        NoiseSet.load(broken, required=False)

"""The frozen-encoder feature cache: what its key depends on, atomic publication, reuse, exactness."""

import json
import multiprocessing
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from nestbench.audio import AudioReader
from nestbench.data import ExampleDataset, cache_utterances, make_collate
from nestbench.encoder import NestEncoder
from nestbench.encoder.config import ConformerConfig, MelConfig
from nestbench.encoder.tiny import make_tiny_nest
from nestbench.experiment import EncoderSetup
from nestbench.extract import save_npy_atomic
from nestbench.feature_cache import FeatureCache, feature_key, utterance_fingerprint
from nestbench.task import whole
from nestbench.upstream import build_cached_upstream, build_upstream

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "parity" / "tiny"
NEMO = FIXTURE / "nest_tiny.nemo"


class _NoTargets:
    """Just enough of a Task for the feature collate."""

    def make_target(self, example):
        return example.id

    def collate_targets(self, targets):
        return {}


@pytest.fixture
def corpus(tmp_path) -> list[dict]:
    """The fixture's three wavs (1.3 s, 2.7 s, 4.1 s), copied so a test may rewrite them."""
    folder = tmp_path / "audio"
    shutil.copytree(FIXTURE / "audio", folder)
    reader = AudioReader()
    return [
        {"id": p.stem, "audio_filepath": str(p), "offset": 0.0, "duration": reader.duration(p)}
        for p in sorted(folder.glob("*.wav"))
    ]


def _setup(tmp_path, **kw) -> EncoderSetup:
    return EncoderSetup(**{"checkpoint": str(NEMO), "mode": "frozen", "cache_dir": str(tmp_path / "cache"), **kw})


def _never():
    raise AssertionError("the encoder was built although every utterance was cached")


# -- the key --------------------------------------------------------------------------------------
def test_key_changes_with_weights_layers_preprocessing_and_dtype_only():
    mel, conf = MelConfig(), ConformerConfig(n_layers=4, d_model=64, n_heads=4)
    base = feature_key("a" * 64, [0, 1, 2, 3], mel, conf)
    assert base == feature_key("a" * 64, (0, 1, 2, 3), MelConfig(), ConformerConfig(n_layers=4, d_model=64, n_heads=4))
    others = [
        feature_key("b" * 64, [0, 1, 2, 3], mel, conf),
        feature_key("a" * 64, [3], mel, conf),
        feature_key("a" * 64, [0, 1, 2, 3], replace(mel, n_fft=400), conf),
        feature_key("a" * 64, [0, 1, 2, 3], replace(mel, normalize="all_features"), conf),
        feature_key("a" * 64, [0, 1, 2, 3], mel, replace(conf, xscaling=False)),
        feature_key("a" * 64, [0, 1, 2, 3], mel, conf, dtype="float16"),
        # TF32 GPU features differ from CPU fp32 ones in the last bits: never mixed in one folder
        feature_key("a" * 64, [0, 1, 2, 3], mel, conf, device_class="cuda"),
        feature_key("a" * 64, [0, 1, 2, 3], mel, conf, device_class="cuda", precision="tf32"),
    ]
    assert len({base, *others}) == len(others) + 1


def test_setup_key_follows_checkpoint_and_layers(tmp_path, corpus):
    todo = cache_utterances(corpus)

    def key(**kw) -> str:
        _, cache, _ = build_cached_upstream(_setup(tmp_path, **kw), todo[:1], progress=False)
        return cache.key

    assert key() == key()  # same checkpoint, layers and preprocessing: same folder
    assert key(layers="0,1") != key()
    other = make_tiny_nest(str(tmp_path / "other"), d_model=32, n_layers=2, n_heads=2, seed=1)
    assert key(checkpoint=other) != key()
    # a partial init leaves fresh weights: keyed by the weights actually used, stable for a seed
    assert key(init_exclude=("layers.1.",)) == key(init_exclude=("layers.1.",)) != key()
    assert key(aggregation="nemo") == key()  # how layers are combined is the head's business


def test_fingerprint_follows_the_audio_not_its_name_in_a_manifest(corpus):
    path = Path(corpus[0]["audio_filepath"])
    fp = utterance_fingerprint(path)
    assert fp == utterance_fingerprint(path.parent / ".." / path.parent.name / path.name)  # resolved
    assert utterance_fingerprint(path, 0.5, 0.3) not in (fp, utterance_fingerprint(path, 0.5, 0.4))
    audio, rate = sf.read(path, dtype="float32")
    time.sleep(0.01)
    sf.write(path, audio * 0.5, rate)  # same name and length, new content
    assert utterance_fingerprint(path) != fp


# -- filling and reuse ----------------------------------------------------------------------------
def test_cached_layers_equal_a_direct_forward_and_refill_computes_nothing(tmp_path, corpus):
    setup = _setup(tmp_path)
    todo = cache_utterances(corpus)
    upstream, cache, stats = build_cached_upstream(setup, todo, batch_size=2, progress=False)
    assert (stats.hits, stats.computed) == (0, 3) and upstream.encoder is None and upstream.from_cache
    assert not list(cache.folder.rglob("*.tmp"))
    assert (cache.folder / "meta.json").is_file()

    encoder = NestEncoder.from_pretrained(NEMO).eval()
    reader = AudioReader(encoder.sample_rate)
    for _, utt in todo:
        audio = torch.from_numpy(reader.read(utt.path))
        with torch.inference_mode():
            out = encoder(audio[None], layers=None)
        expected = out.stacked()[:, 0, : int(out.lengths[0])].numpy()
        got = cache.load(utt.utt_id)
        assert got.dtype == np.float32 and got.shape == expected.shape  # [L, T, D]
        assert np.abs(got - expected).max() <= 1e-5

    again = cache.fill(todo, _never, upstream.layer_ids, progress=False)
    assert (again.hits, again.computed) == (3, 0)
    _, _, warm = build_cached_upstream(setup, todo, progress=False)
    assert (warm.hits, warm.computed) == (3, 0)


def test_changed_audio_recomputes_only_that_utterance(tmp_path, corpus):
    setup = _setup(tmp_path)
    build_cached_upstream(setup, cache_utterances(corpus), progress=False)
    path = Path(corpus[1]["audio_filepath"])
    audio, rate = sf.read(path, dtype="float32")
    sf.write(path, audio[: len(audio) // 2], rate)
    corpus[1]["duration"] = len(audio) // 2 / rate
    _, _, stats = build_cached_upstream(setup, cache_utterances(corpus), progress=False)
    assert (stats.hits, stats.computed) == (2, 1)


def test_cached_upstream_matches_the_audio_path(tmp_path, corpus):
    """Collated cached layers through ``forward_cached`` give the frozen upstream's audio features."""
    setup = _setup(tmp_path, aggregation="superb")
    todo = cache_utterances(corpus)
    cached, cache, _ = build_cached_upstream(setup, todo, progress=False)
    with torch.no_grad():
        cached.aggregator.weights.copy_(torch.tensor([0.3, -1.0, 2.0]))
    direct = build_upstream(setup).eval()
    direct.aggregator.load_state_dict(cached.aggregator.state_dict())

    files = {e["id"]: cache.file(u.utt_id) for e, (_, u) in zip(corpus, todo, strict=True)}
    ds = ExampleDataset([whole(e) for e in corpus], _NoTargets(), feature_files=files)
    batch = make_collate(_NoTargets())([ds[i] for i in range(len(ds))])
    assert batch["features"].shape[:2] == (3, 3) and batch["feature_lengths"].tolist() == [
        ds[i]["features"].shape[1] for i in range(3)
    ]
    feats, lengths = cached.forward_cached(batch["features"], batch["feature_lengths"])
    reader = AudioReader()
    for i, entry in enumerate(corpus):
        audio = torch.from_numpy(reader.read(entry["audio_filepath"]))[None]
        expected, n = direct(audio, torch.tensor([audio.shape[1]]))
        assert int(n[0]) == int(lengths[i])
        assert torch.allclose(feats[i, : int(n[0])], expected[0, : int(n[0])], atol=1e-5)
        assert not feats[i, int(n[0]) :].any()  # padding


# -- atomic publication ---------------------------------------------------------------------------
def _write_for_a_while(path: Path, value: float) -> None:
    array = np.full((4, 200, 256), value, dtype=np.float32)  # 800 KB: many write() calls per file
    deadline = time.time() + 1.5
    while time.time() < deadline:
        save_npy_atomic(path, array)


FILLER = """
import json, sys
from pathlib import Path
import torch
from nestbench.encoder import NestEncoder
from nestbench.extract import Utterance
from nestbench.feature_cache import FeatureCache
torch.set_num_threads(1)
root, nemo, items = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
todo = [(s, Utterance(u, Path(p))) for s, u, p in items]
encoder = NestEncoder.from_pretrained(nemo)
FeatureCache("k" * 64, root).fill(todo, lambda: encoder, list(range(encoder.n_layers)), progress=False)
"""


def _python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stderr=subprocess.PIPE, text=True)


def test_concurrent_writers_never_expose_a_torn_file(tmp_path):
    target = tmp_path / "same_utterance.npy"
    # fork: the writers only run numpy and os calls, so they start at once without importing torch again
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_write_for_a_while, args=(target, float(v))) for v in range(1, 5)]
    for w in writers:
        w.start()
    reads = 0
    while any(w.is_alive() for w in writers):
        try:
            array = np.load(target)  # whenever it exists, it is one writer's whole array
        except FileNotFoundError:
            continue
        assert array.shape == (4, 200, 256) and array.min() == array.max() and array[0, 0, 0] in (1, 2, 3, 4)
        reads += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert reads > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same_utterance.npy"]  # no .tmp left


def test_workers_filling_one_cache_concurrently_agree(tmp_path, corpus):
    root = tmp_path / "cache"
    todo = cache_utterances(corpus)
    items = json.dumps([(s, u.utt_id, str(u.path)) for s, u in todo])
    workers = [_python(FILLER, str(root), str(NEMO), items) for _ in range(3)]
    for w in workers:
        assert w.wait() == 0, w.stderr.read()
    cache = FeatureCache("k" * 64, root)
    assert not list(cache.folder.rglob("*.tmp"))
    encoder = NestEncoder.from_pretrained(NEMO)
    fresh = FeatureCache("fresh", root)
    stats = fresh.fill(todo, lambda: encoder, list(range(encoder.n_layers)), progress=False)
    assert stats.computed == 3
    for _, utt in todo:
        np.testing.assert_allclose(cache.load(utt.utt_id), fresh.load(utt.utt_id), atol=1e-5)


# -- what cannot be cached ------------------------------------------------------------------------
def test_frozen_specaugment_with_cache_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="cache_features = False") as err:
        EncoderSetup(checkpoint="x.nemo", mode="frozen", freq_masks=2)
    assert "freq_masks = 0" in str(err.value)
    with pytest.raises(ValueError, match="SpecAugment"):
        EncoderSetup(checkpoint="x.nemo", mode="frozen", time_masks=1)
    assert not EncoderSetup(checkpoint="x.nemo", mode="frozen", freq_masks=2, cache_features=False).uses_feature_cache
    assert not EncoderSetup(checkpoint="x.nemo", mode="finetune", freq_masks=2).uses_feature_cache
    assert EncoderSetup(checkpoint="x.nemo", mode="frozen").uses_feature_cache


def test_float16_storage_halves_the_cache_and_reads_back_as_float32(tmp_path, corpus):
    todo = cache_utterances(corpus)
    _, c32, _ = build_cached_upstream(_setup(tmp_path), todo, progress=False)
    _, c16, _ = build_cached_upstream(_setup(tmp_path, cache_dtype="float16"), todo, progress=False)
    assert c16.key != c32.key
    for _, utt in todo:
        half, full = c16.load(utt.utt_id), c32.load(utt.utt_id)
        assert half.dtype == np.float16 and half.nbytes * 2 == full.nbytes
        assert np.allclose(half.astype(np.float32), full, rtol=1e-3, atol=1e-3)
    files = {e["id"]: c16.file(u.utt_id) for e, (_, u) in zip(corpus, todo, strict=True)}
    item = ExampleDataset([whole(corpus[0])], _NoTargets(), feature_files=files)[0]
    assert item["features"].dtype == torch.float32


def test_fill_refuses_when_the_disk_cannot_hold_it(tmp_path, corpus, monkeypatch, caplog):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(OSError, match=r"needs about .* GB .* only 0.0 GB are free.*cache_dtype = 'float16'"):
        build_cached_upstream(_setup(tmp_path), cache_utterances(corpus), progress=False)
    assert not list((tmp_path / "cache").rglob("*.npy"))  # refused before computing anything

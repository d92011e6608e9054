"""SLURP recipe: manifests and gold from a tiny corpus in SLURP's layout; downloads from a local server."""

from __future__ import annotations

import io
import json
import logging
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from nestbench.metrics.slurp import load_gold, score_files, write_predictions
from nestbench.recipes import slurp as recipe
from nestbench.recipes.slurp import (
    SlurpDataError,
    SlurpDownloadError,
    download_slurp,
    gold_path,
    prepare_slurp,
)

REPO = Path(__file__).resolve().parents[2]
SHARED_DEVEL = REPO.parent / "shared" / "data" / "slurp" / "devel.jsonl"
# Real devel lines: two headset + far-field pairs with a slot, a far-field-only sentence with capitalised
# surfaces, and a sentence with ten recordings. Without ../shared, the committed hand-written fixture.
REAL_LINES = (135, 153, 330)
FALLBACK = REPO / "tests" / "fixtures" / "slurp" / "small_gold.jsonl"
RATE = 16000


def annotation_lines() -> list[str]:
    if SHARED_DEVEL.is_file():
        lines = SHARED_DEVEL.read_text(encoding="utf-8").splitlines()
        return [lines[n - 1] for n in REAL_LINES]
    return FALLBACK.read_text(encoding="utf-8").splitlines()


def write_audio(path: Path, seconds: float) -> None:
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), RATE, format="FLAC")


def make_corpus(root: Path, split: str = "devel", *, audio_folder: str = "audio/slurp_real") -> SimpleNamespace:
    lines = annotation_lines()
    (root / "dataset" / "slurp").mkdir(parents=True)
    (root / "dataset" / "slurp" / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines))
    audio = root / audio_folder
    audio.mkdir(parents=True)
    durations = {}
    for n, line in enumerate(lines):
        for k, recording in enumerate(json.loads(line)["recordings"]):
            durations[recording["file"]] = 0.05 + 0.01 * (n + k)
            write_audio(audio / recording["file"], durations[recording["file"]])
    sentences = [json.loads(line) for line in lines]
    return SimpleNamespace(root=root, lines=lines, sentences=sentences, audio=audio, durations=durations)


@pytest.fixture
def corpus(tmp_path: Path) -> SimpleNamespace:
    return make_corpus(tmp_path / "corpus")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_headset_manifest_and_gold(corpus, tmp_path):
    out = tmp_path / "prepared"
    manifests = prepare_slurp(corpus.root, out, splits=("devel",))
    assert manifests == {"devel": out / "slurp_devel.jsonl"}
    entries = read_jsonl(manifests["devel"])
    headset = [r["file"] for s in corpus.sentences for r in s["recordings"] if r["file"].endswith("-headset.flac")]
    assert [e["id"] for e in entries] == headset
    full_gold = load_gold(corpus.root / "dataset" / "slurp" / "devel.jsonl")
    for entry in entries:
        assert Path(entry["audio_filepath"]).is_absolute() and Path(entry["audio_filepath"]).is_file()
        assert entry["duration"] == pytest.approx(corpus.durations[entry["id"]], abs=1 / RATE)
        reference = full_gold[entry["id"]]
        semantics = {"scenario": reference.scenario, "action": reference.action}
        semantics["entities"] = [{"type": s.type, "filler": s.filler} for s in reference.entities]
        assert json.loads(entry["text"]) == semantics  # fillers lower-cased exactly as the scorer's gold
        assert entry["text"] == json.dumps(semantics)
        assert {k: entry[k] for k in ("scenario", "action", "entities")} == semantics
        sentence = next(s for s in corpus.sentences if s["slurp_id"] == entry["slurp_id"])
        assert entry["sentence"] == sentence["sentence"]
    # The gold file holds exactly the manifest's recordings, so scoring its predictions has full coverage.
    gold = load_gold(gold_path(out, "devel"))
    assert list(gold) == headset
    write_predictions(tmp_path / "hyp.jsonl", gold.values())
    assert score_files(gold_path(out, "devel"), tmp_path / "hyp.jsonl")["coverage"] == 1.0


def test_all_recordings_keep_gold_lines_verbatim(corpus, tmp_path):
    manifest = prepare_slurp(corpus.root, tmp_path / "out", splits=("devel",), recordings="all")["devel"]
    assert [e["id"] for e in read_jsonl(manifest)] == [r["file"] for s in corpus.sentences for r in s["recordings"]]
    assert gold_path(tmp_path / "out", "devel").read_text().splitlines() == corpus.lines


def test_audio_unpacked_into_the_corpus_root_is_found(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", audio_folder="slurp_real")
    manifest = prepare_slurp(corpus.root, tmp_path / "out", splits=("devel",), recordings="all")["devel"]
    assert all(Path(e["audio_filepath"]).parent == corpus.audio.resolve() for e in read_jsonl(manifest))


def test_synthetic_split_uses_slurp_synth_without_the_headset_filter(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", "train_synthetic", audio_folder="audio/slurp_synth")
    manifest = prepare_slurp(corpus.root, tmp_path / "out", splits=("train_synthetic",))["train_synthetic"]
    assert len(read_jsonl(manifest)) == len(corpus.durations)


def test_missing_audio_names_annotation_file_line_and_path(corpus, tmp_path):
    victim = next(r["file"] for r in corpus.sentences[-1]["recordings"] if r["file"].endswith("-headset.flac"))
    (corpus.audio / victim).unlink()
    annotations = corpus.root / "dataset" / "slurp" / "devel.jsonl"
    line = len(corpus.lines)
    with pytest.raises(SlurpDataError) as err:
        prepare_slurp(corpus.root, tmp_path / "out", splits=("devel",))
    assert f"{annotations}:{line}: {victim} (looked for {(corpus.audio / victim).resolve()})" in str(err.value)
    assert "missing='skip'" in str(err.value)
    assert f"nestbench download slurp --to {corpus.root}" in str(err.value)  # what to type, not only Python
    assert not (tmp_path / "out" / "slurp_devel.jsonl").exists()


def test_missing_annotations_say_which_command_fetches_them(tmp_path):
    with pytest.raises(SlurpDataError, match=f"Run `nestbench download slurp --to {tmp_path}`"):
        prepare_slurp(tmp_path, tmp_path / "out", splits=("devel",))


def test_missing_audio_skipped_and_counted(corpus, tmp_path, caplog):
    victims = [r["file"] for r in corpus.sentences[-1]["recordings"]][:2]
    for file in victims:
        (corpus.audio / file).unlink()
    with caplog.at_level(logging.WARNING, logger="nestbench.recipes.slurp"):
        manifest = prepare_slurp(corpus.root, tmp_path / "out", splits=("devel",), recordings="all", missing="skip")
    assert "skipping 2 recording(s)" in caplog.text
    ids = [e["id"] for e in read_jsonl(manifest["devel"])]
    assert len(ids) == len(corpus.durations) - 2 and not set(victims) & set(ids)
    assert list(load_gold(gold_path(tmp_path / "out", "devel"))) == ids


def test_rerun_leaves_unchanged_outputs_alone(corpus, tmp_path):
    out = tmp_path / "out"
    prepare_slurp(corpus.root, out, splits=("devel",))
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    prepare_slurp(corpus.root, out, splits=("devel",))
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing rewritten, no temporaries
    assert sorted(before) == ["slurp_devel.jsonl", "slurp_devel_gold.jsonl"]


def test_bad_arguments_and_missing_annotations(corpus, tmp_path):
    with pytest.raises(ValueError, match="recordings must be"):
        prepare_slurp(corpus.root, tmp_path / "out", recordings="close")
    with pytest.raises(ValueError, match="unknown SLURP split"):
        prepare_slurp(corpus.root, tmp_path / "out", splits=("dev",))
    with pytest.raises(SlurpDataError, match=r"split 'test'.*dataset/slurp/test\.jsonl"):
        prepare_slurp(corpus.root, tmp_path / "out", splits=("test",))


# --- download ------------------------------------------------------------------------------------


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Files(BaseHTTPRequestHandler):
    """Serves ``server.files`` with HTTP range support, recording each request."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.requests.append((self.path, self.headers.get("Range")))
        data = self.server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    httpd.files, httpd.requests = {}, []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setattr(recipe, "ANNOTATION_URL", base + "/dataset/slurp/{split}.jsonl")
    monkeypatch.setattr(recipe, "AUDIO_URLS", {name: f"{base}/{name}.tar.gz" for name in recipe.AUDIO_URLS})
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def serve_slurp(server) -> dict[str, bytes]:
    annotations = {split: f'{{"split": "{split}"}}\n'.encode() * 50 for split in recipe.SPLITS}
    for split, data in annotations.items():
        server.files[f"/dataset/slurp/{split}.jsonl"] = data
    server.files["/slurp_real.tar.gz"] = tar_gz({"slurp_real/audio-1-headset.flac": b"real"})
    server.files["/slurp_synth.tar.gz"] = tar_gz({"slurp_synth/audio-2.flac": b"synth"})
    return annotations


def test_download_places_files_in_slurp_layout_and_skips_finished_ones(server, tmp_path):
    annotations = serve_slurp(server)
    target = download_slurp(tmp_path / "slurp")
    for split, data in annotations.items():
        assert (target / "dataset" / "slurp" / f"{split}.jsonl").read_bytes() == data
    assert (target / "audio" / "slurp_real" / "audio-1-headset.flac").read_bytes() == b"real"
    assert (target / "audio" / "slurp_synth" / "audio-2.flac").read_bytes() == b"synth"
    assert not list(target.rglob("*.part")) and not list((target / "audio").glob(".*"))
    count = len(server.requests)
    download_slurp(tmp_path / "slurp")
    assert len(server.requests) == count  # everything was already there


def test_download_resumes_a_partial_file(server, tmp_path):
    annotations = serve_slurp(server)
    dest = tmp_path / "slurp" / "dataset" / "slurp" / "devel.jsonl"
    dest.parent.mkdir(parents=True)
    dest.with_name("devel.jsonl.part").write_bytes(annotations["devel"][:100])
    download_slurp(tmp_path / "slurp", audio=False)
    assert dest.read_bytes() == annotations["devel"]
    assert ("/dataset/slurp/devel.jsonl", "bytes=100-") in server.requests
    assert not any(path.endswith(".tar.gz") for path, _ in server.requests)


def test_unsafe_archive_is_refused(server, tmp_path):
    serve_slurp(server)
    server.files["/slurp_real.tar.gz"] = tar_gz({"slurp_real/../../escape.flac": b"x"})
    with pytest.raises(SlurpDataError, match=r"slurp_real\.tar\.gz.*'\.\.'"):
        download_slurp(tmp_path / "slurp")
    assert not (tmp_path / "escape.flac").exists() and not (tmp_path / "slurp" / "audio" / "slurp_real").exists()


def test_network_failure_names_every_url_and_the_layout(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connections are refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(recipe, "ANNOTATION_URL", f"http://127.0.0.1:{port}/{{split}}.jsonl")
    monkeypatch.setattr(
        recipe, "AUDIO_URLS", {name: f"http://127.0.0.1:{port}/{name}.tar.gz" for name in recipe.AUDIO_URLS}
    )
    with pytest.raises(SlurpDownloadError) as err:
        download_slurp(tmp_path / "slurp")
    message = str(err.value)
    assert "could not download 6 SLURP file(s)" in message
    for split in recipe.SPLITS:
        assert f"http://127.0.0.1:{port}/{split}.jsonl\n    -> {tmp_path}/slurp/dataset/slurp/{split}.jsonl" in message
    assert f"-> {tmp_path}/slurp/audio/slurp_real.tar.gz" in message
    assert f"{tmp_path}/slurp/audio/slurp_synth/*.flac" in message

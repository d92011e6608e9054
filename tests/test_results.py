import json
import multiprocessing as mp

import pytest

from nestbench.results import ResultsStore, ResultsStoreError


def test_append_and_read(tmp_path):
    store = ResultsStore(tmp_path / "results.jsonl")
    store.append({"run": 1, "metrics": {"intent_acc": 0.5}})
    store.append({"run": 2})
    assert [r["run"] for r in store.read()] == [1, 2]


def test_truncated_last_line_is_repaired_nothing_lost(tmp_path):
    path = tmp_path / "results.jsonl"
    store = ResultsStore(path)
    store.append({"run": 1})
    store.append({"run": 2})
    with open(path, "a") as f:
        f.write('{"run": 3, "metr')  # a writer killed mid-line
    assert [r["run"] for r in store.read()] == [1, 2]
    assert path.read_text().endswith("\n")
    assert (tmp_path / "results.jsonl.torn").read_text().startswith('{"run": 3')
    store.append({"run": 4})  # appends after the repair land on their own line
    assert [r["run"] for r in store.read()] == [1, 2, 4]


def test_complete_record_missing_newline_is_kept(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"run": 1}))
    store = ResultsStore(path)
    store.append({"run": 2})
    assert [r["run"] for r in store.read()] == [1, 2]


def test_corruption_in_the_middle_names_the_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"run": 1}\nnot json\n{"run": 3}\n')
    with pytest.raises(ResultsStoreError, match=r"results\.jsonl:2"):
        ResultsStore(path).read()


def _writer(path, k):
    store = ResultsStore(path)
    for i in range(25):
        store.append({"worker": k, "i": i, "pad": "x" * 2000})


def test_concurrent_appends_do_not_interleave(tmp_path):
    path = tmp_path / "results.jsonl"
    procs = [mp.get_context("fork").Process(target=_writer, args=(path, k)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    records = ResultsStore(path).read()
    assert len(records) == 100
    assert {(r["worker"], r["i"]) for r in records} == {(k, i) for k in range(4) for i in range(25)}

"""The SLU adapter's result table carries its trivial baseline: the training set's majority intent."""

import pytest

from nestbench.task import Example
from tasks.slu import SluTask


def _entry(i: int, scenario: str, action: str) -> dict:
    return {"id": f"f{i}.flac", "duration": 1.0, "scenario": scenario, "action": action, "entities": []}


def test_majority_intent_baseline_is_scored_beside_the_model(tmp_path):
    train = [_entry(0, "alarm", "set"), _entry(1, "alarm", "set"), _entry(2, "music", "play")]
    task = SluTask(vocab_size=40)
    task.setup(train, tmp_path)
    assert task.majority == ("alarm", "set")
    intents = [("alarm", "set"), ("music", "play"), ("music", "play"), ("iot", "on")]
    tests = [_entry(10 + i, scenario, action) for i, (scenario, action) in enumerate(intents)]
    ev = task.evaluator(None, tests)
    decoded = ["music_play", "music_play", "music_play", "iot_on"]  # three of four right
    ev.update([Example(e["id"], e["id"], e) for e in tests], decoded)
    scores = ev.compute()
    assert scores["intent_acc"] == pytest.approx(0.75)
    assert scores["baseline_intent_acc_majority"] == pytest.approx(0.25)  # only f10 is alarm_set

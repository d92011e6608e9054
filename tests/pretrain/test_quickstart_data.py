"""The pretraining quickstart's speech is apart from every downstream quickstart's evaluation data: no
voice variant heard in a dev or test set, and no sentence of one. Checked against the shipped specs, so
a downstream spec that changes its corpus fails here until pretrain.gin's list follows."""

from pathlib import Path

import pytest

from nestbench.spec import load_spec
from nestbench.synth import diar_mini, slurp_mini, sv_mini
from nestbench.synth import speech_text_mini as stm

ROOT = Path(__file__).resolve().parents[2]
DOWNSTREAM = ["slurp", "slurp_frozen", "sv", "asr", "ast", "diarization"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NESTBENCH_CACHE", str(tmp_path / "cache"))


def _heldout(data) -> tuple[set[str], set[str]]:
    """Voice variants and texts of a quickstart corpus's dev and test splits, from its plan (no audio)."""
    kind = type(data).__name__
    if kind == "MiniSlurpData":
        plan = slurp_mini.plan_mini_slurp(data.config)
        rows = [row for split in ("devel", "test") for row in plan[split]]
        return {voice.name for _, voice in rows}, {record["sentence"] for record, _ in rows}
    if kind == "SvMiniData":
        plan = sv_mini.plan_sv_mini(data.config)
        utts = [u for split, us in plan.utterances.items() if split != "train" for u in us]
    elif kind == "DiarMiniData":
        plan = diar_mini.plan_diar_mini(data.config)
        turns = [t for split, ss in plan.sessions.items() if split != "train" for s in ss for t in s.turns]
        utts = [t.utterance for t in turns] + [t.backchannel for t in turns if t.backchannel]
    elif kind == "SpeechTextMiniData":
        plan = stm.plan_speech_text_mini(data.config)
        utts = [u for split, us in plan.utterances.items() if split != "train" for u in us]
    else:
        raise AssertionError(f"a quickstart corpus this test does not know: {kind}; add it here")
    variants = {s.variant for s in plan.speakers if s.split != "train"}
    return variants, {u.text for u in utts}


def test_pretraining_speech_is_apart_from_every_downstream_evaluation_set():
    pretrain = load_spec(ROOT / "experiments/quickstart/pretrain.gin", root="PretrainExperiment").experiment
    excluded = set(pretrain.data.config.variants) ^ set(stm.VARIANTS)  # the variants it may not use
    ours = stm.plan_speech_text_mini(pretrain.data.config)
    our_variants = {s.variant for s in ours.speakers}
    our_texts = {u.text for split in ("train", "dev") for u in ours.utterances[split]}
    assert our_variants and not our_variants & excluded
    for name in DOWNSTREAM:
        data = load_spec(ROOT / f"experiments/quickstart/{name}.gin").experiment.data
        variants, texts = _heldout(data)
        assert variants and texts, name
        assert variants <= excluded, f"{name}: evaluates on {sorted(variants - excluded)}, which pretraining uses"
        assert not our_texts & texts, f"{name}: shares sentences with pretraining: {sorted(our_texts & texts)[:3]}"

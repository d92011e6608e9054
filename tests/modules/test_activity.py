"""Frame labels, window stitching and post-processing: the path from model outputs to RTTM turns."""

import numpy as np

from nestbench.modules.activity import PostProcessing, binarize, frame_labels, stitch, turns

FS = 0.08


def test_frame_labels_follow_arrival_order_within_the_window():
    t = [(0.0, 4.0, "B"), (2.0, 3.0, "A"), (10.0, 2.0, "C")]
    labels, dropped = frame_labels(t, offset=1.0, duration=4.0, frame_shift=FS, max_speakers=4)
    assert labels.shape == (50, 4) and dropped == 0
    # B speaks first inside the window: column 0; A from 2 s (frame 12.5 -> centre of frame 12 is 1.0 + 1.0 s)
    assert labels[:, 0].sum() == 37  # frames whose centre lies in [1, 4): (4 - 1) / 0.08 = 37.5 -> 37
    assert labels[:12, 1].sum() == 0 and labels[13:, 1].all()
    assert labels[:, 2:].sum() == 0  # C is outside the window


def test_frame_labels_count_speakers_that_do_not_fit():
    t = [(i * 1.0, 0.5, f"s{i}") for i in range(5)]
    labels, dropped = frame_labels(t, 0.0, 5.0, FS, max_speakers=3)
    # frame k is on when its centre (k + 0.5) * 0.08 lies in the turn: [0, 0.5) holds k = 0..5,
    # [1, 1.5) holds k = 12..18 (the centre of frame 12 is exactly 1.0), [2, 2.5) holds k = 25..30
    assert dropped == 2 and labels.sum(0).tolist() == [6, 7, 6]


def _probs(active: list[tuple[int, int, int]], n: int, slots: int = 4) -> np.ndarray:
    p = np.full((n, slots), 0.02)
    for s, a, b in active:
        p[a:b, s] = 0.95
    return p


def test_stitch_matches_slots_to_session_speakers_on_shared_frames():
    # session of 300 frames; speaker X speaks 0-120, Y 100-300. Window 1 (0-200): X slot 0, Y slot 1.
    # Window 2 (100-300): Y speaks first there, so Y is slot 0 and X (100-120) slot 1.
    w1 = _probs([(0, 0, 120), (1, 100, 200)], 200)
    w2 = _probs([(1, 0, 20), (0, 0, 200)], 200)
    session = stitch([(0.0, w1), (100 * FS, w2)], FS, 300)
    assert session.shape == (300, 2)
    x, y = session[:, 0] > 0.5, session[:, 1] > 0.5
    assert x[:120].all() and not x[120:].any()
    assert not y[:100].any() and y[100:].all()


def test_stitch_adds_a_speaker_who_first_speaks_in_a_later_window():
    w1 = _probs([(0, 0, 200)], 200)
    w2 = _probs([(0, 0, 100), (1, 150, 200)], 200)  # Z appears after the shared part
    session = stitch([(0.0, w1), (100 * FS, w2)], FS, 300)
    assert session.shape[1] == 2 and (session[250:, 1] > 0.5).all() and (session[:250, 1] < 0.5).all()


def test_binarize_hysteresis_median_and_durations():
    p = np.array([0.1, 0.6, 0.45, 0.45, 0.3, 0.1, 0.7, 0.1, 0.1, 0.9, 0.9, 0.9])[:, None]
    hyst = binarize(p, FS, PostProcessing(onset=0.5, offset=0.4))
    assert hyst[:, 0].astype(int).tolist() == [0, 1, 1, 1, 0, 0, 1, 0, 0, 1, 1, 1]
    fill = binarize(p, FS, PostProcessing(onset=0.5, offset=0.4, min_duration_off=0.2))
    assert fill[:, 0].astype(int).tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    prune = binarize(p, FS, PostProcessing(onset=0.5, offset=0.4, min_duration_on=0.2))
    assert prune[:, 0].astype(int).tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1]
    median = binarize(p, FS, PostProcessing(median_frames=3))
    assert not median[6, 0]  # a one-frame spike is filtered out


def test_turns_are_seconds_per_active_run():
    a = np.zeros((10, 2), bool)
    a[2:5, 0] = a[4:10, 1] = True
    assert turns(a, 0.1) == [(0.2, 0.30000000000000004, "spk0"), (0.4, 0.6000000000000001, "spk1")]


def test_stitch_rejoins_a_speaker_silent_through_the_shared_part_by_profile():
    # X speaks 0-50 and again 250-300; Y speaks 60-300. Window 2 (100-300) shares frames 100-200 with
    # window 1, where X is silent: only X's profile can say that the slot speaking at 250 is X again.
    w1 = _probs([(0, 0, 50), (1, 60, 200)], 200)
    w2 = _probs([(0, 0, 200), (1, 150, 200)], 200)
    x, y = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    windows = [(0.0, w1, np.stack([x, y, y, y])), (100 * FS, w2, np.stack([y, x, y, y]))]
    joined = stitch(windows, FS, 300, min_similarity=0.9)
    assert joined.shape[1] == 2 and (joined[250:, 0] > 0.5).all()
    apart = stitch([w[:2] for w in windows], FS, 300)
    assert apart.shape[1] == 3  # without profiles X comes back as a third speaker

import pytest
import torch

from nestbench.pretrain import MultiSpeakerNoiseAugmentation


def _noise(n=3, seconds=0.3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(int(seconds * 16000), generator=gen) for _ in range(n)]


def _changed(clean, noisy):
    return (noisy != clean).any(dim=1)


def test_about_half_the_batch_is_augmented_and_the_input_is_untouched(sines):
    clean = sines(400, 0.05)
    before = clean.clone()
    lengths = torch.full((400,), clean.shape[1])
    aug = MultiSpeakerNoiseAugmentation(noise=_noise())
    noisy = aug(clean, lengths, torch.Generator().manual_seed(0))
    assert torch.equal(clean, before)
    frac = _changed(clean, noisy).float().mean().item()
    assert 0.42 < frac < 0.58
    assert torch.equal(noisy[~_changed(clean, noisy)], clean[~_changed(clean, noisy)])


def test_half_of_the_utterance_is_overlaid_in_one_segment_at_the_drawn_energy_ratio(sines):
    clean = sines(16, 0.1)
    lengths = torch.full((16,), 1600)
    lengths[::2] = 1000
    aug = MultiSpeakerNoiseAugmentation(noise=_noise(), prob=1.0, noise_ratio=1.0, min_r_noise=10.0, max_r_noise=10.0)
    noisy = aug(clean, lengths, torch.Generator().manual_seed(1))
    for i, n in enumerate(lengths.tolist()):
        diff = (noisy[i] - clean[i]).nonzero().flatten()
        assert diff.numel() == n // 2 and diff.max() < n
        assert diff.max() - diff.min() + 1 == n // 2  # one contiguous piece
        ratio = clean[i, :n].pow(2).mean() / (noisy[i] - clean[i])[:n].pow(2).mean()
        torch.testing.assert_close(ratio.item(), 10.0, rtol=1e-3, atol=0)


def test_speech_mode_mixes_another_utterance_within_the_speech_ratio_range():
    clean = torch.stack([torch.full((800,), float(v)) for v in (1.0, 2.0, 3.0, 4.0)])
    aug = MultiSpeakerNoiseAugmentation(noise=None, prob=1.0, noise_ratio=0.0)
    noisy = aug(clean, torch.full((4,), 800), torch.Generator().manual_seed(2))
    for i in range(4):
        added = noisy[i] - clean[i]
        assert (added != 0).sum() == 400
        ratio_db = 10 * torch.log10(clean[i].pow(2).mean() / added.pow(2).mean())
        assert -5.0 - 1e-4 <= ratio_db <= 5.0 + 1e-4
        levels = (added[added != 0] / added[added != 0][0]).unique()  # one other (constant) utterance, scaled
        assert torch.allclose(levels, torch.ones(1))


def test_deterministic_under_generator_and_callable_noise(sines):
    clean, lengths = sines(8, 0.1), torch.full((8,), 1600)
    draw = lambda n, gen: torch.randn(n, generator=gen)
    aug = MultiSpeakerNoiseAugmentation(noise=draw)
    a = aug(clean, lengths, torch.Generator().manual_seed(5))
    b = aug(clean, lengths, torch.Generator().manual_seed(5))
    c = aug(clean, lengths, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(("noise", "word"), [(None, "missing"), ([], "empty")])
def test_missing_or_empty_noise_set_is_an_error(noise, word):
    with pytest.raises(ValueError, match=word):
        MultiSpeakerNoiseAugmentation(noise=noise)
    MultiSpeakerNoiseAugmentation(noise=noise, noise_ratio=0.0)  # speech mixing only: fine
    MultiSpeakerNoiseAugmentation(noise=noise, prob=0.0)  # augmentation off: fine


def test_targets_come_from_the_clean_audio(audio, tiny_objective):
    wave, lengths = audio
    aug = MultiSpeakerNoiseAugmentation(noise=_noise(seconds=1.0), prob=1.0)
    objective = tiny_objective(augmentation=aug).eval()
    batch = objective.prepare(wave, lengths, torch.Generator().manual_seed(0))
    assert torch.equal(batch.tokens, objective.targets(wave, lengths))
    clean_mel, _ = objective.nest.preprocessor(wave, lengths)
    unmasked = batch.masks == 0
    assert not torch.allclose(batch.features[unmasked], clean_mel[unmasked])  # the encoder saw noisy audio
    noisy = aug(wave, lengths, torch.Generator().manual_seed(0))
    assert not torch.equal(objective.targets(noisy, lengths), batch.tokens)

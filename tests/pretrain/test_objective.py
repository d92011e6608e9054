import math

import pytest
import torch

from nestbench.checkpoint import load_nemo, write_nemo
from nestbench.pretrain import CheckpointMismatchError, MultiSoftmaxDecoder, NestObjective

NEMO_KEYS = {
    "quantizer.proj.weight": (16, 640),
    "quantizer.codebooks": (1, 64, 16),
    "mask_processor.mask_embedding": (80,),
    "decoder.decoder_layers.0.weight": (64, 32, 1),
    "decoder.decoder_layers.0.bias": (64,),
}


def test_forward_outputs(audio, tiny_objective):
    out = tiny_objective()(*audio, generator=torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "accuracy", "n_masked"}
    assert out["n_masked"] > 0 and 0.0 <= out["accuracy"].item() <= 1.0
    assert abs(out["loss"].item() - math.log(64)) < 1.5  # near-uniform predictions at initialisation


def test_loss_falls_on_a_fixed_batch(audio, tiny_objective):
    torch.manual_seed(0)
    objective = tiny_objective().train()
    opt = torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(30):
        out = objective(*audio, generator=torch.Generator().manual_seed(0))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    assert not any(p.grad is not None for p in objective.quantizer.parameters())  # targets stay fixed


def test_nemo_keys_round_trip(audio, tmp_path, tiny_objective):
    a = tiny_objective(seed=0)
    sd = a.state_dict_for_nemo()
    assert {k: tuple(sd[k].shape) for k in NEMO_KEYS} == NEMO_KEYS
    assert {k.split(".", 1)[0] for k in sd} == {"preprocessor", "encoder", "quantizer", "mask_processor", "decoder"}
    assert "preprocessor.featurizer.fb" in sd and "encoder.pre_encode.out.weight" in sd
    path = write_nemo(tmp_path / "nest.nemo", a.nemo_config(), sd)
    ckpt = load_nemo(path, cache_dir=tmp_path / "cache")
    assert ckpt.config["target"].endswith("EncDecDenoiseMaskedTokenPredModel")
    b = tiny_objective(seed=1)
    b.load_nemo_state_dict(ckpt.state_dict, origin=str(path))
    a.eval(), b.eval()
    out_a = a(*audio, generator=torch.Generator().manual_seed(3))
    out_b = b(*audio, generator=torch.Generator().manual_seed(3))
    assert out_a["n_masked"] == out_b["n_masked"] > 0
    torch.testing.assert_close(out_a["loss"], out_b["loss"], rtol=0, atol=0)


def test_ssl_parts_keep_the_checkpoint_quantizer(tiny_objective):
    a, b = tiny_objective(seed=0), tiny_objective(seed=1)
    assert not torch.equal(a.quantizer.codebooks, b.quantizer.codebooks)
    b.load_nemo_ssl_parts(a.state_dict_for_nemo())
    assert torch.equal(a.quantizer.codebooks, b.quantizer.codebooks)
    assert torch.equal(a.quantizer.proj.weight, b.quantizer.proj.weight)
    assert torch.equal(a.decoder.decoder_layers[0].weight, b.decoder.decoder_layers[0].weight)
    assert not torch.equal(a.nest.encoder.pre_encode.out.weight, b.nest.encoder.pre_encode.out.weight)


def test_wrong_architecture_is_refused_with_the_keys(tiny_objective):
    sd = tiny_objective(num_classes=128).state_dict_for_nemo()  # another codebook size
    del sd["mask_processor.mask_embedding"]
    sd["decoder_ssl.weight"] = torch.zeros(3)  # a module NEST does not have
    with pytest.raises(CheckpointMismatchError) as err:
        tiny_objective().load_nemo_ssl_parts(sd, origin="other.nemo")
    e = err.value
    assert e.missing == ["mask_processor.mask_embedding"]
    assert e.unexpected == ["decoder_ssl.weight"]
    assert [m.split(":")[0] for m in e.mismatched] == [
        "decoder.decoder_layers.0.bias",
        "decoder.decoder_layers.0.weight",
        "quantizer.codebooks",
    ]
    assert "other.nemo" in str(e) and "quantizer.codebooks" in str(e)


def test_parts_that_do_not_fit_are_refused(tiny_objective):
    with pytest.raises(ValueError, match="decoder.num_classes vs quantizer.num_classes"):
        tiny_objective(decoder=MultiSoftmaxDecoder(feat_in=32, num_classes=10))
    assert isinstance(tiny_objective(), NestObjective)

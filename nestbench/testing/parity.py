"""Compare nestbench with reference outputs that real NeMo produced (``tools/make_parity_fixture.py``).

A fixture folder holds ``nest_<size>.nemo``, ``audio/*.wav``, ``manifest.jsonl`` and
``reference.npz`` (NeMo's mel features and every conformer layer's output, for each utterance
alone and for one padded batch). Differences are measured on valid frames only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import AudioReader
from ..encoder import NestEncoder
from ..manifest import read_manifest


@dataclass
class ParityReport:
    mel_single: float
    layers_single: float
    mel_batch: float
    layers_batch: float
    per_layer_batch: list[float]
    lengths_match: bool

    @property
    def worst(self) -> float:
        return max(self.mel_single, self.layers_single, self.mel_batch, self.layers_batch)


def compare_with_reference(fixture: str | Path, cache_dir: str | Path | None = None) -> ParityReport:
    fixture = Path(fixture)
    (nemo_file,) = sorted(fixture.glob("*.nemo"))
    encoder = NestEncoder.from_pretrained(nemo_file, cache_dir=cache_dir)
    ref = np.load(fixture / "reference.npz")
    entries = {e.utt_id: e for e in read_manifest(fixture / "manifest.jsonl")}
    reader = AudioReader(encoder.sample_rate)
    utt_ids = [str(u) for u in ref["utt_ids"]]
    audio = [torch.from_numpy(reader.read(entries[u].audio_filepath)) for u in utt_ids]

    mel_single = layers_single = 0.0
    lengths_match = True
    with torch.inference_mode():
        for utt, wav in zip(utt_ids, audio, strict=True):
            lengths = torch.tensor([len(wav)])
            mel, frames = encoder.preprocessor(wav[None], lengths)
            out = encoder(wav[None], lengths)
            n_mel, n_enc = int(ref[f"single/{utt}/mel_len"]), int(ref[f"single/{utt}/enc_len"])
            lengths_match &= int(frames[0]) == n_mel and int(out.lengths[0]) == n_enc
            mel_single = max(mel_single, _maxdiff(mel[0, :, :n_mel], ref[f"single/{utt}/mel"][:, :n_mel]))
            ours = out.stacked()[:, 0, :n_enc]
            layers_single = max(layers_single, _maxdiff(ours, ref[f"single/{utt}/layers"][:, :n_enc]))

        lengths = torch.tensor([len(a) for a in audio])
        batch = torch.nn.utils.rnn.pad_sequence(audio, batch_first=True)
        mel, frames = encoder.preprocessor(batch, lengths)
        out = encoder(batch, lengths)
    ref_mel_len, ref_enc_len = ref["batch/mel_len"], ref["batch/enc_len"]
    lengths_match &= frames.tolist() == ref_mel_len.tolist() and out.lengths.tolist() == ref_enc_len.tolist()
    mel_batch = max(_maxdiff(mel[i, :, :n], ref["batch/mel"][i, :, :n]) for i, n in enumerate(ref_mel_len))
    stacked = out.stacked()
    per_layer = [
        max(_maxdiff(stacked[k, i, :n], ref["batch/layers"][k, i, :n]) for i, n in enumerate(ref_enc_len))
        for k in range(stacked.shape[0])
    ]
    return ParityReport(mel_single, layers_single, mel_batch, max(per_layer), per_layer, lengths_match)


def _maxdiff(ours: torch.Tensor, theirs: np.ndarray) -> float:
    return float((ours.float() - torch.from_numpy(np.asarray(theirs, dtype=np.float32))).abs().max())

"""Task adapters: one file per task family, listed here explicitly (never found by import side effects).

A new task is one file in this folder (implementing ``nestbench.task.Task``), one line in ``TASKS``
(and its data sources in ``DATA_SOURCES``), its scorer in ``SCORE_VERBS`` (``nestbench score <name>``),
any downloadable corpus in ``DOWNLOAD_VERBS`` (``nestbench download <name>``), and one spec in
``experiments/``.
"""

from nestbench.data import ManifestData

from . import asr, diarization, slu, speaker_verification, translation
from .asr import AsrTask, CommonVoiceData, SpeechTextMiniData
from .diarization import CallhomeData, DiarizationTask, DiarMiniData, Dihard3Data, RttmData
from .slu import MiniSlurpData, SlurpData, SluTask
from .speaker_verification import SpeakerVerificationTask, SvMiniData, VoxCelebData
from .translation import FleursData, TranslationTask

TASKS = {
    "slu": SluTask,
    "sv": SpeakerVerificationTask,
    "diar": DiarizationTask,
    "asr": AsrTask,
    "ast": TranslationTask,
}
DATA_SOURCES = {
    "manifests": ManifestData,
    "slurp": SlurpData,
    "mini_slurp": MiniSlurpData,
    "sv_mini": SvMiniData,
    "voxceleb": VoxCelebData,
    "diar_mini": DiarMiniData,
    "rttm": RttmData,
    "callhome": CallhomeData,
    "dihard3": Dihard3Data,
    "speech_text_mini": SpeechTextMiniData,
    "commonvoice": CommonVoiceData,
    "fleurs": FleursData,
}
SCORE_VERBS = {
    v.name: v for v in (slu.SCORE, speaker_verification.SCORE, diarization.SCORE, asr.SCORE, translation.SCORE)
}
DOWNLOAD_VERBS = {v.name: v for v in (slu.DOWNLOAD,)}

__all__ = ["DATA_SOURCES", "DOWNLOAD_VERBS", "SCORE_VERBS", "TASKS"]

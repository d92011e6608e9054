"""Load NeMo `.nemo` checkpoints safely, without NeMo: validated tar extraction, `yaml.safe_load`,
`torch.load(weights_only=True)`, and hub ids resolved through a local cache."""

from nestbench.checkpoint.hub import default_cache_dir, resolve_checkpoint
from nestbench.checkpoint.nemo_file import NemoCheckpoint, load_nemo, split_state_dict
from nestbench.checkpoint.safe_tar import CheckpointError, safe_extract

__all__ = [
    "CheckpointError",
    "NemoCheckpoint",
    "default_cache_dir",
    "load_nemo",
    "resolve_checkpoint",
    "safe_extract",
    "split_state_dict",
]

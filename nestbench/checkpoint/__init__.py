"""Load NeMo `.nemo` checkpoints safely, without NeMo: validated tar extraction, `yaml.safe_load`,
`torch.load(weights_only=True)`, and hub ids resolved through a local cache."""

from nestbench.checkpoint.hub import checkpoint_status, default_cache_dir, resolve_checkpoint
from nestbench.checkpoint.nemo_file import NemoCheckpoint, load_nemo, split_state_dict, write_nemo
from nestbench.checkpoint.safe_tar import CheckpointError, safe_extract

__all__ = [
    "CheckpointError",
    "checkpoint_status",
    "NemoCheckpoint",
    "default_cache_dir",
    "load_nemo",
    "resolve_checkpoint",
    "safe_extract",
    "split_state_dict",
    "write_nemo",
]

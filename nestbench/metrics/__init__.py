"""Metrics, each scored exactly as the field's reference tool scores it."""

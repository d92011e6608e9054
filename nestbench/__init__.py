"""nestbench: declarative experiments and benchmarks for NVIDIA NEST speech encoders."""

__version__ = "0.1.0"

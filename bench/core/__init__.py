"""The kernel: diffusion process, random streams, process groups, small I/O helpers.

torch/numpy only; the one part of ``bench`` that ``strategies/`` and ``backbones/`` may import.
"""

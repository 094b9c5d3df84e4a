"""The kernel: the diffusion process (``process``: the contract; ``ddpm``; ``processes``: the
one constructor), the gradient-variance estimator, random streams, process groups, the cost unit
and its counter, small I/O helpers.

torch/numpy only; the one part of ``bench`` that ``strategies/`` and ``backbones/`` may import.
"""

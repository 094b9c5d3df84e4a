"""timestep-bench: compare diffusion-model timestep sampling and loss-weighting strategies.

The package map and the import rules between its sub-packages are in docs/architecture.md.
"""

__version__ = "0.1.0"

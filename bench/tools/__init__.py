"""Command-line tools that inspect rather than run experiments: strategy tables and plots,
samples of a run, throughput measurements, latent pre-encoding. Each is
``python -m bench.<tool>``."""

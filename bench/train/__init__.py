"""Training: the trainer (one loop for every strategy, with a callback protocol), the components
it builds from a config, and one run into its run directory. Knows nothing of evaluation."""

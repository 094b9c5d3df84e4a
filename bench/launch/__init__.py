"""Launching a sweep's runs: the checkpointable task, its outcomes, and the in-process, local and
SLURM executors."""

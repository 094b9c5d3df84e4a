"""Sweeps: the sweep file, its pure expansion into run configs (spec), and the command that plans
or launches them (``python -m bench.sweep``)."""

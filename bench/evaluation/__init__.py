"""Evaluation: trainer callbacks (sample metrics, test NLL, per-timestep diagnostics), sampling,
Fréchet distances (fid), the VLB (nll), 2-D toy metrics and the diagnostics' estimators."""

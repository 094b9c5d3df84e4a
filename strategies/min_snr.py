"""Min-SNR-γ weighting — Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting
Strategy" (ICCV 2023, arXiv 2303.09556, Sec. 3.4: w_t = min{SNR(t), γ}); official code
TiankaiHang/Min-SNR-Diffusion-Training, ``guided_diffusion/gaussian_diffusion.py::training_losses``
(``--mse_loss_weight_type``).

Sampling density: uniform, i ~ U{0, …, T−1}; importance 1. Loss weight: no normalisation.

The official weight multiplies the MSE of whatever the network predicts (``prediction``):

* ``eps`` (``min_snr_γ``, ε target):  w = min(SNR, γ) / SNR
* ``x0``  (``min_snr_γ``, x0 target): w = min(SNR, γ)
* ``v``   (``vmin_snr_γ``, v target): w = min(SNR, γ) / (SNR + 1)

with the zero-terminal-SNR guard w[SNR == 0] = 1 (official PR #4). ``target_weights()`` returns
exactly this formula for the chosen form.

This benchmark trains ε-prediction, so ``eps`` is the default. The three forms are the same
objective written on different targets: with x̂0 and v̂ implied by ε̂ through x_t,
‖x0 − x̂0‖² = ‖ε − ε̂‖²/SNR and ‖v − v̂‖² = ‖ε − ε̂‖²·(SNR + 1)/SNR. ``loss_weights()`` — the factor
on the ε-MSE that the trainer applies — is therefore min(SNR, γ)/SNR for every form (1 where
SNR = 0, the guard). The x0 and v forms are kept for reference and for composing with a trainer that
predicts those targets. (Three different v-forms circulate in diffusers-derived code; only
min(SNR, γ)/(SNR + 1) equals the official repository.)

Defaults: γ = 5 (every shipped config; the Kim et al. appendix). γ must be > 0 (γ = 0 zeroes
the loss).
Deviation from the official code: none for the ε-MSE; the learned-σ ``vb`` term does not exist here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from strategies._checks import choice, number
from strategies.registry import register
from strategies.uniform import Uniform

PREDICTIONS = ("eps", "x0", "v")


def min_snr_target_weights(snr: Tensor, gamma: float, prediction: str) -> Tensor:
    """The official per-timestep weight on the MSE of the ``prediction`` target (float64)."""
    snr = snr.to(torch.float64)
    clipped = torch.clamp(snr, max=gamma)
    if prediction == "eps":
        w = clipped / snr
    elif prediction == "x0":
        w = clipped
    else:
        w = clipped / (snr + 1.0)
    return torch.where(snr == 0, torch.ones_like(w), w)


@register
class MinSNR(Uniform):  # uniform density (sample, probabilities)
    name = "min_snr"
    paper = "Hang et al. 2023, Min-SNR-γ (arXiv 2303.09556), w = min(SNR, γ)"

    @dataclass(frozen=True)
    class Params:
        gamma: float = 5.0         # the clamp γ on the SNR, > 0
        prediction: str = "eps"    # which target the official formula is written for: eps | x0 | v

        def __post_init__(self):
            number("min_snr", "gamma", self.gamma, low=0, low_open=True)
            choice("min_snr", "prediction", self.prediction, PREDICTIONS)

    def __init__(self, process, params=None):
        super().__init__(process, params)
        self._snr = process.snr.to(torch.float64)
        # Weight on the ε-MSE: identical for all three forms (module docstring); on the process's
        # own loss (flow: × (1 − t)², i.e. min((1 − t)², γ·t²); docs/processes.md).
        self._w = min_snr_target_weights(self._snr, self.params.gamma, "eps") * process.eps_to_loss

    def target_weights(self) -> Tensor:
        """The official weight on the MSE of ``params.prediction``'s target, float64 [T]."""
        return min_snr_target_weights(self._snr, self.params.gamma, self.params.prediction)

    def loss_weights(self) -> Tensor:
        return self._w.clone()

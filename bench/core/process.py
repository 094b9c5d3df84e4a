"""The ``Process`` contract: the one owner of a diffusion process's maths.

A process says how clean data becomes noisy (``noised``), what the network is trained to predict
(``target``) and with which per-example loss (``loss``, the one place the training MSE is
written), which time the network embeds (``model_time``), how noisy a time is (``log_snr``), how
its time is tabulated (``grid``: p(t) tables, loss bins, histograms), how samples are drawn and
what they cost (``sample``, ``sample_passes``), and its likelihood terms (``likelihood_terms``,
``prior_bpd``). Strategies, the trainer, the evaluation and the sweep plan reach the process only
through this contract; the one constructor from a config is ``bench.core.processes.build``.

What a strategy draws is a cell of the process's ``TimeGrid``: DDPM's index i (``bench.core.ddpm``)
or, for rectified flow (``bench.core.flow``), one of K cells of [0, 1]. So every table indexed by
time (a strategy's p(t), its loss weights, the drawn-t histogram, the training-loss bins) has one
shape per process. The time a drawn cell is trained at is ``train_times``: DDPM's index itself; on
flow a continuous t drawn uniformly within the cell (or the cell's centre), which the process's
methods take wherever they take a cell. ``TimeGrid`` maps either back onto its cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


_ON_DEVICE: dict = {}


def on_device(table: Tensor, device: torch.device) -> Tensor:
    """``table`` (a process's fixed host table) on ``device``: copied once per table and device
    (a copy at every step would make a GPU step wait for the host)."""
    if table.device == device:
        return table
    key = (id(table), device)
    hit = _ON_DEVICE.get(key)
    if hit is None or hit[0] is not table:
        hit = _ON_DEVICE[key] = (table, table.to(device))
    return hit[1]


def mean_flat(x: Tensor) -> Tensor:
    """Mean over every dimension but the batch."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


def upcast(x: Tensor) -> Tensor:
    """float32 at least (bf16/fp16 network outputs are upcast; float64 stays float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


@dataclass(frozen=True)
class TimeGrid:
    """K cells tabulating a process's time. ``discrete``: time is the cell index itself (DDPM:
    K = T, cell i is index i); otherwise an integer tensor holds cell indices and a floating one
    continuous times t ∈ [0, 1], t in cell ⌊t·K⌋ (the last cell closed)."""

    size: int
    discrete: bool = True

    def cell(self, t: Tensor) -> Tensor:
        """The cell index (int64) of every time in ``t``."""
        if self.discrete or not t.is_floating_point():
            return t.long()
        return (t.double() * self.size).floor().long().clamp(0, self.size - 1)

    def bins(self, t: Tensor, k: int) -> Tensor:
        """The index (int64, in [0, k)) of the equal-width bin of every time in ``t`` when the
        grid is cut into ``k`` bins (the training-loss bins)."""
        return torch.div(self.cell(t) * k, self.size, rounding_mode="floor")


class Process:
    """Base class of a diffusion process; a subclass implements every method (the DDPM one:
    ``bench.core.ddpm.DDPM``)."""

    name: str = ""
    SAMPLERS: tuple[str, ...] = ()
    grid: TimeGrid              # the cells that tabulate this process's time
    snr: Tensor                 # SNR at each grid cell, float64 [grid.size] (weightings read it)
    eps_to_loss: Tensor         # float64 [grid.size]: the ε-MSE over this process's training loss
                                # at one prediction (DDPM 1; flow (1 − t)²), so that a weight
                                # written for the ε-loss becomes a weight on the training loss

    # --- training ------------------------------------------------------------------------
    def noised(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t, the input the network sees at time t."""
        raise NotImplementedError

    def target(self, x0: Tensor, noise: Tensor) -> Tensor:
        """What the network is trained to predict at (x0, noise)."""
        raise NotImplementedError

    def model_time(self, t: Tensor) -> Tensor:
        """The time the network embeds (the backbones' sinusoidal embeddings see this)."""
        raise NotImplementedError

    def model_cell(self, model_t: Tensor) -> Tensor:
        """The grid cell (int64) of a time the network embeds (``model_time``'s inverse)."""
        raise NotImplementedError

    @staticmethod
    def loss(pred: Tensor, target: Tensor) -> Tensor:
        """Per-example mean squared error of the prediction (the one training-loss formula)."""
        return mean_flat((target - upcast(pred)) ** 2)

    def losses(self, model, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Per-example training loss of ``model`` (called as ``model(x_t, model_time(t))``)."""
        return self.loss(model(self.noised(x0, t, noise), self.model_time(t)),
                         self.target(x0, noise))

    def train_times(self, cells: Tensor, generator: torch.Generator) -> Tensor:
        """The times the drawn grid ``cells`` are trained at (what ``noised``/``model_time`` get
        in the training step); may draw from ``generator`` (the run's per-step stream for it)."""
        raise NotImplementedError

    # --- noise levels ----------------------------------------------------------------------
    def log_snr(self, t: Tensor) -> Tensor:
        """λ(t) = log SNR at time t (float64)."""
        raise NotImplementedError

    def elbo_weights(self) -> Tensor:
        """Per grid cell, float64 [grid.size]: the factor that turns the training loss into that
        cell's term of the ELBO in nats/dim (the diagnostics' ``vlb`` weighting)."""
        raise NotImplementedError

    # --- sampling ----------------------------------------------------------------------------
    def check_sampler(self, sampler: str) -> None:
        if sampler not in self.SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r} for the {self.name} process; valid: "
                             f"{', '.join(self.SAMPLERS)}")

    def sample_passes(self, sampler: str, steps: int) -> int:
        """Network forward passes per generated sample with ``sampler`` at ``steps``."""
        raise NotImplementedError

    def sample(self, model, shape, generator: torch.Generator, *, sampler: str, steps: int,
               eta: float = 0.0, device="cpu", clip: bool = True, progress=None) -> Tensor:
        """Samples of ``shape`` from ``model``; ``progress.update(1)`` after every network pass."""
        raise NotImplementedError

    # --- likelihood --------------------------------------------------------------------------
    def likelihood_passes(self, timesteps: int) -> int:
        """Network passes per image of the likelihood estimate with ``timesteps`` terms."""
        raise NotImplementedError

    def likelihood_terms(self, pred: Tensor, x0: Tensor, x_t: Tensor, t: Tensor, **options
                         ) -> Tensor:
        """Per-example likelihood terms at times t in bits/dim, from the prediction at x_t."""
        raise NotImplementedError

    def prior_bpd(self, x0: Tensor) -> Tensor:
        """The prior term per example, bits/dim."""
        raise NotImplementedError

"""The lean training step (issue 28): no host synchronisation in a steady-state step, flat
parameter buffers that change no number, the optimizer state in torch's per-parameter format, and
loss_second_moment's vectorised FIFO equal to pushing one by one."""

from __future__ import annotations

import copy

import pytest
import torch

import strategies
from bench.core.syncs import SyncWatch
from bench.tools import perf
from bench.train.flat import Flat
from bench.train.trainer import Trainer

OPTS = {"bf16": False, "channels_last": False, "fused_adam": False, "compile": False}
SETUP = {"dataset": {"name": "digits"}, "backbone": {"name": "mlp", "width": 32, "depth": 1},
         "batch_size": 32}

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sync_watch_sees_what_makes_the_host_wait():
    x = torch.arange(6.0)
    with SyncWatch() as w:
        float(x.sum())
        x.nonzero()
        torch.bincount(x.long())
        x[x > 2]
        y = x * 2 + 1                  # none of these
        y.index_add_(0, torch.tensor([0, 0]), torch.ones(2))
    assert w.counts == {"scalar read (float/int/bool/item)": 1, "nonzero": 1, "bincount": 1,
                        "boolean-mask indexing": 1}


@pytest.mark.parametrize("process", ["ddpm", "flow"])
def test_a_steady_state_step_never_reads_the_device(process, tmp_path):
    """Every registered strategy: steps that write nothing (no log row, checkpoint, evaluation
    or periodic update) make no scalar read and no data-dependent-shape op. On the CPU a copy to
    the host is invisible (adaptive_beta's scipy draw, loss_second_moment's and edm2's loss
    history read the losses on the host: on CUDA those are one device-to-host copy per step)."""
    checked = []
    for label, scfg in perf.strategy_configs(10**6).items():
        cfg = perf.run_config(SETUP, scfg, 100, "cpu", OPTS, process)
        try:
            tr = Trainer(cfg, tmp_path / f"{process}_{len(checked)}", progress=False)
        except ValueError:                       # refused on this process (speed on flow)
            continue
        for _ in range(2):                       # step 0: adaptive_beta's first update
            tr._phases(10**9)
        with SyncWatch(stacks=True) as w:
            for _ in range(3):
                tr._phases(10**9)
        assert w.total == 0, f"{label}@{process}: {w.where}"
        checked.append(label)
    assert len(checked) >= len(strategies.names()) - 2


def test_flat_buffers_change_no_number_and_keep_torchs_optimizer_format():
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.SiLU(), torch.nn.Conv2d(8, 4, 1))
    ref = ref.to(memory_format=torch.channels_last)
    flat_model = copy.deepcopy(ref)
    flat = Flat(list(flat_model.parameters()))
    assert flat_model[0].weight.is_contiguous(memory_format=torch.channels_last)
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2, foreach=True)
    opt_flat = torch.optim.Adam([flat.flat], lr=1e-2, foreach=True)
    x = torch.randn(5, 3, 9, 9).contiguous(memory_format=torch.channels_last)
    for _ in range(4):
        opt_ref.zero_grad(set_to_none=True)
        ref(x).square().mean().backward()
        torch.nn.utils.clip_grad_norm_(list(ref.parameters()), 0.01)
        opt_ref.step()
        flat.zero_grad()
        flat_model(x).square().mean().backward()
        norm = torch.nn.utils.get_total_norm(flat.grads, 2.0)
        flat.flat.grad.mul_(torch.clamp(0.01 / (norm + 1e-6), max=1.0))
        opt_flat.step()
    for a, b in zip(ref.parameters(), flat_model.parameters()):
        assert torch.equal(a, b) and a.stride() == b.stride()
    want, got = opt_ref.state_dict(), flat.optimizer_state(opt_flat)
    assert got["param_groups"] == want["param_groups"]
    for i, st in want["state"].items():
        assert set(st) == set(got["state"][i])
        assert all(torch.equal(st[k], got["state"][i][k]) for k in st)
    # torch's per-parameter state loads into the flat optimizer and continues alike
    opt2 = torch.optim.Adam([flat.flat], lr=1e-2, foreach=True)
    flat.load_optimizer_state(opt2, want)
    assert all(torch.equal(want["state"][i][k], flat.optimizer_state(opt2)["state"][i][k])
               for i in want["state"] for k in want["state"][i])


def _push_one_by_one(hist, counts, t, losses):
    H = hist.shape[1]
    for ti, loss in zip(t.tolist(), losses.tolist()):
        c = int(counts[ti])
        if c == H:
            hist[ti, :-1] = hist[ti, 1:].clone()
            hist[ti, -1] = loss
        else:
            hist[ti, c] = loss
            counts[ti] = c + 1


@pytest.mark.parametrize("history", [1, 3, 10])
def test_loss_second_moment_fifo_equals_pushing_one_by_one(history):
    from bench.core import processes
    pr = processes.build({"schedule": "linear", "timesteps": 30}, {"name": "ddpm"})
    st = strategies.build("loss_second_moment", pr, {"history": history})
    hist = st.loss_history.clone()
    counts = st.loss_counts.clone()
    g = torch.Generator().manual_seed(history)
    for _ in range(12):                          # duplicates in a batch, partial and full FIFOs
        t = torch.randint(0, 30, (40,), generator=g) % 7
        losses = torch.rand(40, generator=g, dtype=torch.float64)
        st.update(t, losses)
        _push_one_by_one(hist, counts, t, losses)
        assert torch.equal(st.loss_history, hist) and torch.equal(st.loss_counts, counts)


def test_decoded_8bit_images_convert_as_torchvision_does():
    """CIFAR-10's batches come from its decoded uint8 array (no PIL per image): the same
    numbers as torchvision's ToTensor + Normalize(0.5, 0.5) on each image."""
    from PIL import Image

    from bench.data.datasets import Uint8ImageSplit, _to_unit_tensor

    images = torch.randint(0, 256, (6, 5, 7, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0)).numpy()
    tf = _to_unit_tensor()
    idx = torch.tensor([4, 0, 4, 2])
    want = torch.stack([tf(Image.fromarray(images[int(i)])) for i in idx])
    got = Uint8ImageSplit(images).get(idx)
    assert got.is_contiguous() and torch.equal(got, want)

"""The reference participant of ``bench.perf`` and ``scripts/gpu_perf_check.py``: a bare PyTorch
DDPM (or flow) training loop — q_sample, forward, MSE, backward, Adam — on the same data, model,
batch and speed options as the trainer, without a strategy, grad clip, EMA or logging. The batch
reaches a GPU as in the trainer (pinned memory, an asynchronous copy: ``bench.core.io.upload``),
so neither makes the host wait for the device."""

from __future__ import annotations

import torch

import backbones
from bench.core import processes
from bench.core.io import upload
from bench.data import datasets
from bench.tools.perf_window import count_flops


def compile_mode(opt) -> str | None:
    """The torch.compile mode of a ``compile`` option (False | True | a mode name), or None."""
    return None if not opt else "default" if opt is True else opt


class BareLoop:
    """The reference: plain PyTorch DDPM training on the same data, model and batch size."""

    def __init__(self, cfg: dict, device: torch.device, opts: dict):
        torch.manual_seed(0)
        self.data = datasets.build(cfg["dataset"]["name"],
                                   {k: v for k, v in cfg["dataset"].items() if k != "name"})
        self.model = backbones.build(cfg["backbone"]["name"], self.data.shape,
                                     {k: v for k, v in cfg["backbone"].items() if k != "name"})
        self.model.to(device)
        self.cl = opts["channels_last"] and self.data.is_image
        if self.cl:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.process = processes.build(cfg["diffusion"], cfg["process"])
        cuda = device.type == "cuda"
        kw = {"fused": True} if opts["fused_adam"] and cuda else {}
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg["train"]["lr"], **kw)
        if cuda:                                  # as the trainer does (train.tf32, cudnn)
            torch.backends.cudnn.benchmark = True
            if opts.get("tf32"):
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        mode = compile_mode(opts["compile"])
        self.net = torch.compile(self.model, mode=mode) if mode else self.model
        self.B, self.device, self.bf16 = cfg["train"]["batch_size"], device, opts["bf16"]
        self.g = torch.Generator().manual_seed(1)
        self.perm, self.pos = None, 0

    def step(self) -> None:
        n = len(self.data.train)
        if self.perm is None or self.pos + self.B > n:
            self.perm, self.pos = torch.randperm(n, generator=self.g), 0
        x0 = upload(self.data.train.get(self.perm[self.pos:self.pos + self.B]), self.device)
        self.pos += self.B
        pr = self.process
        t = torch.randint(0, pr.grid.size, (self.B,), device=self.device)
        noise = torch.randn_like(x0)
        x_t = pr.noised(x0, t, noise)
        if self.cl:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            pred = self.net(x_t, pr.model_time(t))
        loss = pr.loss(pred, pr.target(x0, noise)).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


    def flops(self) -> int:
        """FLOPs of one training step (forward + backward) of the eager network."""
        net, self.net = self.net, self.model
        try:
            return count_flops(self.step)
        finally:
            self.net = net

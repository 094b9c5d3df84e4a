"""One short check of the CUDA paths, for a machine with a GPU (and without CIFAR-10 on disk).

    python scripts/gpu_check.py [--iters 80] [--quick]

1. NCCL: a one-rank process group through bench.core.dist, an all-reduce, and a trainer run with the
   injected cross-rank reduce (one GPU cannot host two NCCL ranks; the 2-rank path is tested on CPU
   with gloo in tests/test_ddp.py).
2. bf16 autocast + channels_last training on the GPU: loss finite and falling; fp32 GPU vs CPU loss
   after the same steps (close, not identical).
3. Throughput of the DDPM CIFAR-10 UNet (35.7M) at batch 128 through ``bench.perf``: fp32 eager vs
   bf16 + channels_last + TF32 + fused Adam, for the bare loop, uniform, min_snr and adaptive_beta.
Data: a fixed random 3×32×32 tensor dataset registered here (throughput does not depend on content).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import config as C  # noqa: E402
from bench.core import dist  # noqa: E402
from bench.data import datasets  # noqa: E402
from bench.tools import perf  # noqa: E402
from bench.train.trainer import Trainer  # noqa: E402


@datasets.register("random_cifar")
def random_cifar(n: int = 2048) -> datasets.DataSource:
    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return datasets.DataSource("random_cifar", datasets.TensorSplit(x),
                               datasets.TensorSplit(x[:256]), (3, 32, 32))


def toy_cfg(device: str, bf16: bool = False, channels_last: bool = False) -> dict:
    return C.resolve({
        "dataset": {"name": "random_cifar"},
        "backbone": {"name": "unet", "ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1,
                     "attn_resolutions": [16], "dropout": 0.0},
        "diffusion": {"timesteps": 1000},
        "train": {"iterations": 60, "batch_size": 64, "lr": 1e-3, "log_every": 20,
                  "ckpt_every": 1000, "device": device, "bf16": bf16,
                  "channels_last": channels_last},
    })


def losses(cfg: dict, steps: int, reduce=None) -> list[float]:
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(cfg, d, progress=False, reduce=reduce)
        return [float(tr.train_step()["losses"].mean()) for _ in range(steps)]


def check_nccl() -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(dist.free_port()))
    torch.distributed.init_process_group("nccl", rank=0, world_size=1)
    x = dist.all_reduce_sum(torch.ones(3, device="cuda"))
    ls = losses(toy_cfg("cuda"), 5, reduce=dist.all_reduce_sum)
    torch.distributed.destroy_process_group()
    print(f"[nccl] backend ok, all_reduce sum={x.tolist()}, trainer losses {ls[0]:.4f}->{ls[-1]:.4f}")


def check_precision() -> None:
    t0 = time.time()
    bf = losses(toy_cfg("cuda", bf16=True, channels_last=True), 60)
    print(f"[bf16+channels_last] loss first 10 {sum(bf[:10]) / 10:.4f} last 10 "
          f"{sum(bf[-10:]) / 10:.4f} finite={all(map(lambda v: v == v, bf))} ({time.time() - t0:.1f}s)")
    g = losses(toy_cfg("cuda"), 10)
    c = losses(toy_cfg("cpu"), 10)
    print(f"[fp32 cuda vs cpu] step losses cuda {['%.5f' % v for v in g[-3:]]} "
          f"cpu {['%.5f' % v for v in c[-3:]]} max|diff| {max(abs(a - b) for a, b in zip(g, c)):.2e}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=80)
    ap.add_argument("--quick", action="store_true", help="skip the throughput tables")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 2
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}", flush=True)
    check_nccl()
    check_precision()
    if args.quick:
        return 0
    only = "uniform,min_snr,adaptive_beta"
    common = ["--device", "cuda", "--dataset", "random_cifar", "--iters", str(args.iters),
              "--only", only, "--threads", "4"]
    print("\n## fp32 eager", flush=True)
    perf.main(common)
    print("\n## bf16 + channels_last + TF32 + fused Adam", flush=True)
    perf.main(common + ["--bf16", "--channels-last", "--tf32", "--fused-adam"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

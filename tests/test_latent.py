"""Latent-space data (bench.data.latent, backbones.autoencoder): the first-stage architecture against an
independent implementation (diffusers' AutoencoderKL / VQModel with its own CompVis-checkpoint
converter), the encoded cache, training draws, a latent run trained and evaluated end to end, the
CLI, and the bad inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from backbones import autoencoder as A
from bench import config as C
from bench import experiment
from bench.data import datasets, latent
from bench.tools import latent as latent_cli
from bench.evaluation import small_cnn
from bench.evaluation import callbacks as E

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# A tiny first stage for 8×8 digits: f2 (two levels), 1 channel in, 4×4×4 latents.
TINY = dict(ch=32, ch_mult=[1, 2], num_res_blocks=1, z_channels=4, embed_dim=4,
            attn_resolutions=[], resolution=8, in_channels=1)


def _autoencoder(kind: str, seed: int = 0, **over) -> A.Autoencoder:
    torch.manual_seed(seed)
    arch = {**TINY, "n_embed": 16, **over}
    if kind == "vq":
        arch["embed_dim"] = 3
    m = A.Autoencoder(kind=kind, **arch)
    with torch.no_grad():                       # non-trivial norms, so their wiring matters
        for name, p in m.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    return m


def _save(m: A.Autoencoder, path, lightning: bool = True):
    sd = dict(m.state_dict())
    sd["loss.logvar"] = torch.zeros(())          # training-only entries of an LDM checkpoint
    torch.save({"state_dict": sd, "global_step": 1} if lightning else sd, path)
    return path


def _params(ckpt, tmp_path, kind="kl", **over):
    arch = dict(TINY)
    if kind == "vq":
        arch.update(embed_dim=3, n_embed=16)
    arch.update(over.pop("arch", {}))
    return {"source": {"name": "digits"}, "autoencoder": str(ckpt),
            "preset": "kl-f8" if kind == "kl" else "vq-f4", "arch": arch,
            "cache_dir": str(tmp_path / "cache"), **over}


# ---------------------------------------------------------------------------- the architecture
@pytest.mark.parametrize("kind", ["kl", "vq"])
def test_first_stage_matches_diffusers_on_a_converted_compvis_checkpoint(kind):
    """Our module loads the CompVis layout as is; diffusers converts that same state dict with its
    own single-file converter. Encodings and decodings agree to float precision."""
    import diffusers                            # a test dependency (pyproject [test])
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    m = _autoencoder(kind)
    cfg = dict(in_channels=1, out_channels=1, down_block_types=["DownEncoderBlock2D"] * 2,
               up_block_types=["UpDecoderBlock2D"] * 2, block_out_channels=[32, 64],
               layers_per_block=1, latent_channels=4, norm_num_groups=32, sample_size=8)
    sd = m.state_dict()
    conv = convert_ldm_vae_checkpoint(dict(sd), cfg)
    if kind == "kl":
        ref = diffusers.AutoencoderKL(**cfg)
    else:
        ref = diffusers.VQModel(**cfg, num_vq_embeddings=16, vq_embed_dim=3)
        conv["quantize.embedding.weight"] = sd["quantize.embedding.weight"]
    missing, unexpected = ref.load_state_dict(conv, strict=False)
    assert missing == [] and unexpected == []
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        stats = m.encode(x)
        if kind == "kl":
            theirs = ref.encode(x).latent_dist.parameters             # (mean, logvar) channels
            z = torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(2))
            ours_img, their_img = m.decode(z * m.scale_factor), ref.decode(z).sample
        else:
            theirs = ref.encode(x).latents                            # pre-quantisation h
            ours_img, their_img = m.decode(stats), ref.decode(stats).sample   # both quantise
    assert stats.shape == theirs.shape
    torch.testing.assert_close(stats, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours_img, their_img, atol=1e-5, rtol=1e-5)


def test_presets_are_the_papers_autoencoders():
    kl = A.Autoencoder(**A.PRESETS["kl-f8"])
    assert kl.latent_shape((3, 256, 256)) == (4, 32, 32) and kl.scale_factor == 0.18215
    vq = A.Autoencoder(**A.PRESETS["vq-f4"])
    assert vq.latent_shape((3, 256, 256)) == (3, 64, 64) and vq.scale_factor == 1.0
    assert vq.quantize.embedding.weight.shape == (8192, 3)
    # the parameter counts of diffusers' AutoencoderKL / VQModel built with these architectures
    assert sum(p.numel() for p in kl.parameters()) == 83_653_863
    assert sum(p.numel() for p in vq.parameters()) == 55_322_782


def test_latent_from_moments_is_a_reparameterised_sample():
    mean, logvar = torch.tensor([[[[1.0]]]]), torch.tensor([[[[np.log(4.0)]]]])
    moments = torch.cat([mean, logvar], 1)
    assert A.latent_from_moments(moments, None).item() == 1.0
    assert A.latent_from_moments(moments, torch.tensor([[[[0.5]]]])).item() == pytest.approx(2.0)
    huge = torch.cat([mean, torch.full_like(mean, 100.0)], 1)      # logvar clamped at 20
    assert A.latent_from_moments(huge, torch.ones_like(mean)).item() == pytest.approx(
        1.0 + np.exp(10.0))


# ---------------------------------------------------------------------------- the dataset
def test_latent_dataset_encodes_once_and_reads_the_cache(tmp_path, monkeypatch):
    m = _autoencoder("kl")
    ckpt = _save(m, tmp_path / "ae.ckpt")
    d = datasets.build("latent", _params(ckpt, tmp_path, hflip=True))
    pix = datasets.build("digits")
    assert d.shape == (4, 4, 4) and d.pixels is not None and d.pixels.shape == (1, 8, 8)
    assert len(d.train) == 2 * len(pix.train) and len(d.test) == len(pix.test)
    assert not d.clip                                           # latents are not clipped to ±1
    n, idx = len(pix.train), torch.tensor([0, 7, 100])
    x, s = pix.train.get(idx), A.PRESETS["kl-f8"]["scale_factor"]       # 0.18215
    with torch.no_grad():                       # without a generator: the scaled posterior mean
        torch.testing.assert_close(d.train.get(idx), s * m.encode(x)[:, :4], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(d.train.get(idx + n), s * m.encode(x.flip(-1))[:, :4],
                                   atol=1e-5, rtol=1e-5)       # row N + i: the mirror image
    # second build: from the cache, nothing encoded
    monkeypatch.setattr(latent, "encode_split", lambda *a, **k: pytest.fail("re-encoded"))
    d2 = datasets.build("latent", _params(ckpt, tmp_path, hflip=True))
    assert d2.cache == d.cache
    np.testing.assert_array_equal(d2.train.stats, d.train.stats)


def test_a_changed_checkpoint_or_flip_setting_gets_its_own_cache(tmp_path):
    ckpt = _save(_autoencoder("kl", seed=0), tmp_path / "ae.ckpt")
    a = datasets.build("latent", _params(ckpt, tmp_path)).cache
    b = datasets.build("latent", _params(ckpt, tmp_path, hflip=True)).cache
    _save(_autoencoder("kl", seed=1), ckpt)                     # same path, other weights
    c = datasets.build("latent", _params(ckpt, tmp_path)).cache
    assert len({a, b, c}) == 3
    assert not list((tmp_path / "cache" / "latents").glob("*.tmp*"))


def test_kl_training_draws_are_seeded_posterior_samples(tmp_path):
    ckpt = _save(_autoencoder("kl"), tmp_path / "ae.ckpt", lightning=False)   # a plain .pth
    d = datasets.build("latent", _params(ckpt, tmp_path, arch={"scale_factor": 0.5}))
    idx = torch.arange(4)
    g = lambda s: torch.Generator().manual_seed(s)              # noqa: E731
    torch.testing.assert_close(d.train.get(idx, g(3)), d.train.get(idx, g(3)))
    assert not torch.equal(d.train.get(idx, g(3)), d.train.get(idx, g(4)))
    stats = torch.from_numpy(np.array(d.train.stats[:4]))
    mean, logvar = stats[:, :4], stats[:, 4:].clamp(-30, 20)
    torch.testing.assert_close(d.train.get(idx), 0.5 * mean)  # no generator: the scaled mean
    noise = torch.randn(4, 4, 4, 4, generator=g(3))
    torch.testing.assert_close(d.train.get(idx, g(3)),
                               0.5 * (mean + torch.exp(0.5 * logvar) * noise))


def test_vq_latents_are_the_pre_quantisation_encoding_and_decode_quantises(tmp_path):
    m = _autoencoder("vq")
    ckpt = _save(m, tmp_path / "vq.ckpt")
    d = datasets.build("latent", _params(ckpt, tmp_path, kind="vq"))
    assert d.shape == (3, 4, 4)
    idx = torch.arange(5)
    h = d.train.get(idx, torch.Generator().manual_seed(0))
    torch.testing.assert_close(h, d.train.get(idx))             # deterministic: no posterior
    with torch.no_grad():
        torch.testing.assert_close(h, m.encode(d.pixels.train.get(idx)), atol=1e-5, rtol=1e-5)
        snapped = m.quantize(h)
    codebook = m.quantize.embedding.weight
    nearest = codebook[torch.cdist(h.permute(0, 2, 3, 1).reshape(-1, 3), codebook).argmin(1)]
    torch.testing.assert_close(snapped.permute(0, 2, 3, 1).reshape(-1, 3), nearest)
    out = d.decode(h)
    assert out.shape == (5, 1, 8, 8) and out.abs().max() <= 1.0


# ---------------------------------------------------------------------------- end to end
def test_a_latent_run_trains_and_is_evaluated_on_decoded_pixels(tmp_path, monkeypatch):
    monkeypatch.setitem(small_cnn.CNN_HPARAMS, "steps", 60)
    ckpt = _save(_autoencoder("kl"), tmp_path / "ae.ckpt")
    cfg = C.resolve({
        "name": "latent_digits", "dataset": {"name": "latent", **_params(ckpt, tmp_path)},
        "backbone": {"name": "unet", "ch": 8, "ch_mult": [1], "num_res_blocks": 1,
                     "attn_resolutions": [], "dropout": 0.0},
        "diffusion": {"timesteps": 50}, "strategy": {"name": "adaptive_beta", "update_every": 5,
                                                      "queue_size": 4, "num_selected": 2},
        "train": {"iterations": 10, "batch_size": 16, "log_every": 5, "ckpt_every": 5,
                  "device": "cpu"},
        "eval": {"at": [10], "metrics": ["auto"], "n_samples": 64, "ddim_steps": 5,
                 "batch_size": 64, "cache_dir": str(tmp_path / "cache"),
                 "diagnostics": {"at": [10], "pool": 32, "bins": 4, "per_bin": 4}}})
    experiment.run(cfg, tmp_path / "r", progress=False)
    ev = pd.read_csv(tmp_path / "r" / "evals.csv")
    assert list(ev["metric"]) == ["fd_cnn"] and np.isfinite(ev["value"]).all()
    # the reference statistics are the pixel source's (digits, 1×8×8), shared with pixel runs
    assert list((tmp_path / "cache" / "ref_stats").glob("digits-*_1×8×8_cnn-*_train_n1438.npz"))
    assert (tmp_path / "r" / "timesteps" / "diagnostics.csv").exists()


def test_nll_on_latents_is_refused():
    with pytest.raises(ValueError, match="nll.*pixels.*latent"):
        E.resolve_metrics(["fid", "nll"], True, latent=True)
    assert E.resolve_metrics(["auto"], True, latent=True) == ["fid"]


def test_cli_encodes_a_config_and_refuses_a_file_without_latents(tmp_path, capsys):
    ckpt = _save(_autoencoder("kl"), tmp_path / "ae.ckpt")
    import yaml

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"dataset": {"name": "latent", **_params(ckpt, tmp_path)},
                                    "backbone": {"name": "unet"}}))
    assert latent_cli.main([str(path)]) == 0
    assert "train 1438 × (4, 4, 4), test 359" in capsys.readouterr().out
    path.write_text(yaml.safe_dump({"dataset": {"name": "digits"}}))
    assert latent_cli.main([str(path)]) == 2
    assert "no run uses dataset 'latent'" in capsys.readouterr().err


# ---------------------------------------------------------------------------- bad inputs
def test_bad_latent_inputs_are_clear_errors(tmp_path):
    ckpt = _save(_autoencoder("kl"), tmp_path / "ae.ckpt")
    with pytest.raises(FileNotFoundError, match=r"dataset.autoencoder=.*not a file.*kl-f8, vq-f4"):
        datasets.build("latent", _params(tmp_path / "nope.ckpt", tmp_path))
    with pytest.raises(ValueError, match=r"does not match preset 'vq-f4'"):
        datasets.build("latent", _params(ckpt, tmp_path, kind="vq"))
    with pytest.raises(ValueError, match=r"does not match preset 'kl-f8'.*pick the matching"):
        datasets.build("latent", _params(ckpt, tmp_path, arch={"ch_mult": [1, 2, 2]}))
    with pytest.raises(ValueError, match=r"unknown autoencoder preset 'kl-f16'; valid: kl-f8"):
        datasets.build("latent", _params(ckpt, tmp_path, preset="kl-f16"))
    with pytest.raises(ValueError, match=r"unknown architecture parameter.*chmult.*valid: kind"):
        datasets.build("latent", _params(ckpt, tmp_path, arch={"chmult": [1]}))
    with pytest.raises(ValueError, match=r"dataset.source must be a mapping"):
        datasets.build("latent", {"autoencoder": str(ckpt)})
    with pytest.raises(ValueError, match=r"dataset 'digits': unknown parameter.*rooot"):
        datasets.build("latent", {**_params(ckpt, tmp_path),
                                  "source": {"name": "digits", "rooot": "x"}})
    with pytest.raises(ValueError, match=r"source must hold images.*'toy2d' has shape \(2,\)"):
        datasets.build("latent", {**_params(ckpt, tmp_path), "source": {"name": "toy2d"}})
    assert not list((tmp_path / "cache" / "latents").glob("*/"))       # nothing half-written

import pytest
import torch

import backbones
from backbones.unet import CIFAR10


def test_ddpm_cifar10_unet_has_the_published_parameter_count():
    m = backbones.build("unet", (3, 32, 32), CIFAR10)
    n = sum(p.numel() for p in m.parameters())
    assert round(n / 1e6, 1) == 35.7  # Ho et al. 2020, Table 3 / Appendix B: 35.7M
    assert n == 35_746_307            # the count of the reference implementation's layout


@pytest.mark.parametrize("name,shape,params", [
    ("unet", (1, 8, 8), dict(ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,))),
    ("unet", (3, 16, 16), dict(ch=16, ch_mult=(1, 2, 2), num_res_blocks=1, dropout=0.0)),
    ("uvit", (1, 8, 8), dict(patch_size=2, dim=32, depth=4, heads=2)),
    ("uvit", (4, 16, 16), dict(patch_size=4, dim=32, depth=2, heads=4)),
    ("mlp", (2,), dict(width=32, depth=2)),
    ("mlp", (1, 8, 8), dict(width=32)),
])
def test_backbones_map_x_t_and_t_to_eps_of_the_same_shape(name, shape, params):
    m = backbones.build(name, shape, params)
    x = torch.randn(3, *shape)
    out = m(x, torch.tensor([0, 5, 999]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.sum().backward()


def test_time_conditioning_changes_the_output():
    m = backbones.build("uvit", (1, 8, 8), dict(dim=32, depth=2, heads=2))
    x = torch.randn(1, 1, 8, 8).repeat(2, 1, 1, 1)
    out = m(x, torch.tensor([1, 900]))
    assert not torch.allclose(out[0], out[1])


def test_bad_backbone_inputs_name_the_valid_choices():
    with pytest.raises(ValueError, match="mlp, unet, uvit"):
        backbones.build("resnet", (1, 8, 8))
    with pytest.raises(ValueError, match="unknown parameter.*chanels.*valid: ch"):
        backbones.build("unet", (1, 8, 8), {"chanels": 3})
    with pytest.raises(ValueError, match="needs image data"):
        backbones.build("unet", (2,))
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        backbones.build("uvit", (1, 8, 8), {"patch_size": 3})

import pytest
import torch

from bench.data import datasets


@pytest.mark.parametrize("name,params,shape", [
    ("digits", {}, (1, 8, 8)),
    ("toy2d", {"kind": "checkerboard", "n_train": 500, "n_test": 100}, (2,)),
    ("toy2d", {"kind": "moons", "n_train": 500, "n_test": 100}, (2,)),
    ("toy2d", {"kind": "swissroll", "n_train": 500, "n_test": 100}, (2,)),
    ("fashion_mnist", {"limit": 500}, (1, 28, 28)),
    ("fashion_mnist", {"limit": 100, "pad_to_32": True}, (1, 32, 32)),
])
def test_datasets_have_shapes_splits_and_range(name, params, shape):
    ds = datasets.build(name, params)
    assert ds.shape == shape
    x = ds.train.get(torch.arange(min(100, len(ds.train))))
    assert x.shape[1:] == shape and len(ds.test) > 0
    if ds.is_image:
        assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.9 and x.max() > 0.9
    else:
        assert x.abs().max() < 1.6


def test_digits_split_is_fixed_and_disjoint():
    a, b = datasets.build("digits"), datasets.build("digits")
    assert torch.equal(a.train.data, b.train.data)
    assert len(a.train) + len(a.test) == 1797 and len(a.test) == 359


def test_toy_is_a_function_of_its_seed():
    a = datasets.build("toy2d", {"seed": 3, "n_train": 50})
    b = datasets.build("toy2d", {"seed": 3, "n_train": 50})
    c = datasets.build("toy2d", {"seed": 4, "n_train": 50})
    assert torch.equal(a.train.data, b.train.data) and not torch.equal(a.train.data, c.train.data)


def test_missing_and_unknown_datasets_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        datasets.build("fashion_mnist", {"root": str(tmp_path)})
    with pytest.raises(ValueError, match="cifar10, digits, fashion_mnist, image_folder, latent, toy2d"):
        datasets.build("mnist")
    with pytest.raises(ValueError, match="unknown parameter.*sede"):
        datasets.build("toy2d", {"sede": 1})
    with pytest.raises(ValueError, match="8gaussians, checkerboard"):
        datasets.build("toy2d", {"kind": "spiral"})
    with pytest.raises(FileNotFoundError, match="download=true"):
        datasets.build("cifar10", {"root": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="not a directory"):
        datasets.build("image_folder", {"root": str(tmp_path / "nope")})

"""Shared test fixtures."""

import pytest
import torch

from bench.data import datasets
from bench.evaluation import small_cnn


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster than two (and far faster on a shared CPU).
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``; restores the old setting."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# The 8×8 digits and their offline CNN feature extractor (tests/test_fid.py, tests/test_kid.py).
@pytest.fixture(scope="module")
def digits():
    return datasets.build("digits")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def cnn(digits, cache):
    x = digits.train.get(torch.arange(len(digits.train)))
    return small_cnn.cnn_extractor("digits", {}, x, cache, torch.device("cpu"))

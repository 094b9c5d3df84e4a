"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster than two (and far faster on a shared CPU).
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``; restores the old setting."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

"""pytest setup shared by every test file; shared helpers live in helpers.py."""
import warnings
import zlib

import pytest
import torch

# qlstm's default numerics are those of PyTorch's FBGEMM engine. On CPUs with
# AVX-512 VNNI the 'x86' engine sends quantized linear to oneDNN instead, so
# the oracle is pinned to FBGEMM.
torch.backends.quantized.engine = "fbgemm"


@pytest.fixture(autouse=True)
def _quiet_deprecations():
    with warnings.catch_warnings():
        # PyTorch's own flow (the oracle) creates quint8 tensors, deprecated in 2.13.
        warnings.filterwarnings("ignore", message=".*quantized tensor creation.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        yield


@pytest.fixture(autouse=True)
def _seeded_draws(request):
    # Every test draws the same inputs on every run and machine (and from the
    # sanitizer build's copy of the tests), so that a failure reproduces, and
    # no run passes or fails by the luck of its draw.
    name = request.node.nodeid.rsplit("/", 1)[-1]  # test_x.py::test_y[params]
    torch.manual_seed(zlib.crc32(name.encode()))
    yield


@pytest.fixture(autouse=True)
def _thread_count_restored():
    # Tests set torch's thread count freely; the next test gets the one before.
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)

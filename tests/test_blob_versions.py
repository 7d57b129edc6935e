"""Blobs and TorchScript files packed by qlstm before split gates (packing
version 5, commit 408a80d) keep working: tests/data/packed_v5.pt holds two
version-5 blobs (per-channel with biases; per-tensor with weight zero points
and no biases) with an input and what that qlstm's quantized_lstm gave for it,
and a module's input and output; tests/data/scripted_v5.pt is that module
(qlstm.quantize of a 2-layer bidirectional nn.LSTM(6, 8)) saved by
torch.jit.save."""
import os

import pytest
import torch

import qlstm
from helpers import assert_same

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
LAYERS = ["per_channel", "per_tensor_zero_points"]


@pytest.fixture(scope="module")
def v5():
    return torch.load(os.path.join(DATA, "packed_v5.pt"))


def run(x, blob):
    return torch.ops.qlstm.quantized_lstm(x, 0.05, 128, None, 1.0, 0, None, 1.0, 0, [blob], 6, 1,
                                          False, False)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("isa", qlstm.available_isas())
def test_version_5_blob_gives_what_it_gave(v5, name, isa):
    assert int(v5[name][8]) == 5
    with qlstm.use_isa(isa):
        assert_same(run(v5["x"], v5[name]), v5[name + "_out"])


@pytest.mark.parametrize("name", LAYERS)
def test_version_5_blob_unpacks_and_packs_as_version_6(v5, name):
    u = qlstm.ops.unpack_lstm_layer(v5[name])
    assert len(u.scales) == 7 and not u.split_gates
    repacked = qlstm.ops.pack_lstm_layer(*u)
    assert int(repacked[8]) == 6
    assert_same(run(v5["x"], repacked), v5[name + "_out"])


def test_altered_version_5_blob_fails_its_checksum(v5):
    blob = v5["per_channel"].clone()
    blob[200] ^= 1  # a weight byte
    with pytest.raises(ValueError, match="its bytes do not match its checksum"):
        run(v5["x"], blob)


def test_torchscript_file_saved_with_version_5_blobs_runs(v5):
    loaded = torch.jit.load(os.path.join(DATA, "scripted_v5.pt"))
    assert_same(loaded(v5["module_x"]), v5["module_out"])

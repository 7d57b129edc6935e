"""Blobs and TorchScript files packed by earlier qlstm versions keep working.

Packing version 5 (commit 408a80d, before split gates): tests/data/packed_v5.pt
holds two blobs (per-channel with biases; per-tensor with weight zero points and
no biases) with an input and what that qlstm's quantized_lstm gave for it, and a
module's input and output; tests/data/scripted_v5.pt is that module
(qlstm.quantize of a 2-layer bidirectional nn.LSTM(6, 8)) saved by torch.jit.save.

Packing version 6 (commit 22ceb06, before projections): tests/data/packed_v6.pt
and scripted_v6.pt, the same with split-gates layers (per-channel with biases;
per-gate weight scales with weight zero points, no biases; input size 6, hidden
size 9) and the split-gates module of tests/helpers.split_own_flow_model.

Packing version 7 (commit 68c65cb, before the accurate mode): packed_v7.pt and
scripted_v7.pt, the same with projection layers (per-channel with biases;
per-tensor with weight zero points, no biases; input size 6, hidden size 9,
proj_size 4) and the module of tests/helpers.proj_own_flow_model.

Packing version 8 (commit cda2364, before the narrow weight flags):
packed_v8.pt and scripted_v8.pt, the same (per-channel with biases; per-tensor
with weight zero points, no biases; input size 6, hidden size 9) and the
accurate-mode module of tests/helpers.accurate_own_flow_model."""
import os

import pytest
import torch

import qlstm
from helpers import assert_same

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
CURRENT_VERSION = 9
# (version, blob names, hidden size, split gates, proj_size)
VERSIONS = [(5, ["per_channel", "per_tensor_zero_points"], 6, False, 0),
            (6, ["split_per_channel", "split_per_gate_zero_points"], 9, True, 0),
            (7, ["proj_per_channel", "proj_per_tensor_zero_points"], 9, False, 4),
            (8, ["v8_per_channel", "v8_per_tensor_zero_points"], 9, False, 0)]
BLOBS = [(v, name, H, split, P) for v, names, H, split, P in VERSIONS for name in names]


@pytest.fixture(scope="module")
def saved():
    return {v: torch.load(os.path.join(DATA, f"packed_v{v}.pt")) for v, *_ in VERSIONS}


def run(x, blob, hidden_size, proj_size=0):
    return torch.ops.qlstm.quantized_lstm(x, 0.05, 128, None, 1.0, 0, None, 1.0, 0, [blob],
                                          hidden_size, 1, False, False, proj_size)


@pytest.mark.parametrize("version,name,hidden_size,split,proj_size", BLOBS)
@pytest.mark.parametrize("isa", qlstm.available_isas())
def test_old_blob_gives_what_it_gave(saved, version, name, hidden_size, split, proj_size, isa):
    data = saved[version]
    assert int(data[name][8]) == version
    with qlstm.use_isa(isa):
        assert_same(run(data["x"], data[name], hidden_size, proj_size), data[name + "_out"])


@pytest.mark.parametrize("version,name,hidden_size,split,proj_size", BLOBS)
def test_old_blob_unpacks_and_packs_as_the_current_version(saved, version, name, hidden_size,
                                                           split, proj_size):
    data = saved[version]
    u = qlstm.ops.unpack_lstm_layer(data[name])
    assert u.split_gates == split and u.proj_size == proj_size and u.mode == "torch"
    assert len(u.scales) == (16 if split else 7) + (proj_size > 0)
    repacked = qlstm.ops.pack_lstm_layer(*u)
    assert int(repacked[8]) == CURRENT_VERSION
    assert_same(run(data["x"], repacked, hidden_size, proj_size), data[name + "_out"])


@pytest.mark.parametrize("version", [v for v, *_ in VERSIONS])
def test_altered_old_blob_fails_its_checksum(saved, version):
    name, hidden_size, proj_size = [(b[1], b[2], b[4]) for b in BLOBS if b[0] == version][0]
    blob = saved[version][name].clone()
    blob[300] ^= 1  # a weight byte
    with pytest.raises(ValueError, match="its bytes do not match its checksum"):
        run(saved[version]["x"], blob, hidden_size, proj_size)


@pytest.mark.parametrize("version", [v for v, *_ in VERSIONS])
def test_torchscript_file_saved_with_old_blobs_runs(saved, version):
    loaded = torch.jit.load(os.path.join(DATA, f"scripted_v{version}.pt"))
    assert_same(loaded(saved[version]["module_x"]), saved[version]["module_out"])


@pytest.mark.parametrize("version", [6, 7])
def test_blob_before_version_8_cannot_claim_the_accurate_mode(saved, version):
    name, hidden_size, proj_size = [(b[1], b[2], b[4]) for b in BLOBS if b[0] == version][0]
    blob = saved[version][name].clone()
    blob[12] |= 32  # the flags' accurate-mode bit, which versions 6 and 7 do not have
    with pytest.raises(ValueError, match="has unknown flags"):
        run(saved[version]["x"], blob, hidden_size, proj_size)


def test_version_6_blob_cannot_claim_a_projection(saved):
    blob = saved[6]["split_per_channel"].clone()
    blob[12] |= 16  # the flags' projection bit, which version 6 does not have
    with pytest.raises(ValueError, match="has unknown flags"):
        run(saved[6]["x"], blob, 9)


@pytest.mark.parametrize("version", [5, 6, 7, 8])
def test_blob_before_version_9_cannot_claim_narrow_weights(saved, version):
    name, hidden_size, proj_size = [(b[1], b[2], b[4]) for b in BLOBS if b[0] == version][0]
    blob = saved[version][name].clone()
    blob[12] |= 64  # the flags' narrow W_ih bit, which versions before 9 do not have
    with pytest.raises(ValueError, match="has unknown flags"):
        run(saved[version]["x"], blob, hidden_size, proj_size)

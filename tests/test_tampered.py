"""Altered files and state: a state_dict with wrong shapes, dtypes or qparams, and
a TorchScript file whose packed weights were changed, raise qlstm: errors."""
import io
import struct
import zipfile

import pytest
import torch

import qlstm


def quantized(bidirectional=False):
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(5, 6, 1, bidirectional=bidirectional).eval()
    return qlstm.quantize(lstm, [torch.randn(4, 2, 5) for _ in range(2)])


@pytest.mark.parametrize("key,change,pattern", [
    ("weight_ih_l0", lambda t: t.float(), r"qlstm: w_ih must be a Char tensor, got Float"),
    ("weight_ih_l0", lambda t: t[:, :-1], r"qlstm: size mismatch for weight_ih_l0"),
    ("weight_hh_l0_zero_points", lambda t: t + 300, r"qlstm: w_hh_zero_points must be in \[-128, 127\]"),
    ("weight_hh_l0_scales", lambda t: t[:3], r"qlstm: w_hh_scales must have shape \[24\] \(per_channel\), got \[3\]"),
    ("bias_ih_l0", lambda t: t.double(), r"qlstm: b_ih must be a Float tensor, got Double"),
    ("qparams_scales_l0", lambda t: t[:6], r"qlstm: scales and zero_points must each hold 7 values"),
    ("qparams_scales_l0", lambda t: t * float("nan"), r"qlstm: igates_scale must be a finite number > 0"),
    ("qparams_zero_points_l0", lambda t: t + 256, r"qlstm: igates_zero_point must be in \[0, 255\]"),
])
def test_altered_state_dict_is_rejected(key, change, pattern):
    m = quantized()
    sd = m.state_dict()
    sd[key] = change(sd[key])
    fresh = qlstm.nn.LSTM(5, 6)
    with pytest.raises(RuntimeError, match=pattern):
        fresh.load_state_dict(sd)
    assert not fresh._packed  # nothing half-loaded


def blob_record_offsets(raw):
    """(start, length) of each data record of a saved TorchScript archive."""
    archive = zipfile.ZipFile(io.BytesIO(raw))
    for info in archive.infolist():
        if "/data/" in info.filename:
            name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
            yield info.header_offset + 30 + name_len + extra_len, info.file_size


@pytest.mark.parametrize("where", ["header", "weights", "end"])
def test_torchscript_file_with_altered_packed_weights_is_rejected(where):
    m = quantized(bidirectional=True)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(m), buf)
    raw = buf.getvalue()
    # The packed blobs are the large records; the others are the two qparam buffers.
    start, size = max(blob_record_offsets(raw), key=lambda r: r[1])
    at = {"header": start + 16, "weights": start + size // 2, "end": start + size - 1}[where]
    altered = bytearray(raw)
    altered[at] ^= 0x5A
    loaded = torch.jit.load(io.BytesIO(bytes(altered)))
    with pytest.raises(RuntimeError, match="qlstm: params\\[[01]\\] must be a packed layer"):
        loaded(torch.randn(3, 2, 5))
    # The unaltered file still loads and runs.
    x = torch.randn(3, 2, 5)
    assert torch.equal(torch.jit.load(io.BytesIO(raw))(x)[0], m(x)[0])


def test_blob_changed_in_place_is_caught_at_the_next_call():
    m = quantized()
    x = torch.randn(3, 2, 5)
    m(x)  # verified and remembered
    m._packed[0][m._packed[0].numel() // 2] += 1  # through torch: the version counter moves
    with pytest.raises(ValueError, match="do not match its checksum"):
        m(x)


@pytest.mark.parametrize("version,pattern", [
    (4, r"was packed by an older qlstm \(packing version < 5\): load its module's state_dict"),
    (10, r"was packed by a newer qlstm \(packing version > 9\)")])
def test_blob_of_another_packing_version_says_what_to_do(version, pattern):
    m = quantized()
    blob = m.packed_layers[0].clone()
    blob[8:12] = torch.tensor(list(struct.pack("<I", version)), dtype=torch.uint8)
    x = torch.randint(0, 256, (3, 1, 5), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"qlstm: params\[0\] must be a packed layer from "
                                         r"qlstm.ops.pack_lstm_layer, but it " + pattern):
        torch.ops.qlstm.quantized_lstm(x, 0.1, 3, None, 1.0, 0, None, 1.0, 0, [blob], 6, 1, False,
                                       False)
    # The way out it names: a state_dict (same keys and formats in every version) packs anew.
    fresh = qlstm.nn.LSTM(5, 6)
    fresh.load_state_dict(m.state_dict())
    assert torch.equal(fresh.packed_layers[0], m.packed_layers[0])

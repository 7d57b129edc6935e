"""Property-based fuzzing of every op and of qlstm.nn.LSTM (hypothesis).

Every call either returns exactly what the pure-PyTorch model of the graph
(quantized_graph.py) gives, or raises a TypeError / ValueError / RuntimeError
whose message starts with "qlstm:". Arguments the contract accepts must not
raise. Examples per test: QLSTM_FUZZ_EXAMPLES (default 500).
"""
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import qlstm
import quantized_graph as qg
from helpers import graph_layer, pack, random_model

settings.register_profile(
    "qlstm", max_examples=int(os.environ.get("QLSTM_FUZZ_EXAMPLES", "500")), deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], derandomize=True)
settings.load_profile("qlstm")

QLSTM_ERRORS = (TypeError, ValueError, RuntimeError)

# Scales: ordinary, tiny and huge (as float32), and invalid ones (zero,
# negative, non-finite, or not finite and > 0 once narrowed to float32).
good_scales = st.one_of(st.floats(1e-3, 1.0), st.sampled_from([1e-30, 1e-44, 1e30, 3e38]))
bad_scales = st.sampled_from([0.0, -0.5, 3e-46, 1e39, 1e300, 1e-300, math.inf, -math.inf, math.nan])
good_zero_points = st.integers(0, 255)
bad_zero_points = st.sampled_from([-1, 256, -(2 ** 40), 2 ** 40])
scales = st.one_of(good_scales, bad_scales)
zero_points = st.one_of(good_zero_points, bad_zero_points)
# Most examples take valid arguments, a few one fault each.
NO_FAULT = ["none"] * 6


def scale_ok(s):
    with np.errstate(over="ignore"):
        f = np.float32(s)
    return bool(np.isfinite(f) and f > 0)


def qparams_ok(s, z):
    return scale_ok(s) and 0 <= z <= 255


def as_f32(s):
    return float(np.float32(s))


def expect_qlstm_error(call):
    event("rejected")
    with pytest.raises(QLSTM_ERRORS) as info:
        call()
    assert str(info.value).startswith("qlstm:"), str(info.value)


def assert_equal(got, expected):
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == e.dtype and torch.equal(g, e)


@st.composite
def byte_tensors(draw, shape, dtype=torch.uint8):
    """A tensor of `shape`: contiguous, a transposed copy seen back through a
    transpose, or a strided slice with an offset; extreme or random values."""
    numel = math.prod(shape)
    kind = draw(st.sampled_from(["random", "extreme"]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 31)))
    if kind == "extreme":
        values = torch.tensor([0, 1, 127, 128, 255])[torch.randint(0, 5, (numel,), generator=gen)]
    else:
        values = torch.randint(0, 256, (numel,), generator=gen)
    base = values.reshape(shape).to(dtype)
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided"]))
    if layout == "transposed" and len(shape) >= 2:
        return base.transpose(0, 1).contiguous().transpose(0, 1)
    if layout == "strided":
        wide = torch.zeros((*shape[:-1], 2 * shape[-1] + 1) if shape else (3,), dtype=dtype)
        view = wide[..., 1::2] if shape else wide[1]
        view.copy_(base)
        return view
    return base


@st.composite
def lstm_cases(draw):
    I, H = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    num_layers, bidirectional = draw(st.integers(1, 2)), draw(st.booleans())
    bias, per_channel, wzp = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    P = draw(st.integers(1, H - 1)) if H > 1 and draw(st.booleans()) else 0  # a projection
    layers = random_model(I, H, num_layers, bidirectional, bias, per_channel,
                          draw(st.integers(0, 10 ** 6)), wzp, split_gates=draw(st.booleans()),
                          proj_size=P)
    T, B = draw(st.integers(0, 4)), draw(st.integers(0, 3))
    D = 2 if bidirectional else 1
    fault = draw(st.sampled_from(NO_FAULT + ["features", "x_q", "h0_q", "states", "hidden_size",
                                             "layer_count", "proj_size"]))
    I_in = draw(st.integers(0, 10).filter(lambda n: n != I)) if fault == "features" else I
    state_shape = (num_layers * D, B, P or H)
    cell_shape = (num_layers * D, B, H)
    states = draw(st.sampled_from(["bad_shape", "bad_dtype"] if fault == "states" else
                                  ["none", "good", "good"] if fault != "h0_q" else ["good"]))

    def qparams(faulty):
        if not faulty:
            return (draw(good_scales), draw(good_zero_points))
        return draw(st.sampled_from([(draw(bad_scales), draw(good_zero_points)),
                                     (draw(good_scales), draw(bad_zero_points))]))

    return dict(layers=layers, I=I, H=H, num_layers=num_layers, bidirectional=bidirectional,
                x=draw(byte_tensors((T, B, I_in))), x_q=qparams(fault == "x_q"),
                states=states, state_shape=state_shape, P=P,
                proj_size=draw(st.integers(-1, 9).filter(lambda n: n != P))
                if fault == "proj_size" else P,
                h0=draw(byte_tensors(state_shape)), c0=draw(byte_tensors(cell_shape)),
                h0_q=qparams(fault == "h0_q"), c0_q=qparams(False),
                hidden_size=draw(st.integers(-2, 12).filter(lambda n: n != H))
                if fault == "hidden_size" else H,
                layer_count=draw(st.integers(-1, 3).filter(lambda n: n != num_layers))
                if fault == "layer_count" else num_layers)


@given(lstm_cases())
def test_quantized_lstm(case):
    c = case
    h0 = c0 = None
    if c["states"] == "good":
        h0, c0 = c["h0"], c["c0"]
    elif c["states"] == "bad_shape":
        h0, c0 = c["h0"][:, :, :-1], c["c0"]
    elif c["states"] == "bad_dtype":
        h0, c0 = c["h0"].to(torch.int32), c["c0"]
    params = [pack(l) for l in c["layers"]]
    args = (c["x"], *c["x_q"], h0, *c["h0_q"], c0, *c["c0_q"], params, c["hidden_size"],
            c["layer_count"], c["bidirectional"], False, c["proj_size"])
    valid = (c["x"].shape[2] == c["I"] and qparams_ok(*c["x_q"]) and c["hidden_size"] == c["H"]
             and c["layer_count"] == c["num_layers"] and c["states"] in ("none", "good")
             and c["proj_size"] == c["P"]
             and (h0 is None or (qparams_ok(*c["h0_q"]) and qparams_ok(*c["c0_q"]))))
    if not valid:
        expect_qlstm_error(lambda: torch.ops.qlstm.quantized_lstm(*args))
        return
    got = torch.ops.qlstm.quantized_lstm(*args)
    x_q = (as_f32(c["x_q"][0]), c["x_q"][1])
    h0_q = (as_f32(c["h0_q"][0]), c["h0_q"][1]) if h0 is not None else (1.0, 0)
    c0_q = (as_f32(c["c0_q"][0]), c["c0_q"][1]) if h0 is not None else (1.0, 0)
    expected = qg.lstm(c["x"].contiguous(), x_q, h0, h0_q, c0, c0_q, c["layers"], c["num_layers"],
                       c["bidirectional"])
    assert_equal(got, expected)


@st.composite
def accurate_cases(draw):
    I, H = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    num_layers, bidirectional = draw(st.integers(1, 2)), draw(st.booleans())
    bias, per_channel, wzp = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    layers = random_model(I, H, num_layers, bidirectional, bias, per_channel,
                          draw(st.integers(0, 10 ** 6)), wzp, mode="accurate")
    T, B, D = draw(st.integers(0, 4)), draw(st.integers(0, 3)), 2 if bidirectional else 1
    fault = draw(st.sampled_from(NO_FAULT + ["features", "x_q", "states", "hidden_size",
                                             "layer_count", "proj_size", "uint8"]))
    I_in = draw(st.integers(0, 10).filter(lambda n: n != I)) if fault == "features" else I
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 31)))
    # Finite inputs and infinities (NaN has no defined byte in the model's conversion).
    x = torch.randn(T, B, I_in, generator=gen) * draw(st.sampled_from([0.1, 1.0, 1e3]))
    if x.numel() and draw(st.booleans()):
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = draw(st.sampled_from([math.inf, -math.inf]))
    shape = (num_layers * D, B, H)
    states = draw(st.sampled_from(["bad_shape"] if fault == "states" else ["none", "good"]))
    x_q = ((draw(good_scales), draw(good_zero_points)) if fault != "x_q" else
           draw(st.sampled_from([(draw(bad_scales), 128), (0.05, draw(bad_zero_points))])))
    return dict(layers=layers, I=I, H=H, num_layers=num_layers, bidirectional=bidirectional,
                x=x.to(torch.uint8) if fault == "uint8" else x, fault=fault, x_q=x_q,
                h0=0.5 * torch.randn(*shape, generator=gen), c0=2 * torch.randn(*shape, generator=gen),
                states=states, shape=shape)


@given(accurate_cases())
def test_quantized_lstm_float_accurate(case):
    c = case
    h0 = c0 = None
    if c["states"] == "good":
        h0, c0 = c["h0"], c["c0"]
    elif c["states"] == "bad_shape":
        h0, c0 = c["h0"][:, :, :-1], c["c0"]
    fault = c["fault"]
    args = (c["x"], *c["x_q"], h0, c0, [pack(l) for l in c["layers"]],
            c["H"] + 1 if fault == "hidden_size" else c["H"],
            c["num_layers"] + 1 if fault == "layer_count" else c["num_layers"], c["bidirectional"],
            False, 1 if fault == "proj_size" else 0)
    if fault not in NO_FAULT:
        expect_qlstm_error(lambda: torch.ops.qlstm.quantized_lstm_float(*args))
        return
    got = torch.ops.qlstm.quantized_lstm_float(*args)
    x_q = (as_f32(c["x_q"][0]), c["x_q"][1])
    expected = qg.accurate_lstm(c["x"], x_q, h0, c0, c["layers"], c["num_layers"],
                                c["bidirectional"])
    for g, e in zip(got, expected):
        # NaN where the model has NaN too: an input scale so small (1e-44) that
        # x_scale * w_scale underflows makes the bias term infinite.
        torch.testing.assert_close(g, e, rtol=0, atol=0, equal_nan=True)


@st.composite
def cell_cases(draw):
    I, H, B = draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(0, 4))
    bias, per_channel, wzp = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    layer = random_model(I, H, 1, False, bias, per_channel, draw(st.integers(0, 10 ** 6)), wzp,
                         split_gates=draw(st.booleans()))[0]
    fault = draw(st.sampled_from(NO_FAULT + ["features", "hidden", "qparams"]))
    I_in = draw(st.integers(1, 10)) if fault == "features" else I
    H_in = draw(st.integers(1, 10)) if fault == "hidden" else H
    qs = [(draw(good_scales), draw(good_zero_points)) for _ in range(3)]
    if fault == "qparams":
        qs[draw(st.integers(0, 2))] = (draw(scales), draw(bad_zero_points))
    return dict(layer=layer, I=I, H=H, x=draw(byte_tensors((B, I_in))), h=draw(byte_tensors((B, H_in))),
                c=draw(byte_tensors((B, H))), qs=qs)


@given(cell_cases())
def test_quantized_lstm_cell(case):
    c = case
    (xs, xz), (hs, hz), (cs, cz) = c["qs"]
    args = (c["x"], xs, xz, c["h"], hs, hz, c["c"], cs, cz, pack(c["layer"]))
    valid = (c["x"].shape[1] == c["I"] and c["h"].shape[1] == c["H"]
             and all(qparams_ok(*q) for q in c["qs"]))
    if not valid:
        expect_qlstm_error(lambda: torch.ops.qlstm.quantized_lstm_cell(*args))
        return
    got = torch.ops.qlstm.quantized_lstm_cell(*args)
    f32 = [(as_f32(s), z) for s, z in c["qs"]]
    expected = qg.cell_step(c["layer"], c["x"], f32[0], c["h"], f32[1], c["c"], f32[2])
    assert_equal(got, expected)


float_values = st.one_of(st.floats(-1e3, 1e3, width=32),
                         st.sampled_from([0.0, -0.0, 1e38, -1e38, math.inf, -math.inf, math.nan]))


@given(st.lists(float_values, max_size=12), st.one_of(good_scales, good_scales, bad_scales),
       st.one_of(good_zero_points, good_zero_points, bad_zero_points),
       st.sampled_from([torch.float32] * 4 + [torch.float64, torch.uint8]))
def test_quantize(values, scale, zero_point, dtype):
    x = torch.tensor(values, dtype=torch.float32).to(dtype)
    if not (qparams_ok(scale, zero_point) and dtype == torch.float32):
        expect_qlstm_error(lambda: torch.ops.qlstm.quantize(x, scale, zero_point))
        return
    got = torch.ops.qlstm.quantize(x, scale, zero_point)
    expected = qg.quantize_per_tensor(x, (as_f32(scale), zero_point))
    assert torch.equal(got, expected)


@given(st.integers(0, 3).flatmap(lambda n: byte_tensors((n, 3))),
       st.one_of(good_scales, good_scales, bad_scales),
       st.one_of(good_zero_points, good_zero_points, bad_zero_points))
def test_dequantize(x, scale, zero_point):
    if not qparams_ok(scale, zero_point):
        expect_qlstm_error(lambda: torch.ops.qlstm.dequantize(x, scale, zero_point))
        return
    got = torch.ops.qlstm.dequantize(x, scale, zero_point)
    assert torch.equal(got, (x.float() - zero_point) * torch.tensor(as_f32(scale)))


weight_scales = st.one_of(st.floats(1e-4, 1.0), st.floats(1e-4, 1.0),
                          st.sampled_from([0.0, -1.0, math.nan, math.inf, 1e-50]))


@st.composite
def pack_qparams(draw):
    """Seven (or, split gates, sixteen) valid qparams, or one of them bad, or the wrong count."""
    n = draw(st.sampled_from([7, 16]))
    qparams = [(draw(good_scales), draw(good_zero_points)) for _ in range(n)]
    fault = draw(st.sampled_from(NO_FAULT + ["scale", "zero_point", "count"]))
    if fault == "scale":
        qparams[draw(st.integers(0, n - 1))] = (draw(bad_scales), draw(good_zero_points))
    elif fault == "zero_point":
        qparams[draw(st.integers(0, n - 1))] = (draw(good_scales), draw(bad_zero_points))
    elif fault == "count":
        qparams = qparams[:draw(st.sampled_from([0, 6, 15]))] + ([(0.1, 0)] if draw(st.booleans()) else [])
    return qparams


@given(st.integers(1, 6), st.integers(1, 6), st.booleans(), st.booleans(), pack_qparams(),
       weight_scales, st.one_of(st.integers(-5, 5), st.integers(-200, 200)), st.integers(0, 10 ** 6),
       st.booleans())
def test_pack_lstm_layer(I, H, per_channel, bias, qparams, w_scale, w_zp, seed, per_gate):
    layer = random_model(I, H, 1, False, bias, per_channel, seed)[0]
    shape = (4 * H,) if per_channel else (4, 1) if per_gate else (1,)
    args = (layer.w_ih, torch.full(shape, w_scale, dtype=torch.float64),
            torch.full(shape, w_zp), layer.w_hh, layer.w_hh_scales, layer.w_hh_zps, layer.b_ih,
            layer.b_hh, [s for s, _ in qparams], [z for _, z in qparams], per_channel)
    # Per-gate weight qparams ([4, 1]) come only with split gates' sixteen qparams.
    valid = (len(qparams) in (7, 16) and all(qparams_ok(s, z) for s, z in qparams)
             and scale_ok(w_scale) and -128 <= w_zp <= 127
             and (per_channel or not per_gate or len(qparams) == 16))
    if not valid:
        expect_qlstm_error(lambda: torch.ops.qlstm.pack_lstm_layer(*args))
        return
    blob = torch.ops.qlstm.pack_lstm_layer(*args)
    u = qlstm.ops.unpack_lstm_layer(blob)
    assert torch.equal(u.w_ih, layer.w_ih) and torch.equal(u.w_hh, layer.w_hh)
    assert u.zero_points == [z for _, z in qparams]
    assert torch.equal(qlstm.ops.pack_lstm_layer(*u), blob)


@given(st.integers(0, 10 ** 6), st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)),
                                         min_size=1, max_size=4),
       st.sampled_from(["flip", "truncate", "extend"]), st.sampled_from([0, 2]))
def test_altered_blobs_are_rejected(seed, edits, how, proj_size):
    """Any alteration of a blob is rejected with a qlstm: error, by its structure
    checks or its checksum: never a crash, an out-of-bounds read (the sanitizer
    build runs this too) or a result from altered weights."""
    layer = random_model(3, 4, 1, False, True, True, seed, weight_zero_points=True,
                         proj_size=proj_size)[0]
    original = pack(layer)
    blob = original.clone()
    if how == "truncate":
        blob = blob[: edits[0][0] % blob.numel()]
    elif how == "extend":
        blob = torch.cat([blob, torch.tensor([e[1] for e in edits], dtype=torch.uint8)])
    else:
        for at, value in edits:
            blob[at % blob.numel()] = value
    if blob.shape == original.shape and torch.equal(blob, original):
        return  # every edit wrote the byte that was there
    x = torch.randint(0, 256, (2, 1, 3), dtype=torch.uint8)
    expect_qlstm_error(lambda: qlstm.ops.unpack_lstm_layer(blob))
    expect_qlstm_error(lambda: torch.ops.qlstm.quantized_lstm(
        x, 0.1, 3, None, 1.0, 0, None, 1.0, 0, [blob], 4, 1, False, False, proj_size))


def module_reference(m, x, hx, dtype, state_dtype):
    """The module's float forward through the pure-PyTorch graph: float states
    in each layer-direction's own qparams, results in the input's dtype."""
    layers = [graph_layer(blob) for blob in m._packed]
    batched = x.dim() == 3
    xb = x if batched else x.unsqueeze(1)
    if m.batch_first and batched:
        xb = xb.transpose(0, 1)
    x_q = m.input_qparams
    hq, cq = [l.q("hidden") for l in layers], [l.q("cell") for l in layers]
    h0 = c0 = None
    if hx is not None:
        h0, c0 = (t.float() if batched else t.float().unsqueeze(1) for t in hx)
        h0 = torch.stack([qg.quantize_per_tensor(h0[i], hq[i]) for i in range(len(layers))])
        c0 = torch.stack([qg.quantize_per_tensor(c0[i], cq[i]) for i in range(len(layers))])
    y, h_n, c_n = qg.lstm(qg.quantize_per_tensor(xb, x_q), x_q, h0, hq, c0, cq, layers,
                          m.num_layers, m.bidirectional, stacked=False)

    def tensor_dequantize(q, qp):  # Tensor.dequantize's (q - zero_point) * scale
        return (q.float() - qp[1]) * torch.tensor(qp[0], dtype=torch.float32)

    h = torch.stack([tensor_dequantize(q, qp) for q, qp in h_n])
    c = torch.stack([tensor_dequantize(q, qp) for q, qp in c_n])
    y = tensor_dequantize(y, m.output_qparams)
    if m.batch_first and batched:
        y = y.transpose(0, 1)
    if not batched:
        y, h, c = y.squeeze(1), h.squeeze(1), c.squeeze(1)
    return y.to(dtype), h.to(state_dtype), c.to(state_dtype)


MODULES = {}


def quantized_module(bidirectional, batch_first):
    key = (bidirectional, batch_first)
    if key not in MODULES:
        torch.manual_seed(5)
        lstm = torch.nn.LSTM(3, 4, 2, bidirectional=bidirectional, batch_first=batch_first).eval()
        MODULES[key] = qlstm.quantize(lstm, [torch.randn(4, 2, 3) for _ in range(2)])
    return MODULES[key]


@given(st.booleans(), st.booleans(), st.sampled_from([0, 0, 0, 1, 2, 3]),
       st.lists(st.integers(0, 4), min_size=0, max_size=4).filter(lambda l: len(l) != 1 or l[0] > 0),
       st.sampled_from([torch.float32] * 4 + [torch.float64, torch.uint8, torch.int64]),
       st.sampled_from(["none", "good", "good", "bad_shape", "not_tuple"]), st.integers(0, 2 ** 31),
       st.booleans())
def test_module_forward(bidirectional, batch_first, feature_pick, lead, dtype, states, seed,
                        extreme):
    m = quantized_module(bidirectional, batch_first)
    gen = torch.Generator().manual_seed(seed)
    features = [m.input_size, 0, 1, 5][feature_pick]
    shape = (*lead[:2], features) if lead else (features,)
    x = torch.randn(shape, generator=gen) * (1e30 if extreme else 1.0)
    x = x.to(dtype) if dtype.is_floating_point else x.clamp(-5, 5).to(dtype)
    D = 2 if bidirectional else 1
    batched = x.dim() == 3
    B = (x.shape[0] if batch_first else x.shape[1]) if batched else None
    state = (2 * D, B, m.hidden_size) if batched else (2 * D, m.hidden_size)
    hx = None
    if states == "good":
        hx = (torch.randn(state, generator=gen), torch.randn(state, generator=gen))
    elif states == "bad_shape":
        hx = (torch.randn(2 * D, 1, 1), torch.randn(2 * D, 1, 1))
    elif states == "not_tuple":
        hx = torch.randn(state, generator=gen)
    valid = (dtype.is_floating_point and x.dim() in (2, 3) and features == m.input_size
             and states in ("none", "good"))
    if not valid:
        expect_qlstm_error(lambda: m(x, hx))
        return
    y, (h, c) = m(x, hx)
    assert_equal((y, h, c), module_reference(m, x.float(), hx, x.dtype,
                                             x.dtype if hx is None else hx[0].dtype))

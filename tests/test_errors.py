"""Bad input gets a clear error whose message starts with 'qlstm:'."""
import pytest
import torch

import qlstm
import quantized_graph as qg
from helpers import pack


@pytest.fixture(scope="module")
def setup():
    gen = torch.Generator().manual_seed(0)
    layers = [qg.random_layer(4, 5, True, True, gen), qg.random_layer(5, 5, True, True, gen)]
    params = [pack(l) for l in layers]
    x = torch.randint(0, 256, (3, 2, 4), dtype=torch.uint8)
    return layers, params, x


def call(x, params, num_layers=2, h0=None, c0=None, input_scale=0.1, input_zp=100,
         h0_scale=1.0, h0_zp=0, bidirectional=False, hidden_size=5):
    return qlstm.ops.quantized_lstm(x, input_scale, input_zp, h0, h0_scale, h0_zp, c0, 1.0, 0, params,
                                    hidden_size, num_layers, bidirectional, False)


def test_valid_call_works(setup):
    _, params, x = setup
    y, h, c = call(x, params)
    assert y.shape == (3, 2, 5)


def test_hidden_size_must_match_the_packed_layers(setup):
    _, params, x = setup
    with pytest.raises(ValueError, match=r"qlstm: params\[0\] has hidden_size 5, expected hidden_size = 6"):
        call(x, params, hidden_size=6)


@pytest.mark.parametrize("mutate,exc,pattern", [
    (lambda x, p: (x.float(), p), TypeError, "qlstm: input must be a Byte tensor, got Float"),
    (lambda x, p: (x[0], p), ValueError, r"qlstm: input must have 3 dimensions, got shape \[2, 4\]"),
    (lambda x, p: (torch.zeros(3, 2, 6, dtype=torch.uint8), p), ValueError,
     r"qlstm: params\[0\] expects input size 4, got 6"),
    (lambda x, p: (x, p[:1]), ValueError, r"qlstm: params must hold num_layers \* num_directions = 2 \* 1 packed layers, got 1"),
    (lambda x, p: (x, [p[0], p[0]]), ValueError, r"qlstm: params\[1\] expects input size 4, got 5"),
    (lambda x, p: (x, [p[0], p[1][:-3]]), ValueError, r"qlstm: params\[1\] must be a packed layer"),
    (lambda x, p: (x, [p[0], torch.zeros(4096, dtype=torch.uint8)]), ValueError,
     r"qlstm: params\[1\] must be a packed layer .* not a qlstm packed layer"),
    (lambda x, p: (x, [p[0], p[1].float()]), TypeError, r"qlstm: params\[1\] must be a Byte tensor"),
])
def test_bad_arguments(setup, mutate, exc, pattern):
    _, params, x = setup
    x2, p2 = mutate(x, params)
    with pytest.raises(exc, match=pattern):
        call(x2, p2)


@pytest.mark.parametrize("scale,zp,pattern", [
    (0.0, 0, "qlstm: input_scale must be a finite number > 0"),
    (-1.0, 0, "qlstm: input_scale must be a finite number > 0"),
    (float("nan"), 0, "qlstm: input_scale must be a finite number > 0"),
    (float("inf"), 0, "qlstm: input_scale must be a finite number > 0"),
    (1e-60, 0, "qlstm: input_scale must be a finite number > 0 \\(as a float32\\)"),
    (0.1, 256, r"qlstm: input_zero_point must be in \[0, 255\], got 256"),
    (0.1, -1, r"qlstm: input_zero_point must be in \[0, 255\], got -1"),
])
def test_bad_qparams(setup, scale, zp, pattern):
    _, params, x = setup
    with pytest.raises(ValueError, match=pattern):
        call(x, params, input_scale=scale, input_zp=zp)


def test_bad_states(setup):
    _, params, x = setup
    with pytest.raises(ValueError, match=r"qlstm: h0 must have shape \[2, 2, 5\], got \[2, 3, 5\]"):
        call(x, params, h0=torch.zeros(2, 3, 5, dtype=torch.uint8))
    with pytest.raises(TypeError, match="qlstm: c0 must be a Byte tensor, got Float"):
        call(x, params, c0=torch.zeros(2, 2, 5))
    with pytest.raises(ValueError, match="qlstm: h0_scale must be a finite number > 0"):
        call(x, params, h0=torch.zeros(2, 2, 5, dtype=torch.uint8), h0_scale=0.0)


def test_cell_op_errors(setup):
    layers, params, _ = setup
    x, h = torch.zeros(2, 4, dtype=torch.uint8), torch.zeros(2, 5, dtype=torch.uint8)
    with pytest.raises(ValueError, match="qlstm: input must have 4 features"):
        qlstm.ops.quantized_lstm_cell(torch.zeros(2, 3, dtype=torch.uint8), 0.1, 0, h, 1.0, 0, h, 1.0, 0,
                                      params[0])
    with pytest.raises(ValueError, match=r"qlstm: cx must have shape \[2, 5\], got \[1, 5\]"):
        qlstm.ops.quantized_lstm_cell(x, 0.1, 0, h, 1.0, 0, h[:1], 1.0, 0, params[0])


def test_pack_errors():
    gen = torch.Generator().manual_seed(1)
    l = qg.random_layer(4, 5, True, True, gen)
    args = [l.w_ih, l.w_ih_scales, l.w_ih_zps, l.w_hh, l.w_hh_scales, l.w_hh_zps, l.b_ih, l.b_hh,
            [s for s, _ in l.qparams], [z for _, z in l.qparams], True]

    def with_arg(i, v):
        a = list(args)
        a[i] = v
        return a

    cases = [
        (with_arg(0, l.w_ih.float()), TypeError, "qlstm: w_ih must be a Char tensor"),
        (with_arg(0, l.w_ih[:, :0]), ValueError, "qlstm: w_ih must have shape"),
        (with_arg(1, l.w_ih_scales[:3]), ValueError, r"qlstm: w_ih_scales must have shape \[20\]"),
        (with_arg(1, -l.w_ih_scales), ValueError, "qlstm: w_ih_scales must be finite and > 0"),
        (with_arg(5, torch.full((20,), 200)), ValueError, r"qlstm: w_hh_zero_points must be in \[-128, 127\]"),
        (with_arg(7, None), ValueError, "qlstm: b_ih and b_hh must be both given or both None"),
        (with_arg(8, [0.1] * 6), ValueError, "qlstm: scales and zero_points must each hold 7"),
        (with_arg(9, [0, 0, 0, 300, 0, 0, 0]), ValueError, r"qlstm: fgate_cx_zero_point must be in \[0, 255\]"),
    ]
    for a, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            qlstm.ops.pack_lstm_layer(*a)


def test_module_errors():
    m = qlstm.quantize(torch.nn.LSTM(4, 5), [torch.randn(3, 2, 4)])
    with pytest.raises(ValueError, match=r"qlstm: input must be 2-d \(unbatched\) or 3-d, got shape \[4\]"):
        m(torch.randn(4))
    with pytest.raises(TypeError, match="qlstm: input must be a floating-point or quint8 tensor, got torch.int64"):
        m(torch.zeros(3, 2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match=r"qlstm: hx must be a tuple \(h0, c0\)"):
        m(torch.randn(3, 2, 4), torch.zeros(1, 2, 5))
    with pytest.raises(ValueError, match="qlstm: h0 must be 3-d for a batched input"):
        m(torch.randn(3, 2, 4), (torch.zeros(2, 5), torch.zeros(2, 5)))
    with pytest.raises(RuntimeError, match="qlstm: this LSTM holds no weights"):
        qlstm.nn.LSTM(4, 5)(torch.randn(3, 2, 4))
    with pytest.raises(ValueError, match="qlstm: observer must be one of"):
        qlstm.prepare(torch.nn.LSTM(4, 5), observer="median")
    with pytest.raises(ValueError, match="qlstm: calibration_batches was empty"):
        qlstm.quantize(torch.nn.LSTM(4, 5), [])


def test_altered_min_weight_list_is_rejected():
    gen = torch.Generator().manual_seed(2)
    l = qg.random_layer(9, 6, True, True, gen)
    l.w_hh[0, :] = -128
    blob = pack(l)
    # The -128 list is the blob's last section: point one entry past the matrix.
    tampered = blob.clone()
    entries = tampered[-64:].view(torch.int32)
    entries[entries != 0] = 0x7FFF
    with pytest.raises(ValueError, match="qlstm: params must be a packed layer.*corrupt list of -128 weights"):
        qlstm.ops.quantized_lstm_cell(torch.zeros(1, 9, dtype=torch.uint8), 0.1, 0,
                                      torch.zeros(1, 6, dtype=torch.uint8), 0.1, 0,
                                      torch.zeros(1, 6, dtype=torch.uint8), 0.1, 0, tampered)


def test_absurd_sizes_fail_before_allocating(setup):
    _, params, _ = setup
    # Expanded views: huge sizes, no memory behind them.
    huge = torch.zeros(1, 1, 4, dtype=torch.uint8).expand(2 ** 40, 1, 4)
    with pytest.raises(ValueError, match=r"qlstm: this quantized_lstm call would need \d+ bytes, "
                                         r"more than this machine's \d+ bytes of memory"):
        call(huge, params)
    wraps = torch.zeros(1, 1, 4, dtype=torch.uint8).expand(2 ** 31, 2 ** 29, 4)
    with pytest.raises(ValueError, match="qlstm: this quantized_lstm call would need more than 2\\^63 bytes"):
        call(wraps, params)
    with pytest.raises(ValueError, match="qlstm: quantize's input would need"):
        qlstm.ops.quantize(torch.zeros(1).expand(2 ** 42), 0.1, 0)
    with pytest.raises(ValueError, match="qlstm: w_hh must have shape .* hidden_size in \\[1, 32768\\]"):
        qlstm.ops.pack_lstm_layer(torch.zeros(1, 1, dtype=torch.int8).expand(4 * 40000, 1),
                                  torch.ones(1), torch.zeros(1),
                                  torch.zeros(1, 1, dtype=torch.int8).expand(4 * 40000, 40000),
                                  torch.ones(1), torch.zeros(1), None, None, [0.1] * 7, [0] * 7, False)

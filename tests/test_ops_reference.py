"""The ops against the pure-PyTorch model of the quantized graph (quantized_graph.py)."""
import pytest
import torch

import qlstm
import quantized_graph as qg
from helpers import near_ties, pack, random_bytes, random_model


SIZES = [(1, 1), (3, 5), (13, 31), (64, 33), (17, 64), (40, 100)]


@pytest.mark.parametrize("I,H", SIZES)
@pytest.mark.parametrize("bidirectional,num_layers", [(False, 1), (True, 1), (False, 2), (True, 3)])
@pytest.mark.parametrize("bias,per_channel,wzp,split", [
    (True, True, False, False), (False, False, False, False), (True, False, True, False),
    (True, True, False, True), (False, False, True, True)])
def test_lstm_op_matches_model(I, H, bidirectional, num_layers, bias, per_channel, wzp, split):
    seed = I * 7 + H + num_layers * 3 + int(bidirectional)
    layers = random_model(I, H, num_layers, bidirectional, bias, per_channel, seed, wzp, split)
    T, B, D = 6, 3, 2 if bidirectional else 1
    x = random_bytes(T, B, I, seed=seed)
    h0 = random_bytes(num_layers * D, B, H, seed=seed + 1)
    c0 = random_bytes(num_layers * D, B, H, seed=seed + 2)
    for state in (False, True):
        args = (h0, (0.011, 120), c0, (0.021, 131)) if state else (None, (1.0, 0), None, (1.0, 0))
        expected = qg.lstm(x, (0.05, 128), *args, layers, num_layers, bidirectional)
        got = qlstm.ops.quantized_lstm(x, 0.05, 128, args[0], *args[1], args[2], *args[3],
                                       [pack(l) for l in layers], H, num_layers, bidirectional, False)
        for e, g in zip(expected, got):
            torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_four_layers_match_model_through_each_op():
    # The layers between the first and the last alternate between two buffers
    # of the call: the third overwrites the first's output. Each op runs them.
    layers = random_model(7, 9, 4, True, True, True, seed=21)
    params = [pack(l) for l in layers]
    x = random_bytes(5, 3, 7, seed=22)
    expected = qg.lstm(x, (0.05, 128), None, (1.0, 0), None, (1.0, 0), layers, 4, True)
    got = qlstm.ops.quantized_lstm(x, 0.05, 128, None, 1.0, 0, None, 1.0, 0, params, 9, 4, True,
                                   False)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    y_bytes = qlstm.ops.quantized_lstm_float(x, 0.05, 128, None, None, params, 9, 4, True, False)[0]
    torch.testing.assert_close(y_bytes, expected[0], rtol=0, atol=0)
    # A float input that quantizes back to x gives the output dequantized in
    # the last layer's forward h qparams.
    x_float = (x.float() - 128) * 0.05
    y_float = qlstm.ops.quantized_lstm_float(x_float, 0.05, 128, None, None, params, 9, 4, True,
                                             False)[0]
    scale, zero_point = layers[-2].h_q
    torch.testing.assert_close(y_float, (expected[0].float() - zero_point) * scale, rtol=0, atol=0)
    y_first = qlstm.ops.quantized_lstm_float(x_float.transpose(0, 1), 0.05, 128, None, None,
                                             params, 9, 4, True, True)[0]
    assert y_first.is_contiguous()
    torch.testing.assert_close(y_first, y_float.transpose(0, 1), rtol=0, atol=0)


def test_sequences_longer_than_an_igates_chunk_match_model():
    # H = 16 has 64 gate rows: 8192 rows of igates make a chunk (512 KB), 134
    # steps of 61, so 150 steps cross a chunk's end in both directions.
    layers = random_model(5, 16, 1, True, True, True, seed=8)
    T, B = 150, 61
    x = random_bytes(T, B, 5, seed=9)
    expected = qg.lstm(x, (0.05, 128), None, (1.0, 0), None, (1.0, 0), layers, 1, True)
    got = qlstm.ops.quantized_lstm(x, 0.05, 128, None, 1.0, 0, None, 1.0, 0,
                                   [pack(l) for l in layers], 16, 1, True, False)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_batch_first_and_non_contiguous_inputs():
    layers = random_model(9, 11, 2, True, True, True, seed=3)
    params = [pack(l) for l in layers]
    x = random_bytes(5, 4, 9, seed=4)
    expected = qlstm.ops.quantized_lstm(x, 0.1, 100, None, 1.0, 0, None, 1.0, 0, params, 11, 2, True, False)
    got = qlstm.ops.quantized_lstm(x.transpose(0, 1), 0.1, 100, None, 1.0, 0, None, 1.0, 0, params,
                                   11, 2, True, True)
    torch.testing.assert_close(got[0].transpose(0, 1), expected[0], rtol=0, atol=0)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=0)
    strided = random_bytes(5, 4, 18, seed=4)[:, :, ::2]
    assert not strided.is_contiguous()
    a = qlstm.ops.quantized_lstm(strided, 0.1, 100, None, 1.0, 0, None, 1.0, 0, params, 11, 2, True, False)
    b = qlstm.ops.quantized_lstm(strided.contiguous(), 0.1, 100, None, 1.0, 0, None, 1.0, 0, params,
                                 11, 2, True, False)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


@pytest.mark.parametrize("I,H,B", [(1, 1, 1), (13, 31, 3), (64, 33, 16)])
@pytest.mark.parametrize("split", [False, True])
def test_cell_op_matches_model(I, H, B, split):
    layer = random_model(I, H, 1, False, True, split, seed=I + H, split_gates=split)[0]
    params = pack(layer)
    x, h, c = random_bytes(B, I, seed=1), random_bytes(B, H, seed=2), random_bytes(B, H, seed=3)
    eh, ec = qg.cell_step(layer, x, (0.04, 120), h, (0.01, 130), c, (0.02, 128))
    gh, gc = qlstm.ops.quantized_lstm_cell(x, 0.04, 120, h, 0.01, 130, c, 0.02, 128, params)
    torch.testing.assert_close(gh, eh, rtol=0, atol=0)
    torch.testing.assert_close(gc, ec, rtol=0, atol=0)


def test_cell_steps_equal_the_sequence_op():
    layer = random_model(7, 9, 1, False, True, True, seed=5)[0]
    params = pack(layer)
    x = random_bytes(8, 2, 7, seed=6)
    y, h_n, c_n = qlstm.ops.quantized_lstm(x, 0.05, 128, None, 1.0, 0, None, 1.0, 0, [params], 9, 1,
                                           False, False)
    h = c = torch.zeros(2, 9, dtype=torch.uint8)
    hq, cq = (1.0, 0), (1.0, 0)
    for t in range(8):
        h, c = qlstm.ops.quantized_lstm_cell(x[t], 0.05, 128, h, *hq, c, *cq, params)
        hq, cq = layer.q("hidden"), layer.q("cell")
        torch.testing.assert_close(h, y[t], rtol=0, atol=0)
    torch.testing.assert_close(h, h_n[0], rtol=0, atol=0)
    torch.testing.assert_close(c, c_n[0], rtol=0, atol=0)


def test_empty_batch_and_sequence():
    layers = random_model(4, 5, 2, True, True, True, seed=8)
    params = [pack(l) for l in layers]
    y, h, c = qlstm.ops.quantized_lstm(torch.zeros(3, 0, 4, dtype=torch.uint8), 0.1, 0, None, 1.0, 0,
                                       None, 1.0, 0, params, 5, 2, True, False)
    assert y.shape == (3, 0, 10) and h.shape == (4, 0, 5) and c.shape == (4, 0, 5)
    y, h, c = qlstm.ops.quantized_lstm(torch.zeros(0, 2, 4, dtype=torch.uint8), 0.1, 0, None, 1.0, 0,
                                       None, 1.0, 0, params, 5, 2, True, False)
    assert y.shape == (0, 2, 10) and h.shape == (4, 2, 5)
    # with no step run, h_n is the zero initial state in h_n's qparams
    zero_h = qg.quantize(torch.zeros(()), layers[0].q("hidden"))
    assert bool((h == zero_h).all())


def test_tables_match_torch_quantized_sigmoid_and_tanh():
    gen = torch.Generator().manual_seed(0)
    allq = torch.arange(256, dtype=torch.uint8)
    for _ in range(300):
        scale = float(10 ** (torch.rand(1, generator=gen) * 4 - 3.5))
        zp = int(torch.randint(0, 256, (1,), generator=gen))
        q = torch._make_per_tensor_quantized_tensor(allq, scale, zp)
        assert torch.equal(qg.sigmoid_q(allq, (scale, zp)), torch.sigmoid(q).int_repr())
        assert torch.equal(qg.tanh_q(allq, (scale, zp)), torch.tanh(q).int_repr())


@pytest.mark.parametrize("isa", ["scalar", qlstm.isa()])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("scale,zp", [(0.01, 0), (0.037, 128), (1.3, 255), (0.02, 77)])
def test_quantize_and_dequantize_match_torch(scale, zp, threads, isa):
    gen = torch.Generator().manual_seed(zp)
    ties = near_ties(scale, zp)
    # With zero point 0 the two roundings agree; otherwise the draw has some.
    assert (ties.numel() > 0) == (zp != 0)
    special = torch.tensor([float("nan"), float("inf"), float("-inf"), 1e30, -1e30, 0.0, -0.0])
    pool = torch.cat([ties, special, torch.randn(1000, generator=gen) * 3])
    torch.set_num_threads(threads)
    with qlstm.use_isa(isa):
        # Vector tails only, then body and tail; the longest repeats the
        # pool at shifting lane offsets across the threads' chunks.
        for n in (1, 7, 33, pool.numel(), 200_003):
            x = pool.repeat(n // pool.numel() + 1)[:n]
            q = torch.quantize_per_tensor(x, scale, zp, torch.quint8)
            assert torch.equal(qlstm.ops.quantize(x, scale, zp), q.int_repr())
            assert torch.equal(qlstm.ops.dequantize(q.int_repr(), scale, zp), q.dequantize())


def test_results_do_not_depend_on_thread_count():
    layers = random_model(32, 48, 2, True, True, True, seed=9)
    params = [pack(l) for l in layers]
    x = random_bytes(5, 16, 32, seed=10)
    torch.set_num_threads(1)
    one = qlstm.ops.quantized_lstm(x, 0.1, 100, None, 1.0, 0, None, 1.0, 0, params, 48, 2, True, False)
    torch.set_num_threads(2)
    two = qlstm.ops.quantized_lstm(x, 0.1, 100, None, 1.0, 0, None, 1.0, 0, params, 48, 2, True, False)
    for a, b in zip(one, two):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("bias,per_channel,wzp", [(True, True, False), (False, False, False),
                                                  (True, False, True), (True, True, True)])
def test_unpack_gives_back_what_was_packed(bias, per_channel, wzp):
    layer = random_model(13, 21, 1, False, bias, per_channel, seed=3, weight_zero_points=wzp)[0]
    blob = pack(layer)
    u = qlstm.ops.unpack_lstm_layer(blob)
    assert torch.equal(u.w_ih, layer.w_ih) and torch.equal(u.w_hh, layer.w_hh)
    assert torch.equal(u.w_ih_zero_points, layer.w_ih_zps.long())
    assert torch.equal(u.w_hh_scales, layer.w_hh_scales.float().double())
    assert u.per_channel == per_channel and (u.b_ih is None) == (not bias)
    if bias:
        assert torch.equal(u.b_ih, layer.b_ih.float()) and torch.equal(u.b_hh, layer.b_hh.float())
    assert u.scales == [float(torch.tensor(s, dtype=torch.float32)) for s, _ in layer.qparams]
    assert u.zero_points == [z for _, z in layer.qparams]
    assert torch.equal(qlstm.ops.pack_lstm_layer(*u), blob)


@pytest.mark.parametrize("batch_first", [False, True])
def test_float_op_is_the_graph_with_each_layers_own_state_qparams(batch_first):
    layers = random_model(11, 9, 2, True, True, True, seed=21)
    params = [pack(l) for l in layers]
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(6, 3, 11, generator=gen)
    h0, c0 = torch.randn(4, 3, 9, generator=gen), torch.randn(4, 3, 9, generator=gen)
    hq = [l.q("hidden") for l in layers]
    cq = [l.q("cell") for l in layers]
    xq = (0.02, 130)
    xin = x.transpose(0, 1) if batch_first else x
    for state in (None, (h0, c0)):
        got = qlstm.ops.quantized_lstm_float(xin, *xq, *(state or (None, None)), params, 9, 2,
                                             True, batch_first)
        h_bytes = (torch.stack([qg.quantize_per_tensor(h0[i], hq[i]) for i in range(4)])
                   if state else None)
        c_bytes = (torch.stack([qg.quantize_per_tensor(c0[i], cq[i]) for i in range(4)])
                   if state else None)
        y, h_n, c_n = qg.lstm(qg.quantize_per_tensor(x, xq), xq, h_bytes, hq, c_bytes, cq, layers,
                              2, True, stacked=False)
        expected_y = qlstm.ops.dequantize(y, *layers[2].q("hidden"))
        assert torch.equal(got[0], expected_y.transpose(0, 1) if batch_first else expected_y)
        for i in range(4):
            assert torch.equal(got[1][i], qlstm.ops.dequantize(h_n[i][0], *h_n[i][1]))
            assert torch.equal(got[2][i], qlstm.ops.dequantize(c_n[i][0], *c_n[i][1]))
        # A uint8 input gives the uint8 output; the states are the same.
        got_u8 = qlstm.ops.quantized_lstm_float(qlstm.ops.quantize(xin, *xq), *xq,
                                                *(state or (None, None)), params, 9, 2, True,
                                                batch_first)
        assert torch.equal(got_u8[0], y.transpose(0, 1) if batch_first else y)
        assert torch.equal(got_u8[1], got[1]) and torch.equal(got_u8[2], got[2])
    with pytest.raises(TypeError, match=r"qlstm: input must be a Float \(or Byte\) tensor, got Char"):
        qlstm.ops.quantized_lstm_float(xin.char(), *xq, None, None, params, 9, 2, True, batch_first)

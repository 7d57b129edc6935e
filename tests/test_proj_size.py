"""LSTMs with a projection (nn.LSTM's proj_size, h = W_hr (o * tanh(c))): the ops
against the pure-PyTorch graph on every kernel set, the module against float
nn.LSTM's shapes and semantics, state_dict, streaming, PackedSequence and errors.
TorchScript, the libtorch runner, torch.compile and torch.export take the
projection model of helpers.proj_own_flow_model (test_torchscript, test_pt2)."""
import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

import qlstm
import quantized_graph as qg
from helpers import assert_same, graph_layer, pack, random_bytes, random_model

# (I, H, P): projections of 1 row, of one panel and a row more, a short last panel.
SIZES = [(3, 5, 1), (13, 31, 16), (17, 64, 17), (40, 100, 33), (9, 2, 1)]
ISAS = qlstm.available_isas()


@pytest.mark.parametrize("I,H,P", SIZES)
@pytest.mark.parametrize("bidirectional,num_layers", [(False, 1), (True, 2)])
@pytest.mark.parametrize("per_channel,wzp,split", [(True, False, False), (False, True, False),
                                                   (False, False, True)])
def test_lstm_op_matches_model_on_every_kernel_set(I, H, P, bidirectional, num_layers,
                                                   per_channel, wzp, split):
    seed = I * 7 + H + P + num_layers
    layers = random_model(I, H, num_layers, bidirectional, True, per_channel, seed, wzp, split,
                          proj_size=P)
    params = [pack(l) for l in layers]
    T, B, D = 6, 3, 2 if bidirectional else 1
    x = random_bytes(T, B, I, seed=seed)
    h0 = random_bytes(num_layers * D, B, P, seed=seed + 1)
    c0 = random_bytes(num_layers * D, B, H, seed=seed + 2)
    for state in (False, True):
        args = (h0, (0.011, 120), c0, (0.021, 131)) if state else (None, (1.0, 0), None, (1.0, 0))
        expected = qg.lstm(x, (0.05, 128), *args, layers, num_layers, bidirectional)
        assert expected[0].shape == (T, B, D * P) and expected[1].shape == (num_layers * D, B, P)
        assert expected[2].shape == (num_layers * D, B, H)
        for isa in ISAS:
            with qlstm.use_isa(isa):
                got = qlstm.ops.quantized_lstm(x, 0.05, 128, args[0], *args[1], args[2], *args[3],
                                               params, H, num_layers, bidirectional, False, P)
            for e, g in zip(expected, got):
                assert torch.equal(g, e), isa


@pytest.mark.parametrize("threads", [1, 2])
def test_float_op_with_each_layers_own_state_qparams_and_threads(threads):
    # Large enough that two threads split the projection (P = 96 rows of K = 160).
    layers = random_model(24, 160, 2, True, True, True, seed=4, proj_size=96)
    params = [pack(l) for l in layers]
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(5, 9, 24, generator=gen)
    h0, c0 = torch.randn(4, 9, 96, generator=gen), torch.randn(4, 9, 160, generator=gen)
    xq = (0.02, 130)
    hq, cq = [l.h_q for l in layers], [l.q("cell") for l in layers]
    h_bytes = torch.stack([qg.quantize_per_tensor(h0[i], hq[i]) for i in range(4)])
    c_bytes = torch.stack([qg.quantize_per_tensor(c0[i], cq[i]) for i in range(4)])
    y, h_n, c_n = qg.lstm(qg.quantize_per_tensor(x, xq), xq, h_bytes, hq, c_bytes, cq, layers, 2,
                          True, stacked=False)
    torch.set_num_threads(threads)
    got = qlstm.ops.quantized_lstm_float(x, *xq, h0, c0, params, 160, 2, True, False, 96)
    assert torch.equal(got[0], qlstm.ops.dequantize(y, *layers[2].h_q))
    for i in range(4):
        assert torch.equal(got[1][i], qlstm.ops.dequantize(h_n[i][0], *h_n[i][1]))
        assert torch.equal(got[2][i], qlstm.ops.dequantize(c_n[i][0], *c_n[i][1]))


@pytest.mark.parametrize("per_channel,wzp,split", [(True, False, False), (False, True, True)])
def test_unpack_gives_back_the_projection(per_channel, wzp, split):
    layer = random_model(13, 21, 1, False, True, per_channel, seed=3, weight_zero_points=wzp,
                         split_gates=split, proj_size=6)[0]
    blob = pack(layer)
    u = qlstm.ops.unpack_lstm_layer(blob)
    assert u.proj_size == 6 and u.split_gates == split
    assert u.qparam_names == qlstm.ops.cell_qparam_names(split, True)
    assert u.qparam_names[-1] == "projection"
    assert torch.equal(u.w_hr, layer.w_hr) and u.w_hh.shape == (84, 6)
    assert torch.equal(u.w_hr_scales, layer.w_hr_scales.float().double())
    assert torch.equal(u.w_hr_zero_points, layer.w_hr_zps.long())
    assert torch.equal(qlstm.ops.pack_lstm_layer(*u), blob)
    assert int(blob[8]) >= 7  # projections came with packing version 7


def float_lstm(**kwargs):
    torch.manual_seed(0)
    args = dict(input_size=6, hidden_size=12, num_layers=2, bidirectional=True, proj_size=5)
    args.update(kwargs)
    return torch.nn.LSTM(**args).eval()


def calibration(batch_first=False, n=3):
    gen = torch.Generator().manual_seed(1)
    return [torch.randn((4, 7, 6) if batch_first else (7, 4, 6), generator=gen) for _ in range(n)]


def quantized(lstm, **kwargs):
    batch_first = lstm.batch_first
    return qlstm.quantize(lstm, calibration(batch_first), **kwargs)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("split_gates", [False, True])
def test_module_has_nn_lstm_shapes_and_is_close_to_float(batch_first, split_gates):
    lstm = float_lstm(batch_first=batch_first)
    q = quantized(lstm, split_gates=split_gates)
    assert q.proj_size == 5 and "proj_size=5" in repr(q)
    x = calibration(batch_first, n=1)[0] * 0.9
    with torch.no_grad():
        want, (wh, wc) = lstm(x)
    got, (gh, gc) = q(x)
    assert got.shape == want.shape and gh.shape == wh.shape == (4, 4, 5) and gc.shape == wc.shape
    # The 8-bit graph's error, as without a projection (2-6% on such small models).
    for g, w in ((got, want), (gh, wh), (gc, wc)):
        assert (g - w).norm() / w.norm() < 0.08
    # nn.LSTM's weight names, dequantized: W_hr [P, H], W_hh [4H, P].
    assert q.weight_hr_l1_reverse.shape == (5, 12) and q.weight_hh_l0.shape == (48, 5)
    assert (q.weight_hr_l0 - lstm.weight_hr_l0).abs().max() < lstm.weight_hr_l0.abs().max() / 100
    with pytest.raises(AttributeError):
        q.bias_hr_l0
    # Unbatched input, as nn.LSTM.
    x1 = x[0] if batch_first else x[:, 0]
    y1, (h1, c1) = q(x1)
    assert y1.shape == (7, 10) and h1.shape == (4, 5) and c1.shape == (4, 12)


def test_module_matches_the_graph_of_its_own_layers():
    """The converted module's forward is the quantized graph of what it holds."""
    q = quantized(float_lstm())
    layers = [graph_layer(blob) for blob in q.packed_layers]
    x = calibration(n=1)[0]
    xq = q.input_qparams
    y, h_n, c_n = qg.lstm(qg.quantize_per_tensor(x, xq), xq, None, (1.0, 0), None, (1.0, 0),
                          layers, 2, True, stacked=False)
    got, (gh, gc) = q(x)
    assert torch.equal(got, qlstm.ops.dequantize(y, *q.output_qparams))
    for i in range(4):
        assert torch.equal(gh[i], qlstm.ops.dequantize(h_n[i][0], *h_n[i][1]))
        assert torch.equal(gc[i], qlstm.ops.dequantize(c_n[i][0], *c_n[i][1]))
    assert q.layer_qparams(1, reverse=True)["projection"] == layers[3].h_q


def test_state_dict_round_trip():
    q = quantized(float_lstm())
    sd = q.state_dict()
    assert sd["weight_hr_l0"].dtype == torch.int8 and sd["weight_hr_l0"].shape == (5, 12)
    assert sd["weight_hr_l0_scales"].shape == (5,) and sd["qparams_scales_l0"].shape == (8,)
    fresh = qlstm.nn.LSTM(6, 12, 2, bidirectional=True, proj_size=5)
    fresh.load_state_dict(sd)
    x = calibration(n=1)[0]
    assert_same(fresh(x), q(x))
    for blob, other in zip(fresh.packed_layers, q.packed_layers):
        assert torch.equal(blob, other)
    # A module of another projection size, or of none, rejects it and stays as it was.
    other = qlstm.nn.LSTM(6, 12, 2, bidirectional=True, proj_size=4)
    with pytest.raises(RuntimeError, match=r"size mismatch for weight_hr_l0: this module expects "
                                           r"\(4, 12\), the state_dict has \(5, 12\)"):
        other.load_state_dict(sd)
    assert not other.packed_layers
    with pytest.raises(RuntimeError, match="Unexpected key.*weight_hr_l0"):
        qlstm.nn.LSTM(6, 12, 2, bidirectional=True).load_state_dict(sd)


def test_streaming_chunks_equal_one_call():
    q = quantized(float_lstm(bidirectional=False))  # the reverse direction needs the whole input
    x = torch.randn(12, 2, 6)
    whole, (h_n, c_n) = q(x)
    state, parts = None, []
    for chunk in x.split(5):
        y, state = q(chunk, state)
        parts.append(y)
    assert torch.equal(torch.cat(parts), whole)
    assert torch.equal(state[0], h_n) and torch.equal(state[1], c_n)


def test_quint8_interface_with_a_projection():
    q = quantized(float_lstm())
    x = calibration(n=1)[0]
    qx = torch.quantize_per_tensor(x, *q.input_qparams, torch.quint8)
    y, (h, c) = q(qx)
    assert y.shape == (7, 4, 10) and h.shape == (4, 4, 5) and c.shape == (4, 4, 12)
    assert (y.q_scale(), y.q_zero_point()) == q.output_qparams
    assert (h.q_scale(), h.q_zero_point()) == q.hidden_qparams
    assert torch.equal(y.dequantize(), q(x)[0])
    # quint8 states of the right sizes continue the sequence.
    y2, _ = q(qx, (h, c))
    assert y2.shape == y.shape


@pytest.mark.parametrize("isa", ISAS)
def test_packed_sequence_equals_each_sequence_alone(isa):
    q = quantized(float_lstm())
    gen = torch.Generator().manual_seed(2)
    seqs = [torch.randn(n, 6, generator=gen) for n in (3, 7, 1, 5)]
    with qlstm.use_isa(isa):
        out, (h_n, c_n) = q(pack_sequence(seqs, enforce_sorted=False))
        padded, lengths = torch.nn.utils.rnn.pad_packed_sequence(out)
        assert h_n.shape == (4, 4, 5) and c_n.shape == (4, 4, 12) and padded.shape[2] == 10
        for b, s in enumerate(seqs):
            y, (h, c) = q(s.unsqueeze(1))
            assert torch.equal(padded[:int(lengths[b]), b], y[:, 0])
            assert torch.equal(h_n[:, b], h[:, 0]) and torch.equal(c_n[:, b], c[:, 0])


def test_observed_lstm_observes_the_projection():
    prepared = qlstm.prepare(torch.nn.Sequential(float_lstm()))
    observed = prepared[0]
    assert tuple(observed.observers[0].keys()) == qlstm.ops.cell_qparam_names(False, True)
    for x in calibration():
        with torch.no_grad():
            want = float_lstm()(x)
        got = prepared(x)
        assert_same(got, want)  # observation does not change the float outputs
    converted = qlstm.convert(prepared)
    assert isinstance(converted[0], qlstm.nn.LSTM) and converted[0].proj_size == 5


def test_errors():
    with pytest.raises(ValueError, match=r"qlstm: proj_size must be an int in \[0, hidden_size\) "
                                         r"= \[0, 12\) \(0: no projection\), got 12"):
        qlstm.nn.LSTM(6, 12, proj_size=12)
    layer = random_model(4, 6, 1, False, True, True, seed=1, proj_size=3)[0]
    u = qlstm.ops.unpack_lstm_layer(pack(layer))
    base = tuple(u)[:11]
    with pytest.raises(ValueError, match="qlstm: w_hr, w_hr_scales and w_hr_zero_points must be "
                                         "all given"):
        qlstm.ops.pack_lstm_layer(*base, u.w_hr)
    with pytest.raises(ValueError, match=r"qlstm: w_hr must have shape \[proj_size, hidden_size\] "
                                         r".*proj_size in \[1, hidden_size\).*got \[6, 6\]"):
        qlstm.ops.pack_lstm_layer(*base, torch.zeros(6, 6, dtype=torch.int8), u.w_hr_scales,
                                  u.w_hr_zero_points)
    with pytest.raises(ValueError, match=r"qlstm: w_hh must have shape \[24, 3\], got \[24, 6\]"):
        qlstm.ops.pack_lstm_layer(u.w_ih, u.w_ih_scales, u.w_ih_zero_points,
                                  torch.zeros(24, 6, dtype=torch.int8), torch.ones(24),
                                  torch.zeros(24, dtype=torch.long), *base[6:], *tuple(u)[11:])
    with pytest.raises(ValueError, match=r"qlstm: scales and zero_points must each hold 8 values "
                                         r"\(.*, hidden, projection\) or, with split gates, 17"):
        qlstm.ops.pack_lstm_layer(*base[:8], u.scales[:7], u.zero_points[:7], u.per_channel,
                                  *tuple(u)[11:])
    with pytest.raises(ValueError, match=r"qlstm: w_hr_scales must have shape \[3\] "
                                         r"\(per_channel\), got \[1\]"):
        qlstm.ops.pack_lstm_layer(*base, u.w_hr, u.w_hr_scales[:1], u.w_hr_zero_points)
    blob = pack(layer)
    x = random_bytes(2, 1, 4, seed=1)
    with pytest.raises(ValueError, match=r"qlstm: params\[0\] has proj_size 3, expected "
                                         r"proj_size = 0 \(0: no projection\)"):
        qlstm.ops.quantized_lstm(x, 0.1, 0, None, 1.0, 0, None, 1.0, 0, [blob], 6, 1, False, False)
    with pytest.raises(ValueError, match=r"qlstm: h0 must have shape \[1, 1, 3\], got \[1, 1, 6\]"):
        qlstm.ops.quantized_lstm(x, 0.1, 0, random_bytes(1, 1, 6), 1.0, 0, None, 1.0, 0, [blob], 6,
                                 1, False, False, 3)
    with pytest.raises(ValueError, match="qlstm: params must be a layer without a projection"):
        qlstm.ops.quantized_lstm_cell(x[0], 0.1, 0, random_bytes(1, 6), 1.0, 0, random_bytes(1, 6),
                                      1.0, 0, blob)
    with pytest.raises(ValueError, match=r"qlstm: proj_size must be >= 0, got -1"):
        qlstm.ops.quantized_lstm(x, 0.1, 0, None, 1.0, 0, None, 1.0, 0, [blob], 6, 1, False, False,
                                 -1)
    q = quantized(float_lstm())
    with pytest.raises(ValueError, match=r"qlstm: h0 must have shape \[4, 2, 5\], got \[4, 2, 12\]"):
        q(torch.randn(3, 2, 6), (torch.randn(4, 2, 12), torch.randn(4, 2, 12)))


@pytest.mark.parametrize("split_gates", [False, True])
def test_from_observed_of_a_quantizable_lstm_made_with_proj_size_says_so(split_gates):
    # PyTorch's quantizable LSTM drops W_hr (its calibration then fails on the
    # shapes); converting it names the reason and the flow that has projections.
    lstm = torch.nn.LSTM(6, 8, proj_size=3)
    lstm.qconfig = torch.ao.quantization.get_default_qconfig("x86")
    observed = torch.ao.nn.quantizable.LSTM.from_float(lstm, split_gates=split_gates)
    with pytest.raises(ValueError, match=r"qlstm: this torch.ao.nn.quantizable.LSTM was made from "
                                         r"an nn.LSTM with proj_size=3 .*qlstm.quantize"):
        qlstm.nn.LSTM.from_observed(observed)

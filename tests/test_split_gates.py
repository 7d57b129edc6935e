"""Quantizable LSTMs with split gates (one Linear and one add per gate, each with
its own observed qparams): PyTorch's own test configurations through its eager
flow against torch.ao.nn.quantized.LSTM, and the split-gates layer in qlstm's
flow, state_dict and errors."""
import itertools

import pytest
import torch
import torch.ao.quantization as tq

import qlstm
from helpers import eager_convert, observed_class, own_flow_model, x86_qconfig

# test_custom_module_lstm in PyTorch's test/quantization/core/test_quantized_module.py.
SEQ_LEN, BATCH, INPUT, HIDDEN, LAYERS = 8, 4, 12, 8, 2
CONFIGS = list(itertools.product([False, True], repeat=4))  # bias, batch_first, bidirectional, split


def seven_bit(x: torch.Tensor) -> torch.Tensor:
    """x as quint8 in [0, 127]: the range the 'x86' qconfig (reduce_range) calibrates
    to, inside which FBGEMM's AVX2 kernels do not saturate (qlstm never does)."""
    scale = float(x.max() - x.min()) / 127
    q = torch.quantize_per_tensor(x, scale, int(round(float(-x.min()) / scale)), torch.quint8)
    assert int(q.int_repr().max()) <= 127
    return q


def convert_both(bias, batch_first, bidirectional, split_gates, per_channel=True):
    """PyTorch's eager flow on one model: torch's quantized LSTM and qlstm's, and the input."""
    torch.manual_seed(int(bias) + 2 * int(batch_first) + 4 * int(bidirectional) + 8 * int(split_gates))
    lstm = torch.nn.Sequential(torch.nn.LSTM(INPUT, HIDDEN, num_layers=LAYERS, bias=bias,
                                             batch_first=batch_first,
                                             bidirectional=bidirectional)).eval()
    lstm.qconfig = x86_qconfig(per_channel)
    prepared = tq.prepare(lstm, prepare_custom_config_dict={
        "float_to_observed_custom_module_class": {torch.nn.LSTM: observed_class(split_gates)}})
    assert prepared[0].layers[0].layer_fw.cell.split_gates == split_gates
    shape = (BATCH, SEQ_LEN, INPUT) if batch_first else (SEQ_LEN, BATCH, INPUT)
    x = torch.randn(shape)
    with torch.no_grad():
        prepared(x)
    reference = eager_convert(prepared, torch.ao.nn.quantized.LSTM, split_gates)
    ours = eager_convert(prepared, qlstm.nn.LSTM, split_gates)
    assert type(ours[0]) is qlstm.nn.LSTM
    return reference, ours, seven_bit(x)


def assert_identical(got, expected):
    """output, h_n and c_n: element by element, with the same qparams."""
    (y, (h, c)), (ey, (eh, ec)) = got, expected
    for g, e in ((y, ey), (h, eh), (c, ec)):
        assert g.shape == e.shape
        assert (g.q_scale(), g.q_zero_point()) == (e.q_scale(), e.q_zero_point())
        assert torch.equal(g.int_repr(), e.int_repr())


@pytest.mark.parametrize("bias,batch_first,bidirectional,split_gates", CONFIGS)
def test_pytorch_custom_module_lstm_configurations(bias, batch_first, bidirectional, split_gates):
    reference, ours, qx = convert_both(bias, batch_first, bidirectional, split_gates)
    with torch.no_grad():
        expected = reference(qx)
        assert_identical(ours(qx), expected)
        assert_identical(torch.jit.script(ours)(qx), expected)
        assert_identical(torch.jit.trace(ours, qx, check_trace=False)(qx), expected)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_per_tensor_weights_are_quantized_gate_by_gate(bidirectional):
    reference, ours, qx = convert_both(True, False, bidirectional, True, per_channel=False)
    with torch.no_grad():
        assert_identical(ours(qx), reference(qx))
    u = qlstm.ops.unpack_lstm_layer(ours[0].packed_layers[0])
    assert u.split_gates and not u.per_channel
    # Each gate's Linear has its own per-tensor scale, as torch's split cell quantizes it.
    assert u.w_ih_scales.shape == (4, 1) and len(set(u.w_ih_scales.flatten().tolist())) == 4
    cell = reference[0].layers[0].layer_fw.cell
    assert u.w_ih_scales.flatten().tolist() == pytest.approx(
        [cell.igates[g].weight().q_scale() for g in qlstm.ops.GATE_NAMES], rel=1e-7)


def test_per_gate_qparams_are_the_observed_ones_and_round_trip():
    reference, ours, qx = convert_both(True, False, True, True)
    m = ours[0]
    cell = reference[0].layers[1].layer_bw.cell
    q = m.layer_qparams(1, reverse=True)
    assert tuple(q) == qlstm.ops.SPLIT_CELL_QPARAM_NAMES
    for kind in ("igates", "hgates", "gates"):
        for g in qlstm.ops.GATE_NAMES:
            module = cell.gates[g] if kind == "gates" else getattr(cell, kind)[g]
            assert q[f"{kind}_{g}"] == pytest.approx((module.scale, module.zero_point), rel=1e-7)
    assert "split_gates=True" in repr(m)
    for blob in m.packed_layers:
        assert torch.equal(qlstm.ops.pack_lstm_layer(*qlstm.ops.unpack_lstm_layer(blob)), blob)
    fresh = qlstm.nn.LSTM(INPUT, HIDDEN, LAYERS, bidirectional=True)
    fresh.load_state_dict(m.state_dict())
    assert "split_gates=True" in repr(fresh)
    with torch.no_grad():
        assert_identical(fresh(qx), m(qx))


def test_own_flow_split_gates_observes_each_gate():
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(10, 16, 2, bidirectional=True).eval()
    batches = [torch.randn(20, 4, 10) for _ in range(3)]
    prepared = qlstm.prepare(lstm, split_gates=True)
    for b in batches:
        torch.testing.assert_close(prepared(b), lstm(b))
    for observers in prepared.observers:
        assert tuple(observers.keys()) == qlstm.ops.SPLIT_CELL_QPARAM_NAMES
    # The cell gate's sum (before tanh) and the sigmoid gates' sums have ranges of their own.
    gate_ranges = {g: float(prepared.observers[0][f"gates_{g}"].max_val) for g in qlstm.ops.GATE_NAMES}
    assert len(set(gate_ranges.values())) == 4
    m = qlstm.convert(prepared)
    assert m._split_gates and "split_gates=True" in repr(m)
    x = torch.randn(20, 4, 10)
    with torch.no_grad():
        err = float((m(x)[0] - lstm(x)[0]).norm() / lstm(x)[0].norm())
    assert err < 0.05


def test_own_flow_split_gates_lstm_cell():
    torch.manual_seed(4)
    cell = torch.nn.LSTMCell(6, 9).eval()
    q = qlstm.quantize(torch.nn.Sequential(cell), [torch.randn(5, 6) for _ in range(3)],
                       split_gates=True)[0]
    assert type(q) is qlstm.nn.LSTMCell and q._split_gates
    x = torch.randn(5, 6)
    h, c = q(x)
    h2, c2 = q(x, (h, c))
    eh, ec = cell(x)
    assert float((h - eh).abs().max()) < 0.05
    assert h2.shape == c2.shape == (5, 9)


def test_pack_op_rejects_per_gate_weight_qparams_without_split_gates():
    m = own_flow_model(split_gates=True)[0]
    u = qlstm.ops.unpack_lstm_layer(m.packed_layers[0])
    assert u.per_channel  # the default observer
    per_gate = torch.full((4, 1), 0.01, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.int64)
    fused_qparams = ([0.1] * 7, [128] * 7)
    with pytest.raises(ValueError, match=r"qlstm: w_ih_scales must have shape \[1\] \(per tensor\), "
                                         r"got \[4, 1\]"):
        qlstm.ops.pack_lstm_layer(u.w_ih, *per_gate, u.w_hh, *per_gate, u.b_ih, u.b_hh,
                                  *fused_qparams, False)
    # With the sixteen qparams of split gates they are accepted.
    blob = qlstm.ops.pack_lstm_layer(u.w_ih, *per_gate, u.w_hh, *per_gate, u.b_ih, u.b_hh,
                                     [0.1] * 16, [128] * 16, False)
    assert qlstm.ops.unpack_lstm_layer(blob).w_hh_scales.shape == (4, 1)
    with pytest.raises(ValueError, match=r"qlstm: scales and zero_points must each hold 7 values "
                                         r"\(igates, .*\) or, with split gates, 16 \(igates_input, "
                                         r"igates_forget, .*hidden\), got 8 and 8"):
        qlstm.ops.pack_lstm_layer(u.w_ih, u.w_ih_scales, u.w_ih_zero_points, u.w_hh,
                                  u.w_hh_scales, u.w_hh_zero_points, u.b_ih, u.b_hh, [0.1] * 8,
                                  [128] * 8, True)
    with pytest.raises(ValueError, match=r"qlstm: gates_cell_scale must be a finite number > 0"):
        qlstm.ops.pack_lstm_layer(u.w_ih, u.w_ih_scales, u.w_ih_zero_points, u.w_hh,
                                  u.w_hh_scales, u.w_hh_zero_points, u.b_ih, u.b_hh,
                                  [0.1] * 10 + [0.0] + [0.1] * 5, [128] * 16, True)

"""qlstm.nn.LSTMCell: made from nn.LSTMCell by both entry points of qlstm's flow,
against the pure-PyTorch graph, qlstm.nn.LSTM over the same sequence, float
nn.LSTMCell, every kernel set, and every deployment path."""
import pytest
import torch

import qlstm
import quantized_graph as qg
from helpers import graph_layer

I, H = 6, 9


def quantized_cell(seed=0, bias=True):
    torch.manual_seed(seed)
    cell = torch.nn.LSTMCell(I, H, bias=bias)
    return cell, qlstm.quantize(cell, [torch.randn(5, I) for _ in range(3)])


def dequant(q, qp):
    return qlstm.ops.dequantize(q, *qp)


@pytest.mark.parametrize("isa", qlstm.available_isas())
@pytest.mark.parametrize("bias", [True, False])
def test_a_step_is_the_graph(isa, bias):
    float_cell, cell = quantized_cell(bias=bias)
    assert type(cell) is qlstm.nn.LSTMCell and repr(cell).startswith("QuantizedLSTMCell(6, 9")
    layer = graph_layer(cell.packed_layers[0])
    x = torch.randn(4, I)
    h0, c0 = torch.randn(4, H) * 0.3, torch.randn(4, H) * 0.3
    xq = cell.input_qparams
    with qlstm.use_isa(isa), torch.no_grad():
        for state in (None, (h0, c0)):
            h, c = cell(x, state)
            zeros = torch.zeros(4, H, dtype=torch.uint8)
            hb = qg.quantize_per_tensor(h0, layer.q("hidden")) if state else zeros
            cb = qg.quantize_per_tensor(c0, layer.q("cell")) if state else zeros
            eh, ec = qg.cell_step(layer, qg.quantize_per_tensor(x, xq), xq, hb,
                                  layer.q("hidden") if state else (1.0, 0), cb,
                                  layer.q("cell") if state else (1.0, 0))
            assert torch.equal(h, dequant(eh, layer.q("hidden")))
            assert torch.equal(c, dequant(ec, layer.q("cell")))


def test_quint8_input_runs_the_cell_op():
    _, cell = quantized_cell()
    x = torch.randn(3, I)
    xq = torch.quantize_per_tensor(x, 0.04, 120, torch.quint8)
    with torch.no_grad():
        h, c = cell(xq)
        assert h.is_quantized and (h.q_scale(), h.q_zero_point()) == cell.hidden_qparams
        zeros = torch.zeros(3, H, dtype=torch.uint8)
        eh, ec = qlstm.ops.quantized_lstm_cell(xq.int_repr(), 0.04, 120, zeros, 1.0, 0, zeros, 1.0, 0,
                                               cell.packed_layers[0])
        assert torch.equal(h.int_repr(), eh) and torch.equal(c.int_repr(), ec)
        h2, c2 = cell(xq, (h, c))
        eh2, ec2 = qlstm.ops.quantized_lstm_cell(xq.int_repr(), 0.04, 120, eh, *cell.hidden_qparams,
                                                 ec, *cell.cell_qparams, cell.packed_layers[0])
        assert torch.equal(h2.int_repr(), eh2) and torch.equal(c2.int_repr(), ec2)
        # Float states with a quint8 input: exact streaming too.
        hf, cf = cell(xq, (torch.zeros(3, H), torch.zeros(3, H)))
        assert not hf.is_quantized and torch.equal(hf, dequant(eh, cell.hidden_qparams))


def test_stepping_the_cell_equals_the_lstm_over_the_sequence():
    _, cell = quantized_cell()
    def lstm_key(key):  # nn.LSTMCell's names to nn.LSTM's layer 0
        if key.startswith("input_"):
            return key
        for base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if key.startswith(base):
                return base + "_l0" + key[len(base):]
        return key + "_l0"

    lstm = qlstm.nn.LSTM(I, H)
    lstm.load_state_dict({lstm_key(k): v for k, v in cell.state_dict().items()})
    x = torch.randn(11, 2, I)
    with torch.no_grad():
        y, (h_n, c_n) = lstm(x)
        state = None
        for t in range(11):
            state = cell(x[t], state)
            assert torch.equal(state[0], y[t])
    assert torch.equal(state[0], h_n[0]) and torch.equal(state[1], c_n[0])


def test_plain_float_steps_skip_the_checks_and_equal_the_checked_path():
    # forward's shortcut for a float32 [B, I] input and float32 [B, H] states:
    # one op call without the argument checks, with the checked path's results.
    _, cell = quantized_cell()
    checked = []
    check = cell._check_python_types
    cell._check_python_types = lambda *args: (checked.append(args), check(*args))[1]
    x, h, c = torch.randn(4, I), torch.randn(4, H) * 0.3, torch.randn(4, H) * 0.3
    for hx in (None, (h, c)):
        fast = cell(x, hx)
        assert not checked and fast[0].shape == fast[1].shape == (4, H)
        # The same step through the checked path: a list of states, or a float64 input.
        slow = cell(x, [h, c]) if hx is not None else cell(x.double(), None)
        assert checked
        checked.clear()
        assert torch.equal(fast[0], slow[0].float()) and torch.equal(fast[1], slow[1].float())
    # An unbatched step and float64 states take the checked path.
    for args in ((x[0], None), (x, (h.double(), c.double()))):
        cell(*args)
        assert checked
        checked.clear()


def test_accuracy_against_float_and_unbatched_and_dtypes():
    float_cell, cell = quantized_cell()
    x = torch.randn(8, I)
    with torch.no_grad():
        h, c = cell(x)
        fh, fc = float_cell(x)
        assert float((h - fh).norm() / fh.norm()) < 0.05
        hu, cu = cell(x[0])
        assert hu.shape == (H,) and torch.equal(hu, h[0]) and torch.equal(cu, c[0])
        hd, _ = cell(x.double(), (torch.zeros(8, H, dtype=torch.float64),) * 2)
        assert hd.dtype == torch.float64 and torch.equal(hd.float(), h)
    assert set(dict(float_cell.named_parameters())) == {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
    for name, p in float_cell.named_parameters():
        assert getattr(cell, name).shape == p.shape
    assert float((cell.weight_hh - float_cell.weight_hh).abs().max()) < 0.01


def test_state_dict_round_trip_and_errors():
    _, cell = quantized_cell()
    sd = cell.state_dict()
    assert {"weight_ih", "weight_hh", "bias_ih", "bias_hh", "qparams_scales", "input_scale"} <= set(sd)
    fresh = qlstm.nn.LSTMCell(I, H)
    fresh.load_state_dict(sd)
    x = torch.randn(3, I)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(fresh(x), cell(x)))
    with pytest.raises(ValueError, match=r"qlstm: input must have 6 features \(input_size\), got 4"):
        cell(torch.randn(3, 4))
    with pytest.raises(ValueError, match="qlstm: input must be 1-d \\(unbatched\\) or 2-d"):
        cell(torch.randn(2, 3, I))
    with pytest.raises(ValueError, match="qlstm: h0 must be 2-d for a batched input"):
        cell(x, (torch.zeros(H), torch.zeros(H)))
    with pytest.raises(RuntimeError, match="qlstm: this LSTMCell holds no weights"):
        qlstm.nn.LSTMCell(I, H)(x)
    with pytest.raises(TypeError, match="qlstm: LSTMCell.from_observed expects a qlstm.nn.ObservedLSTMCell"):
        qlstm.nn.LSTMCell.from_observed(torch.nn.LSTMCell(I, H))
    with pytest.raises(ValueError, match="observer has seen no data"):
        qlstm.convert(qlstm.prepare(torch.nn.LSTMCell(I, H)))


def test_prepare_and_convert_swap_cells_inside_a_model():
    model = torch.nn.ModuleDict({"cell": torch.nn.LSTMCell(I, H), "lstm": torch.nn.LSTM(I, H)})
    prepared = qlstm.prepare(model)
    assert type(prepared["cell"]) is qlstm.nn.ObservedLSTMCell
    assert type(prepared["lstm"]) is qlstm.nn.ObservedLSTM
    with torch.no_grad():
        prepared["cell"](torch.randn(4, I))
        prepared["lstm"](torch.randn(3, 4, I))
    converted = qlstm.convert(prepared)
    assert type(converted["cell"]) is qlstm.nn.LSTMCell and type(converted["lstm"]) is qlstm.nn.LSTM


def test_deployment_paths(tmp_path):
    _, cell = quantized_cell()
    x, h0, c0 = torch.randn(3, I), torch.randn(3, H) * 0.2, torch.randn(3, H) * 0.2
    with torch.no_grad():
        want = cell(x, (h0, c0))
        scripted = torch.jit.script(cell)
        path = str(tmp_path / "cell.pt")
        torch.jit.save(scripted, path)
        traced = torch.jit.trace(cell, (x, (h0, c0)))
        compiled = torch.compile(cell, fullgraph=True)
        exported = torch.export.export(cell, (x, (h0, c0.clone()))).module()
        for run in (scripted, torch.jit.load(path), traced, compiled, exported):
            got = run(x, (h0, c0))
            assert all(torch.equal(a, b) for a, b in zip(got, want))
        assert all(torch.equal(a, b) for a, b in zip(scripted(x), cell(x)))

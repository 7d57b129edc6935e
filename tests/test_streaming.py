"""Streaming a stacked LSTM through the module chunk by chunk, with the
returned state fed back, gives exactly the one-call result."""
import pytest
import torch
import torch.ao.quantization as tq

import qlstm
from helpers import PREPARE, StubbedLSTM

T = 21


def own_flow(num_layers):
    torch.manual_seed(num_layers)
    lstm = torch.nn.LSTM(4, 10, num_layers).eval()
    return qlstm.quantize(lstm, [torch.randn(T, 3, 4) for _ in range(2)])


def eager_flow(num_layers):
    torch.manual_seed(num_layers)
    model = StubbedLSTM(torch.nn.LSTM(4, 10, num_layers)).eval()
    model.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(model, prepare_custom_config_dict=PREPARE)
    for _ in range(2):
        prepared(torch.randn(T, 3, 4))
    return tq.convert(prepared, convert_custom_config_dict={
        "observed_to_quantized_custom_module_class": {torch.ao.nn.quantizable.LSTM: qlstm.nn.LSTM}}).lstm


def as_compared(t):
    return t.int_repr() if t.is_quantized else t


def streamed(m, x, chunk, state):
    outputs = []
    for start in range(0, x.shape[0], chunk):
        y, state = m(x[start:start + chunk], state)
        outputs.append(as_compared(y))
    return torch.cat(outputs), state


@pytest.mark.parametrize("isa", qlstm.available_isas())
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("flow", ["own", "eager"])
def test_streaming_any_chunking_equals_one_call(flow, num_layers, isa):
    m = own_flow(num_layers) if flow == "own" else eager_flow(num_layers)
    x = torch.randn(T, 3, 4) * 1.5
    if flow == "eager":
        # The quint8 interface streams exactly with float states (zeros to start).
        x = torch.quantize_per_tensor(x, 0.03, 120, torch.quint8)
    zeros = torch.zeros(num_layers, 3, 10)
    with qlstm.use_isa(isa), torch.no_grad():
        y, (h_n, c_n) = m(x, (zeros, zeros))
        for chunk in (1, 3, 7, T):
            got, (h, c) = streamed(m, x, chunk, (zeros, zeros))
            assert torch.equal(got, as_compared(y)), chunk
            assert torch.equal(h, h_n) and torch.equal(c, c_n), chunk
        if flow == "own":
            # No initial state is the zero state.
            y0, (h0, c0) = m(x)
            assert torch.equal(y0, y) and torch.equal(h0, h_n) and torch.equal(c0, c_n)


@pytest.mark.parametrize("flow", ["own", "eager"])
def test_scripted_and_exported_modules_stream_exactly(flow):
    m = own_flow(2) if flow == "own" else eager_flow(2)
    x = torch.randn(T, 3, 4)
    if flow == "eager":
        x = torch.quantize_per_tensor(x, 0.03, 120, torch.quint8)
    zeros = torch.zeros(2, 3, 10)
    runs = [torch.jit.script(m)]
    if flow == "own":
        # Two tensors: given one tensor as both h0 and c0, export would keep them one.
        runs.append(torch.export.export(m, (x[:3], (zeros, zeros.clone()))).module())
    with torch.no_grad():
        y, (h_n, c_n) = m(x, (zeros, zeros))
        for run in runs:
            got, (h, c) = streamed(run, x, 3, (zeros, zeros))
            assert torch.equal(got, as_compared(y))
            assert torch.equal(h, h_n) and torch.equal(c, c_n)


def test_float_states_are_each_layers_own():
    m = own_flow(2)
    x = torch.randn(T, 3, 4)
    with torch.no_grad():
        _, (h_n, c_n) = m(x)
    for layer in range(2):
        qp = m.layer_qparams(layer)
        for state, name in ((h_n, "hidden"), (c_n, "cell")):
            scale, zero_point = qp[name]
            q = torch.round(state[layer] / scale) + zero_point
            assert torch.equal(qlstm.ops.dequantize(q.to(torch.uint8), scale, zero_point), state[layer])


@pytest.mark.parametrize("mode", ["torch", "accurate"])
def test_plain_float_calls_skip_the_checks_and_equal_the_checked_path(mode):
    # forward's shortcut for float32 [T, B, I] and float32 states: one op call
    # without the argument checks, with the checked path's results.
    torch.manual_seed(5)
    m = qlstm.quantize(torch.nn.LSTM(4, 10, 2).eval(), [torch.randn(T, 3, 4)], mode=mode)
    checked = []
    check = m._check_python_types
    m._check_python_types = lambda *args: (checked.append(args), check(*args))[1]
    x, h, c = torch.randn(T, 3, 4), torch.randn(2, 3, 10) * 0.3, torch.randn(2, 3, 10) * 0.3
    for hx in (None, (h, c)):
        fast = m(x, hx)
        assert not checked
        # The same call through the checked path: a list of states, or a float64 input.
        slow = m(x, [h, c]) if hx is not None else m(x.double(), None)
        assert checked
        checked.clear()
        y, (h_n, c_n) = slow
        assert torch.equal(fast[0], y.float()) and torch.equal(fast[1][0], h_n.float())
        assert torch.equal(fast[1][1], c_n.float())

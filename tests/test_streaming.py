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


def plain_call_module():
    torch.manual_seed(6)
    m = qlstm.quantize(torch.nn.LSTM(4, 10, 2).eval(), [torch.randn(T, 3, 4)])
    x, h, c = torch.randn(T, 3, 4), torch.randn(2, 3, 10) * 0.3, torch.randn(2, 3, 10) * 0.3
    return m, x, (h, c)


def test_plain_float_calls_leave_torch_function_to_the_checked_path():
    # The shortcut calls the op below Python's __torch_function__ handling, so
    # it declines under a torch function mode and for a tensor subclass: both
    # then see the op through the checked path, with the shortcut's results.
    from torch.overrides import TorchFunctionMode

    m, x, hx = plain_call_module()
    expected = m(x, hx)
    seen = []

    class Seen(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    with Seen():
        y, (h_n, c_n) = m(x, hx)
    assert any("quantized_lstm_float" in f for f in seen)
    assert torch.equal(y, expected[0]) and torch.equal(h_n, expected[1][0])

    class Sub(torch.Tensor):
        funcs = []

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            cls.funcs.append(str(func))
            return super().__torch_function__(func, types, args, kwargs or {})

    for args in ((x.as_subclass(Sub), hx), (x, (hx[0].as_subclass(Sub), hx[1]))):
        Sub.funcs.clear()
        y, (h_n, c_n) = m(*args)
        assert any("quantized_lstm_float" in f for f in Sub.funcs)
        assert torch.equal(y.as_subclass(torch.Tensor), expected[0])
        assert torch.equal(c_n.as_subclass(torch.Tensor), expected[1][1])


def test_plain_float_calls_keep_the_ops_errors_profiler_and_autograd():
    m, x, (h, c) = plain_call_module()
    scale, zero_point = m._input_qparams

    def checked_path(*args):
        raise AssertionError("a plain float call took the checked path")

    m._check_python_types = checked_path
    # The op's own error, as a torch.ops call gives it: h0 of batch 2 for an input of batch 3.
    bad = (h[:, :2].contiguous(), c)
    with pytest.raises(ValueError) as direct:
        torch.ops.qlstm.quantized_lstm_float(x, scale, zero_point, *bad, m._packed, 10, 2,
                                             False, False, 0)
    with pytest.raises(ValueError) as through_module:
        m(x, bad)
    assert type(through_module.value) is type(direct.value)
    assert str(through_module.value) == str(direct.value)
    assert str(direct.value).startswith("qlstm:")
    # The dispatcher still records the op for the profiler.
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        m(x, (h, c))
    assert any(e.name == "qlstm::quantized_lstm_float" for e in prof.events())
    # And runs its autograd kernel: an input that requires grad gets a backward that raises.
    y, _ = m(x.requires_grad_(), (h, c))
    assert y.requires_grad
    with pytest.raises(RuntimeError, match="qlstm: the qlstm ops are inference-only"):
        y.sum().backward()

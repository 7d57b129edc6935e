"""The module's promises under misuse: state_dict loads are all or nothing and
always describe what the module computes, uncalibrated observers are refused,
backward raises, errors are the same eager and scripted, outputs follow the
input's dtype."""
import re

import pytest
import torch
import torch.ao.quantization as tq

import qlstm
from helpers import PREPARE, StubbedLSTM


def own_model(seed=0, **kwargs):
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(5, 6, **kwargs).eval()
    return qlstm.quantize(lstm, [torch.randn(7, 3, 5) for _ in range(2)])


def outputs(m, x):
    with torch.no_grad():
        y, (h, c) = m(x)
    return y, h, c


def same(a, b):
    return all(torch.equal(u, v) for u, v in zip(a, b))


def state_equal(a, b):
    # NaN input_scale: the input was not observed.
    return a.keys() == b.keys() and all(
        torch.equal(a[k], b[k]) or bool(torch.isnan(a[k]).all() & torch.isnan(b[k]).all()) for k in a)


@pytest.mark.parametrize("key,value", [
    ("weight_hh_l0_scales", torch.full((24,), -1.0, dtype=torch.float64)),
    ("weight_hh_l0", torch.zeros(24, 6)),
    ("qparams_zero_points_l0", torch.tensor([1.5] * 7)),
    ("input_scale", torch.tensor(-1.0, dtype=torch.float64)),
])
def test_a_failed_load_changes_nothing(key, value):
    m, other = own_model(0), own_model(1)
    x = torch.randn(4, 2, 5)
    before, expected = m.state_dict(), outputs(m, x)
    sd = other.state_dict()
    sd["input_scale"] = torch.tensor(0.0123, dtype=torch.float64)  # valid, and not m's
    sd[key] = value
    with pytest.raises(RuntimeError, match="qlstm: "):
        m.load_state_dict(sd)
    assert state_equal(m.state_dict(), before)
    assert same(outputs(m, x), expected)


def test_a_partial_load_changes_nothing_and_reports_the_missing_keys():
    m, other = own_model(0), own_model(1)
    x = torch.randn(4, 2, 5)
    before, expected = m.state_dict(), outputs(m, x)
    partial = {k: v for k, v in other.state_dict().items() if k.startswith("input_")}
    result = m.load_state_dict(partial, strict=False)
    assert "weight_ih_l0" in result.missing_keys
    assert state_equal(m.state_dict(), before)
    assert same(outputs(m, x), expected)


def test_a_restored_module_computes_what_its_state_dict_says():
    m, other = own_model(0), own_model(1)
    x = torch.randn(4, 2, 5)
    m.load_state_dict(other.state_dict())
    assert state_equal(m.state_dict(), other.state_dict())
    assert same(outputs(m, x), outputs(other, x))
    assert m.input_qparams == other.input_qparams


@pytest.mark.parametrize("scale,zero_point,message", [
    (-1.0, 128, "input_scale must be a finite number > 0"),
    (0.0, 128, "input_scale must be a finite number > 0"),
    (1e-50, 128, "input_scale must be a finite number > 0 \\(as a float32\\)"),
    (float("inf"), 128, "input_scale must be a finite number > 0"),
    (float("nan"), 128, "input_scale must be a finite number > 0"),
    (0.1, 300, r"input_zero_point must be in \[0, 255\]"),
    (0.1, -5, r"input_zero_point must be in \[0, 255\]"),
])
def test_bad_input_qparams_are_rejected_at_load_naming_the_key(scale, zero_point, message):
    m = own_model()
    sd = m.state_dict()
    sd["input_scale"] = torch.tensor(scale, dtype=torch.float64)
    sd["input_zero_point"] = torch.tensor(zero_point)
    with pytest.raises(RuntimeError, match="qlstm: " + message):
        m.load_state_dict(sd)


def test_state_dict_without_observed_input_round_trips():
    torch.manual_seed(0)
    model = StubbedLSTM(torch.nn.LSTM(5, 6)).eval()
    model.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(model, prepare_custom_config_dict=PREPARE)
    prepared(torch.randn(4, 2, 5))
    m = tq.convert(prepared, convert_custom_config_dict={
        "observed_to_quantized_custom_module_class": {torch.ao.nn.quantizable.LSTM: qlstm.nn.LSTM}}).lstm
    sd = m.state_dict()
    assert torch.isnan(sd["input_scale"]) and int(sd["input_zero_point"]) == -1
    fresh = qlstm.nn.LSTM(5, 6)
    fresh.load_state_dict(sd)
    assert fresh.input_qparams is None and state_equal(fresh.state_dict(), sd)


def test_scripted_modules_hold_no_state_that_could_load_partially(tmp_path):
    m, other = own_model(0), own_model(1)
    for scripted in (torch.jit.script(m), torch.jit.load(_saved(torch.jit.script(m), tmp_path))):
        assert scripted.state_dict() == {}
        with pytest.raises(RuntimeError, match="Unexpected key"):
            scripted.load_state_dict(other.state_dict())
        x = torch.randn(3, 2, 5)
        assert same(outputs(scripted, x), outputs(m, x))


def _saved(scripted, tmp_path):
    path = str(tmp_path / "m.pt")
    torch.jit.save(scripted, path)
    return path


def test_uncalibrated_conversion_is_refused():
    lstm = torch.nn.LSTM(5, 6).eval()
    with pytest.raises(ValueError, match="qlstm: the igates observer has seen no data"):
        qlstm.convert(qlstm.prepare(lstm))
    with pytest.raises(ValueError, match="observer has seen no data"):
        qlstm.quantize(lstm, [torch.randn(0, 2, 5)])
    model = StubbedLSTM(torch.nn.LSTM(5, 6)).eval()
    model.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(model, prepare_custom_config_dict=PREPARE)
    with pytest.raises(ValueError, match="qlstm: the igates observer has seen no data"):
        tq.convert(prepared, convert_custom_config_dict={
            "observed_to_quantized_custom_module_class": {torch.ao.nn.quantizable.LSTM: qlstm.nn.LSTM}})


def _backward_raises(run, message="qlstm: the qlstm ops are inference-only"):
    with pytest.raises(RuntimeError, match=message):
        run().sum().backward()


@pytest.mark.parametrize("unbatched", [False, True])
def test_backward_raises_on_every_path(unbatched):
    m = own_model()
    shape = (4, 5) if unbatched else (4, 2, 5)
    x = torch.randn(*shape, requires_grad=True)
    y, _ = m(x)  # forward works with grad mode on
    assert y.requires_grad
    _backward_raises(lambda: m(x)[0])
    _backward_raises(lambda: torch.jit.script(m)(x)[0])
    _backward_raises(lambda: torch.compile(m, fullgraph=True)(x)[0])
    upstream = torch.nn.Sequential(torch.nn.Linear(5, 5), m)
    _backward_raises(lambda: upstream(torch.randn(*shape))[0])
    with torch.no_grad():
        assert not m(x)[0].requires_grad


def _quint8(t, per_channel=False):
    if per_channel:
        return torch.quantize_per_channel(t, torch.full((t.shape[0],), 0.1, dtype=torch.float64),
                                          torch.zeros(t.shape[0], dtype=torch.int64), 0, torch.quint8)
    return torch.quantize_per_tensor(t, 0.1, 128, torch.quint8)


@pytest.mark.parametrize("scripted", [False, True])
def test_errors_are_the_same_eager_and_scripted(scripted):
    m = own_model()
    run = torch.jit.script(m) if scripted else m
    x = torch.randn(4, 2, 5)
    cases = [
        ((_quint8(x, per_channel=True),), "qlstm: a quantized input must be per-tensor torch.quint8, "
                                         "got torch.quint8 with torch.per_channel_affine"),
        ((x.long(),), "qlstm: input must be a floating-point or quint8 tensor, got torch.int64"),
        ((torch.randn(4, 2, 3),), r"qlstm: input must have 5 features \(input_size\), got 3"),
        ((x, (torch.zeros(1, 2, 6), torch.zeros(2, 6))), "qlstm: c0 must be 3-d for a batched input"),
    ]
    for args, message in cases:
        with pytest.raises(Exception) as info:
            run(*args)
        # TorchScript puts the scripted source above the message: its last line counts.
        assert re.match(message, str(info.value).strip().splitlines()[-1].split("Error: ")[-1]), str(info.value)


def test_hx_of_the_wrong_length_says_what_was_wrong():
    m = own_model()
    with pytest.raises(TypeError, match=r"qlstm: hx must be a tuple \(h0, c0\) of two tensors, got a tuple of 1"):
        m(torch.randn(4, 2, 5), (torch.zeros(1, 2, 6),))


def test_compiled_module_rejects_a_wrong_feature_size():
    m = own_model()
    compiled = torch.compile(m, fullgraph=True)
    compiled(torch.randn(4, 2, 5))
    with pytest.raises(Exception, match=r"qlstm: input must have 5 features"):
        compiled(torch.randn(4, 2, 3))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_outputs_follow_the_input_dtype(dtype):
    torch.manual_seed(0)
    model = torch.nn.LSTM(5, 6, 2).eval().to(dtype)
    batches = [torch.randn(7, 3, 5, dtype=dtype) for _ in range(2)]
    q = qlstm.quantize(model, batches)
    reference = qlstm.quantize(model.float(), [b.float() for b in batches])
    x = torch.randn(4, 2, 5, dtype=dtype)
    for h in (None, (torch.zeros(2, 2, 6, dtype=dtype), torch.zeros(2, 2, 6, dtype=dtype))):
        y, (h_n, c_n) = q(x, h)
        assert y.dtype == h_n.dtype == c_n.dtype == dtype
        y32, _ = reference(x.float(), None if h is None else tuple(t.float() for t in h))
        if dtype == torch.float64:
            assert torch.equal(y.float(), y32)  # same qparams: float64 observes in float32
    y, (h_n, _) = q(x[:, 0])
    assert y.dtype == h_n.dtype == dtype and y.shape == (4, 6)

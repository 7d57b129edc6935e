"""qlstm.nn.LSTM's module API, both quantization flows, and accuracy against float."""
import copy
import io

import pytest
import torch
import torch.ao.quantization as tq

import qlstm
from helpers import StubbedLSTM, torch_flow


def float_model(I=12, H=20, L=2, bidirectional=True, batch_first=False, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.LSTM(I, H, L, batch_first=batch_first,
                                             bidirectional=bidirectional)).eval()


def sine_batches(n, T=30, B=8, I=12, seed=0):
    """Smooth, LSTM-like input signals (calibration and evaluation data)."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(T).float()[:, None, None]
    out = []
    for _ in range(n):
        freq = torch.rand(1, B, I, generator=gen) * 0.5
        phase = torch.rand(1, B, I, generator=gen) * 6.28
        out.append(torch.sin(t * freq + phase) + 0.1 * torch.randn(T, B, I, generator=gen))
    return out


def test_seed_api_name_from_float_and_type_check():
    prepared, _ = torch_flow(torch.nn.LSTM(4, 5).eval(), [(torch.randn(3, 2, 4), None)])
    q = qlstm.nn.LSTM.from_observed(prepared.lstm)
    assert q._get_name() == "QuantizedLSTM"
    with pytest.raises(NotImplementedError, match="qlstm: .*observe"):
        qlstm.nn.LSTM.from_float(torch.nn.LSTM(4, 5))
    with pytest.raises(TypeError, match="qlstm: from_observed expects .*quantizable.LSTM.*got torch.nn"):
        qlstm.nn.LSTM.from_observed(torch.nn.LSTM(4, 5))


def test_flow1_pytorch_eager_convert_swaps_in_qlstm():
    model = StubbedLSTM(torch.nn.LSTM(6, 8, 2)).eval()
    model.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(model, prepare_custom_config_dict={
        "float_to_observed_custom_module_class": {torch.nn.LSTM: torch.ao.nn.quantizable.LSTM}})
    for x in sine_batches(3, I=6):
        prepared(x)
    converted = tq.convert(prepared, convert_custom_config_dict={
        "observed_to_quantized_custom_module_class": {torch.ao.nn.quantizable.LSTM: qlstm.nn.LSTM}})
    assert type(converted.lstm) is qlstm.nn.LSTM
    y, (h, c) = converted(sine_batches(1, I=6, seed=1)[0])
    assert y.is_quantized and y.shape == (30, 8, 8) and h.shape == (2, 8, 8)
    assert (y.q_scale(), y.q_zero_point()) == converted.lstm.output_qparams
    # a float input needs input qparams, which torch's quantizable LSTM does not observe
    with pytest.raises(ValueError, match="qlstm: a float input needs observed input qparams"):
        converted.lstm(torch.randn(3, 2, 6))


@pytest.mark.parametrize("observer", ["histogram", "minmax"])
def test_flow2_accuracy_against_float(observer):
    model = float_model()
    calibration = sine_batches(4)
    quantized = qlstm.quantize(model, calibration, observer=observer)
    assert type(quantized[0]) is qlstm.nn.LSTM and type(model[0]) is torch.nn.LSTM
    x = sine_batches(1, seed=7)[0]
    with torch.no_grad():
        expected, (eh, ec) = model(x)
        got, (gh, gc) = quantized(x)
    rel = float((got - expected).norm() / expected.norm())
    print(f"\n{observer}: relative error of output vs float nn.LSTM: {rel:.4f}")
    assert rel < 0.05
    assert float((gh - eh).norm() / eh.norm()) < 0.05


def test_prepare_convert_steps_and_observed_outputs_are_float():
    model = float_model(bidirectional=False, batch_first=True)
    prepared = qlstm.prepare(model)
    assert isinstance(prepared[0], qlstm.nn.ObservedLSTM)
    x = sine_batches(1, seed=3)[0].transpose(0, 1)
    with torch.no_grad():
        torch.testing.assert_close(prepared(x)[0], model(x)[0], rtol=1e-4, atol=1e-5)
    converted = qlstm.convert(prepared)
    assert converted[0].batch_first
    y, (h, c) = converted(x)
    assert y.shape == (8, 30, 20) and h.shape == (2, 8, 20)


def test_flow2_weights_are_symmetric_without_minus128():
    # Each row's largest weight maps to +-127: no -128, which avx2's exact
    # sequence would correct per activation row.
    torch.manual_seed(0)
    model = torch.nn.LSTM(24, 40, num_layers=2, bidirectional=True)
    quantized = qlstm.quantize(model, [torch.randn(6, 3, 24)])
    for blob in quantized._packed:
        layer = qlstm.ops.unpack_lstm_layer(blob)
        for w in (layer.w_ih, layer.w_hh):
            assert int(w.min()) == -127 or int(w.max()) == 127
            assert int(w.min()) >= -127
            assert bool(((w == 127) | (w == -127)).any(dim=1).all())


def test_flow2_equals_the_ops_on_quantized_input():
    quantized = qlstm.quantize(float_model(), sine_batches(2))
    m = quantized[0]
    x = sine_batches(1, seed=2)[0]
    y, (h, c) = m(x)
    xq = qlstm.ops.quantize(x, *m.input_qparams)
    yq, hq, cq = qlstm.ops.quantized_lstm(xq, *m.input_qparams, None, 1.0, 0, None, 1.0, 0, m._packed,
                                          m.hidden_size, m.num_layers, m.bidirectional, m.batch_first)
    torch.testing.assert_close(y, qlstm.ops.dequantize(yq, *m.output_qparams), rtol=0, atol=0)
    # Float states are each layer-direction's own; layer 0's forward is where
    # the uint8 op stacks them all.
    torch.testing.assert_close(c[0], qlstm.ops.dequantize(cq[0], *m.cell_qparams), rtol=0, atol=0)
    torch.testing.assert_close(h[0], qlstm.ops.dequantize(hq[0], *m.hidden_qparams), rtol=0, atol=0)


def test_unbatched_input_and_float_state():
    m = qlstm.quantize(float_model(), sine_batches(2))[0]
    x = sine_batches(1, B=1, seed=4)[0]
    h0, c0 = torch.zeros(4, 1, 20), torch.zeros(4, 1, 20)
    y, (h, c) = m(x, (h0, c0))
    y1, (h1, c1) = m(x[:, 0], (h0[:, 0], c0[:, 0]))
    assert y1.shape == (30, 40) and h1.shape == (4, 20)
    torch.testing.assert_close(y1, y[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(h1, h[:, 0], rtol=0, atol=0)


def test_state_dict_round_trip_and_pickle():
    m = qlstm.quantize(float_model(), sine_batches(2))[0]
    x = sine_batches(1, seed=5)[0]
    expected = m(x)
    fresh = qlstm.nn.LSTM(12, 20, 2, bidirectional=True)
    fresh.load_state_dict(m.state_dict())
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    for other in (fresh, loaded, copy.deepcopy(m)):
        got = other(x)
        torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
        torch.testing.assert_close(got[1][1], expected[1][1], rtol=0, atol=0)
    assert all(t.dtype != torch.quint8 for t in m.state_dict().values())


def test_repr_shows_sizes_and_qparams():
    m = qlstm.quantize(float_model(), sine_batches(1))[0]
    text = repr(m)
    assert text.startswith("QuantizedLSTM(12, 20, num_layers=2")
    assert "per-channel int8" in text and "output_qparams=(" in text


@pytest.mark.parametrize("size,ratio", [(256, 3.8), (512, 3.9)])
def test_module_is_much_smaller_than_float(size, ratio):
    # The packed blobs are the module's only copy of the weights.
    model = float_model(size, size, 1, False)
    m = qlstm.quantize(model, sine_batches(1, T=4, I=size))[0]
    float_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    module_bytes = sum(t.numel() * t.element_size() for t in list(m.buffers()) + m._packed)
    assert float_bytes / module_bytes > ratio
    assert all(t.numel() <= 1 for t in m.buffers())


def test_state_dict_holds_nn_lstm_names_and_load_reports_missing_keys():
    m = qlstm.quantize(float_model(L=1, bidirectional=True), sine_batches(1))[0]
    sd = m.state_dict()
    assert sd["weight_ih_l0"].dtype == torch.int8 and sd["weight_ih_l0"].shape == (80, 12)
    assert sd["weight_hh_l0_reverse_scales"].shape == (80,)
    assert sd["qparams_scales_l0"].shape == (7,) and sd["input_scale"].dim() == 0
    del sd["bias_hh_l0_reverse"]
    fresh = qlstm.nn.LSTM(12, 20, 1, bidirectional=True)
    with pytest.raises(RuntimeError, match="Missing key.*bias_hh_l0_reverse"):
        fresh.load_state_dict(sd)
    sd = m.state_dict()
    sd["weight_hh_l0"] = sd["weight_hh_l0"][:, :5]
    with pytest.raises(RuntimeError, match=r"qlstm: size mismatch for weight_hh_l0: this module "
                                           r"expects \(80, 20\), the state_dict has \(80, 5\)"):
        fresh.load_state_dict(sd)
    sd = m.state_dict()
    sd["weight_ih_l0_scales"] = -sd["weight_ih_l0_scales"]
    with pytest.raises(RuntimeError, match=r"layer l0: qlstm: w_ih_scales must be finite and > 0"):
        fresh.load_state_dict(sd)

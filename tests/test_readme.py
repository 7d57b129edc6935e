"""The README's examples, as written there, run and do what it says."""
import warnings

import pytest
import torch
import torch.ao.quantization as tq

import qlstm


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.lstm, self.head = torch.nn.LSTM(20, 64, 2), torch.nn.Linear(64, 10)

    def forward(self, x):
        y, _ = self.lstm(self.quant(x))                  # quint8 in, quint8 out
        return self.head(self.dequant(y)[-1])


def test_eager_flow_example():
    torch.manual_seed(0)
    calibration_batches = [torch.randn(30, 4, 20) for _ in range(2)]
    model = Net().eval()
    model.qconfig = tq.QConfig(
        activation=tq.HistogramObserver.with_args(dtype=torch.quint8, reduce_range=False),
        weight=tq.default_per_channel_weight_observer)
    model.head.qconfig = None
    prepared = tq.prepare(model, prepare_custom_config_dict={
        "float_to_observed_custom_module_class": {torch.nn.LSTM: torch.ao.nn.quantizable.LSTM}})
    for x in calibration_batches:
        prepared(x)
    quantized = tq.convert(prepared, convert_custom_config_dict={
        "observed_to_quantized_custom_module_class": {torch.ao.nn.quantizable.LSTM: qlstm.nn.LSTM}})
    assert type(quantized.lstm) is qlstm.nn.LSTM and type(quantized.head) is torch.nn.Linear
    x = torch.randn(30, 4, 20)
    with torch.no_grad():
        got, want = quantized(x), model(x)
    assert got.shape == (4, 10) and float((got - want).norm() / want.norm()) < 0.1


def test_streaming_example_and_inspection():
    torch.manual_seed(0)
    lstm = qlstm.quantize(torch.nn.LSTM(8, 16, 2), [torch.randn(10, 3, 8)])
    frames = torch.randn(12, 3, 8)
    state = None
    outputs = []
    with torch.no_grad():
        for x_t in frames.split(1):
            y_t, state = lstm(x_t, state)
            outputs.append(y_t)
        y, full_state = lstm(frames)
    assert torch.equal(torch.cat(outputs), y)
    assert all(torch.equal(a, b) for a, b in zip(state, full_state))
    float_lstm = torch.nn.LSTM(8, 16, 2)
    for name, p in float_lstm.named_parameters():
        assert getattr(lstm, name).shape == p.shape
    w = lstm.weight_ih_l1
    w.zero_()  # a copy: the module is unchanged
    assert not torch.equal(lstm.weight_ih_l1, w)
    assert len(lstm.packed_layers) == 2
    assert set(lstm.layer_qparams(1)) == set(qlstm.ops.CELL_QPARAM_NAMES)
    with pytest.raises(IndexError, match="qlstm: this LSTM has no layer 2"):
        lstm.layer_qparams(2)
    with pytest.raises(AttributeError):
        lstm.weight_ih_l0_reverse  # noqa: B018


def test_calibration_from_a_data_loader():
    data = torch.utils.data.TensorDataset(torch.randn(16, 10, 8), torch.randint(0, 3, (16,)))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    model = torch.nn.LSTM(8, 16, batch_first=True)
    with pytest.raises(TypeError, match="qlstm: calibration batch 0 is a list, not a tensor: pass input_fn="):
        qlstm.quantize(model, loader)
    q = qlstm.quantize(model, loader, input_fn=lambda batch: batch[0])
    assert type(q) is qlstm.nn.LSTM
    with pytest.raises(TypeError, match="qlstm: input_fn must return a tensor or a tuple"):
        qlstm.quantize(model, loader, input_fn=lambda batch: list(batch))


def test_a_model_with_nothing_to_quantize_warns():
    model = torch.nn.Sequential(torch.nn.GRU(4, 5), torch.nn.GRUCell(5, 5))
    with pytest.warns(UserWarning, match=r"qlstm: prepare found no torch.nn.LSTM .*not quantized: "
                                         r"0 \(GRU\), 1 \(GRUCell\)"):
        qlstm.prepare(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        qlstm.quantize(torch.nn.Sequential(torch.nn.GRU(4, 5)), [torch.randn(3, 2, 4)])
    assert [str(w.message).split(";")[0] for w in caught] == [
        "qlstm: prepare found no torch.nn.LSTM or torch.nn.LSTMCell to observe"]
    with pytest.warns(UserWarning, match="qlstm: convert found no qlstm.nn.ObservedLSTM or ObservedLSTMCell"):
        qlstm.convert(torch.nn.Linear(2, 2))


def test_accurate_mode_example():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.LSTM(64, 128, num_layers=2, bidirectional=True)).eval()
    calibration_batches = [torch.randn(20, 4, 64) for _ in range(2)]
    accurate = qlstm.quantize(model, calibration_batches, mode="accurate")
    x = torch.randn(20, 4, 64)
    with torch.no_grad():
        y, (h_n, c_n) = accurate[0](x)
        want, (want_h, want_c) = model(x)
    assert y.dtype == h_n.dtype == c_n.dtype == torch.float32 and c_n.shape == want_c.shape
    assert float((y - want).norm() / want.norm()) < 0.02

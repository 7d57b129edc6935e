"""Helpers shared by the test files: PyTorch's eager quantization flow (the
bit-exactness oracle), random layers of the pure-PyTorch model packed with
qlstm's op, the two flows' small models, and exact comparison of results."""
from __future__ import annotations

import copy
from typing import List, Optional, Tuple

import torch
import torch.ao.quantization as tq

import qlstm
import quantized_graph as qg
from quantized_graph import Layer


def pack(layer: Layer) -> torch.Tensor:
    return qlstm.ops.pack_lstm_layer(
        layer.w_ih, layer.w_ih_scales, layer.w_ih_zps, layer.w_hh, layer.w_hh_scales,
        layer.w_hh_zps, layer.b_ih, layer.b_hh, [s for s, _ in layer.qparams],
        [z for _, z in layer.qparams], layer.per_channel, layer.w_hr, layer.w_hr_scales,
        layer.w_hr_zps, layer.mode)


def graph_layer(blob: torch.Tensor) -> Layer:
    """A packed layer as the pure-PyTorch model's Layer, from what it unpacks to."""
    u = qlstm.ops.unpack_lstm_layer(blob)
    return Layer(u.w_ih, u.w_ih_scales, u.w_ih_zero_points, u.w_hh, u.w_hh_scales,
                 u.w_hh_zero_points, u.b_ih, u.b_hh, list(zip(u.scales, u.zero_points)),
                 u.per_channel, u.w_hr, u.w_hr_scales, u.w_hr_zero_points)


def near_ties(scale: float, zero_point: int, ulps: int = 4) -> torch.Tensor:
    """Floats whose torch.quantize_per_tensor byte is not the one the graph's
    requantization formula gives: x / scale on a tie (with an odd zero point)
    or within half an ulp of one, where adding the zero point before the
    rounding decides. Searched within `ulps` floats of each (j + 1/2) * scale
    that maps into [0, 255]."""
    j = torch.arange(-zero_point - 1, 256 - zero_point, dtype=torch.float64)
    x = ((j + 0.5) * scale).to(torch.float32)
    up, down = [x], [x]
    for _ in range(ulps):
        up.append(torch.nextafter(up[-1], torch.tensor(float("inf"))))
        down.append(torch.nextafter(down[-1], torch.tensor(float("-inf"))))
    x = torch.cat(up + down[1:])
    return x[qg.quantize(x, (scale, zero_point)) != qg.quantize_per_tensor(x, (scale, zero_point))]


class StubbedLSTM(torch.nn.Module):
    """QuantStub -> nn.LSTM, the model PyTorch's eager flow quantizes."""

    def __init__(self, lstm: torch.nn.LSTM):
        super().__init__()
        self.quant = tq.QuantStub()
        self.lstm = lstm

    def forward(self, x: torch.Tensor, hx: Optional[Tuple[torch.Tensor, torch.Tensor]] = None):
        return self.lstm(self.quant(x), hx)


PREPARE = {"float_to_observed_custom_module_class": {torch.nn.LSTM: torch.ao.nn.quantizable.LSTM}}


class QuantizableLSTMSplitGates(torch.ao.nn.quantizable.LSTM):
    """The observed class PyTorch's own test uses for split gates."""

    @classmethod
    def from_float(cls, other, qconfig=None):
        return super().from_float(other, qconfig, split_gates=True)


def observed_class(split_gates: bool) -> type:
    return QuantizableLSTMSplitGates if split_gates else torch.ao.nn.quantizable.LSTM


def x86_qconfig(per_channel: bool = True) -> tq.QConfig:
    """PyTorch's 'x86' qconfig, with per-tensor weights when asked."""
    qconfig = tq.get_default_qconfig("x86")
    if not per_channel:
        qconfig = tq.QConfig(activation=qconfig.activation, weight=tq.default_weight_observer)
    return qconfig


def eager_convert(prepared: torch.nn.Module, quantized_class: type, split_gates: bool = False
                  ) -> torch.nn.Module:
    """PyTorch's eager convert of a calibrated model (left as it was) into quantized_class."""
    return tq.convert(copy.deepcopy(prepared), convert_custom_config_dict={
        "observed_to_quantized_custom_module_class": {observed_class(split_gates): quantized_class}})


def torch_flow(lstm: torch.nn.LSTM, calibration: List[Tuple[torch.Tensor, Optional[Tuple]]],
               per_channel: bool = True, split_gates: bool = False
               ) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """Runs PyTorch's eager flow with the 'x86' qconfig (per-tensor weights, or
    quantizable LSTMs with split gates, when asked), calibrating on (input, hx or
    None) pairs. Returns (the calibrated observed model, torch's quantized model)."""
    model = StubbedLSTM(lstm).eval()
    model.qconfig = x86_qconfig(per_channel)
    prepared = tq.prepare(model, prepare_custom_config_dict={
        "float_to_observed_custom_module_class": {torch.nn.LSTM: observed_class(split_gates)}})
    with torch.no_grad():
        for x, hx in calibration:
            prepared(x, hx)
    return prepared, eager_convert(prepared, torch.ao.nn.quantized.LSTM, split_gates)


def quantize_like(t: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    return torch.quantize_per_tensor(t, scale, zero_point, torch.quint8)


def random_model(I, H, num_layers, bidirectional, bias, per_channel, seed, weight_zero_points=False,
                 split_gates=False, proj_size=0, mode="torch"):
    gen = torch.Generator().manual_seed(seed)
    D = 2 if bidirectional else 1
    return [qg.random_layer(I if l == 0 else D * (proj_size or H), H, bias, per_channel, gen,
                            weight_zero_points, split_gates, proj_size, mode)
            for l in range(num_layers) for _ in range(D)]


def random_bytes(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)


def own_flow_model(batch_first=False, split_gates=False, proj_size=0, mode="torch"):
    """qlstm.quantize: float in, float out."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.LSTM(6, 8, 2, bidirectional=True, batch_first=batch_first,
                                              proj_size=proj_size)).eval()
    return qlstm.quantize(model, [torch.randn(5, 3, 6) for _ in range(2)], split_gates=split_gates,
                          mode=mode)


def eager_flow_model(split_gates=False):
    """PyTorch's eager flow with qlstm.nn.LSTM as the quantized class: quint8 out."""
    torch.manual_seed(1)
    model = StubbedLSTM(torch.nn.LSTM(6, 8, 2)).eval()
    model.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(model, prepare_custom_config_dict={
        "float_to_observed_custom_module_class": {torch.nn.LSTM: observed_class(split_gates)}})
    for _ in range(2):
        prepared(torch.randn(5, 3, 6))
    return eager_convert(prepared, qlstm.nn.LSTM, split_gates)


def split_own_flow_model():
    return own_flow_model(split_gates=True)


def proj_own_flow_model():
    """With a projection: h of 5, c of 8."""
    return own_flow_model(proj_size=5)


def accurate_own_flow_model():
    """The accurate mode: float gates and cell."""
    return own_flow_model(mode="accurate")


def split_eager_flow_model():
    return eager_flow_model(split_gates=True)


def flat(value):
    """Results as plain tensors and qparams, comparable with torch.equal (a dict
    is a quantized tensor from saved_model_runner)."""
    if isinstance(value, dict):
        return [(value["int_repr"], value["scale"], value["zero_point"])]
    if isinstance(value, torch.Tensor):
        return [(value.int_repr(), value.q_scale(), value.q_zero_point())] if value.is_quantized else [value]
    return [v for item in value for v in flat(item)]


def assert_same(got, expected):
    got, expected = flat(got), flat(expected)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        if isinstance(e, tuple):
            assert torch.equal(g[0], e[0]) and g[1:] == e[1:]
        else:
            assert torch.equal(g, e)

"""Shared helpers: PyTorch's eager quantization flow (the bit-exactness oracle)
and packing of reference-model layers with qlstm's op."""
from __future__ import annotations

import copy
import warnings
from typing import List, Optional, Tuple

import pytest
import torch
import torch.ao.quantization as tq

import qlstm
from quantized_graph import Layer

# qlstm's default numerics are those of PyTorch's FBGEMM engine. On CPUs with
# AVX-512 VNNI the 'x86' engine sends quantized linear to oneDNN instead, so
# the oracle is pinned to FBGEMM.
torch.backends.quantized.engine = "fbgemm"


@pytest.fixture(autouse=True)
def _quiet_deprecations():
    with warnings.catch_warnings():
        # PyTorch's own flow (the oracle) creates quint8 tensors, deprecated in 2.13.
        warnings.filterwarnings("ignore", message=".*quantized tensor creation.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        yield


def pack(layer: Layer) -> torch.Tensor:
    return qlstm.ops.pack_lstm_layer(
        layer.w_ih, layer.w_ih_scales, layer.w_ih_zps, layer.w_hh, layer.w_hh_scales,
        layer.w_hh_zps, layer.b_ih, layer.b_hh, [s for s, _ in layer.qparams],
        [z for _, z in layer.qparams], layer.per_channel)


class StubbedLSTM(torch.nn.Module):
    """QuantStub -> nn.LSTM, the model PyTorch's eager flow quantizes."""

    def __init__(self, lstm: torch.nn.LSTM):
        super().__init__()
        self.quant = tq.QuantStub()
        self.lstm = lstm

    def forward(self, x: torch.Tensor, hx: Optional[Tuple[torch.Tensor, torch.Tensor]] = None):
        return self.lstm(self.quant(x), hx)


PREPARE = {"float_to_observed_custom_module_class": {torch.nn.LSTM: torch.ao.nn.quantizable.LSTM}}


def torch_flow(lstm: torch.nn.LSTM, calibration: List[Tuple[torch.Tensor, Optional[Tuple]]],
               per_channel: bool = True
               ) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """Runs PyTorch's eager flow with the 'x86' qconfig (per-tensor weights when
    asked), calibrating on (input, hx or None) pairs. Returns (the calibrated observed model, torch's quantized model)."""
    model = StubbedLSTM(lstm).eval()
    qconfig = tq.get_default_qconfig("x86")
    if not per_channel:
        qconfig = tq.QConfig(activation=qconfig.activation, weight=tq.default_weight_observer)
    model.qconfig = qconfig
    prepared = tq.prepare(model, prepare_custom_config_dict=PREPARE)
    with torch.no_grad():
        for x, hx in calibration:
            prepared(x, hx)
    quantized = tq.convert(copy.deepcopy(prepared), convert_custom_config_dict={
        "observed_to_quantized_custom_module_class": {
            torch.ao.nn.quantizable.LSTM: torch.ao.nn.quantized.LSTM}})
    return prepared, quantized


def quantize_like(t: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    return torch.quantize_per_tensor(t, scale, zero_point, torch.quint8)



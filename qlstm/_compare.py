"""The models qlstm is compared with, built the way a user would build them,
and a timer; used by ``python -m qlstm demo`` and by benchmarks/."""
from __future__ import annotations

import copy
import os
import statistics
import time
import warnings
from typing import Callable, List

import torch
import torch.ao.quantization as tq

__all__ = ["median_ms", "torch_static", "torch_dynamic", "onnxruntime_int8"]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of fn() in milliseconds over `repeats` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


class _Stubbed(torch.nn.Module):
    """QuantStub -> LSTM -> DeQuantStub of the output sequence."""

    def __init__(self, lstm):
        super().__init__()
        self.quant, self.lstm, self.dequant = tq.QuantStub(), lstm, tq.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.lstm(self.quant(x))[0])


def torch_static(model: torch.nn.LSTM, calibration: List[torch.Tensor],
                 quantized_class: type = torch.ao.nn.quantized.LSTM) -> torch.nn.Module:
    """torch.ao.nn.quantized.LSTM (or another quantized class, such as
    qlstm.nn.LSTM) through PyTorch's eager flow ('x86' qconfig: 7-bit
    activations); float sequence in, float output sequence out."""
    m = _Stubbed(copy.deepcopy(model)).eval()
    m.qconfig = tq.get_default_qconfig("x86")
    custom = {torch.nn.LSTM: torch.ao.nn.quantizable.LSTM}
    prepared = tq.prepare(m, prepare_custom_config_dict={"float_to_observed_custom_module_class": custom})
    for x in calibration:
        prepared(x)
    return tq.convert(prepared, convert_custom_config_dict={
        "observed_to_quantized_custom_module_class": {torch.ao.nn.quantizable.LSTM: quantized_class}})


def torch_dynamic(model: torch.nn.LSTM) -> torch.nn.Module:
    """torch's dynamic int8 LSTM (quantize_dynamic swaps children only, so the
    LSTM goes inside a container)."""
    return tq.quantize_dynamic(torch.nn.Sequential(copy.deepcopy(model)), {torch.nn.LSTM},
                               torch.qint8)


def onnxruntime_int8(model: torch.nn.LSTM, workdir: str, reduce_range: bool = False,
                     threads: int = 1) -> Callable[[torch.Tensor], torch.Tensor]:
    """onnxruntime's int8 LSTM (DynamicQuantizeLSTM: the nn.LSTM exported to ONNX
    and quantized with onnxruntime.quantization.quantize_dynamic, int8 weights;
    ``reduce_range`` gives 7-bit weights, which its docs advise on CPUs without
    VNNI, whose u8s8 kernels may saturate). Returns output = f(input) for
    time-major float input. Needs onnxruntime installed."""
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    name = f"lstm_{id(model)}_{int(reduce_range)}"
    float_path = os.path.join(workdir, name + ".onnx")
    int8_path = os.path.join(workdir, name + "_int8.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(3, 2, model.input_size),), float_path,
                          input_names=["x"], output_names=["y", "h", "c"],
                          dynamic_axes={"x": {0: "T", 1: "B"}}, dynamo=False, opset_version=17)
        quantize_dynamic(float_path, int8_path, weight_type=QuantType.QInt8,
                         reduce_range=reduce_range)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(int8_path, options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(["y"], {"x": x.numpy()})[0])

"""``python -m qlstm demo``: quantizes a sample LSTM model and reports its accuracy
against float and its speed against nn.LSTM and PyTorch's int8 LSTMs."""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from typing import Callable, List

import torch
import torch.ao.quantization as tq

import qlstm


def signals(n: int, T: int, B: int, I: int, seed: int) -> List[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(T).float()[:, None, None]
    return [torch.sin(t * torch.rand(1, B, I, generator=gen) * 0.5
                      + torch.rand(1, B, I, generator=gen) * 6.28)
            + 0.1 * torch.randn(T, B, I, generator=gen) for _ in range(n)]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


class _Stubbed(torch.nn.Module):
    def __init__(self, lstm):
        super().__init__()
        self.quant, self.lstm, self.dequant = tq.QuantStub(), lstm, tq.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.lstm(self.quant(x))[0])


def torch_static(model: torch.nn.LSTM, calibration: List[torch.Tensor]) -> torch.nn.Module:
    m = _Stubbed(copy.deepcopy(model)).eval()
    m.qconfig = tq.get_default_qconfig("x86")
    custom = {torch.nn.LSTM: torch.ao.nn.quantizable.LSTM}
    prepared = tq.prepare(m, prepare_custom_config_dict={"float_to_observed_custom_module_class": custom})
    for x in calibration:
        prepared(x)
    return tq.convert(prepared, convert_custom_config_dict={
        "observed_to_quantized_custom_module_class": {torch.ao.nn.quantizable.LSTM: torch.ao.nn.quantized.LSTM}})


def demo(size: int, seq_len: int, batch: int, repeats: int) -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.LSTM(size, size, num_layers=2).eval()
    calibration = signals(4, seq_len, batch, size, seed=0)
    x = signals(1, seq_len, batch, size, seed=1)[0]

    quantized = qlstm.quantize(model, calibration)
    static = torch_static(model, calibration)
    # quantize_dynamic swaps children only, so the LSTM goes inside a container.
    dynamic = torch.ao.quantization.quantize_dynamic(
        torch.nn.Sequential(copy.deepcopy(model)), {torch.nn.LSTM}, torch.qint8)
    with torch.no_grad():
        reference = model(x)[0]
        runs = {
            "float nn.LSTM": lambda: model(x)[0],
            "torch dynamic int8 LSTM": lambda: dynamic(x)[0],
            "torch static int8 LSTM": lambda: static(x),
            "qlstm": lambda: quantized(x)[0],
        }
        print(f"qlstm demo: 2-layer LSTM, input = hidden = {size}, sequence length {seq_len}, "
              f"batch {batch}, 1 thread, torch {torch.__version__}")
        print(f"{'model':<26}{'rel. error vs float':>22}{'median ms':>12}{'qlstm speedup':>16}")
        results = {name: (fn(), median_ms(fn, repeats)) for name, fn in runs.items()}
        ours = results["qlstm"][1]
        for name, (out, ms) in results.items():
            err = float((out - reference).norm() / reference.norm())
            print(f"{name:<26}{err:>22.4f}{ms:>12.3f}{ms / ours:>15.2f}x")


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m qlstm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="quantize a sample LSTM and compare accuracy and speed")
    d.add_argument("--size", type=int, default=256)
    d.add_argument("--seq-len", type=int, default=50)
    d.add_argument("--batch", type=int, default=1)
    d.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    demo(args.size, args.seq_len, args.batch, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

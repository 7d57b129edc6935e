"""``python -m qlstm demo``: quantizes a sample LSTM model in both of qlstm's
modes and reports their accuracy against float and their speed against
nn.LSTM, PyTorch's int8 LSTMs and (when installed) onnxruntime's."""
from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from typing import Callable, Dict, List

import torch

import qlstm
from qlstm._compare import median_ms, onnxruntime_int8, torch_dynamic, torch_static


def signals(n: int, T: int, B: int, I: int, seed: int) -> List[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(T).float()[:, None, None]
    return [torch.sin(t * torch.rand(1, B, I, generator=gen) * 0.5
                      + torch.rand(1, B, I, generator=gen) * 6.28)
            + 0.1 * torch.randn(T, B, I, generator=gen) for _ in range(n)]


def onnxruntime_run(model: torch.nn.LSTM, workdir: str) -> Dict[str, Callable]:
    """onnxruntime's int8 LSTM, when it is installed: with 7-bit weights on CPUs
    without VNNI, as its documentation advises (its u8s8 kernels saturate there)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return {}
    vnni = any(name.endswith("vnni") for name in qlstm.available_isas())
    name = "onnxruntime int8" + ("" if vnni else " (7-bit w)")
    return {name: onnxruntime_int8(model, workdir, reduce_range=not vnni)}


def demo(size: int, seq_len: int, batch: int, repeats: int) -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.LSTM(size, size, num_layers=2).eval()
    calibration = signals(4, seq_len, batch, size, seed=0)
    x = signals(1, seq_len, batch, size, seed=1)[0]

    default = qlstm.quantize(model, calibration)
    accurate = qlstm.quantize(model, calibration, mode="accurate")
    static = torch_static(model, calibration)
    dynamic = torch_dynamic(model)
    with torch.no_grad(), tempfile.TemporaryDirectory() as workdir:
        reference = model(x)[0]
        runs = {
            "float nn.LSTM": lambda: model(x)[0],
            "torch dynamic int8 LSTM": lambda: dynamic(x)[0],
            "torch static int8 LSTM": lambda: static(x),
            **{name: (lambda f=f: f(x)) for name, f in onnxruntime_run(model, workdir).items()},
            "qlstm (mode='torch')": lambda: default(x)[0],
            "qlstm (mode='accurate')": lambda: accurate(x)[0],
        }
        print(f"qlstm demo: 2-layer LSTM, input = hidden = {size}, sequence length {seq_len}, "
              f"batch {batch}, 1 thread, torch {torch.__version__}, kernel set {qlstm.isa()}")
        print(f"{'model':<28}{'rel. error vs float':>22}{'median ms':>12}{'time / accurate':>18}")
        results = {name: (fn(), median_ms(fn, repeats)) for name, fn in runs.items()}
        ours = results["qlstm (mode='accurate')"][1]
        for name, (out, ms) in results.items():
            err = float((out - reference).norm() / reference.norm())
            print(f"{name:<28}{err:>22.4f}{ms:>12.3f}{ms / ours:>17.2f}x")
        print("mode='torch' is torch.ao.nn.quantized.LSTM bit for bit; mode='accurate' keeps the "
              "gates and the cell in float32 (README: Two modes)")


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

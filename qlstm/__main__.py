"""``python -m qlstm demo``: quantizes a sample LSTM model and reports its accuracy
against float and its speed against nn.LSTM and PyTorch's int8 LSTMs."""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import List

import torch

import qlstm
from qlstm._compare import median_ms, torch_dynamic, torch_static


def signals(n: int, T: int, B: int, I: int, seed: int) -> List[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(T).float()[:, None, None]
    return [torch.sin(t * torch.rand(1, B, I, generator=gen) * 0.5
                      + torch.rand(1, B, I, generator=gen) * 6.28)
            + 0.1 * torch.randn(T, B, I, generator=gen) for _ in range(n)]


def demo(size: int, seq_len: int, batch: int, repeats: int) -> None:
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.LSTM(size, size, num_layers=2).eval()
    calibration = signals(4, seq_len, batch, size, seed=0)
    x = signals(1, seq_len, batch, size, seed=1)[0]

    quantized = qlstm.quantize(model, calibration)
    static = torch_static(model, calibration)
    dynamic = torch_dynamic(model)
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

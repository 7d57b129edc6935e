"""Per-call cost of each way to deploy a qlstm model, side by side in one run:
the op called directly, the eager module, TorchScript (script and trace),
torch.compile(fullgraph=True) and a torch.export program's module. All run the
same single op; the differences are each path's own work around it.

    python benchmarks/bench_deploy.py [--size 64] [--seq-len 1] [--batch 1] [--rounds 15]

The paths take turns, 200 calls each per round, so that a busy machine slows
them alike; prints the median over rounds of each path's median microseconds
per call, and its ratio to the op alone.
"""
import argparse
import statistics
import warnings
from typing import List, Optional

import torch

import qlstm
from qlstm._compare import median_ms


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64, help="input and hidden size")
    p.add_argument("--seq-len", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n = args.size
    model = qlstm.quantize(torch.nn.LSTM(n, n), [torch.randn(5, 2, n)])
    x = torch.randn(args.seq_len, args.batch, n)
    scale, zero_point = model.input_qparams
    paths = {
        "op": lambda x: torch.ops.qlstm.quantized_lstm_float(
            x, scale, zero_point, None, None, model._packed, n, 1, False, False),
        "eager module": model,
        "torch.jit.script": torch.jit.script(model),
        "torch.jit.trace": torch.jit.trace(model, (x,), check_trace=False),
        "torch.compile": torch.compile(model, fullgraph=True),
        "torch.export": torch.export.export(model, (x,)).module(),
    }
    rounds: dict = {name: [] for name in paths}
    with torch.no_grad():
        for _ in range(args.rounds):
            for name, f in paths.items():
                rounds[name].append(1e3 * median_ms(lambda: f(x), 200))
    times = {name: statistics.median(r) for name, r in rounds.items()}
    print(f"size {n}, seq_len {args.seq_len}, batch {args.batch}, 1 thread, torch {torch.__version__}")
    print(f"{'path':18s} {'us per call':>12s} {'vs op':>7s}")
    for name, us in times.items():
        print(f"{name:18s} {us:12.1f} {us / times['op']:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

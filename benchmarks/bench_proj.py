"""LSTMs with a projection (nn.LSTM's proj_size, LSTMP) side by side: float
nn.LSTM with the projection, qlstm with it, and qlstm on the same LSTM without
it (what the projection costs or saves); then the error against float.

    python benchmarks/bench_proj.py           # 1 thread and all threads
    python benchmarks/bench_proj.py --quick

torch's dynamic int8 LSTM fails on proj_size ("The number of rows in the packB
should be equal to K"), and ONNX's LSTM operator has no projection, so neither
has a column. Speed: median ms of each model, measured in alternating rounds
(min over rounds), float sequence in, float output out, 1 layer. Accuracy:
relative error of the output sequence against float nn.LSTM on fresh batches,
with and without the projection. Writes results/proj.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Dict, List, Tuple

import torch

import qlstm
from bench_lstm import HERE, cpu_model, timed_ms, write_table
from bench_split_gates import relative_error

# (input, hidden, proj): LSTMP as speech models use it (a wide cell, a narrow h).
SHAPES = [(128, 256, 64), (256, 512, 128), (256, 1024, 256), (512, 1024, 512)]
QUICK_SHAPES = [(128, 256, 64), (256, 512, 128)]


def models(I: int, H: int, P: int, T: int) -> Dict[str, torch.nn.Module]:
    torch.manual_seed(H + P)
    proj = torch.nn.LSTM(I, H, proj_size=P).eval()
    plain = torch.nn.LSTM(I, H).eval()
    calibration = [torch.randn(T, 8, I) for _ in range(2)]
    return {"float nn.LSTM (proj)": proj,
            "qlstm (proj)": qlstm.quantize(proj, calibration),
            "qlstm (no proj)": qlstm.quantize(plain, calibration)}


def speed(shapes: List[Tuple[int, int, int]], seq: int, batches: List[int],
          thread_counts: List[int], rounds: int) -> List[Dict[str, object]]:
    rows = []
    for I, H, P in shapes:
        ms = models(I, H, P, seq)
        for threads in thread_counts:
            torch.set_num_threads(threads)
            for B in batches:
                x = torch.randn(seq, B, I)
                times: Dict[str, List[float]] = {name: [] for name in ms}
                with torch.no_grad():
                    for _ in range(rounds):
                        for name, m in ms.items():
                            times[name].append(timed_ms(lambda: m(x), budget_s=0.2))
                row: Dict[str, object] = {"shape": f"{I}, {H}, {P}", "threads": threads,
                                          "batch": B, "seq": seq}
                row.update({name: min(t) for name, t in times.items()})
                print(row, flush=True)
                rows.append(row)
    return rows


def accuracy(shapes: List[Tuple[int, int, int]], seq: int) -> List[Dict[str, object]]:
    rows = []
    for I, H, P in shapes:
        row: Dict[str, object] = {"shape": f"{I}, {H}, {P}"}
        for kind, proj in (("proj", P), ("no proj", 0)):
            torch.manual_seed(H + P)
            model = torch.nn.LSTM(I, H, proj_size=proj).eval()
            calibration = [torch.randn(seq, 8, I) for _ in range(4)]
            test = [torch.randn(seq, 8, I) for _ in range(4)]
            row[kind] = relative_error(qlstm.quantize(model, calibration), model, test)
        print(row, flush=True)
        rows.append(row)
    return rows


def markdown(speed_rows: List[Dict[str, object]], accuracy_rows: List[Dict[str, object]]) -> str:
    lines = [f"CPU: {cpu_model()}, {os.cpu_count()} cores; kernel set {qlstm.isa()}; torch "
             f"{torch.__version__}", ""]
    if speed_rows:
        names = [k for k in speed_rows[0] if k not in ("shape", "threads", "batch", "seq")]
        lines += ["Median ms (input, hidden, proj_size; 1 layer):", "",
                  "| threads | batch | seq | I, H, P | " + " | ".join(names)
                  + " | float / qlstm (proj) | qlstm proj / no proj |",
                  "|---" * (len(names) + 6) + "|"]
        for r in speed_rows:
            cells = " | ".join(f"{r[n]:.3f}" for n in names)
            lines.append(f"| {r['threads']} | {r['batch']} | {r['seq']} | {r['shape']} | {cells} | "
                         f"{r['float nn.LSTM (proj)'] / r['qlstm (proj)']:.2f}x | "
                         f"{r['qlstm (proj)'] / r['qlstm (no proj)']:.2f} |")
        lines.append("")
    if accuracy_rows:
        lines += ["Relative error of the output sequence against float nn.LSTM (qlstm.quantize, "
                  "histogram observers):", "", "| I, H, P | with proj_size | same LSTM without |",
                  "|---|---|---|"]
        lines += [f"| {r['shape']} | {r['proj']:.4f} | {r['no proj']:.4f} |" for r in accuracy_rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="two shapes, batch 1")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per shape (min is kept)")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    shapes = QUICK_SHAPES if args.quick else SHAPES
    batches = [1] if args.quick else [1, 16]
    threads = sorted({1, torch.get_num_threads()})
    table = markdown(speed(shapes, 50, batches, threads, args.rounds), accuracy(shapes, 50))
    write_table(args.out, "proj.md", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

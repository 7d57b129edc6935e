"""Split gates against fused gates, side by side: speed over bench_lstm.py's grid
and the error against float nn.LSTM, for the same models.

    python benchmarks/bench_split_gates.py           # the full grid, 1 thread and all threads
    python benchmarks/bench_split_gates.py --quick

A model quantized by qlstm.quantize with split_gates=False and with
split_gates=True (per-gate igates, hgates and gates qparams; per-tensor weights
quantized gate by gate), both calibrated on the same batches. Speed: median ms
of each, measured in alternating rounds, and split / fused. Accuracy: relative
error of the output sequence against float nn.LSTM on fresh batches, with
per-channel and with per-tensor weights. Writes results/split_gates.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Dict, List

import torch
from torch.ao.quantization.observer import MinMaxObserver

import qlstm
from bench_lstm import HERE, cpu_model, timed_ms, write_table

PER_TENSOR = MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)


def quantized_pair(model: torch.nn.Module, calibration: List[torch.Tensor], weight_observer=None
                   ) -> Dict[str, torch.nn.Module]:
    pair = {}
    for split in (False, True):
        kwargs = {} if weight_observer is None else {"weight_observer": weight_observer}
        prepared = qlstm.prepare(model, split_gates=split, **kwargs)
        with torch.no_grad():
            for x in calibration:
                prepared(x)
        pair["split" if split else "fused"] = qlstm.convert(prepared)
    return pair


def speed(sizes: List[int], seqs: List[int], batches: List[int], thread_counts: List[int],
          rounds: int) -> List[Dict[str, float]]:
    rows = []
    for size in sizes:
        torch.manual_seed(size)
        model = torch.nn.LSTM(size, size).eval()
        pair = quantized_pair(model, [torch.randn(20, 4, size) for _ in range(2)])
        for threads in thread_counts:
            torch.set_num_threads(threads)
            for B in batches:
                for T in seqs:
                    x = torch.randn(T, B, size)
                    times: Dict[str, List[float]] = {"fused": [], "split": []}
                    with torch.no_grad():
                        for _ in range(rounds):
                            for name, m in pair.items():
                                times[name].append(timed_ms(lambda: m(x), budget_s=0.1))
                    row = {"size": size, "threads": threads, "batch": B, "seq": T,
                           "fused": min(times["fused"]), "split": min(times["split"])}
                    row["ratio"] = row["split"] / row["fused"]
                    print(f"size {size} threads {threads} B {B} T {T}: fused {row['fused']:.3f} ms, "
                          f"split {row['split']:.3f} ms, split/fused {row['ratio']:.3f}", flush=True)
                    rows.append(row)
    return rows


def relative_error(m: torch.nn.Module, model: torch.nn.Module, batches: List[torch.Tensor]) -> float:
    with torch.no_grad():
        num = sum(float((m(x)[0] - model(x)[0]).norm() ** 2) for x in batches)
        den = sum(float(model(x)[0].norm() ** 2) for x in batches)
    return (num / den) ** 0.5


def uneven_gates(forget_bias: float) -> torch.nn.LSTM:
    """I=32, H=64 whose gate sums have ranges unlike each other, as trained LSTMs'
    often do: the cell gate's input weights 4x wider, the forget gate's bias raised."""
    model = torch.nn.LSTM(32, 64)
    with torch.no_grad():
        model.weight_ih_l0[128:192] *= 4
        model.bias_ih_l0[64:128] += forget_bias
    return model


ACCURACY_MODELS = [("T=100, I=40, H=128", 100, lambda: torch.nn.LSTM(40, 128)),
                   ("T=200, I=80, 2 layers of 320", 200, lambda: torch.nn.LSTM(80, 320, 2)),
                   ("T=60, 256, bidirectional", 60, lambda: torch.nn.LSTM(256, 256, bidirectional=True)),
                   ("T=300, 32 -> 64, cell gate 4x wider", 300, lambda: uneven_gates(0.0)),
                   ("T=300, 32 -> 64, cell gate 4x wider, forget bias +3", 300,
                    lambda: uneven_gates(3.0))]


def accuracy() -> List[Dict[str, object]]:
    rows = []
    for name, T, make in ACCURACY_MODELS:
        torch.manual_seed(0)
        model = make().eval()
        I = model.input_size
        calibration = [torch.randn(T, 8, I) for _ in range(4)]
        test = [torch.randn(T, 8, I) for _ in range(4)]
        row: Dict[str, object] = {"model": name}
        for weights, observer in (("per-channel", None), ("per-tensor", PER_TENSOR)):
            for kind, m in quantized_pair(model, calibration, observer).items():
                row[f"{weights} {kind}"] = relative_error(m, model, test)
        print(row, flush=True)
        rows.append(row)
    return rows


def markdown(speed_rows: List[Dict[str, float]], accuracy_rows: List[Dict[str, object]]) -> str:
    lines = [f"CPU: {cpu_model()}, {os.cpu_count()} cores; kernel set {qlstm.isa()}; torch "
             f"{torch.__version__}", ""]
    if speed_rows:
        ratios = [r["ratio"] for r in speed_rows]
        lines += [f"Split / fused time over {len(ratios)} shapes: {min(ratios):.3f} to "
                  f"{max(ratios):.3f} (median {sorted(ratios)[len(ratios) // 2]:.3f}).", "",
                  "| threads | batch | seq | size | fused ms | split ms | split / fused |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['threads']} | {r['batch']} | {r['seq']} | {r['size']} | {r['fused']:.3f} | "
                  f"{r['split']:.3f} | {r['ratio']:.3f} |" for r in speed_rows]
        lines.append("")
    if accuracy_rows:
        keys = [k for k in accuracy_rows[0] if k != "model"]
        lines += ["Relative error of the output sequence against float nn.LSTM:", "",
                  "| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        lines += ["| " + str(r["model"]) + " | " + " | ".join(f"{r[k]:.4f}" for k in keys) + " |"
                  for r in accuracy_rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="sizes 128, 256; B 1, 8; T 1, 50")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds per shape (min is kept)")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    grid = ([128, 256], [1, 50], [1, 8]) if args.quick else ([128, 256, 512, 1024], [1, 50, 200], [1, 8, 64])
    threads = sorted({1, torch.get_num_threads()})
    table = markdown(speed(*grid, threads, args.rounds), accuracy())
    write_table(args.out, "split_gates.md", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

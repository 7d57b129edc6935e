"""qlstm against onnxruntime's int8 LSTM on a noisy machine: the two timed in
alternating rounds at each shape, the minimum over rounds reported.

    python benchmarks/bench_alternating.py                       # the default shapes, 1 and all threads
    python benchmarks/bench_alternating.py --sizes 512 --shapes 200x1 50x8 --threads 2 --rounds 5

bench_lstm.py times each column once, as a median: on a shared VM whose speed
drifts from one minute to the next, a row's ratio then compares two different
machines. Here each round times qlstm (`qlstm.quantize`'s module, float
sequence in and out) and then onnxruntime int8 on the same input, each for at
least --budget seconds (bench_lstm.py's timed_ms), and the table takes each
one's fastest call over all rounds: the time the shape takes when nothing
else interferes. --narrow-weights quantizes both to 7-bit weights
(qlstm.NARROW_WEIGHT_OBSERVER; onnxruntime's reduce_range), which the avx2
kernels multiply with their plain sequence. --narrow-activations calibrates
qlstm's activations to 7 bits (qlstm.NARROW_ACTIVATION_OBSERVER; onnxruntime
quantizes its activations per call, to 8 bits): with 7-bit weights the avx2
kernels then sum two groups of products at a time. Needs onnxruntime. Writes
results/lstm_alternating.md (lstm_alternating_7bit.md with 7-bit weights,
lstm_alternating_7bit_activations.md with 7-bit activations,
lstm_alternating_7bit_both.md with both). --streaming times one step instead
(T = 1, B = 1, the module's state carried from call to call, as a streaming
caller runs it; onnxruntime's one-step call) at each size and writes
lstm_alternating_streaming*.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from typing import List, Optional, Tuple

import torch

import qlstm
from bench_lstm import (HERE, OrtLSTM, cpu_model, have_onnxruntime, narrow_observers,
                        narrow_suffix, timed_ms, write_table)

DEFAULT_SHAPES = ["50x1", "200x1", "50x8", "50x64"]


def parse_shape(text: str) -> Tuple[int, int]:
    """'TxB' (sequence length x batch) as (T, B)."""
    try:
        T, B = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a shape is TxB, e.g. 50x8; got {text!r}") from None
    if T < 1 or B < 1:
        raise argparse.ArgumentTypeError(f"a shape's T and B are at least 1; got {text!r}")
    return T, B


def run(sizes: List[int], shapes: List[Tuple[int, int]], thread_counts: List[int], rounds: int,
        budget_s: float, narrow_weights: bool = False, narrow_activations: bool = False,
        streaming: bool = False) -> List[Tuple[int, int, int, int, float, float]]:
    """(threads, size, T, B, qlstm ms, onnxruntime int8 ms) for every combination; with
    `streaming`, one step at each size instead of `shapes`."""
    rows = []
    workdir = tempfile.mkdtemp()
    for size in sizes:
        torch.manual_seed(size)
        model = torch.nn.LSTM(size, size).eval()
        calibration = [torch.randn(50, 4, size) for _ in range(2)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = qlstm.quantize(model, calibration, **narrow_observers(narrow_weights,
                                                                      narrow_activations))
            ort = OrtLSTM(model, workdir, reduce_range=narrow_weights)
        for threads in thread_counts:
            torch.set_num_threads(threads)
            ort_run = ort.session(True, threads)
            for T, B in [(1, 1)] if streaming else shapes:
                x = torch.randn(T, B, size)
                xn = x.numpy()
                state = {"hc": None}

                def qlstm_call():
                    if streaming:
                        _, state["hc"] = q(x, state["hc"])
                    else:
                        q(x)

                q_ms, o_ms = float("inf"), float("inf")
                with torch.no_grad():
                    for _ in range(rounds):
                        q_ms = min(q_ms, timed_ms(qlstm_call, budget_s=budget_s, summary=min))
                        o_ms = min(o_ms, timed_ms(lambda: ort_run(xn), budget_s=budget_s, summary=min))
                rows.append((threads, size, T, B, q_ms, o_ms))
                print(f"{threads}t size {size:>4} T {T:>3} B {B:>2}: qlstm {q_ms:9.4f} ms, "
                      f"onnxruntime int8 {o_ms:9.4f} ms, {o_ms / q_ms:.2f}x", flush=True)
    return rows


def markdown(rows: List[Tuple[int, int, int, int, float, float]], header: str) -> str:
    lines = [header, "",
             "| threads | size | T x B | qlstm ms | onnxruntime int8 ms | qlstm / onnxruntime speed |",
             "|---|---|---|---|---|---|"]
    for threads, size, T, B, q_ms, o_ms in rows:
        lines.append(f"| {threads} | {size} | {T} x {B} | {q_ms:.4f} | {o_ms:.4f} | {o_ms / q_ms:.2f}x |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512, 1024],
                   help="input = hidden sizes")
    p.add_argument("--shapes", type=parse_shape, nargs="+",
                   default=[parse_shape(s) for s in DEFAULT_SHAPES], help="TxB, e.g. 50x8")
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="thread counts (default: 1 and all)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--budget", type=float, default=0.3, help="seconds per library per round")
    p.add_argument("--narrow-weights", action="store_true",
                   help="7-bit weights in both (qlstm.NARROW_WEIGHT_OBSERVER, reduce_range)")
    p.add_argument("--narrow-activations", action="store_true",
                   help="7-bit activations in qlstm (qlstm.NARROW_ACTIVATION_OBSERVER)")
    p.add_argument("--streaming", action="store_true",
                   help="one step with the state carried (T = 1, B = 1) instead of --shapes")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args(argv)
    if not have_onnxruntime():
        p.error("needs onnxruntime (pip install -r requirements-bench.txt)")
    if args.rounds < 1 or args.budget <= 0 or min(args.sizes) < 1:
        p.error("--rounds and --sizes are at least 1, --budget is positive")
    threads = args.threads or sorted({1, torch.get_num_threads()})
    header = (f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, qlstm kernel set "
              f"{qlstm.isa()}, single-core peak {qlstm.peak_macs_per_second(0.5) / 1e9:.1f} GMAC/s; "
              f"minimum of {args.rounds} alternating rounds of {args.budget} s"
              f"{'; 7-bit weights in both' if args.narrow_weights else ''}"
              f"{'; 7-bit activations in qlstm' if args.narrow_activations else ''}"
              f"{'; one step, the state carried' if args.streaming else ''}.")
    print(header, flush=True)
    rows = run(args.sizes, args.shapes, threads, args.rounds, args.budget, args.narrow_weights,
               args.narrow_activations, args.streaming)
    name = (f"lstm_alternating{'_streaming' if args.streaming else ''}"
            f"{narrow_suffix(args.narrow_weights, args.narrow_activations)}.md")
    write_table(args.out, name, markdown(rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())

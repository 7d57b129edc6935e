"""Variable-length batches, side by side: qlstm on a PackedSequence against qlstm
on the same batch padded to its longest sequence, torch's dynamic int8 LSTM on
the PackedSequence, and onnxruntime's int8 LSTM with sequence_lens.

    python benchmarks/bench_packed.py           # sizes 128, 256, 512; B 8, 64; T 100
    python benchmarks/bench_packed.py --quick

Lengths spread evenly from 1 to T, in a shuffled order (so pack_padded_sequence
sorts them: enforce_sorted=False). Every model takes float input and returns the
float output. The "real steps" column is sum(lengths) / (B * T): a packed run
that skips finished sequences should take about that fraction of the padded
run's time. Median ms, 1 thread and all threads; writes results/packed.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from typing import Callable, Dict, List

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import qlstm
from bench_lstm import HERE, OrtLSTM, cpu_model, have_onnxruntime, timed_ms, write_table
from qlstm._compare import torch_dynamic


def spread_lengths(B: int, T: int, seed: int = 0) -> torch.Tensor:
    """B lengths from 1 to T, evenly spread, shuffled."""
    lengths = torch.linspace(1, T, B).round().long()
    return lengths[torch.randperm(B, generator=torch.Generator().manual_seed(seed))]


def with_sequence_lens(ort_lstm: OrtLSTM) -> str:
    """The int8 model with its LSTM node's sequence_lens wired to a new graph input "lens"."""
    import onnx

    model = onnx.load(ort_lstm.int8_path)
    lstm = [n for n in model.graph.node if n.op_type in ("LSTM", "DynamicQuantizeLSTM")]
    assert len(lstm) == 1, [n.op_type for n in model.graph.node]
    node = lstm[0]
    while len(node.input) < 5:
        node.input.append("")
    node.input[4] = "lens"
    model.graph.input.append(onnx.helper.make_tensor_value_info("lens", onnx.TensorProto.INT32, ["B"]))
    path = ort_lstm.int8_path.replace(".onnx", "_lens.onnx")
    onnx.save(model, path)
    return path


def ort_lens_session(ort_lstm: OrtLSTM, path: str, threads: int) -> Callable:
    so = ort_lstm.ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort_lstm.ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return lambda x, lens: s.run(["y"], {"x": x, "lens": lens})[0]


def run(sizes: List[int], batches: List[int], T: int, thread_counts: List[int], use_ort: bool,
        workdir: str) -> List[Dict[str, float]]:
    rows = []
    for size in sizes:
        torch.manual_seed(size)
        model = torch.nn.LSTM(size, size).eval()
        q = qlstm.quantize(model, [torch.randn(20, 4, size) for _ in range(2)])
        dynamic = torch_dynamic(model)
        ort = OrtLSTM(model, workdir) if use_ort else None
        ort_path = with_sequence_lens(ort) if ort else None
        for threads in thread_counts:
            torch.set_num_threads(threads)
            ort_run = ort_lens_session(ort, ort_path, threads) if ort else None
            for B in batches:
                lengths = spread_lengths(B, T)
                x = torch.randn(T, B, size)
                packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
                x_np, lens_np = x.numpy(), lengths.numpy().astype(np.int32)
                fns: Dict[str, Callable[[], object]] = {
                    "qlstm_packed": lambda: q(packed), "qlstm_padded": lambda: q(x),
                    "torch_dynamic_packed": lambda: dynamic(packed)}
                if ort_run:
                    fns["ort_int8_lens"] = lambda: ort_run(x_np, lens_np)
                row: Dict[str, float] = {"size": size, "threads": threads, "batch": B, "seq": T,
                                         "real_steps": float(lengths.sum()) / (B * T)}
                with torch.no_grad():
                    for name, fn in fns.items():
                        row[name] = timed_ms(fn)
                print(row, flush=True)
                rows.append(row)
    return rows


COLUMNS = [("qlstm_padded", "qlstm, padded to T"), ("torch_dynamic_packed", "torch dynamic int8, packed"),
           ("ort_int8_lens", "onnxruntime int8, sequence_lens")]


def markdown(rows: List[Dict[str, float]]) -> str:
    cols = [(k, label) for k, label in COLUMNS if k in rows[0]]
    lines = [f"CPU: {cpu_model()}, {os.cpu_count()} cores; kernel set {qlstm.isa()}; torch "
             f"{torch.__version__}", "",
             "| threads | batch | T | size | real steps | qlstm packed ms | "
             + " | ".join(f"{label} ms" for _, label in cols) + " | packed / padded | "
             + " | ".join(f"vs {label}" for _, label in cols[1:]) + " |",
             "|---" * (6 + 2 * len(cols)) + "|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['batch']} | {r['seq']} | {r['size']} | "
                     f"{r['real_steps']:.2f} | {r['qlstm_packed']:.3f} | "
                     + " | ".join(f"{r[k]:.3f}" for k, _ in cols)
                     + f" | {r['qlstm_packed'] / r['qlstm_padded']:.2f} | "
                     + " | ".join(f"{r[k] / r['qlstm_packed']:.2f}x" for k, _ in cols[1:]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="size 128 and 256, batch 8 and 64, T 50")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    sizes, batches, T = ([128, 256], [8, 64], 50) if args.quick else ([128, 256, 512], [8, 64], 100)
    threads = sorted({1, torch.get_num_threads()})
    with tempfile.TemporaryDirectory() as workdir:
        rows = run(sizes, batches, T, threads, have_onnxruntime(), workdir)
    table = markdown(rows)
    write_table(args.out, "packed.md", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Side-by-side LSTM benchmark: qlstm against every LSTM a PyTorch user could
pick instead, measured in the same run, reported as median milliseconds and as
qlstm's speedup over each.

    python benchmarks/bench_lstm.py            # the full grid, 1 thread and all threads
    python benchmarks/bench_lstm.py --quick    # a small grid, for a smoke run
    python benchmarks/bench_lstm.py --streaming-only --narrow-weights --narrow-activations

Columns: float nn.LSTM, torch's dynamic int8 LSTM, torch's static int8 LSTM
(torch.ao.nn.quantized.LSTM), onnxruntime's float LSTM and its int8 LSTM (the
exported nn.LSTM through onnxruntime.quantization.quantize_dynamic; skipped
when onnxruntime is not installed), and qlstm. Every model takes a float
sequence and returns the float output sequence. Results go to
benchmarks/results/lstm.json and lstm.png. --narrow-weights quantizes qlstm's
own-flow models and onnxruntime's to 7-bit weights (qlstm.NARROW_WEIGHT_OBSERVER,
reduce_range), --narrow-activations calibrates qlstm's activations to 7 bits
(qlstm.NARROW_ACTIVATION_OBSERVER); the file names then say which
(narrow_suffix).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Optional

import torch

import qlstm
from qlstm._compare import torch_dynamic, torch_static

HERE = os.path.dirname(os.path.abspath(__file__))
COLUMNS = ["float", "torch_dynamic", "torch_static", "ort_float", "ort_int8", "qlstm",
           "qlstm_torch_flow", "qlstm_accurate"]
LABELS = {"float": "float nn.LSTM", "torch_dynamic": "torch dynamic int8",
          "torch_static": "torch static int8", "ort_float": "onnxruntime float",
          "ort_int8": "onnxruntime int8", "qlstm": "qlstm",
          "qlstm_torch_flow": "qlstm (torch.ao flow)", "qlstm_accurate": "qlstm accurate"}
# qlstm's own columns; the others are what it is compared with.
QLSTM_COLUMNS = ("qlstm", "qlstm_torch_flow", "qlstm_accurate")


def timed_ms(fn: Callable[[], object], min_runs: int = 5, budget_s: float = 0.5,
             max_runs: int = 200, warmup_s: float = 0.05,
             summary: Callable[[List[float]], float] = statistics.median) -> float:
    """Median (or another summary) wall time of fn() in ms: at least min_runs
    calls (2 when one call takes over 2 s), more while within budget_s, after
    calls for warmup_s (at least one), so that the first column of a row does
    not pay for caches and clocks that the columns before it left cold."""
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < warmup_s:
        fn()
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < max_runs:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        enough = len(times) >= (2 if times[0] > 2.0 else min_runs)
        if enough and time.perf_counter() - start > budget_s:
            break
    return summary(times) * 1e3


class OrtLSTM:
    """nn.LSTM exported to ONNX, as a float and a dynamically quantized int8 session."""

    def __init__(self, model: torch.nn.LSTM, workdir: str, reduce_range: bool = False):
        """``reduce_range``: 7-bit weights, as onnxruntime advises on CPUs without VNNI."""
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic

        self.ort = ort
        size = model.input_size
        self.float_path = os.path.join(workdir, f"lstm{size}.onnx")
        self.int8_path = os.path.join(workdir, f"lstm{size}_int8{'_7bit' if reduce_range else ''}.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.randn(3, 2, size),), self.float_path,
                              input_names=["x"], output_names=["y", "h", "c"],
                              dynamic_axes={"x": {0: "T", 1: "B"}}, dynamo=False,
                              opset_version=17)
            quantize_dynamic(self.float_path, self.int8_path, weight_type=QuantType.QInt8,
                             reduce_range=reduce_range)

        self.sessions: Dict[tuple, Callable] = {}

    def session(self, int8: bool, threads: int) -> Callable:
        """A run function of a session with `threads` intra-op threads; its idle
        threads sleep instead of spinning, so they do not slow the other columns."""
        if (int8, threads) not in self.sessions:
            so = self.ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            s = self.ort.InferenceSession(self.int8_path if int8 else self.float_path, so,
                                          providers=["CPUExecutionProvider"])
            self.sessions[(int8, threads)] = lambda x: s.run(["y"], {"x": x})[0]
        return self.sessions[(int8, threads)]


def have_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
        return True
    except ImportError:
        return False


def lstm_macs(T: int, B: int, size: int) -> int:
    return T * B * 4 * size * (size + size)


def module_bytes(m: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(m.parameters()) + list(m.buffers())) + \
        sum(p.numel() * p.element_size() for p in getattr(m, "_packed", []))


def narrow_observers(weights: bool, activations: bool) -> Dict[str, object]:
    """qlstm.quantize's observer arguments for 7-bit weights and / or activations."""
    observers: Dict[str, object] = {}
    if weights:
        observers["weight_observer"] = qlstm.NARROW_WEIGHT_OBSERVER
    if activations:
        observers["observer"] = qlstm.NARROW_ACTIVATION_OBSERVER
    return observers


def narrow_suffix(weights: bool, activations: bool) -> str:
    """What a results file's name adds for 7-bit weights and / or activations."""
    return {(False, False): "", (True, False): "_7bit", (False, True): "_7bit_activations",
            (True, True): "_7bit_both"}[(weights, activations)]


def build(size: int, calib_T: int, workdir: str, use_ort: bool, narrow_weights: bool = False,
          narrow_activations: bool = False) -> Dict[str, object]:
    torch.manual_seed(size)
    model = torch.nn.LSTM(size, size).eval()
    calibration = [torch.randn(calib_T, 4, size) for _ in range(2)]
    own = narrow_observers(narrow_weights, narrow_activations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = {"model": model, "qlstm": qlstm.quantize(model, calibration, **own),
                 "qlstm_accurate": qlstm.quantize(model, calibration, mode="accurate", **own),
                 "torch_static": torch_static(model, calibration),
                 # The same observed model converted into qlstm.nn.LSTM: 7-bit
                 # activations, which avx2 multiplies with its plain sequence.
                 "qlstm_torch_flow": torch_static(model, calibration, qlstm.nn.LSTM),
                 "torch_dynamic": torch_dynamic(model)}
        cell = torch.nn.LSTMCell(size, size).eval()
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).data.copy_(getattr(model, name + "_l0"))
        built["cell"] = cell
        built["qlstm_cell"] = qlstm.quantize(cell, [x[0] for x in calibration], **own)
    if use_ort:
        built["ort"] = OrtLSTM(model, workdir, reduce_range=narrow_weights)
    return built


def runners(built: Dict[str, object], x: torch.Tensor, threads: int) -> Dict[str, Callable]:
    model, q, static, dynamic = (built[k] for k in ("model", "qlstm", "torch_static", "torch_dynamic"))
    r: Dict[str, Callable] = {
        "float": lambda: model(x)[0],
        "torch_dynamic": lambda: dynamic(x)[0],
        "torch_static": lambda: static(x),
        "qlstm": lambda: q(x)[0],
        "qlstm_torch_flow": lambda: built["qlstm_torch_flow"](x),
        "qlstm_accurate": lambda: built["qlstm_accurate"](x)[0],
    }
    if "ort" in built:
        xn = x.numpy()
        f, i8 = built["ort"].session(False, threads), built["ort"].session(True, threads)
        r["ort_float"] = lambda: f(xn)
        r["ort_int8"] = lambda: i8(xn)
    return r


def streaming(built: Dict[str, object], threads: int) -> Dict[str, float]:
    """One step (T=1, B=1) with the state carried between calls."""
    q, size = built["qlstm"], built["model"].input_size
    x = torch.randn(1, 1, size)
    state = {"hc": None}

    def module_step():
        _, state["hc"] = q(x, state["hc"])

    accurate_state = {"hc": None}

    def accurate_step():
        _, accurate_state["hc"] = built["qlstm_accurate"](x, accurate_state["hc"])

    # The op on the module's layer with its own qparams, so that its bytes
    # take the forms the module's would.
    layer = q._packed[0]
    (x_scale, x_zp), (h_scale, h_zp) = q.input_qparams, q.hidden_qparams
    c_scale, c_zp = q.cell_qparams
    xq = qlstm.ops.quantize(x[0], x_scale, x_zp)
    hc = {"h": torch.full((1, size), h_zp, dtype=torch.uint8),
          "c": torch.full((1, size), c_zp, dtype=torch.uint8)}

    def op_step():
        hc["h"], hc["c"] = torch.ops.qlstm.quantized_lstm_cell(
            xq, x_scale, x_zp, hc["h"], h_scale, h_zp, hc["c"], c_scale, c_zp, layer)

    cells = {"qlstm_cell": built["qlstm_cell"], "float_cell": built["cell"]}
    cell_state = {name: (torch.zeros(1, size), torch.zeros(1, size)) for name in cells}

    def cell_step(name):
        def step():
            cell_state[name] = cells[name](x[0], cell_state[name])
        return step

    out = {"qlstm_module": timed_ms(module_step, 20, 0.5), "qlstm_cell_op": timed_ms(op_step, 20, 0.5),
           "qlstm_accurate_module": timed_ms(accurate_step, 20, 0.5),
           "qlstm_lstm_cell": timed_ms(cell_step("qlstm_cell"), 20, 0.5),
           "float_lstm_cell": timed_ms(cell_step("float_cell"), 20, 0.5)}
    if "ort" in built:
        ort_step = built["ort"].session(True, threads)
        xn = x.numpy()
        out["ort_int8"] = timed_ms(lambda: ort_step(xn), 20, 0.5)
    return out


def write_table(out_dir: str, name: str, table: str) -> None:
    """Writes a markdown table to out_dir/name (the directory made if need be) and prints it."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, name), "w") as f:
        f.write(table + "\n")
    print(table)


def cpu_model() -> str:
    """The CPU's model name (Linux) with its family and model numbers, else what
    platform knows. VMs often name only the vendor line ("AMD EPYC"), where the
    numbers still tell the core apart (on AMD, family 23 is Zen 1 and 2, 25 Zen 3
    and 4, 26 Zen 5)."""
    fields: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if not sep:
                    break  # the first processor's block ends at a blank line
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name")
    if name is None:
        return platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    return name


def run(sizes: List[int], seqs: List[int], batches: List[int], thread_counts: List[int],
        use_ort: bool, narrow_weights: bool = False,
        narrow_activations: bool = False) -> Dict[str, object]:
    results: Dict[str, object] = {
        "machine": {"processor": cpu_model(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "qlstm_isa": qlstm.isa(), "onnxruntime": use_ort,
                    "narrow_weights": narrow_weights, "narrow_activations": narrow_activations},
        "grid": [], "streaming": [], "memory": []}
    torch.set_num_threads(1)
    peak = qlstm.peak_macs_per_second(0.5)
    results["machine"]["peak_int8_macs_per_s_1core"] = peak
    print(f"CPU: {results['machine']['processor']}, {os.cpu_count()} cores; qlstm kernel set "
          f"{qlstm.isa()}: single-core int8 peak {peak / 1e9:.1f} GMAC/s (its multiply on "
          f"independent accumulators in registers)")
    if not use_ort:
        print("note: onnxruntime is not installed; its columns are skipped")
    with tempfile.TemporaryDirectory() as workdir, torch.no_grad():
        for size in sizes:
            built = build(size, 20, workdir, use_ort, narrow_weights, narrow_activations)
            float_bytes = module_bytes(built["model"])
            q_bytes = module_bytes(built["qlstm"])
            results["memory"].append({"size": size, "float_bytes": float_bytes,
                                      "qlstm_bytes": q_bytes, "ratio": float_bytes / q_bytes})
            for threads in thread_counts:
                torch.set_num_threads(threads)
                s = streaming(built, threads)
                s.update(size=size, threads=threads)
                results["streaming"].append(s)
                for B in batches:
                    for T in seqs:
                        x = torch.randn(T, B, size)
                        row = {"size": size, "threads": threads, "batch": B, "seq": T}
                        for name, fn in runners(built, x, threads).items():
                            row[name] = timed_ms(fn)
                        row["qlstm_macs_per_s"] = lstm_macs(T, B, size) / (row["qlstm"] / 1e3)
                        results["grid"].append(row)
                        print(format_row(row, peak), flush=True)
    torch.set_num_threads(max(thread_counts))
    return results


def format_row(row: Dict[str, float], peak: float) -> str:
    cells = [f"{row['threads']}t B={row['batch']:<3} T={row['seq']:<4} size={row['size']:<5}"]
    for c in COLUMNS:
        if c in row:
            cells.append(f"{LABELS[c]} {row[c]:9.3f}" + ("" if c in QLSTM_COLUMNS else f" ({row[c] / row['qlstm']:5.2f}x)"))
    # Of the peak of the cores the row's threads use, as the table gives it.
    cells.append(f"{row['qlstm_macs_per_s'] / (peak * row['threads']) * 100:5.1f}% of peak")
    return " | ".join(cells)


def markdown(results: Dict[str, object]) -> str:
    cols = [c for c in COLUMNS if any(c in r for r in results["grid"])]
    m = results["machine"]
    lines = [f"CPU: {m['processor']}, {m['cpu_count']} cores, torch {m['torch']}, qlstm kernel set "
             f"{m['qlstm_isa']}, single-core peak {m['peak_int8_macs_per_s_1core'] / 1e9:.1f} GMAC/s"
             f"{'; 7-bit weights in qlstm and onnxruntime' if m.get('narrow_weights') else ''}"
             f"{'; 7-bit activations in qlstm' if m.get('narrow_activations') else ''}."]
    if results["grid"]:  # none with --streaming-only
        lines += ["", "| threads | batch | seq | size | " + " | ".join(LABELS[c] + " ms" for c in cols) +
                  " | qlstm speedup (min over others) | qlstm % of peak | accurate / qlstm speed |",
                  "|" + "---|" * (len(cols) + 7)]
    peak = results["machine"]["peak_int8_macs_per_s_1core"]
    for r in results["grid"]:
        others = [r[c] / r["qlstm"] for c in cols if c not in QLSTM_COLUMNS]
        lines.append(f"| {r['threads']} | {r['batch']} | {r['seq']} | {r['size']} | " +
                     " | ".join(f"{r[c]:.3f}" for c in cols) +
                     f" | {min(others):.2f}x | {r['qlstm_macs_per_s'] / (peak * r['threads']) * 100:.0f}% |"
                     f" {r['qlstm'] / r['qlstm_accurate']:.2f}x |")
    lines += ["", "| threads | size | qlstm.nn.LSTM step ms | qlstm accurate step ms | "
              "qlstm.nn.LSTMCell step ms | qlstm cell op ms | float nn.LSTMCell step ms | "
              "onnxruntime int8 step ms |",
              "|---|---|---|---|---|---|---|---|"]
    for s in results["streaming"]:
        lines.append(f"| {s['threads']} | {s['size']} | {s['qlstm_module']:.4f} | "
                     f"{s['qlstm_accurate_module']:.4f} | {s['qlstm_lstm_cell']:.4f} | "
                     f"{s['qlstm_cell_op']:.4f} | {s['float_lstm_cell']:.4f} | "
                     f"{s.get('ort_int8', float('nan')):.4f} |")
    lines += ["", "| size | float parameters bytes | qlstm module bytes | ratio |", "|---|---|---|---|"]
    for m in results["memory"]:
        lines.append(f"| {m['size']} | {m['float_bytes']} | {m['qlstm_bytes']} | {m['ratio']:.2f}x |")
    return "\n".join(lines)


def chart(results: Dict[str, object], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r["threads"] for r in results["grid"]})
    fig, axes = plt.subplots(1, len(threads), figsize=(7 * len(threads), 5), squeeze=False)
    for ax, t in zip(axes[0], threads):
        rows = [r for r in results["grid"] if r["threads"] == t]
        labels = [f"B{r['batch']} T{r['seq']} {r['size']}" for r in rows]
        for c in COLUMNS:
            if c not in QLSTM_COLUMNS and any(c in r for r in rows):
                ax.plot(range(len(rows)), [r.get(c, float("nan")) / r["qlstm"] for r in rows],
                        marker="o", linestyle="", label=LABELS[c])
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, rotation=90, fontsize=6)
        ax.set_ylabel("time / qlstm time (above 1: qlstm faster)")
        ax.set_title(f"{t} thread(s), qlstm {results['machine']['qlstm_isa']}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a small grid (sizes 128, 256; B 1, 8; T 1, 50)")
    p.add_argument("--streaming-only", action="store_true",
                   help="only the one-step streaming table and the module sizes (writes lstm_streaming.md)")
    p.add_argument("--narrow-weights", action="store_true",
                   help="7-bit weights in qlstm's own flow and onnxruntime (reduce_range)")
    p.add_argument("--narrow-activations", action="store_true",
                   help="7-bit activations in qlstm's own flow (qlstm.NARROW_ACTIVATION_OBSERVER)")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    all_threads = torch.get_num_threads()
    if args.quick:
        grid = ([128, 256], [1, 50], [1, 8])
    else:
        grid = ([128, 256, 512, 1024], [1, 50, 200], [1, 8, 64])
    thread_counts = sorted({1, all_threads})
    if args.streaming_only:
        grid = (grid[0], [], [])
    results = run(*grid, thread_counts, have_onnxruntime(), args.narrow_weights,
                  args.narrow_activations)
    os.makedirs(args.out, exist_ok=True)
    name = ("lstm_streaming" if args.streaming_only else "lstm") + \
        narrow_suffix(args.narrow_weights, args.narrow_activations)
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(results, f, indent=1)
    if not args.streaming_only:
        chart(results, os.path.join(args.out, name + ".png"))
    write_table(args.out, name + ".md", markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

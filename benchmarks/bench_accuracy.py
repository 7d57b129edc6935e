"""Accuracy of every int8 LSTM against float nn.LSTM, side by side: torch
dynamic int8, torch static int8 (torch.ao.nn.quantized.LSTM), onnxruntime int8
(8-bit and 7-bit weights), and qlstm in both modes (mode="torch" through
PyTorch's eager flow and through qlstm.quantize, with 8-bit and with 7-bit
weights, qlstm.NARROW_WEIGHT_OBSERVER, and with 7-bit weights and activations,
qlstm.NARROW_ACTIVATION_OBSERVER, the avx2 kernels' fastest form; mode="accurate"
through qlstm.quantize, with 8-bit and with 7-bit weights and activations).

Random-weight nn.LSTM models (PyTorch's default init) calibrated on two of
their own batches and tested on two fresh ones: relative error of the output
sequence, ||y - y_float|| / ||y_float||. Each model's conditioning is printed
with it: the error of the float model itself with its weights perturbed by a
relative 1e-3; differences well below it are noise. Then a small trained task:
an LSTM classifier of noisy sine waves (8 frequencies), trained for a few
seconds, whose test accuracy is compared.

    python benchmarks/bench_accuracy.py [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from typing import Callable, Dict, List, Optional

import torch

import qlstm
from bench_lstm import have_onnxruntime, narrow_observers
from qlstm._compare import onnxruntime_int8, torch_dynamic, torch_static

COLUMNS = {"torch_dynamic": "torch dynamic int8", "torch_static": "torch static int8",
           "ort": "onnxruntime int8", "ort_rr": "onnxruntime int8 (7-bit weights)",
           "qlstm_flow": "qlstm torch (torch.ao flow)", "qlstm": "qlstm torch (qlstm.quantize)",
           "qlstm_narrow": "qlstm torch (7-bit weights)",
           "qlstm_narrow_both": "qlstm torch (7-bit weights and activations)",
           "qlstm_accurate": "qlstm accurate",
           "qlstm_accurate_narrow": "qlstm accurate (7-bit weights and activations)"}


def relative_error(f: Callable[[torch.Tensor], torch.Tensor], model: torch.nn.LSTM,
                   batches: List[torch.Tensor]) -> float:
    num = den = 0.0
    for x in batches:
        ref = model(x)[0]
        num += float((f(x) - ref).norm() ** 2)
        den += float(ref.norm() ** 2)
    return (num / den) ** 0.5


def perturbed(model: torch.nn.LSTM, relative: float, seed: int) -> torch.nn.LSTM:
    gen = torch.Generator().manual_seed(seed)
    m = torch.nn.LSTM(model.input_size, model.hidden_size, model.num_layers,
                      bidirectional=model.bidirectional).eval()
    m.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1 + relative * torch.randn(p.shape, generator=gen))
    return m


def quantized_models(model: torch.nn.LSTM, calibration: List[torch.Tensor], workdir: str,
                     use_ort: bool) -> Dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dynamic = torch_dynamic(model)
        static = torch_static(model, calibration)
        flow = torch_static(model, calibration, qlstm.nn.LSTM)
        own = qlstm.quantize(model, calibration)
        narrow = qlstm.quantize(model, calibration,
                                **narrow_observers(weights=True, activations=False))
        both = narrow_observers(weights=True, activations=True)
        narrow_both = qlstm.quantize(model, calibration, **both)
        accurate = qlstm.quantize(model, calibration, mode="accurate")
        accurate_narrow = qlstm.quantize(model, calibration, mode="accurate", **both)
    runs = {"torch_dynamic": lambda x: dynamic(x)[0], "torch_static": static,
            "qlstm_flow": flow, "qlstm": lambda x: own(x)[0], "qlstm_narrow": lambda x: narrow(x)[0],
            "qlstm_narrow_both": lambda x: narrow_both(x)[0],
            "qlstm_accurate": lambda x: accurate(x)[0],
            "qlstm_accurate_narrow": lambda x: accurate_narrow(x)[0]}
    if use_ort:
        runs["ort"] = onnxruntime_int8(model, workdir)
        runs["ort_rr"] = onnxruntime_int8(model, workdir, reduce_range=True)
    return runs


# (name, T, input size, hidden size, layers, bidirectional, forget-gate bias, input std, drift, seed)
MODELS = [
    ("T=100, I=40, H=128", 100, 40, 128, 1, False, 0.0, 1.0, False, 100),
    ("T=200, I=80, 2 layers of 320", 200, 80, 320, 2, False, 0.0, 1.0, False, 200),
    ("T=60, 256, bidirectional", 60, 256, 256, 1, True, 0.0, 1.0, False, 60),
    ("T=1000, I=32, H=64, forget bias +3", 1000, 32, 64, 1, False, 3.0, 0.5, False, 1),
    ("T=1000, I=32, H=64, forget bias +3, drift", 1000, 32, 64, 1, False, 3.0, 0.5, True, 1),
]


def random_models(workdir: str, use_ort: bool, batch: int) -> List[Dict[str, object]]:
    rows = []
    for name, T, I, H, layers, bidirectional, forget_bias, std, drift, seed in MODELS:
        torch.manual_seed(seed)
        model = torch.nn.LSTM(I, H, layers, bidirectional=bidirectional).eval()
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.startswith("bias_ih"):
                    p[H:2 * H] += forget_bias
        gen = torch.Generator().manual_seed(seed + 1)

        def data(n: int) -> List[torch.Tensor]:
            out = []
            for _ in range(n):
                x = std * torch.randn(T, batch, I, generator=gen)
                if drift:
                    x += torch.linspace(0, 2, T)[:, None, None] * torch.rand(1, batch, I, generator=gen)
                out.append(x)
            return out

        calibration, test = data(2), data(2)
        with torch.no_grad():
            row: Dict[str, object] = {"model": name, "conditioning": relative_error(
                lambda x: perturbed(model, 1e-3, seed)(x)[0], model, test)}
            for key, f in quantized_models(model, calibration, workdir, use_ort).items():
                row[key] = relative_error(f, model, test)
        rows.append(row)
        print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else str(v) for k, v in row.items()),
              flush=True)
    return rows


class SineClassifier(torch.nn.Module):
    """An LSTM over the sequence, its outputs averaged over time, a linear head."""

    def __init__(self, hidden: int = 64, classes: int = 8):
        super().__init__()
        self.lstm = torch.nn.LSTM(1, hidden)
        self.head = torch.nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(x)[0].mean(0))


def sine_data(n: int, T: int, gen: torch.Generator, classes: int = 8):
    """Noisy sine waves of one of `classes` frequencies, random phase and amplitude."""
    label = torch.randint(0, classes, (n,), generator=gen)
    freq = 0.1 + 0.1 * label.float()
    phase = 6.28 * torch.rand(n, generator=gen)
    amp = 0.5 + torch.rand(n, generator=gen)
    t = torch.arange(T).float()[:, None]
    x = amp * torch.sin(freq * t + phase) + 0.3 * torch.randn(T, n, generator=gen)
    return x[:, :, None], label


def trained_task(workdir: str, use_ort: bool, steps: int) -> Dict[str, object]:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = SineClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        x, y = sine_data(64, 50, gen)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x_test, y_test = sine_data(8000, 50, gen)
    calibration = [sine_data(64, 50, gen)[0] for _ in range(4)]

    def accuracy(lstm: Callable[[torch.Tensor], torch.Tensor]) -> float:
        with torch.no_grad():
            return 100.0 * float((model.head(lstm(x_test).mean(0)).argmax(1) == y_test).float().mean())

    with torch.no_grad():
        row: Dict[str, object] = {"model": "sine classifier (LSTM 1 -> 64), 8000 test sequences",
                                  "float": accuracy(lambda x: model.lstm(x)[0])}
        for key, f in quantized_models(model.lstm, calibration, workdir, use_ort).items():
            row[key] = accuracy(f)
    print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else str(v) for k, v in row.items()))
    return row


def markdown(rows: List[Dict[str, object]], task: Dict[str, object], use_ort: bool) -> str:
    keys = [k for k in COLUMNS if use_ort or not k.startswith("ort")]
    out = []
    out.append("Relative error of the output sequence against float nn.LSTM (lower is better):\n")
    out.append("| model | 1e-3 weight perturbation | " + " | ".join(COLUMNS[k] for k in keys) + " |")
    out.append("|---" * (len(keys) + 2) + "|")
    for r in rows:
        out.append(f"| {r['model']} | {r['conditioning']:.4f} | "
                   + " | ".join(f"{r[k]:.4f}" for k in keys) + " |")
    out.append("\nA trained model (test accuracy %, float: "
               f"{task['float']:.2f}):\n")
    out.append("| model | float | " + " | ".join(COLUMNS[k] for k in keys) + " |")
    out.append("|---" * (len(keys) + 2) + "|")
    out.append(f"| {task['model']} | {task['float']:.2f} | "
               + " | ".join(f"{task[k]:.2f}" for k in keys) + " |")
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--train-steps", type=int, default=300)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.backends.quantized.engine = "fbgemm"
    warnings.filterwarnings("ignore")  # torch.ao's deprecations and its quantized cat
    use_ort = have_onnxruntime()
    if not use_ort:
        print("note: onnxruntime is not installed; its columns are skipped")
    print(f"qlstm kernel set {qlstm.isa()}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as workdir:
        rows = random_models(workdir, use_ort, args.batch)
        task = trained_task(workdir, use_ort, args.train_steps)
    table = f"qlstm kernel set {qlstm.isa()}, torch {torch.__version__}.\n\n" + markdown(rows, task, use_ort)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "accuracy.md"), "w") as f:
        f.write(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

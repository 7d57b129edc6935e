"""Relative error against float of PyTorch's eager flow with qlstm.nn.LSTM as
the quantized class: the 'x86' qconfig (7-bit activations, reduce_range)
against a full-range activation observer, on a 2-layer, 64-unit LSTM over
smooth signals, three seeds.

    python benchmarks/accuracy_eager_qconfig.py
"""
import warnings

import torch
import torch.ao.quantization as tq

import qlstm

warnings.filterwarnings("ignore")  # quint8 tensor creation is deprecated in torch 2.13
torch.backends.quantized.engine = "fbgemm"

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.lstm = torch.nn.LSTM(20, 64, 2)
    def forward(self, x):
        y, _ = self.lstm(self.quant(x))
        return self.dequant(y)

def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(50).float()[:, None, None]
    return [torch.sin(t * torch.rand(1, 8, 20, generator=g) * 0.5 + torch.rand(1, 8, 20, generator=g) * 6) +
            0.1 * torch.randn(50, 8, 20, generator=g) for _ in range(n)]

full = tq.QConfig(activation=tq.HistogramObserver.with_args(reduce_range=False, dtype=torch.quint8),
                  weight=tq.default_per_channel_weight_observer)
for seed in range(3):
    torch.manual_seed(seed)
    float_model = Net().eval()
    cal, test = data(4, seed), data(4, 100 + seed)
    with torch.no_grad():
        ref = [float_model(x) for x in test]
    errs = []
    for name, qc in (("x86", tq.get_default_qconfig("x86")), ("full-range", full)):
        m = Net().eval(); m.load_state_dict(float_model.state_dict()); m.qconfig = qc
        p = tq.prepare(m, prepare_custom_config_dict={"float_to_observed_custom_module_class": {torch.nn.LSTM: torch.ao.nn.quantizable.LSTM}})
        with torch.no_grad():
            for x in cal: p(x)
        q = tq.convert(p, convert_custom_config_dict={"observed_to_quantized_custom_module_class": {torch.ao.nn.quantizable.LSTM: qlstm.nn.LSTM}})
        with torch.no_grad():
            e = sum(float((q(x) - r).norm()) for x, r in zip(test, ref)) / sum(float(r.norm()) for r in ref)
        errs.append(f"{name} {e:.4f}")
    print(f"seed {seed}:", ", ".join(errs))

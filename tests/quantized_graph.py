"""A small pure-PyTorch model of the quantized LSTM graph that qlstm computes:
PyTorch's eager static quantized LSTM on the FBGEMM engine, written with plain
integer and float32 tensor ops (no quantized dtypes), and qlstm's accurate mode
(docs/numerics.md). It is an oracle for the ops: slow, obvious, and independent
of the C++ code."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor

# The one model input taken from qlstm: the order of a layer's qparams.
from qlstm.ops import GATE_NAMES, SPLIT_CELL_QPARAM_NAMES, cell_qparam_names

F32 = torch.float32
QP = Tuple[float, int]
SIGMOID_QP: QP = (1.0 / 256.0, 0)
TANH_QP: QP = (2.0 / 256.0, 128)


def f32(x: float) -> Tensor:
    return torch.tensor(x, dtype=F32)


def quantize(x: Tensor, qp: QP) -> Tensor:
    """The graph's requantization, as ATen's quantized ops compute it:
    zero_point + round_half_even(x * (1 / scale)), clamped to [0, 255]."""
    inv = f32(1.0) / f32(qp[0])
    return torch.clamp(torch.round(x.to(F32) * inv) + qp[1], 0, 255).to(torch.uint8)


def quantize_per_tensor(x: Tensor, qp: QP) -> Tensor:
    """torch.quantize_per_tensor, which the float interface reproduces:
    round_half_even(fma(x, 1 / scale, zero_point)), clamped to [0, 255], NaN to 255.
    The fma in double: the product of two floats is exact there, and the sum
    rounds twice only within 2^-46 (relative) of a float midpoint."""
    inv = (f32(1.0) / f32(qp[0])).double()
    v = torch.round((x.to(F32).double() * inv + qp[1]).to(F32))
    return torch.clamp(torch.nan_to_num(v, nan=255.0), 0, 255).to(torch.uint8)


def dequantize(q: Tensor, qp: QP) -> Tensor:
    """ATen's vectorized dequantize: fma(q, scale, -zero_point * scale), exact in double."""
    s = f32(qp[0])
    premul = (s * f32(-float(qp[1]))).double()
    return (q.double() * s.double() + premul).to(F32)


def requantize(q: Tensor, src: QP, dst: QP) -> Tensor:
    return q if src == dst else quantize(dequantize(q, src), dst)


def sigmoid_q(q: Tensor, qp: QP) -> Tensor:
    return quantize(torch.reciprocal(torch.exp(-dequantize(q, qp)) + 1), SIGMOID_QP)


def tanh_q(q: Tensor, qp: QP) -> Tensor:
    return quantize(torch.tanh(dequantize(q, qp)), TANH_QP)


def qadd(a: Tensor, aq: QP, b: Tensor, bq: QP, out: QP) -> Tensor:
    return quantize(dequantize(a, aq) + dequantize(b, bq), out)


def qmul(a: Tensor, aq: QP, b: Tensor, bq: QP, out: QP) -> Tensor:
    raw = (a.long() - aq[1]) * (b.long() - bq[1])
    mult = f32(aq[0]) * f32(bq[0]) * (f32(1.0) / f32(out[0]))
    return torch.clamp(torch.round(raw.to(F32) * mult) + out[1], 0, 255).to(torch.uint8)


@dataclass
class Layer:
    """One layer-direction: int8 weights (nn.LSTM row order), scales and zero
    points (per row, [1], or per gate [4, 1]), float biases, and the 7
    intermediate qparams, or 16 with split gates (per-gate igates, hgates and
    gates); with a projection also W_hr ([P, H], no bias) and an 8th / 17th,
    projection, its output's qparams."""

    w_ih: Tensor
    w_ih_scales: Tensor
    w_ih_zps: Tensor
    w_hh: Tensor
    w_hh_scales: Tensor
    w_hh_zps: Tensor
    b_ih: Optional[Tensor]
    b_hh: Optional[Tensor]
    qparams: List[QP]  # in qlstm.ops.cell_qparam_names's order
    per_channel: bool
    w_hr: Optional[Tensor] = None
    w_hr_scales: Optional[Tensor] = None
    w_hr_zps: Optional[Tensor] = None

    @property
    def split_gates(self) -> bool:
        return len(self.qparams) - int(self.w_hr is not None) == len(SPLIT_CELL_QPARAM_NAMES)

    @property
    def mode(self) -> str:
        return "accurate" if len(self.qparams) == 1 else "torch"

    def q(self, name: str, gate: Optional[int] = None) -> QP:
        """A qparams by name; igates, hgates and gates take a gate (0-3: i, f, g, o)."""
        names = cell_qparam_names(self.split_gates, self.w_hr is not None, self.mode)
        if name in names:
            return self.qparams[names.index(name)]
        return self.qparams[names.index(f"{name}_{GATE_NAMES[gate]}")]

    @property
    def h_q(self) -> QP:
        """What the layer's h comes in: its projection's output, or hidden."""
        return self.q("projection" if self.w_hr is not None else "hidden")


def gate_rows(t: Optional[Tensor], rows: int, gate: int) -> Optional[Tensor]:
    """Gate `gate`'s part of a per-row tensor; weight qparams of shape [1] or
    [4, 1] first repeated to one entry per row."""
    if t is None:
        return None
    t = t.reshape(-1, 1).expand(-1, rows // t.numel()).reshape(rows)
    return t.chunk(4)[gate]


def qlinear(x: Tensor, xq: QP, w: Tensor, w_scales: Tensor, w_zps: Tensor, b: Optional[Tensor],
            per_channel: bool, out: QP) -> Tensor:
    """FBGEMM's quantized linear with a float bias and exact int32 accumulation."""
    rows = w.shape[0]
    sw = w_scales.to(F32).expand(rows)
    acc = (x.long() - xq[1]) @ (w.long() - w_zps.long().expand(rows)[:, None]).T
    ats = f32(xq[0]) * sw
    mult = ats / f32(out[0])
    v = acc.to(F32)
    if b is not None:
        v = v + (b / ats if per_channel else b * (1.0 / ats.double()).to(F32))
    return torch.clamp(torch.round(v * mult) + out[1], 0, 255).to(torch.uint8)


def cell_step(p: Layer, x: Tensor, xq: QP, h: Tensor, hq: QP, c: Tensor, cq: QP
              ) -> Tuple[Tensor, Tensor]:
    """One step of the quantized graph; returns (h', c') in p's h (hidden, or
    projection) and cell qparams. Each gate is its own linear, add and
    activation (the split-gates graph; with one qparams for all four gates it
    equals the fused one). A projection is one more quantized linear, of
    hidden, without a bias."""
    rows = p.w_hh.shape[0]
    act = []
    for k in range(4):
        ig = qlinear(x, xq, p.w_ih.chunk(4)[k], gate_rows(p.w_ih_scales, rows, k),
                     gate_rows(p.w_ih_zps, rows, k), gate_rows(p.b_ih, rows, k), p.per_channel,
                     p.q("igates", k))
        hg = qlinear(h, hq, p.w_hh.chunk(4)[k], gate_rows(p.w_hh_scales, rows, k),
                     gate_rows(p.w_hh_zps, rows, k), gate_rows(p.b_hh, rows, k), p.per_channel,
                     p.q("hgates", k))
        g = qadd(ig, p.q("igates", k), hg, p.q("hgates", k), p.q("gates", k))
        act.append(tanh_q(g, p.q("gates", k)) if k == 2 else sigmoid_q(g, p.q("gates", k)))
    i, f, gg, o = act
    fc = qmul(f, SIGMOID_QP, c, cq, p.q("fgate_cx"))
    igc = qmul(i, SIGMOID_QP, gg, TANH_QP, p.q("igate_cgate"))
    c2 = qadd(fc, p.q("fgate_cx"), igc, p.q("igate_cgate"), p.q("cell"))
    h2 = qmul(o, SIGMOID_QP, tanh_q(c2, p.q("cell")), TANH_QP, p.q("hidden"))
    if p.w_hr is not None:
        h2 = qlinear(h2, p.q("hidden"), p.w_hr, p.w_hr_scales, p.w_hr_zps, None, p.per_channel,
                     p.q("projection"))
    return h2, c2


def lstm(x: Tensor, xq: QP, h0: Optional[Tensor], h0q, c0: Optional[Tensor], c0q,
         layers: List[Layer], num_layers: int, bidirectional: bool, stacked: bool = True):
    """The whole graph on x [T, B, I] (uint8). Like ATen's stack and cat of quantized
    tensors, a bidirectional output, h_n and c_n take their first part's qparams.
    h0q and c0q are one QP, or one per layer-direction. With stacked=False, h_n
    and c_n are lists of (bytes, QP): each layer-direction's own final state."""
    D = 2 if bidirectional else 1
    per_layer = lambda q: q if isinstance(q, list) else [q] * (num_layers * D)  # noqa: E731
    h0q, c0q = per_layer(h0q), per_layer(c0q)
    T, B = x.shape[0], x.shape[1]
    S, H = layers[0].w_hh.shape[1], layers[0].w_hh.shape[0] // 4  # h's size and c's
    if h0 is None:
        h0, h0q = torch.zeros(num_layers * D, B, S, dtype=torch.uint8), [(1.0, 0)] * (num_layers * D)
    if c0 is None:
        c0, c0q = torch.zeros(num_layers * D, B, H, dtype=torch.uint8), [(1.0, 0)] * (num_layers * D)
    h_n, c_n = [], []
    for l in range(num_layers):
        outs = []
        fw = layers[l * D]
        for d in range(D):
            p = layers[l * D + d]
            h, hq, c, cq = h0[l * D + d], h0q[l * D + d], c0[l * D + d], c0q[l * D + d]
            ys = [None] * T
            for t in (reversed(range(T)) if d == 1 else range(T)):
                h, c = cell_step(p, x[t], xq, h, hq, c, cq)
                hq, cq = p.h_q, p.q("cell")
                ys[t] = requantize(h, hq, fw.h_q)
            outs.append(torch.stack(ys) if T else torch.zeros(0, B, S, dtype=torch.uint8))
            if not stacked:
                h_n.append((h, hq))
                c_n.append((c, cq))
                continue
            # a bidirectional layer stacks its directions first, then layers are stacked
            h_layer, c_layer = (fw.h_q, fw.q("cell")) if D == 2 else (hq, cq)
            h_n.append(requantize(requantize(h, hq, h_layer), h_layer, layers[0].h_q))
            c_n.append(requantize(requantize(c, cq, c_layer), c_layer, layers[0].q("cell")))
        x, xq = torch.cat(outs, dim=2), fw.h_q
    if not stacked:
        return x, h_n, c_n
    return x, torch.stack(h_n), torch.stack(c_n)


# The accurate mode: float32 gates and cell, every operation below rounded
# on its own (no fused multiply-add), as docs/numerics.md specifies.
TANH_CLAMP = 7.90531110763549805
TANH_NUMERATOR = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                  5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                  -2.76076847742355e-16)
TANH_DENOMINATOR = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                    1.19825839466702e-06)


def tanh_approx(x: Tensor) -> Tensor:
    """x P(x^2) / Q(x^2) on x clamped to [-TANH_CLAMP, TANH_CLAMP] (a NaN to
    -TANH_CLAMP, as the comparisons fall), Horner's rule."""
    lo, hi = -f32(TANH_CLAMP), f32(TANH_CLAMP)
    v = torch.where(x > lo, x, lo)
    v = torch.where(v < hi, v, hi)
    v2 = v * v
    p = v2 * f32(TANH_NUMERATOR[6]) + f32(TANH_NUMERATOR[5])
    for a in reversed(TANH_NUMERATOR[:5]):
        p = p * v2 + f32(a)
    q = v2 * f32(TANH_DENOMINATOR[3]) + f32(TANH_DENOMINATOR[2])
    for b in reversed(TANH_DENOMINATOR[:2]):
        q = q * v2 + f32(b)
    return (v * p) / q


def sigmoid_approx(x: Tensor) -> Tensor:
    return f32(0.5) + f32(0.5) * tanh_approx(f32(0.5) * x)


def flinear(x: Tensor, xq: QP, w: Tensor, w_scales: Tensor, w_zps: Tensor, b: Optional[Tensor],
            per_channel: bool) -> Tensor:
    """qlinear's float value before rounding: (float(acc) + bias_term) * x_scale * w_scale."""
    rows = w.shape[0]
    ats = f32(xq[0]) * w_scales.to(F32).expand(rows)
    acc = (x.long() - xq[1]) @ (w.long() - w_zps.long().expand(rows)[:, None]).T
    v = acc.to(F32)
    if b is not None:
        v = v + (b / ats if per_channel else b * (1.0 / ats.double()).to(F32))
    return v * ats


def accurate_lstm(x: Tensor, xq: QP, h0: Optional[Tensor], c0: Optional[Tensor],
                  layers: List[Layer], num_layers: int, bidirectional: bool):
    """The accurate mode on float32 x [T, B, I]: x quantized with xq; each step
    pre = igates + hgates (floats), c' = f c + i g, h = o tanh(c'); h quantized
    with the layer's hidden qparams for the next step, and with its forward
    direction's for the next layer. Float output, h_n and c_n."""
    D = 2 if bidirectional else 1
    T, B = x.shape[0], x.shape[1]
    H = layers[0].w_hh.shape[1]
    xb = quantize_per_tensor(x, xq)
    h_n, c_n = [], []
    for l in range(num_layers):
        outs = []
        for d in range(D):
            p = layers[l * D + d]
            hq = p.q("hidden")
            h = h0[l * D + d] if h0 is not None else torch.zeros(B, H)
            c = c0[l * D + d] if c0 is not None else torch.zeros(B, H)
            ig = flinear(xb.reshape(T * B, xb.shape[-1]), xq, p.w_ih, p.w_ih_scales, p.w_ih_zps, p.b_ih,
                         p.per_channel).reshape(T, B, 4 * H)
            ys = [None] * T
            for t in (reversed(range(T)) if d == 1 else range(T)):
                hg = flinear(quantize_per_tensor(h, hq), hq, p.w_hh, p.w_hh_scales, p.w_hh_zps,
                             p.b_hh, p.per_channel)
                pre = (ig[t] + hg).chunk(4, dim=1)
                i, f, o = sigmoid_approx(pre[0]), sigmoid_approx(pre[1]), sigmoid_approx(pre[3])
                c = f * c + i * tanh_approx(pre[2])
                h = o * tanh_approx(c)
                ys[t] = h
            outs.append(torch.stack(ys) if T else torch.zeros(0, B, H))
            h_n.append(h)
            c_n.append(c)
        y = torch.cat(outs, dim=2)
        xq = layers[l * D].q("hidden")
        xb = quantize_per_tensor(y, xq)
    return y, torch.stack(h_n), torch.stack(c_n)


def random_layer(input_size: int, hidden_size: int, bias: bool, per_channel: bool,
                 gen: torch.Generator, weight_zero_points: bool = False,
                 split_gates: bool = False, proj_size: int = 0, mode: str = "torch") -> Layer:
    """A layer with random int8 weights and plausible random qparams (per gate
    with split gates, per-tensor weight qparams then [4, 1]), and a projection
    W_hr [proj_size, hidden_size] when proj_size > 0."""
    def rnd(*shape):
        return torch.rand(*shape, generator=gen)

    rows = 4 * hidden_size

    def weight(cols, rows=rows, gated=True):
        n = (rows,) if per_channel else (4, 1) if split_gates and gated else (1,)
        w = torch.randint(-128, 128, (rows, cols), generator=gen, dtype=torch.int8)
        scales = (0.02 + 0.2 * rnd(*n)).double() / max(1, cols) ** 0.5
        zps = (torch.randint(-5, 6, n, generator=gen) if weight_zero_points
               else torch.zeros(n, dtype=torch.int64))
        return w, scales, zps

    w_ih, s_ih, z_ih = weight(input_size)
    w_hh, s_hh, z_hh = weight(proj_size or hidden_size)
    w_hr, s_hr, z_hr = weight(hidden_size, proj_size, gated=False) if proj_size else (None,) * 3
    b_ih = (rnd(rows) - 0.5) if bias else None
    b_hh = (rnd(rows) - 0.5) if bias else None

    def qp(lo, hi):
        scale = float(lo + (hi - lo) * rnd(1)) / 64.0
        return (scale, int(torch.randint(96, 160, (1,), generator=gen)))

    ranges = {"igates": (1, 4), "hgates": (1, 4), "gates": (1, 5), "fgate_cx": (0.5, 2),
              "igate_cgate": (0.5, 2), "cell": (0.5, 3), "hidden": (0.3, 1), "projection": (0.5, 2)}
    names = cell_qparam_names(split_gates, proj_size > 0, mode)
    qparams = [qp(*ranges[name if name in ranges else name.rsplit("_", 1)[0]]) for name in names]
    return Layer(w_ih, s_ih, z_ih, w_hh, s_hh, z_hh, b_ih, b_hh, qparams, per_channel,
                 w_hr, s_hr, z_hr)

"""What conversion needs from an observed LSTM, whichever flow observed it."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor


_PER_CHANNEL = (torch.per_channel_affine, torch.per_channel_symmetric)
_PER_TENSOR = (torch.per_tensor_affine, torch.per_tensor_symmetric)


@dataclass
class QuantizedWeight:
    """int8 weight with one scale and zero point per row (per_channel), one in
    all ([1]), or one per gate ([4, 1]: each gate's rows quantized on their own)."""

    int8: Tensor
    scales: Tensor  # float64
    zero_points: Tensor  # int64
    per_channel: bool


@dataclass
class LayerData:
    """One observed layer-direction: float weights (nn.LSTM layout), their
    observers (one for the whole matrix, or one per gate when the gates are
    split), and the observed qparams of the intermediates
    (qlstm.ops.cell_qparam_names order; in mode "accurate" hidden only). A
    layer with a projection also has W_hr ([proj_size, hidden_size], one
    Linear) and its observer."""

    w_ih: Tensor
    w_hh: Tensor
    b_ih: Optional[Tensor]
    b_hh: Optional[Tensor]
    ih_weight_observers: Sequence[Callable[[], torch.nn.Module]]
    hh_weight_observers: Sequence[Callable[[], torch.nn.Module]]
    qparams: List[Tuple[float, int]]
    w_hr: Optional[Tensor] = None
    hr_weight_observers: Sequence[Callable[[], torch.nn.Module]] = ()
    mode: str = "torch"


MODES = ("torch", "accurate")


def check_mode(mode: object, split_gates: bool = False, proj_size: int = 0) -> str:
    """mode if it is one of MODES and the accurate mode's limits hold, else an error."""
    if mode not in MODES:
        raise ValueError(f"qlstm: mode must be one of {MODES}, got {mode!r}")
    if mode == "accurate" and split_gates:
        raise ValueError("qlstm: mode='accurate' has float gates, which need no per-gate qparams: "
                         "pass split_gates=False")
    if mode == "accurate" and proj_size > 0:
        raise ValueError(f"qlstm: mode='accurate' does not support proj_size yet (got proj_size="
                         f"{proj_size}); quantize this LSTM with mode='torch'")
    return mode


def layer_suffix(index: int, num_directions: int) -> str:
    """nn.LSTM's name suffix of layer-direction `index`: _l0, _l0_reverse, _l1, ..."""
    layer, direction = divmod(index, num_directions)
    return f"_l{layer}" + ("_reverse" if direction == 1 else "")


def qparams_of(observer: torch.nn.Module, name: str) -> Tuple[float, int]:
    """(scale, zero_point) an activation observer chose, as ATen's converted modules store them."""
    dtype = getattr(observer, "dtype", torch.quint8)
    if dtype != torch.quint8:
        raise ValueError(f"qlstm: the {name} observer must produce torch.quint8, got {dtype}")
    # An observer that saw no data would give (1.0, 0) with only a warning.
    low, high = getattr(observer, "min_val", None), getattr(observer, "max_val", None)
    if isinstance(low, Tensor) and isinstance(high, Tensor) and (
            low.numel() == 0 or not bool(torch.isfinite(low).all() & torch.isfinite(high).all())):
        raise ValueError(
            f"qlstm: the {name} observer has seen no data, so its qparams would be (1.0, 0): "
            "calibrate before converting (run representative, non-empty batches through the "
            "prepared model, or give qlstm.quantize such calibration_batches)")
    scale, zero_point = observer.calculate_qparams()
    return float(scale), int(zero_point)


def quantize_weight(weight: Tensor, observer_factories: Sequence[Callable[[], torch.nn.Module]]
                    ) -> QuantizedWeight:
    """Quantizes a float weight as torch's quantized Linear.from_float does, with
    torch's own rounding, and returns it as plain tensors: as one matrix, or
    with four factories gate by gate (the four Linears of a split-gates cell)."""
    if len(observer_factories) == 1:
        return _quantize_matrix(weight, observer_factories[0])
    gates = [_quantize_matrix(w, f) for w, f in zip(weight.chunk(len(observer_factories)),
                                                   observer_factories)]
    if len({g.per_channel for g in gates}) != 1:
        raise ValueError("qlstm: the four gates' weight observers must all be per-channel or all "
                         "per-tensor")
    join = torch.cat if gates[0].per_channel else torch.stack
    return QuantizedWeight(torch.cat([g.int8 for g in gates]), join([g.scales for g in gates]),
                           join([g.zero_points for g in gates]), gates[0].per_channel)


def _quantize_matrix(weight: Tensor, observer_factory: Callable[[], torch.nn.Module]) -> QuantizedWeight:
    observer = observer_factory()
    observer(weight)
    if getattr(observer, "dtype", None) != torch.qint8:
        raise ValueError(
            f"qlstm: the weight observer must produce torch.qint8, got {getattr(observer, 'dtype', None)}"
        )
    scale, zero_point = observer.calculate_qparams()
    qscheme = observer.qscheme
    w = weight.detach().float()
    with warnings.catch_warnings():
        # quint8/qint8 tensors are deprecated in torch 2.13; this one lives only here.
        warnings.simplefilter("ignore", UserWarning)
        if qscheme in _PER_CHANNEL:
            axis = getattr(observer, "ch_axis", 0)
            if axis != 0:
                raise ValueError(f"qlstm: per-channel weight observers must use ch_axis=0, got {axis}")
            q = torch.quantize_per_channel(w, scale.double(), zero_point.long(), 0, torch.qint8)
            return QuantizedWeight(q.int_repr(), q.q_per_channel_scales().double(),
                                   q.q_per_channel_zero_points().long(), True)
        if qscheme in _PER_TENSOR:
            q = torch.quantize_per_tensor(w, float(scale), int(zero_point), torch.qint8)
            return QuantizedWeight(q.int_repr(), torch.tensor([q.q_scale()], dtype=torch.float64),
                                   torch.tensor([q.q_zero_point()], dtype=torch.int64), False)
    raise ValueError(f"qlstm: unsupported weight qscheme {qscheme}; use per-tensor or per-channel (axis 0)")



"""Python wrappers of the ``torch.ops.qlstm`` ops, with their fake kernels.

Activations are uint8 tensors with a float scale and an int zero point; the
real value of a byte ``q`` is ``(q - zero_point) * scale``.
"""
from __future__ import annotations

import numbers
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = [
    "pack_lstm_layer",
    "unpack_lstm_layer",
    "UnpackedLayer",
    "quantized_lstm",
    "quantized_lstm_float",
    "quantized_lstm_cell",
    "quantized_lstm_packed",
    "quantize",
    "dequantize",
    "CELL_QPARAM_NAMES",
    "SPLIT_CELL_QPARAM_NAMES",
    "GATE_NAMES",
    "cell_qparam_names",
]

#: Order of the seven intermediate qparams a packed layer holds, as the C++
#: core defines it (igates, hgates, gates, fgate_cx, igate_cgate, cell, hidden).
CELL_QPARAM_NAMES: Tuple[str, ...] = tuple(torch.ops.qlstm.cell_qparam_names())
#: The sixteen of a layer with split gates: igates, hgates and gates once per
#: gate (igates_input, igates_forget, igates_cell, igates_output, hgates_input,
#: ...), then the four state qparams.
SPLIT_CELL_QPARAM_NAMES: Tuple[str, ...] = tuple(torch.ops.qlstm.cell_qparam_names(True))
#: The gates in nn.LSTM's row order, named as torch.ao.nn.quantizable's split-gates cell names them.
GATE_NAMES: Tuple[str, ...] = ("input", "forget", "cell", "output")


def cell_qparam_names(split_gates: bool = False, projection: bool = False,
                      mode: str = "torch") -> Tuple[str, ...]:
    """The qparams a packed layer holds, in order: CELL_QPARAM_NAMES or
    SPLIT_CELL_QPARAM_NAMES, then ``projection`` (the output qparams of
    ``hidden * W_hr^T``, the layer's h) for a layer with a projection (proj_size).
    In ``mode="accurate"`` only ``hidden``: the qparams of the h bytes that the
    recurrent product and the next layer multiply."""
    if mode == "accurate":
        return ("hidden",)
    names = SPLIT_CELL_QPARAM_NAMES if split_gates else CELL_QPARAM_NAMES
    return names + ("projection",) if projection else names


def pack_lstm_layer(
    w_ih: Tensor,
    w_ih_scales: Tensor,
    w_ih_zero_points: Tensor,
    w_hh: Tensor,
    w_hh_scales: Tensor,
    w_hh_zero_points: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    scales: Sequence[float],
    zero_points: Sequence[int],
    per_channel: bool,
    w_hr: Optional[Tensor] = None,
    w_hr_scales: Optional[Tensor] = None,
    w_hr_zero_points: Optional[Tensor] = None,
    mode: str = "torch",
) -> Tensor:
    """Packs one layer-direction (int8 weights in nn.LSTM's i, f, g, o row order,
    float biases and the intermediate qparams: the seven named by
    CELL_QPARAM_NAMES, or the sixteen of SPLIT_CELL_QPARAM_NAMES for split gates)
    into a uint8 blob for :func:`quantized_lstm` and :func:`quantized_lstm_cell`.
    Weight scales and zero points have shape [4 * hidden_size] (per_channel) or
    [1]; with split gates also [4, 1], one per gate.

    A layer with a projection (nn.LSTM's ``proj_size``) also takes the int8
    ``w_hr`` ``[proj_size, hidden_size]`` (no bias) with its scales and zero
    points (``[proj_size]`` or ``[1]``); ``w_hh`` is then
    ``[4 * hidden_size, proj_size]`` and the qparams end with ``projection``
    (:func:`cell_qparam_names`).

    ``mode="accurate"`` packs a layer for the accurate mode (float32 gates and
    cell, float states; run by :func:`quantized_lstm_float` and
    :func:`quantized_lstm_packed`): its qparams are one, ``hidden``, and it has
    no projection and no split gates."""
    return torch.ops.qlstm.pack_lstm_layer(
        w_ih, w_ih_scales, w_ih_zero_points, w_hh, w_hh_scales, w_hh_zero_points,
        b_ih, b_hh, _numbers(scales, "scales", numbers.Real, float),
        _numbers(zero_points, "zero_points", numbers.Integral, int), per_channel,
        w_hr, w_hr_scales, w_hr_zero_points, mode,
    )


def _numbers(values: Sequence, name: str, kind: type, convert: Callable) -> list:
    """values as Python numbers of `kind`; anything else (a string, 127.9 for
    an integer, a bool) is an error rather than a silent conversion."""
    out = []
    for i, v in enumerate(values):
        if isinstance(v, Tensor) and v.numel() == 1:
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, kind):
            what = "an integer" if kind is numbers.Integral else "a number"
            raise TypeError(f"qlstm: {name}[{i}] must be {what}, got {v!r}")
        out.append(convert(v))
    return out


class UnpackedLayer(NamedTuple):
    """What :func:`pack_lstm_layer` took, as :func:`unpack_lstm_layer` gives it
    back: int8 weights, float64 scales and int64 zero points ([4 * hidden_size]
    when per_channel, else [1], or [4, 1] with split gates), float biases or
    None, the seven (split gates: sixteen) intermediate qparams, one more with a
    projection, whose int8 W_hr and qparams come last (None without one)."""

    w_ih: Tensor
    w_ih_scales: Tensor
    w_ih_zero_points: Tensor
    w_hh: Tensor
    w_hh_scales: Tensor
    w_hh_zero_points: Tensor
    b_ih: Optional[Tensor]
    b_hh: Optional[Tensor]
    scales: List[float]
    zero_points: List[int]
    per_channel: bool
    w_hr: Optional[Tensor] = None
    w_hr_scales: Optional[Tensor] = None
    w_hr_zero_points: Optional[Tensor] = None

    @property
    def proj_size(self) -> int:
        """The size of the layer's projection (its h), or 0 without one."""
        return 0 if self.w_hr is None else int(self.w_hr.shape[0])

    @property
    def mode(self) -> str:
        """The numerics the layer was packed for: ``"torch"`` or ``"accurate"``."""
        return "accurate" if len(self.scales) == 1 else "torch"

    @property
    def split_gates(self) -> bool:
        """Whether igates, hgates and gates have qparams per gate."""
        return len(self.scales) - int(self.proj_size > 0) == len(SPLIT_CELL_QPARAM_NAMES)

    @property
    def qparam_names(self) -> Tuple[str, ...]:
        """The names of ``scales`` and ``zero_points``, in order."""
        return cell_qparam_names(self.split_gates, self.proj_size > 0, self.mode)


def _weight_qparams(per_row: Tensor, per_channel: bool, split_gates: bool) -> Tensor:
    """A matrix's weight scales or zero points in pack_lstm_layer's shape."""
    if per_channel:
        return per_row
    if split_gates:
        return per_row.view(len(GATE_NAMES), -1)[:, :1].contiguous()
    return per_row[:1].clone()


def unpack_lstm_layer(params: Tensor) -> UnpackedLayer:
    """The weights and qparams of a packed layer, in nn.LSTM's layout; packing
    them again gives the same blob. Scales come back as the float32 values the
    kernels use."""
    # The op gives only tensors (a layer without biases has empty ones, one
    # without a projection a W_hr of no rows).
    (w_ih, w_ih_scales, w_ih_zero_points, w_hh, w_hh_scales, w_hh_zero_points, b_ih, b_hh,
     scales, zero_points, per_channel, w_hr, w_hr_scales,
     w_hr_zero_points) = torch.ops.qlstm.unpack_lstm_layer(params)
    has_bias, projection = b_ih.numel() > 0, w_hr.shape[0] > 0
    per_channel = bool(per_channel)
    split = scales.numel() - int(projection) == len(SPLIT_CELL_QPARAM_NAMES)
    weight_qparams = (_weight_qparams(t, per_channel, split)
                      for t in (w_ih_scales, w_ih_zero_points, w_hh_scales, w_hh_zero_points))
    s_ih, z_ih, s_hh, z_hh = weight_qparams
    hr = ((w_hr, _weight_qparams(w_hr_scales, per_channel, False),
           _weight_qparams(w_hr_zero_points, per_channel, False)) if projection else (None,) * 3)
    return UnpackedLayer(w_ih, s_ih, z_ih, w_hh, s_hh, z_hh, b_ih if has_bias else None,
                         b_hh if has_bias else None, scales.tolist(), zero_points.tolist(),
                         per_channel, *hr)


def quantized_lstm(
    input: Tensor,
    input_scale: float,
    input_zero_point: int,
    h0: Optional[Tensor],
    h0_scale: float,
    h0_zero_point: int,
    c0: Optional[Tensor],
    c0_scale: float,
    c0_zero_point: int,
    params: List[Tensor],
    hidden_size: int,
    num_layers: int,
    bidirectional: bool,
    batch_first: bool,
    proj_size: int = 0,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Runs a whole multi-layer LSTM on a uint8 sequence ``[T, B, I]`` (``[B, T, I]``
    when batch_first). ``params`` holds ``num_layers * num_directions`` packed layers,
    forward before reverse, each of ``hidden_size`` and ``proj_size`` (checked; they
    give the output shapes without reading the blobs). Missing h0/c0 mean zeros.
    Returns uint8 (output, h_n, c_n): output in the last layer's forward h
    qparams, h_n and c_n in layer 0's forward h and cell qparams. h is of
    ``proj_size`` with a projection (its qparams ``projection``), else of
    ``hidden_size`` (``hidden``), as in nn.LSTM."""
    return torch.ops.qlstm.quantized_lstm(
        input, input_scale, input_zero_point, h0, h0_scale, h0_zero_point,
        c0, c0_scale, c0_zero_point, params, hidden_size, num_layers, bidirectional, batch_first,
        proj_size,
    )


def quantized_lstm_float(
    input: Tensor,
    input_scale: float,
    input_zero_point: int,
    h0: Optional[Tensor],
    c0: Optional[Tensor],
    params: List[Tensor],
    hidden_size: int,
    num_layers: int,
    bidirectional: bool,
    batch_first: bool,
    proj_size: int = 0,
) -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`quantized_lstm` with float32 states, in one op call. h0 / c0 are
    quantized, and h_n / c_n dequantized, with each layer-direction's own hidden
    and cell qparams, so that feeding h_n / c_n back continues the sequence
    exactly (streaming a stacked LSTM chunk by chunk gives the one-call bytes).
    A float32 input is quantized with (input_scale, input_zero_point) and the
    output dequantized from the last layer's forward hidden qparams; a uint8
    input (bytes in those qparams) gives the uint8 output instead."""
    return torch.ops.qlstm.quantized_lstm_float(
        input, input_scale, input_zero_point, h0, c0, params, hidden_size, num_layers,
        bidirectional, batch_first, proj_size)


def quantized_lstm_packed(
    data: Tensor,
    batch_sizes: Tensor,
    input_scale: float,
    input_zero_point: int,
    h0: Optional[Tensor],
    c0: Optional[Tensor],
    params: List[Tensor],
    hidden_size: int,
    num_layers: int,
    bidirectional: bool,
    proj_size: int = 0,
) -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`quantized_lstm_float` on variable-length sequences in
    ``torch.nn.utils.rnn.PackedSequence``'s layout: ``data`` ``[rows, I]`` (float32,
    or uint8 bytes in the input qparams) and int64 ``batch_sizes`` (sequences sorted
    by length, longest first). Each sequence runs to its own last step (the reverse
    direction starts there); no padding is computed. Returns the output rows in the
    same layout, and float32 h_n / c_n ``[num_layers * num_directions, B, H]`` (h_n of
    ``proj_size`` with a projection) in the sorted order. Missing h0 / c0 mean zeros."""
    return torch.ops.qlstm.quantized_lstm_packed(
        data, batch_sizes, input_scale, input_zero_point, h0, c0, params, hidden_size,
        num_layers, bidirectional, proj_size)


def quantized_lstm_cell(
    input: Tensor,
    input_scale: float,
    input_zero_point: int,
    hx: Tensor,
    hx_scale: float,
    hx_zero_point: int,
    cx: Tensor,
    cx_scale: float,
    cx_zero_point: int,
    params: Tensor,
) -> Tuple[Tensor, Tensor]:
    """One LSTM step of one packed layer (without a projection, as nn.LSTMCell)
    on uint8 ``[B, I]`` with state ``[B, H]``. Returns (h_next, c_next) in the
    layer's hidden and cell qparams."""
    return torch.ops.qlstm.quantized_lstm_cell(
        input, input_scale, input_zero_point, hx, hx_scale, hx_zero_point,
        cx, cx_scale, cx_zero_point, params,
    )


def quantize(input: Tensor, scale: float, zero_point: int) -> Tensor:
    """float32 -> uint8 as torch.quantize_per_tensor computes it:
    clamp(round_half_even(fma(x, 1 / scale, zero_point)), 0, 255), with NaN -> 255."""
    return torch.ops.qlstm.quantize(input, scale, zero_point)


def dequantize(input: Tensor, scale: float, zero_point: int) -> Tensor:
    """uint8 -> float32: (q - zero_point) * scale."""
    return torch.ops.qlstm.dequantize(input, scale, zero_point)


# Fake (meta) kernels: output shapes and dtypes without running, for
# torch.compile and torch.export. Each gives exactly the real kernel's shapes
# and checks what the real kernel checks before it reads any data (dtypes,
# ranks, and the sizes that do not depend on the blobs' contents), so that a
# compiled or exported program reports bad input as early as eager does.

def _check_tensor(t: Tensor, name: str, dtype: torch.dtype, dim: int) -> None:
    torch._check(t.dtype == dtype,
                 lambda: f"qlstm: {name} must be a {dtype} tensor, got {t.dtype}")
    torch._check(t.dim() == dim,
                 lambda: f"qlstm: {name} must have {dim} dimensions, got shape {list(t.shape)}")


def _check_params(params: Sequence[Tensor], name: str = "params") -> None:
    for i, p in enumerate(params):
        _check_tensor(p, f"{name}[{i}]", torch.uint8, 1)


@torch.library.register_fake("qlstm::pack_lstm_layer")
def _(w_ih, w_ih_scales, w_ih_zero_points, w_hh, w_hh_scales, w_hh_zero_points, b_ih, b_hh,
      scales, zero_points, per_channel, w_hr=None, w_hr_scales=None, w_hr_zero_points=None,
      mode="torch"):
    torch._check(mode in ("torch", "accurate"),
                 lambda: f'qlstm: mode must be "torch" or "accurate", got "{mode}"')
    _check_tensor(w_ih, "w_ih", torch.int8, 2)
    _check_tensor(w_hh, "w_hh", torch.int8, 2)
    if w_hr is None:
        torch._check(w_hh.shape[0] == 4 * w_hh.shape[1], lambda: (
            f"qlstm: w_hh must have shape [4 * hidden_size, hidden_size], got {list(w_hh.shape)}"))
    else:
        _check_tensor(w_hr, "w_hr", torch.int8, 2)
        torch._check(w_hh.shape == (4 * w_hr.shape[1], w_hr.shape[0]), lambda: (
            f"qlstm: w_hh must have shape [4 * hidden_size, proj_size] = "
            f"{[4 * w_hr.shape[1], w_hr.shape[0]]}, got {list(w_hh.shape)}"))
    torch._check(w_ih.shape[0] == w_hh.shape[0], lambda: (
        f"qlstm: w_ih must have shape [4 * hidden_size, input_size], got {list(w_ih.shape)}"))
    extra = int(w_hr is not None)
    n, n_split = len(CELL_QPARAM_NAMES) + extra, len(SPLIT_CELL_QPARAM_NAMES) + extra
    if mode == "accurate":
        torch._check(w_hr is None, lambda: (
            "qlstm: the accurate mode does not support a projection (proj_size) yet"))
        n = n_split = 1
    torch._check(len(scales) in (n, n_split) and len(zero_points) == len(scales), lambda: (
        f"qlstm: scales and zero_points must each hold {n} values, or {n_split} with split gates, "
        f"got {len(scales)} and {len(zero_points)}"))
    # The blob size depends on how many weights are -128, known only to the real kernel.
    size = torch.library.get_ctx().new_dynamic_size()
    return w_ih.new_empty((size,), dtype=torch.uint8)


@torch.library.register_fake("qlstm::unpack_lstm_layer")
def _(params):
    _check_tensor(params, "params", torch.uint8, 1)
    # Sizes, lists and flags live in the blob's contents: data-dependent.
    ctx = torch.library.get_ctx()
    hidden_size, input_size = ctx.new_dynamic_size(min=1), ctx.new_dynamic_size(min=1)
    h_size, proj_size = ctx.new_dynamic_size(min=1), ctx.new_dynamic_size()
    rows = 4 * hidden_size
    n_bias, n = ctx.new_dynamic_size(), ctx.new_dynamic_size()  # n: 7 or 16, + 1 with a projection
    w_ih = params.new_empty((rows, input_size), dtype=torch.int8)
    w_hh = params.new_empty((rows, h_size), dtype=torch.int8)
    return (w_ih, params.new_empty((rows,), dtype=torch.float64),
            params.new_empty((rows,), dtype=torch.int64), w_hh,
            params.new_empty((rows,), dtype=torch.float64),
            params.new_empty((rows,), dtype=torch.int64),
            params.new_empty((n_bias,), dtype=torch.float32),
            params.new_empty((n_bias,), dtype=torch.float32),
            params.new_empty((n,), dtype=torch.float64), params.new_empty((n,), dtype=torch.int64),
            params.new_empty((), dtype=torch.bool),
            params.new_empty((proj_size, hidden_size), dtype=torch.int8),
            params.new_empty((proj_size,), dtype=torch.float64),
            params.new_empty((proj_size,), dtype=torch.int64))


def _check_layers(params, num_layers: int, bidirectional: bool, proj_size: int) -> int:
    """The number of directions, after the checks the real op makes without reading the blobs."""
    torch._check(num_layers >= 1, lambda: f"qlstm: num_layers must be >= 1, got {num_layers}")
    torch._check(proj_size >= 0, lambda: f"qlstm: proj_size must be >= 0, got {proj_size}")
    num_directions = 2 if bidirectional else 1
    torch._check(len(params) == num_layers * num_directions, lambda: (
        f"qlstm: params must hold num_layers * num_directions = {num_layers} * {num_directions} "
        f"packed layers, got {len(params)}"))
    _check_params(params)
    return num_directions


def _state_shapes(num_layers: int, num_directions: int, B, hidden_size: int, proj_size: int):
    """h_n's and c_n's shapes: h is of proj_size with a projection, c of hidden_size."""
    return ((num_layers * num_directions, B, proj_size if proj_size > 0 else hidden_size),
            (num_layers * num_directions, B, hidden_size))


def _fake_lstm_shapes(input, params, hidden_size, num_layers, bidirectional, batch_first,
                      proj_size):
    """(T, B, num_directions * h size) and the h and c state shapes."""
    torch._check(input.dim() == 3,
                 lambda: f"qlstm: input must have 3 dimensions, got shape {list(input.shape)}")
    num_directions = _check_layers(params, num_layers, bidirectional, proj_size)
    T, B = (input.shape[1], input.shape[0]) if batch_first else (input.shape[0], input.shape[1])
    h_state, c_state = _state_shapes(num_layers, num_directions, B, hidden_size, proj_size)
    return (T, B, num_directions * h_state[2]), h_state, c_state


def _check_state(t: Optional[Tensor], name: str, dtype: torch.dtype, shape) -> None:
    if t is None:
        return
    _check_tensor(t, name, dtype, len(shape))
    torch._check(tuple(t.shape) == tuple(shape), lambda: (
        f"qlstm: {name} must have shape {list(shape)}, got {list(t.shape)}"))


@torch.library.register_fake("qlstm::quantized_lstm")
def _(input, input_scale, input_zero_point, h0, h0_scale, h0_zero_point, c0, c0_scale,
      c0_zero_point, params, hidden_size, num_layers, bidirectional, batch_first, proj_size=0):
    _check_tensor(input, "input", torch.uint8, 3)
    time_major, h_state, c_state = _fake_lstm_shapes(input, params, hidden_size, num_layers,
                                                     bidirectional, batch_first, proj_size)
    _check_state(h0, "h0", torch.uint8, h_state)
    _check_state(c0, "c0", torch.uint8, c_state)
    # The real op returns its time-major result transposed (a view) when batch_first.
    output = input.new_empty(time_major, dtype=torch.uint8)
    return (output.transpose(0, 1) if batch_first else output,
            input.new_empty(h_state, dtype=torch.uint8),
            input.new_empty(c_state, dtype=torch.uint8))


@torch.library.register_fake("qlstm::quantized_lstm_float")
def _(input, input_scale, input_zero_point, h0, c0, params, hidden_size, num_layers,
      bidirectional, batch_first, proj_size=0):
    torch._check(input.dtype in (torch.float32, torch.uint8), lambda: (
        f"qlstm: input must be a torch.float32 (or torch.uint8) tensor, got {input.dtype}"))
    (T, B, out), h_state, c_state = _fake_lstm_shapes(input, params, hidden_size, num_layers,
                                                      bidirectional, batch_first, proj_size)
    _check_state(h0, "h0", torch.float32, h_state)
    _check_state(c0, "c0", torch.float32, c_state)
    if input.dtype == torch.uint8:
        # Like quantized_lstm: the time-major result, transposed when batch_first.
        output = input.new_empty((T, B, out), dtype=torch.uint8)
        output = output.transpose(0, 1) if batch_first else output
    else:
        output = input.new_empty((B, T, out) if batch_first else (T, B, out), dtype=torch.float32)
    return (output, input.new_empty(h_state, dtype=torch.float32),
            input.new_empty(c_state, dtype=torch.float32))


@torch.library.register_fake("qlstm::quantized_lstm_packed")
def _(data, batch_sizes, input_scale, input_zero_point, h0, c0, params, hidden_size, num_layers,
      bidirectional, proj_size=0):
    torch._check(data.dtype in (torch.float32, torch.uint8), lambda: (
        f"qlstm: data must be a torch.float32 (or torch.uint8) tensor, got {data.dtype}"))
    torch._check(data.dim() == 2, lambda: f"qlstm: data must have 2 dimensions, got shape {list(data.shape)}")
    _check_tensor(batch_sizes, "batch_sizes", torch.int64, 1)
    num_directions = _check_layers(params, num_layers, bidirectional, proj_size)
    # The batch is batch_sizes[0], a value: known from h0, else data-dependent.
    B = h0.shape[1] if h0 is not None else torch.library.get_ctx().new_dynamic_size()
    h_state, c_state = _state_shapes(num_layers, num_directions, B, hidden_size, proj_size)
    _check_state(h0, "h0", torch.float32, h_state)
    _check_state(c0, "c0", torch.float32, c_state)
    # The data's dtype, as the real op's (a uint8 input gives the uint8 rows).
    return (data.new_empty((data.shape[0], num_directions * h_state[2])),
            data.new_empty(h_state, dtype=torch.float32),
            data.new_empty(c_state, dtype=torch.float32))


@torch.library.register_fake("qlstm::quantized_lstm_cell")
def _(input, input_scale, input_zero_point, hx, hx_scale, hx_zero_point, cx, cx_scale,
      cx_zero_point, params):
    _check_tensor(input, "input", torch.uint8, 2)
    _check_tensor(params, "params", torch.uint8, 1)
    _check_tensor(hx, "hx", torch.uint8, 2)
    torch._check(hx.shape[0] == input.shape[0], lambda: (
        f"qlstm: hx must have {input.shape[0]} rows (input's batch), got shape {list(hx.shape)}"))
    _check_state(cx, "cx", torch.uint8, hx.shape)
    return hx.new_empty(hx.shape, dtype=torch.uint8), cx.new_empty(cx.shape, dtype=torch.uint8)


@torch.library.register_fake("qlstm::quantize")
def _(input, scale, zero_point):
    torch._check(input.dtype == torch.float32,
                 lambda: f"qlstm: input must be a torch.float32 tensor, got {input.dtype}")
    return input.new_empty(input.shape, dtype=torch.uint8)


@torch.library.register_fake("qlstm::dequantize")
def _(input, scale, zero_point):
    torch._check(input.dtype == torch.uint8,
                 lambda: f"qlstm: input must be a torch.uint8 tensor, got {input.dtype}")
    return input.new_empty(input.shape, dtype=torch.float32)


@torch.library.register_fake("qlstm::no_backward")
def _(grad, like):
    # Traced into a compiled backward, the real kernel raises when that runs.
    return torch.empty_like(like)

"""The observed (calibration) LSTM of qlstm's own flow, and what conversion reads
from PyTorch's observed ``torch.ao.nn.quantizable.LSTM``."""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence
from torch.ao.quantization.observer import (
    HistogramObserver,
    MinMaxObserver,
    PerChannelMinMaxObserver,
)

from ..ops import CELL_QPARAM_NAMES, GATE_NAMES, cell_qparam_names
from ._layer_data import LayerData, check_mode, layer_suffix, qparams_of

ObserverFactory = Callable[[], torch.nn.Module]

#: Activation observers to choose from; full 8-bit ranges, as qlstm's kernels are exact at any
#: byte (NARROW_ACTIVATION_OBSERVER trades half the resolution for avx2's fastest form).
ACTIVATION_OBSERVERS = {
    "histogram": HistogramObserver.with_args(dtype=torch.quint8, reduce_range=False),
    "minmax": MinMaxObserver.with_args(dtype=torch.quint8, reduce_range=False),
}
#: 7-bit activations (a histogram observer with reduce_range, as PyTorch's 'x86'
#: and 'fbgemm' qconfigs observe them): half the resolution, and against 7-bit
#: weights (:data:`NARROW_WEIGHT_OBSERVER`) the avx2 kernels sum two groups of
#: products at a time, for every row whose bytes are all <= 127.
NARROW_ACTIVATION_OBSERVER = HistogramObserver.with_args(dtype=torch.quint8, reduce_range=True)
#: Per-channel symmetric int8 weights in [-127, 127], as TFLite and onnxruntime
#: quantize them: no -128 weight, which costs the avx2 kernels' exact (8-bit
#: activation) sequence a correction per weight and activation row.
DEFAULT_WEIGHT_OBSERVER = PerChannelMinMaxObserver.with_args(
    dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-127, quant_max=127)
#: Per-channel symmetric 7-bit weights in [-64, 64] (onnxruntime's reduce_range):
#: half the resolution, and CPUs without VNNI (the avx2 kernel set) multiply them
#: with their plain sequence, exact against any activation byte and faster.
NARROW_WEIGHT_OBSERVER = PerChannelMinMaxObserver.with_args(
    dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-64, quant_max=64)


#: The module of torch.ao.nn.quantizable's LSTM cell whose output observer
#: holds each intermediate's qparams.
QUANTIZABLE_CELL_OBSERVED = {
    "igates": "igates", "hgates": "hgates", "gates": "gates", "fgate_cx": "fgate_cx",
    "igate_cgate": "igate_cgate", "cell": "fgate_cx_igate_cgate", "hidden": "ogate_cy",
}


def _quantizable_cell_data(cell: torch.nn.Module) -> LayerData:
    """Weights, weight observers and observed qparams of one quantizable LSTM cell."""
    def observed(module: torch.nn.Module, name: str) -> Tuple[float, int]:
        return qparams_of(module.activation_post_process, name)

    def state() -> List[Tuple[float, int]]:
        return [observed(getattr(cell, QUANTIZABLE_CELL_OBSERVED[n]), n) for n in CELL_QPARAM_NAMES[3:]]

    if not getattr(cell, "split_gates", False):
        gates = [observed(getattr(cell, n), n) for n in CELL_QPARAM_NAMES[:3]]
        return LayerData(cell.igates.weight, cell.hgates.weight, cell.igates.bias, cell.hgates.bias,
                         [cell.igates.qconfig.weight], [cell.hgates.qconfig.weight], gates + state())
    # One Linear (and one add) per gate, in the ModuleDicts' order: input, forget, cell, output.
    for kind in ("igates", "hgates", "gates"):
        if tuple(getattr(cell, kind).keys()) != GATE_NAMES:
            raise ValueError(f"qlstm: a split-gates cell's {kind} must hold the gates {GATE_NAMES}, "
                             f"got {tuple(getattr(cell, kind).keys())}")
    gates = [observed(getattr(cell, kind)[g], f"{kind}_{g}")
             for kind in ("igates", "hgates", "gates") for g in GATE_NAMES]

    def joined(kind: str, field: str) -> Optional[Tensor]:
        parts = [getattr(getattr(cell, kind)[g], field) for g in GATE_NAMES]
        return None if parts[0] is None else torch.cat([p.detach() for p in parts])

    return LayerData(joined("igates", "weight"), joined("hgates", "weight"),
                     joined("igates", "bias"), joined("hgates", "bias"),
                     [cell.igates[g].qconfig.weight for g in GATE_NAMES],
                     [cell.hgates[g].qconfig.weight for g in GATE_NAMES], gates + state())


def _observe(observers: torch.nn.ModuleDict, name: str, x: Tensor) -> Tensor:
    """x through its observer; the accurate mode observes h alone."""
    return observers[name](x) if name in observers else x


def _check_no_projection(cell: torch.nn.Module) -> None:
    # PyTorch's quantizable LSTM has no proj_size: made from an nn.LSTM with
    # one, it drops W_hr but keeps W_hh [4H, P], which no h of size H fits.
    split = getattr(cell, "split_gates", False)
    hgates = cell.hgates[GATE_NAMES[0]] if split else cell.hgates
    rows, in_features = hgates.weight.shape
    hidden = rows if split else rows // 4
    if in_features != hidden:
        raise ValueError(
            f"qlstm: this torch.ao.nn.quantizable.LSTM was made from an nn.LSTM with "
            f"proj_size={in_features} (its W_hh is [4 * {hidden}, {in_features}]), and PyTorch's "
            "quantizable LSTM has no projection (it drops W_hr); quantize the nn.LSTM with "
            "qlstm's own flow instead: qlstm.quantize(model, calibration_batches), or "
            "qlstm.prepare, calibrate, qlstm.convert")


def layer_data_of_quantizable(observed: torch.ao.nn.quantizable.LSTM) -> List[LayerData]:
    """Weights and observed qparams of every layer-direction of a calibrated quantizable LSTM."""
    data = []
    for layer in observed.layers:
        directions = [layer.layer_fw] + ([layer.layer_bw] if observed.bidirectional else [])
        for single in directions:
            _check_no_projection(single.cell)
            data.append(_quantizable_cell_data(single.cell))
    return data


class ObservedLSTM(torch.nn.Module):
    """A float LSTM that records the range of its input and of every intermediate
    of the quantized graph (igates, hgates, gates, f*c, i*g, c, h, and with a
    projection, proj_size, h's projection) while it runs
    calibration data. Its outputs are the float LSTM's. :func:`qlstm.prepare`
    makes it from an ``nn.LSTM``; :meth:`qlstm.nn.LSTM.from_observed` converts it.

    With ``split_gates=True`` igates, hgates and gates are observed gate by gate
    and weights are quantized gate by gate (as torch.ao.nn.quantizable's
    split-gates cell does): one qparams per gate instead of one for all four.
    With ``mode="accurate"`` only the input and h are observed: the accurate
    mode keeps the gates and the cell in float32."""

    _FLOAT_MODULE = torch.nn.LSTM

    def __init__(self, lstm: torch.nn.LSTM,
                 activation_observer: ObserverFactory = ACTIVATION_OBSERVERS["histogram"],
                 weight_observer: ObserverFactory = DEFAULT_WEIGHT_OBSERVER,
                 split_gates: bool = False, mode: str = "torch") -> None:
        super().__init__()
        if type(self) is ObservedLSTM and not isinstance(lstm, torch.nn.LSTM):
            raise TypeError(f"qlstm: ObservedLSTM wraps a torch.nn.LSTM, got {type(lstm).__name__}")
        self.input_size = lstm.input_size
        self.hidden_size = lstm.hidden_size
        self.proj_size = getattr(lstm, "proj_size", 0)  # nn.LSTMCell has none
        self.num_layers = getattr(lstm, "num_layers", 1)
        self.bias = lstm.bias
        self.batch_first = getattr(lstm, "batch_first", False)
        self.dropout = float(getattr(lstm, "dropout", 0.0))
        self.bidirectional = getattr(lstm, "bidirectional", False)
        self.lstm = lstm
        self.weight_observer = weight_observer
        self.split_gates = bool(split_gates)
        self.mode = check_mode(mode, self.split_gates, self.proj_size)
        self.input_observer = activation_observer()
        directions = self.num_layers * (2 if self.bidirectional else 1)
        names = cell_qparam_names(self.split_gates, self.proj_size > 0, self.mode)
        self.observers = torch.nn.ModuleList(
            torch.nn.ModuleDict({n: activation_observer() for n in names}) for _ in range(directions))

    def _weights(self, index: int):
        s = layer_suffix(index, 2 if self.bidirectional else 1)
        get = lambda name: getattr(self.lstm, name + s, None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _projection_weight(self, index: int) -> Optional[Tensor]:
        """W_hr of layer-direction `index`, or None without a projection."""
        if self.proj_size == 0:
            return None
        return getattr(self.lstm, "weight_hr" + layer_suffix(index, 2 if self.bidirectional else 1))

    def _float32_weights(self, index: int):
        # Observation runs in float32 whatever the LSTM's dtype (the kernels' numerics).
        return tuple(None if w is None else w.float()
                     for w in self._weights(index) + (self._projection_weight(index),))

    def layer_data(self) -> List[LayerData]:
        data = []
        weight_observers = [self.weight_observer] * (len(GATE_NAMES) if self.split_gates else 1)
        for index, observers in enumerate(self.observers):
            w_ih, w_hh, b_ih, b_hh = self._weights(index)
            # W_hr is one Linear, also with split gates.
            data.append(LayerData(w_ih, w_hh, b_ih, b_hh, weight_observers, weight_observers,
                                  [qparams_of(observer, n) for n, observer in observers.items()],
                                  self._projection_weight(index), [self.weight_observer],
                                  self.mode))
        return data

    def _observe_gates(self, observers: torch.nn.ModuleDict, kind: str, x: Tensor) -> Tensor:
        """x (igates, hgates or gates, [..., 4H]) through its observer, or gate by gate."""
        if not self.split_gates:
            return _observe(observers, kind, x)
        return torch.cat([observers[f"{kind}_{g}"](part)
                          for g, part in zip(GATE_NAMES, x.chunk(len(GATE_NAMES), -1))], -1)

    def input_qparams(self) -> Tuple[float, int]:
        return qparams_of(self.input_observer, "input")

    def _run_direction(self, index: int, x: Tensor, h: Tensor, c: Tensor, reverse: bool
                       ) -> Tuple[Tensor, Tensor, Tensor]:
        w_ih, w_hh, b_ih, b_hh, w_hr = self._float32_weights(index)
        obs = self.observers[index]
        igates = self._observe_gates(obs, "igates", torch.nn.functional.linear(x, w_ih, b_ih))
        outputs = [None] * x.shape[0]
        for t in (reversed(range(x.shape[0])) if reverse else range(x.shape[0])):
            hgates = self._observe_gates(obs, "hgates", torch.nn.functional.linear(h, w_hh, b_hh))
            gates = self._observe_gates(obs, "gates", igates[t] + hgates)
            i, f, g, o = gates.chunk(4, 1)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            fc = _observe(obs, "fgate_cx", f * c)
            ig = _observe(obs, "igate_cgate", i * g)
            c = _observe(obs, "cell", fc + ig)
            h = obs["hidden"](o * torch.tanh(c))
            if w_hr is not None:
                h = obs["projection"](torch.nn.functional.linear(h, w_hr))
            outputs[t] = h
        out = torch.stack(outputs) if outputs else x.new_empty((0, x.shape[1], h.shape[-1]))
        return out, h, c

    def _forward_packed(self, input: PackedSequence, hx: Optional[Tuple[Tensor, Tensor]]
                        ) -> Tuple[PackedSequence, Tuple[Tensor, Tensor]]:
        # Calibration runs each sequence alone (padding must not reach the
        # observers), then lays the outputs out as the input was.
        padded, lengths = pad_packed_sequence(input, batch_first=False)
        order = (input.sorted_indices if input.sorted_indices is not None
                 else torch.arange(padded.shape[1]))
        first_row = [0]
        for size in input.batch_sizes.tolist():
            first_row.append(first_row[-1] + size)
        out, h_n, c_n = None, [], []
        for j, b in enumerate(order.tolist()):
            state = None if hx is None else (hx[0][:, b:b + 1], hx[1][:, b:b + 1])
            x = padded[:int(lengths[b]), b:b + 1]
            y, (h, c) = self.forward(x.transpose(0, 1) if self.batch_first else x, state)
            y = y.transpose(0, 1) if self.batch_first else y  # time-major
            if out is None:
                out = y.new_empty((input.data.shape[0], y.shape[2]))
            for t in range(int(lengths[b])):
                out[first_row[t] + j] = y[t, 0]
            h_n.append(h)
            c_n.append(c)
        inverse = torch.argsort(order)
        h_n, c_n = torch.cat(h_n, dim=1)[:, inverse], torch.cat(c_n, dim=1)[:, inverse]
        return (PackedSequence(out, input.batch_sizes, input.sorted_indices, input.unsorted_indices),
                (h_n, c_n))

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(0 if self.batch_first else 1)
        if self.batch_first:
            x = x.transpose(0, 1)
        x = self.input_observer(x.float())
        D = 2 if self.bidirectional else 1
        if hx is None:
            h0 = x.new_zeros((self.num_layers * D, x.shape[1], self.proj_size or self.hidden_size))
            c0 = x.new_zeros((self.num_layers * D, x.shape[1], self.hidden_size))
        else:
            h0, c0 = (t.float() if batched else t.float().unsqueeze(1) for t in hx)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                idx = layer * D + d
                out, h, c = self._run_direction(idx, x, h0[idx], c0[idx], reverse=d == 1)
                outs.append(out)
                h_n.append(h)
                c_n.append(c)
            x = torch.cat(outs, dim=2)
        y = x.transpose(0, 1) if self.batch_first else x
        h_n, c_n = torch.stack(h_n), torch.stack(c_n)
        if not batched:
            y, h_n, c_n = y.squeeze(0 if self.batch_first else 1), h_n.squeeze(1), c_n.squeeze(1)
        if input.is_floating_point() and input.dtype != torch.float32:
            y, h_n, c_n = y.to(input.dtype), h_n.to(input.dtype), c_n.to(input.dtype)
        return y, (h_n, c_n)


class ObservedLSTMCell(ObservedLSTM):
    """The observed (calibration) form of an ``nn.LSTMCell``: one layer of
    :class:`ObservedLSTM` run one step at a time. Its outputs are the float
    cell's. :func:`qlstm.prepare` makes it; :meth:`qlstm.nn.LSTMCell.from_observed`
    converts it."""

    _FLOAT_MODULE = torch.nn.LSTMCell

    def __init__(self, cell: torch.nn.LSTMCell,
                 activation_observer: ObserverFactory = ACTIVATION_OBSERVERS["histogram"],
                 weight_observer: ObserverFactory = DEFAULT_WEIGHT_OBSERVER,
                 split_gates: bool = False, mode: str = "torch") -> None:
        if not isinstance(cell, torch.nn.LSTMCell):
            raise TypeError(f"qlstm: ObservedLSTMCell wraps a torch.nn.LSTMCell, got {type(cell).__name__}")
        super().__init__(cell, activation_observer, weight_observer, split_gates, mode)

    def _weights(self, index: int):
        # nn.LSTMCell names its weights without a layer suffix.
        return tuple(getattr(self.lstm, name) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tuple[Tensor, Tensor]:
        batched = input.dim() == 2
        x = self.input_observer((input if batched else input.unsqueeze(0)).float())
        if hx is None:
            h = c = x.new_zeros((x.shape[0], self.hidden_size))
        else:
            h, c = (t.float() if batched else t.float().unsqueeze(0) for t in hx)
        _, h, c = self._run_direction(0, x.unsqueeze(0), h, c, reverse=False)
        if not batched:
            h, c = h.squeeze(0), c.squeeze(0)
        if input.is_floating_point() and input.dtype != torch.float32:
            h, c = h.to(input.dtype), c.to(input.dtype)
        return h, c

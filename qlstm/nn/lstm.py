"""The quantized LSTM module: one call into the fused op per forward."""

import math
import re
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from .. import _C, ops
from ._layer_data import LayerData, check_mode, layer_suffix, quantize_weight
from .observed import ObservedLSTM, layer_data_of_quantizable

_WEIGHT_NAME = re.compile(r"(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?")


def _qparam(u: ops.UnpackedLayer, name: str) -> Tuple[float, int]:
    i = u.qparam_names.index(name)
    return (u.scales[i], u.zero_points[i])


def _h_qparams(u: ops.UnpackedLayer) -> Tuple[float, int]:
    """What a layer's h comes in: its projection's output, or hidden."""
    return _qparam(u, "projection" if u.proj_size > 0 else "hidden")


def _per_row(t: Tensor, rows: int) -> Tensor:
    """Weight scales or zero points ([rows], [1] or per gate [4, 1]) as [rows]."""
    return t.reshape(-1, 1).expand(-1, rows // t.numel()).reshape(rows)


class LSTM(torch.nn.Module):
    r"""A quantized long short-term memory (LSTM) with nn.LSTM's interface.

    Built from an observed LSTM by :meth:`from_observed`, either PyTorch's
    ``torch.ao.nn.quantizable.LSTM`` (PyTorch's eager flow) or
    :class:`qlstm.nn.ObservedLSTM` (:func:`qlstm.prepare` / :func:`qlstm.convert`).
    Its numerics (``mode="torch"``) are those of ``torch.ao.nn.quantized.LSTM``;
    with ``mode="accurate"`` (from :func:`qlstm.quantize` or :func:`qlstm.prepare`
    with that mode) the gates and the cell are float32 and only the matrix
    products are int8 (docs/numerics.md): float input, output and states. Its
    forward is one call of a ``torch.ops.qlstm`` op.

    ``forward(input, hx=None) -> (output, (h_n, c_n))`` as nn.LSTM, ``proj_size``
    included (h, ``h_n`` and each direction's output of proj_size; only
    :class:`qlstm.nn.ObservedLSTM` converts such LSTMs). A quint8
    ``input`` (the QuantStub flow) gives quint8 results; a float ``input`` is
    quantized with the observed input qparams (known when :class:`ObservedLSTM`
    observed the module) and gives float results. ``hx`` may be float or quint8.

    Examples::

        >>> # xdoctest: +SKIP
        >>> custom = {torch.nn.LSTM: torch.ao.nn.quantizable.LSTM}
        >>> prepared = torch.ao.quantization.prepare(
        ...     model, prepare_custom_config_dict={"float_to_observed_custom_module_class": custom})
        >>> calibrate(prepared)
        >>> quantized = torch.ao.quantization.convert(prepared, convert_custom_config_dict={
        ...     "observed_to_quantized_custom_module_class":
        ...         {torch.ao.nn.quantizable.LSTM: qlstm.nn.LSTM}})
    """

    _FLOAT_MODULE = torch.ao.nn.quantizable.LSTM
    # TorchScript compiles forward and what it calls; these stay Python-only.
    __jit_unused_properties__ = ["num_directions", "input_qparams", "output_qparams",
                                 "hidden_qparams", "cell_qparams", "packed_layers", "_h_size"]
    _packed: List[Tensor]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        mode: str = "torch",
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"qlstm: {name} must be an int >= 1, got {value!r}")
        if (not isinstance(proj_size, int) or isinstance(proj_size, bool)
                or not 0 <= proj_size < hidden_size):
            raise ValueError(f"qlstm: proj_size must be an int in [0, hidden_size) = [0, "
                             f"{hidden_size}) (0: no projection), got {proj_size!r}")
        # "torch" (torch.ao.nn.quantized.LSTM's numerics) or "accurate" (float cell).
        self.mode = check_mode(mode, proj_size=proj_size)
        self._accurate = self.mode == "accurate"
        self.input_size = input_size
        self.hidden_size = hidden_size
        # nn.LSTM's LSTMP: h = W_hr (o * tanh(c)), of proj_size (0: none).
        self.proj_size = proj_size
        self.num_layers = num_layers
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)  # inference only: kept for nn.LSTM parity
        self.bidirectional = bool(bidirectional)
        # The packed blobs are the only copy of the weights, and the module has
        # no parameters or buffers: state_dict unpacks the blobs (nn.LSTM-layout
        # int8 weights and qparams) and writes the input qparams; load_state_dict
        # checks all of it, then packs, or changes nothing.
        self._packed = []
        # The I/O qparams, read from the blobs once at packing; typed for TorchScript.
        self._has_input_qparams = False
        self._input_qparams = (1.0, 0)
        self._output_qparams = (1.0, 0)
        self._hidden_qparams = (1.0, 0)
        self._cell_qparams = (1.0, 0)
        self._per_channel = True
        self._split_gates = False

    def _layer_fields(self, index: int) -> Dict[str, str]:
        """state_dict key of each UnpackedLayer field of layer-direction `index`."""
        s = self._layer_suffix(index)
        fields = {}
        for kind in ("ih", "hh", "hr") if self.proj_size > 0 else ("ih", "hh"):
            fields[f"weight_{kind}{s}"] = f"w_{kind}"
            fields[f"weight_{kind}{s}_scales"] = f"w_{kind}_scales"
            fields[f"weight_{kind}{s}_zero_points"] = f"w_{kind}_zero_points"
        if self.bias:
            fields[f"bias_ih{s}"], fields[f"bias_hh{s}"] = "b_ih", "b_hh"
        fields[f"qparams_scales{s}"] = "scales"
        fields[f"qparams_zero_points{s}"] = "zero_points"
        return fields

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        # NaN and -1 when the input was not observed (PyTorch's eager flow).
        scale, zero_point = self._input_qparams if self._has_input_qparams else (float("nan"), -1)
        destination[prefix + "input_scale"] = torch.tensor(scale, dtype=torch.float64)
        destination[prefix + "input_zero_point"] = torch.tensor(zero_point, dtype=torch.int64)
        for index, blob in enumerate(self._packed):
            u = ops.unpack_lstm_layer(blob)
            for key, field in self._layer_fields(index).items():
                value = getattr(u, field)
                if field == "scales":
                    value = torch.tensor(value, dtype=torch.float64)
                elif field == "zero_points":
                    value = torch.tensor(value, dtype=torch.int64)
                destination[prefix + key] = value

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        keys = ["input_scale", "input_zero_point"] + [
            key for index in range(self.num_layers * self.num_directions)
            for key in self._layer_fields(index)]
        for key in keys:
            if prefix + key in unexpected_keys:
                unexpected_keys.remove(prefix + key)
        absent = [prefix + key for key in keys if prefix + key not in state_dict]
        if absent:
            missing_keys.extend(absent)
            return
        # Everything is checked and packed before anything changes: a load that
        # fails leaves the module as it was.
        errors = len(error_msgs)
        input_qparams = self._checked_input_qparams(state_dict, prefix, error_msgs)
        layers = []
        for index in range(self.num_layers * self.num_directions):
            packed = self._packed_from_state_dict(state_dict, prefix, index, error_msgs)
            if packed is not None:
                layers.append(packed)
        if len(error_msgs) > errors:
            return
        self._has_input_qparams = input_qparams is not None
        self._input_qparams = input_qparams if input_qparams is not None else (1.0, 0)
        self._set_packed(layers)

    @staticmethod
    def _checked_input_qparams(state_dict, prefix: str, error_msgs: List[str]
                               ) -> Optional[Tuple[float, int]]:
        """The input qparams a state_dict holds (None: not observed), or an error."""
        scale, zero_point = state_dict[prefix + "input_scale"], state_dict[prefix + "input_zero_point"]
        for key, value, floating in (("input_scale", scale, True), ("input_zero_point", zero_point, False)):
            if (not isinstance(value, Tensor) or value.numel() != 1
                    or value.is_floating_point() != floating or value.dtype == torch.bool):
                error_msgs.append(f"qlstm: {prefix}{key} must be a one-element "
                                  f"{'floating-point' if floating else 'integer'} tensor, got "
                                  f"{value.dtype if isinstance(value, Tensor) else type(value).__name__}"
                                  f"{' of shape ' + str(list(value.shape)) if isinstance(value, Tensor) else ''}")
                return None
        s, z = float(scale), int(zero_point)
        if math.isnan(s) and z == -1:
            return None
        s32 = float(torch.tensor(s, dtype=torch.float32))
        if not (math.isfinite(s32) and s32 > 0):
            error_msgs.append(f"qlstm: {prefix}input_scale must be a finite number > 0 (as a float32), "
                              f"or NaN with input_zero_point -1 (input not observed), got {s}")
        if not 0 <= z <= 255:
            error_msgs.append(f"qlstm: {prefix}input_zero_point must be in [0, 255], or -1 with "
                              f"input_scale NaN (input not observed), got {z}")
        return (s, z)

    def _packed_from_state_dict(self, state_dict, prefix: str, index: int, error_msgs: List[str]
                                ) -> Optional[Tensor]:
        """Layer-direction `index` packed from a state_dict, or None after an error."""
        fields = self._layer_fields(index)
        u = {field: state_dict[prefix + key] for key, field in fields.items()}
        s = self._layer_suffix(index)
        h_size = self._h_size
        layer_input = self.input_size if index < self.num_directions else self.num_directions * h_size
        expected = {"ih": (4 * self.hidden_size, layer_input), "hh": (4 * self.hidden_size, h_size)}
        if self.proj_size > 0:
            expected["hr"] = (self.proj_size, self.hidden_size)
        mismatched = False
        for kind, want in expected.items():
            shape = tuple(getattr(u[f"w_{kind}"], "shape", ()))
            if shape != want:
                mismatched = True
                error_msgs.append(f"qlstm: size mismatch for {prefix}weight_{kind}{s}: this module "
                                  f"expects {want}, the state_dict has {shape}")
        if mismatched:
            return None
        try:
            for field in ("scales", "zero_points"):
                if not isinstance(u[field], Tensor):
                    raise TypeError(f"qlstm: {prefix}qparams_{field}{s} must be a tensor, got "
                                    f"{type(u[field]).__name__}")
            if (u["scales"].numel() == 1) != self._accurate:
                other = "torch" if self._accurate else "accurate"
                raise ValueError(
                    f"qlstm: {prefix}qparams_scales{s} holds {u['scales'].numel()} values, a "
                    f"mode '{other}' LSTM's, and this module is mode '{self.mode}': load it into "
                    f"a qlstm.nn.LSTM(..., mode='{other}')")
            return self._pack(
                u["w_ih"], u["w_ih_scales"], u["w_ih_zero_points"], u["w_hh"], u["w_hh_scales"],
                u["w_hh_zero_points"], u.get("b_ih"), u.get("b_hh"), u["scales"].tolist(),
                u["zero_points"].tolist(), u.get("w_hr"), u.get("w_hr_scales"),
                u.get("w_hr_zero_points"), self.mode)
        except (ValueError, TypeError, RuntimeError) as e:
            error_msgs.append(f"layer {s[1:]}: {e}")
            return None

    @staticmethod
    def _pack(w_ih: Tensor, w_ih_scales: Tensor, w_ih_zero_points: Tensor, w_hh: Tensor,
              w_hh_scales: Tensor, w_hh_zero_points: Tensor, b_ih: Optional[Tensor],
              b_hh: Optional[Tensor], scales: List[float], zero_points: List[int],
              w_hr: Optional[Tensor] = None, w_hr_scales: Optional[Tensor] = None,
              w_hr_zero_points: Optional[Tensor] = None, mode: str = "torch") -> Tensor:
        # Per-channel qparams are the only 1-D ones with more than one entry
        # (per tensor: [1]; per gate: [4, 1]).
        return ops.pack_lstm_layer(w_ih, w_ih_scales, w_ih_zero_points, w_hh, w_hh_scales,
                                   w_hh_zero_points, b_ih, b_hh, scales, zero_points,
                                   w_ih_scales.dim() == 1 and w_ih_scales.numel() > 1,
                                   w_hr, w_hr_scales, w_hr_zero_points, mode)

    def _set_packed(self, packed: List[Tensor]) -> None:
        self._packed = packed
        first, last = (ops.unpack_lstm_layer(blob) for blob in (packed[0], packed[-self.num_directions]))

        # Read once here rather than from the blobs on every forward.
        self._output_qparams = _h_qparams(last)
        self._hidden_qparams = _h_qparams(first)
        # The accurate mode's c is float: it has no cell qparams.
        self._cell_qparams = (1.0, 0) if self._accurate else _qparam(first, "cell")
        self._per_channel = first.per_channel
        self._split_gates = first.split_gates

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _h_size(self) -> int:
        """The size of h: proj_size with a projection, else hidden_size."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    def _layer_suffix(self, index: int) -> str:
        return layer_suffix(index, self.num_directions)

    def _get_name(self) -> str:
        return "QuantizedLSTM"

    @classmethod
    def from_float(cls, *args, **kwargs):
        raise NotImplementedError(
            "qlstm: qlstm.nn.LSTM is made from an *observed* LSTM, not a float one. Observe first, "
            "then convert: qlstm.quantize(model, calibration_batches) (or qlstm.prepare, calibrate, "
            "qlstm.convert), or PyTorch's eager flow with torch.ao.nn.quantizable.LSTM as the "
            "observed class and qlstm.nn.LSTM as the quantized one."
        )

    @classmethod
    def from_observed(cls, observed: torch.nn.Module) -> "LSTM":
        """Converts a calibrated ``torch.ao.nn.quantizable.LSTM`` or :class:`qlstm.nn.ObservedLSTM`."""
        if isinstance(observed, ObservedLSTM):
            data = observed.layer_data()
            input_qparams = observed.input_qparams()
        elif isinstance(observed, cls._FLOAT_MODULE):
            data = layer_data_of_quantizable(observed)
            input_qparams = None
        else:
            raise TypeError(
                "qlstm: from_observed expects a torch.ao.nn.quantizable.LSTM or a "
                f"qlstm.nn.ObservedLSTM, got {type(observed).__module__}.{type(observed).__name__}"
            )
        first = data[0]
        module = cls(first.w_ih.shape[1], first.w_ih.shape[0] // 4, observed.num_layers,
                     first.b_ih is not None, observed.batch_first, observed.dropout,
                     observed.bidirectional, 0 if first.w_hr is None else first.w_hr.shape[0],
                     first.mode)
        if input_qparams is not None:
            module._has_input_qparams = True
            module._input_qparams = input_qparams
        module._set_packed([module._pack_observed(layer) for layer in data])
        return module

    def _pack_observed(self, layer: LayerData) -> Tensor:
        ih = quantize_weight(layer.w_ih, layer.ih_weight_observers)
        hh = quantize_weight(layer.w_hh, layer.hh_weight_observers)
        bias = [b.detach().float().contiguous() if self.bias else None for b in (layer.b_ih, layer.b_hh)]
        hr = (None, None, None)
        if layer.w_hr is not None:
            q = quantize_weight(layer.w_hr, layer.hr_weight_observers)
            hr = (q.int8, q.scales, q.zero_points)
        return self._pack(ih.int8, ih.scales, ih.zero_points, hh.int8, hh.scales, hh.zero_points,
                          *bias, [s for s, _ in layer.qparams], [z for _, z in layer.qparams], *hr,
                          layer.mode)

    @property
    def packed_layers(self) -> Tuple[Tensor, ...]:
        """The packed layer-directions (``_l0``, ``_l0_reverse``, ``_l1``, ...) as
        :func:`qlstm.ops.quantized_lstm` takes them; read them, do not write them."""
        return tuple(self._packed)

    def layer_qparams(self, layer: int = 0, reverse: bool = False) -> Dict[str, Tuple[float, int]]:
        """The intermediate qparams of one layer-direction, by name
        (:func:`qlstm.ops.cell_qparam_names`): ``hidden`` (``projection`` with a
        projection) and ``cell`` are what its h and c come in."""
        u = ops.unpack_lstm_layer(self._packed[self._index(layer, reverse)])
        return {name: (s, z) for name, s, z in zip(u.qparam_names, u.scales, u.zero_points)}

    def _index(self, layer: int, reverse: bool) -> int:
        if not 0 <= layer < self.num_layers or (reverse and not self.bidirectional):
            raise IndexError(f"qlstm: this LSTM has no layer {layer}{' reverse' if reverse else ''} "
                             f"(num_layers={self.num_layers}, bidirectional={self.bidirectional})")
        return layer * self.num_directions + int(reverse)

    def __getattr__(self, name: str):
        # nn.LSTM's weight names, read-only: the dequantized int8 weights and the
        # float biases, computed anew at each access (writing them changes nothing).
        match = _WEIGHT_NAME.fullmatch(name)
        if match is None or not self.__dict__.get("_packed"):
            return super().__getattr__(name)
        kind, matrix, layer, reverse = match.groups()
        if ((kind == "bias" and (not self.bias or matrix == "hr")) or int(layer) >= self.num_layers
                or (matrix == "hr" and self.proj_size == 0)
                or (reverse is not None and not self.bidirectional)):
            return super().__getattr__(name)  # nn.LSTM has no such attribute either
        u = ops.unpack_lstm_layer(self._packed[self._index(int(layer), reverse is not None)])
        if kind == "bias":
            return getattr(u, f"b_{matrix}").clone()
        w, scales, zero_points = (getattr(u, f"w_{matrix}{f}") for f in ("", "_scales", "_zero_points"))
        rows = w.shape[0]
        return ((w.float() - _per_row(zero_points, rows).float()[:, None])
                * _per_row(scales, rows).float()[:, None])

    @property
    def input_qparams(self) -> Optional[Tuple[float, int]]:
        """Observed (scale, zero_point) of float inputs, or None when not observed."""
        return self._input_qparams if self._has_input_qparams else None

    @property
    def output_qparams(self) -> Tuple[float, int]:
        """(scale, zero_point) of the output: the last layer's forward h (its
        ``projection`` qparams with a projection, else ``hidden``)."""
        return self._output_qparams

    @property
    def hidden_qparams(self) -> Tuple[float, int]:
        """(scale, zero_point) of h_n: layer 0's forward h."""
        return self._hidden_qparams

    @property
    def cell_qparams(self) -> Optional[Tuple[float, int]]:
        """(scale, zero_point) of c_n: layer 0's forward cell state; None in the
        accurate mode, whose c is float32."""
        return None if self._accurate else self._cell_qparams

    def _weights_repr(self) -> str:
        """The repr's part that says how the packed layers were quantized."""
        s = f", weights={'per-channel' if self._per_channel else 'per-tensor'} int8"
        s += ", mode='accurate'" if self._accurate else ""
        return s + (", split_gates=True" if self._split_gates else "")

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        s += f", bias={self.bias}, batch_first={self.batch_first}, bidirectional={self.bidirectional}"
        if self.proj_size > 0:
            s += f", proj_size={self.proj_size}"
        if self._packed:
            s += self._weights_repr()
            s += f", input_qparams={self.input_qparams}"
            if self._accurate:  # float output and states; h enters the products in these
                return s + f", h_qparams={self.hidden_qparams}"
            s += f", output_qparams={self.output_qparams}"
            s += f", h_n_qparams={self.hidden_qparams}, c_n_qparams={self.cell_qparams}"
        return s

    @torch.jit.unused
    def _check_python_types(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]]) -> None:
        # In Python any object can arrive; TorchScript checks these types itself.
        if not isinstance(input, Tensor):
            raise TypeError(f"qlstm: input must be a tensor, got {type(input).__name__}")
        if hx is not None:
            if not isinstance(hx, (tuple, list)):
                raise TypeError(f"qlstm: hx must be a tuple (h0, c0) of two tensors, got "
                                f"{type(hx).__name__}")
            if len(hx) != 2:
                raise TypeError(f"qlstm: hx must be a tuple (h0, c0) of two tensors, got a "
                                f"{type(hx).__name__} of {len(hx)}")
            for t, name in ((hx[0], "h0"), (hx[1], "c0")):
                if not isinstance(t, Tensor):
                    raise TypeError(f"qlstm: {name} must be a tensor, got {type(t).__name__}")

    @torch.jit.unused
    def _plain_float_call(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]]
                          ) -> Optional[Tuple[Tensor, Tuple[Tensor, Tensor]]]:
        """forward's result when it is one quantized_lstm_float call on the
        arguments as they are, else None: a float32 [T, B, I] tensor (not a
        subclass), observed input qparams, and no states or a tuple of two 3-d
        float32 tensors, outside a torch function mode and a JIT trace. Anything
        else takes forward's checked path."""
        return self._plain_op_call(input, hx, False)

    @torch.jit.unused
    def _plain_op_call(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]], one_step: bool):
        # qlstm._C.plain_float_lstm with this module's op arguments; one_step: LSTMCell's [B, *] step.
        if not self._has_input_qparams:
            return None
        scale, zero_point = self._input_qparams
        return _C.plain_float_lstm(input, hx, scale, zero_point, self._packed, self.input_size,
                                   self.hidden_size, self.num_layers, self.bidirectional,
                                   self.batch_first, self.proj_size, one_step)

    def _check_accurate_types(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]]) -> None:
        # The accurate mode's op takes float32 only: a quint8 input or state has no place in it.
        if input.is_quantized or not input.is_floating_point():
            raise TypeError("qlstm: an LSTM in mode 'accurate' takes a floating-point input, got "
                            + _dtype_name(input.dtype))
        if hx is not None:
            for t, name in ((hx[0], "h0"), (hx[1], "c0")):
                if t.is_quantized or not t.is_floating_point():
                    raise TypeError("qlstm: an LSTM in mode 'accurate' takes floating-point "
                                    "states, got " + name + " of " + _dtype_name(t.dtype))

    def _as_uint8(self, t: Tensor, name: str, has_float_qparams: bool,
                  float_qparams: Tuple[float, int]) -> Tuple[Tensor, float, int, bool]:
        if t.is_quantized:
            if t.dtype != torch.quint8 or not _per_tensor(t):
                raise TypeError("qlstm: a quantized " + name + " must be per-tensor torch.quint8, "
                                "got " + _dtype_name(t.dtype) + " with " + _qscheme_name(t))
            return t.int_repr(), t.q_scale(), t.q_zero_point(), True
        if not t.is_floating_point():
            raise TypeError("qlstm: " + name + " must be a floating-point or quint8 tensor, got "
                            + _dtype_name(t.dtype))
        if not has_float_qparams:
            raise ValueError(
                "qlstm: a float " + name + " needs observed input qparams, and this module was "
                "converted from torch.ao.nn.quantizable.LSTM, which does not observe its input; "
                "pass a quint8 tensor (QuantStub) or convert from qlstm.nn.ObservedLSTM (qlstm.prepare)")
        scale, zero_point = float_qparams
        return torch.ops.qlstm.quantize(t.float(), scale, zero_point), scale, zero_point, False

    def _float_interface(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]]) -> bool:
        # Floating-point input and state with observed input qparams: one op call.
        if not (input.is_floating_point() and self._has_input_qparams):
            return False
        return hx is None or (hx[0].is_floating_point() and hx[1].is_floating_point())

    def _check_features(self, x: Tensor) -> None:
        # Checked here too, so that a compiled or exported module stops at it
        # (the op's fake kernel cannot read the input size from the blobs).
        if not torch.jit.is_scripting():
            if torch.compiler.is_compiling():
                self._check_features_compiling(x)
                return
        if x.dim() != 2 and x.dim() != 3:
            raise ValueError("qlstm: input must be 2-d (unbatched) or 3-d, got shape "
                             + str(list(x.shape)))
        if x.size(-1) != self.input_size:
            raise ValueError("qlstm: input must have " + str(self.input_size)
                             + " features (input_size), got " + str(x.size(-1)))

    @torch.jit.unused
    def _check_features_compiling(self, x: Tensor) -> None:
        # A size may be symbolic under torch.compile: checked when the program runs.
        features = self.input_size
        torch._check(x.dim() == 2 or x.dim() == 3,
                     lambda: "qlstm: input must be 2-d (unbatched) or 3-d")
        torch._check(x.size(-1) == features,
                     lambda: f"qlstm: input must have {features} features (input_size)")

    def _check_state(self, t: Tensor, name: str, batched: bool) -> None:
        if t.dim() != (3 if batched else 2):
            raise ValueError("qlstm: " + name + " must be " + str(3 if batched else 2)
                             + "-d for a " + ("batched" if batched else "unbatched")
                             + " input, got shape " + str(list(t.shape)))

    def _float_op(self, x: Tensor, scale: float, zero_point: int, h0: Optional[Tensor],
                  c0: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        if not torch.jit.is_scripting():
            if torch.compiler.is_compiling() and torch.is_grad_enabled():
                # AOTAutograd does not see the op's C++ autograd kernel: this
                # function gives the compiled program the backward that raises.
                return _InferenceOnly.apply(x, h0, c0, scale, zero_point, self._packed,
                                            self.hidden_size, self.num_layers, self.bidirectional,
                                            self.batch_first, self.proj_size)
        return torch.ops.qlstm.quantized_lstm_float(x, scale, zero_point, h0, c0, self._packed,
                                                    self.hidden_size, self.num_layers,
                                                    self.bidirectional, self.batch_first,
                                                    self.proj_size)

    def _forward_float_state(self, input: Tensor, x_scale: float, x_zero_point: int,
                             hx: Optional[Tuple[Tensor, Tensor]]
                             ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        """One quantized_lstm_float call: float states in and out, each layer in
        its own qparams (exact when fed back). A float input gives a float
        output in its dtype; a quint8 one (its bytes) gives quint8."""
        self._check_features(input)
        quantized = input.is_quantized
        batched = input.dim() == 3
        x = input.int_repr() if quantized else input.float()
        if not batched:
            x = x.unsqueeze(0 if self.batch_first else 1)
        h0: Optional[Tensor] = None
        c0: Optional[Tensor] = None
        if hx is not None:
            self._check_state(hx[0], "h0", batched)
            self._check_state(hx[1], "c0", batched)
            h0, c0 = hx[0].float(), hx[1].float()
            if not batched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
        y, h_n, c_n = self._float_op(x, x_scale, x_zero_point, h0, c0)
        if not batched:
            y = y.squeeze(0 if self.batch_first else 1)
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        if quantized:
            scale, zero_point = self._output_qparams
            y = torch._make_per_tensor_quantized_tensor(y, scale, zero_point)
        elif input.dtype != torch.float32:
            y = y.to(input.dtype)
        state_dtype = torch.float32 if quantized else input.dtype
        if hx is not None:
            state_dtype = hx[0].dtype
        if state_dtype != torch.float32:
            h_n, c_n = h_n.to(state_dtype), c_n.to(state_dtype)
        return y, (h_n, c_n)

    def _result(self, t: Tensor, qparams: Tuple[float, int], quantized: bool,
                dtype: torch.dtype) -> Tensor:
        scale, zero_point = qparams
        if quantized:
            return torch._make_per_tensor_quantized_tensor(t, scale, zero_point)
        return torch.ops.qlstm.dequantize(t, scale, zero_point).to(dtype)

    @torch.jit.unused
    def _forward_packed(self, input: PackedSequence, hx: Optional[Tuple[Tensor, Tensor]]
                        ) -> Tuple[PackedSequence, Tuple[Tensor, Tensor]]:
        """A PackedSequence in, one quantized_lstm_packed call, a PackedSequence out;
        h_n and c_n at each sequence's own last step, in the caller's batch order."""
        data, batch_sizes, sorted_indices, unsorted_indices = input
        if not data.is_floating_point():
            raise TypeError(f"qlstm: a PackedSequence's data must be floating-point, got {data.dtype}")
        if not self._has_input_qparams:
            raise ValueError(
                "qlstm: a PackedSequence needs observed input qparams, and this module was converted "
                "from torch.ao.nn.quantizable.LSTM, which does not observe its input; convert from "
                "qlstm.nn.ObservedLSTM (qlstm.prepare)")
        if data.dim() != 2 or data.size(1) != self.input_size:
            raise ValueError(f"qlstm: a PackedSequence's data must have {self.input_size} features "
                             f"(input_size), got shape {list(data.shape)}")
        h0: Optional[Tensor] = None
        c0: Optional[Tensor] = None
        if hx is not None:
            self._check_python_types(data, hx)
            for t, name in ((hx[0], "h0"), (hx[1], "c0")):
                if not t.is_floating_point() or t.dim() != 3:
                    raise ValueError(f"qlstm: {name} must be a 3-d floating-point tensor with a "
                                     f"PackedSequence, got {t.dtype} of shape {list(t.shape)}")
            h0, c0 = hx[0].float(), hx[1].float()
            if sorted_indices is not None:  # the op takes states in the sorted order
                h0, c0 = h0.index_select(1, sorted_indices), c0.index_select(1, sorted_indices)
        scale, zero_point = self._input_qparams
        y, h_n, c_n = torch.ops.qlstm.quantized_lstm_packed(
            data.float(), batch_sizes, scale, zero_point, h0, c0, self._packed, self.hidden_size,
            self.num_layers, self.bidirectional, self.proj_size)
        if unsorted_indices is not None:
            h_n, c_n = h_n.index_select(1, unsorted_indices), c_n.index_select(1, unsorted_indices)
        state_dtype = hx[0].dtype if hx is not None else data.dtype
        return (PackedSequence(y.to(data.dtype), batch_sizes, sorted_indices, unsorted_indices),
                (h_n.to(state_dtype), c_n.to(state_dtype)))

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        if len(self._packed) == 0:
            raise RuntimeError("qlstm: this LSTM holds no weights; build it with LSTM.from_observed "
                               "or load a state_dict")
        if not torch.jit.is_scripting():
            if not torch.compiler.is_compiling():
                # Streaming's common call, with the fewest Python steps before the op.
                plain = self._plain_float_call(input, hx)
                if plain is not None:
                    return plain
            if isinstance(input, PackedSequence):
                return self._forward_packed(input, hx)
            self._check_python_types(input, hx)
        if self._accurate:
            self._check_accurate_types(input, hx)
        if self._float_interface(input, hx):
            scale, zero_point = self._input_qparams
            if (input.dtype == torch.float32 and input.dim() == 3 and input.size(2) == self.input_size
                    and (hx is None or (hx[0].dtype == torch.float32 and hx[0].dim() == 3
                                        and hx[1].dtype == torch.float32 and hx[1].dim() == 3))):
                # The common case in one op call, with nothing to convert (the
                # per-call cost of streaming).
                h0f: Optional[Tensor] = None
                c0f: Optional[Tensor] = None
                if hx is not None:
                    h0f, c0f = hx[0], hx[1]
                y, h_n, c_n = self._float_op(input, scale, zero_point, h0f, c0f)
                return y, (h_n, c_n)
            return self._forward_float_state(input, scale, zero_point, hx)
        x, x_scale, x_zp, quantized = self._as_uint8(input, "input", self._has_input_qparams,
                                                     self._input_qparams)
        if quantized and hx is not None and hx[0].is_floating_point() and hx[1].is_floating_point():
            # quint8 in, float states: the exact way to stream the quint8 interface.
            return self._forward_float_state(input, x_scale, x_zp, hx)
        self._check_features(x)
        batched = x.dim() == 3
        if not batched:
            x = x.unsqueeze(0 if self.batch_first else 1)
        h0: Optional[Tensor] = None
        c0: Optional[Tensor] = None
        h0_s, h0_z, c0_s, c0_z = 1.0, 0, 1.0, 0
        if hx is not None:
            states: List[Tuple[Tensor, float, int]] = []
            for t, name, qp in ((hx[0], "h0", self._hidden_qparams), (hx[1], "c0", self._cell_qparams)):
                s, s_scale, s_zp, _ = self._as_uint8(t, name, True, qp)
                self._check_state(s, name, batched)
                states.append((s if batched else s.unsqueeze(1), s_scale, s_zp))
            h0, h0_s, h0_z = states[0]
            c0, c0_s, c0_z = states[1]
        y, h_n, c_n = torch.ops.qlstm.quantized_lstm(
            x, x_scale, x_zp, h0, h0_s, h0_z, c0, c0_s, c0_z, self._packed, self.hidden_size,
            self.num_layers, self.bidirectional, self.batch_first, self.proj_size)
        if not batched:
            y = y.squeeze(0 if self.batch_first else 1)
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        dtype = input.dtype if input.is_floating_point() else torch.float32
        return (self._result(y, self._output_qparams, quantized, dtype),
                (self._result(h_n, self._hidden_qparams, quantized, dtype),
                 self._result(c_n, self._cell_qparams, quantized, dtype)))


class _InferenceOnly(torch.autograd.Function):
    """quantized_lstm_float under torch.compile with grad mode on: its backward
    calls qlstm::no_backward, which raises when the compiled backward runs."""

    @staticmethod
    def forward(ctx, x, h0, c0, scale, zero_point, packed, hidden_size, num_layers, bidirectional,
                batch_first, proj_size):
        ctx.save_for_backward(*(t for t in (x, h0, c0) if t is not None))
        ctx.present = (True, h0 is not None, c0 is not None)
        return torch.ops.qlstm.quantized_lstm_float(x, scale, zero_point, h0, c0, packed, hidden_size,
                                                    num_layers, bidirectional, batch_first, proj_size)

    @staticmethod
    def backward(ctx, grad_y, grad_h, grad_c):
        saved = iter(ctx.saved_tensors)
        grads = [torch.ops.qlstm.no_backward(grad_y, next(saved)) if present else None
                 for present in ctx.present]
        return (*grads, None, None, None, None, None, None, None, None)


def _per_tensor(t: Tensor) -> bool:
    if torch.jit.is_scripting():
        return str(t.qscheme()) == "0"  # TorchScript gives a QScheme as its number
    return t.qscheme() == torch.per_tensor_affine


def _qscheme_name(t: Tensor) -> str:
    if torch.jit.is_scripting():
        number = str(t.qscheme())
        names = ["torch.per_tensor_affine", "torch.per_channel_affine",
                 "torch.per_tensor_symmetric", "torch.per_channel_symmetric",
                 "torch.per_channel_affine_float_qparams"]
        return names[int(number)] if int(number) < len(names) else "qscheme " + number
    return str(t.qscheme())


def _dtype_name(dtype: torch.dtype) -> str:
    """The dtype as Python prints it; TorchScript prints a dtype as its number."""
    if not torch.jit.is_scripting():
        return str(dtype)
    # The dtypes the module rejects (floating ones are accepted).
    dtypes = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool,
              torch.quint8, torch.qint8, torch.qint32, torch.complex64, torch.complex128]
    names = ["torch.uint8", "torch.int8", "torch.int16", "torch.int32", "torch.int64", "torch.bool",
             "torch.quint8", "torch.qint8", "torch.qint32", "torch.complex64", "torch.complex128"]
    for d, name in zip(dtypes, names):
        if d == dtype:
            return name
    return "dtype " + str(dtype)

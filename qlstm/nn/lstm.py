"""The quantized LSTM module: one call into the fused op per forward."""

from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .. import ops
from ..ops import CELL_QPARAM_NAMES
from ._layer_data import LayerData, layer_suffix, quantize_weight
from .observed import ObservedLSTM, layer_data_of_quantizable

_HIDDEN = CELL_QPARAM_NAMES.index("hidden")
_CELL = CELL_QPARAM_NAMES.index("cell")


class LSTM(torch.nn.Module):
    r"""A quantized long short-term memory (LSTM) with nn.LSTM's interface.

    Built from an observed LSTM by :meth:`from_observed`, either PyTorch's
    ``torch.ao.nn.quantizable.LSTM`` (PyTorch's eager flow) or
    :class:`qlstm.nn.ObservedLSTM` (:func:`qlstm.prepare` / :func:`qlstm.convert`).
    Its numerics are those of ``torch.ao.nn.quantized.LSTM``; its forward is one
    call of ``torch.ops.qlstm.quantized_lstm``.

    ``forward(input, hx=None) -> (output, (h_n, c_n))`` as nn.LSTM. A quint8
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
                                 "hidden_qparams", "cell_qparams"]
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
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"qlstm: {name} must be an int >= 1, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)  # inference only: kept for nn.LSTM parity
        self.bidirectional = bool(bidirectional)
        self.register_buffer("input_scale", torch.tensor(float("nan"), dtype=torch.float64))
        self.register_buffer("input_zero_point", torch.tensor(-1, dtype=torch.int64))
        # The packed blobs are the only copy of the weights: state_dict unpacks
        # them (nn.LSTM-layout int8 weights and qparams) and load_state_dict packs.
        self._packed = []
        # The I/O qparams, read from the blobs once at packing; typed for TorchScript.
        self._has_input_qparams = False
        self._input_qparams = (1.0, 0)
        self._output_qparams = (1.0, 0)
        self._hidden_qparams = (1.0, 0)
        self._cell_qparams = (1.0, 0)
        self._per_channel = True

    def _layer_fields(self, index: int) -> Dict[str, str]:
        """state_dict key of each UnpackedLayer field of layer-direction `index`."""
        s = self._layer_suffix(index)
        fields = {}
        for kind in ("ih", "hh"):
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
        layers = []
        for index in range(self.num_layers * self.num_directions):
            fields = self._layer_fields(index)
            for key in fields:
                if prefix + key in unexpected_keys:
                    unexpected_keys.remove(prefix + key)
            absent = [prefix + k for k in fields if prefix + k not in state_dict]
            if absent:
                missing_keys.extend(absent)
                continue
            u = {field: state_dict[prefix + key] for key, field in fields.items()}
            s = self._layer_suffix(index)
            layer_input = self.input_size if index < self.num_directions else self.num_directions * self.hidden_size
            mismatched = False
            for kind, cols in (("ih", layer_input), ("hh", self.hidden_size)):
                shape = tuple(getattr(u[f"w_{kind}"], "shape", ()))
                if shape != (4 * self.hidden_size, cols):
                    mismatched = True
                    error_msgs.append(f"qlstm: size mismatch for {prefix}weight_{kind}{s}: this module "
                                      f"expects {(4 * self.hidden_size, cols)}, the state_dict has {shape}")
            if mismatched:
                continue
            try:
                layers.append(self._pack(
                    u["w_ih"], u["w_ih_scales"], u["w_ih_zero_points"], u["w_hh"], u["w_hh_scales"],
                    u["w_hh_zero_points"], u.get("b_ih"), u.get("b_hh"), u["scales"].tolist(),
                    u["zero_points"].tolist()))
            except (ValueError, TypeError, RuntimeError) as e:
                error_msgs.append(f"layer {s[1:]}: {e}")
        if len(layers) == self.num_layers * self.num_directions:
            self._set_packed(layers)

    @staticmethod
    def _pack(w_ih: Tensor, w_ih_scales: Tensor, w_ih_zero_points: Tensor, w_hh: Tensor,
              w_hh_scales: Tensor, w_hh_zero_points: Tensor, b_ih: Optional[Tensor],
              b_hh: Optional[Tensor], scales: List[float], zero_points: List[int]) -> Tensor:
        return ops.pack_lstm_layer(w_ih, w_ih_scales, w_ih_zero_points, w_hh, w_hh_scales,
                                   w_hh_zero_points, b_ih, b_hh, scales, zero_points,
                                   w_ih_scales.numel() > 1)

    def _set_packed(self, packed: List[Tensor]) -> None:
        self._packed = packed
        first, last = (ops.unpack_lstm_layer(blob) for blob in (packed[0], packed[-self.num_directions]))

        def pick(u, which):
            return (u.scales[which], u.zero_points[which])

        # Read once here rather than from the blobs on every forward.
        self._has_input_qparams = not bool(torch.isnan(self.input_scale))
        if self._has_input_qparams:
            self._input_qparams = (float(self.input_scale), int(self.input_zero_point))
        self._output_qparams = pick(last, _HIDDEN)
        self._hidden_qparams = pick(first, _HIDDEN)
        self._cell_qparams = pick(first, _CELL)
        self._per_channel = first.per_channel

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

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
        module = cls(first.w_ih.shape[1], first.w_hh.shape[1], observed.num_layers,
                     first.b_ih is not None, observed.batch_first, observed.dropout,
                     observed.bidirectional)
        if input_qparams is not None:
            module.input_scale.fill_(input_qparams[0])
            module.input_zero_point.fill_(input_qparams[1])
        module._set_packed([module._pack_observed(layer) for layer in data])
        return module

    def _pack_observed(self, layer: LayerData) -> Tensor:
        ih = quantize_weight(layer.w_ih, layer.ih_weight_observer)
        hh = quantize_weight(layer.w_hh, layer.hh_weight_observer)
        bias = [b.detach().float().contiguous() if self.bias else None for b in (layer.b_ih, layer.b_hh)]
        return self._pack(ih.int8, ih.scales, ih.zero_points, hh.int8, hh.scales, hh.zero_points,
                          *bias, [s for s, _ in layer.qparams], [z for _, z in layer.qparams])

    @property
    def input_qparams(self) -> Optional[Tuple[float, int]]:
        """Observed (scale, zero_point) of float inputs, or None when not observed."""
        return self._input_qparams if self._has_input_qparams else None

    @property
    def output_qparams(self) -> Tuple[float, int]:
        """(scale, zero_point) of the output: the last layer's forward hidden state."""
        return self._output_qparams

    @property
    def hidden_qparams(self) -> Tuple[float, int]:
        """(scale, zero_point) of h_n: layer 0's forward hidden state."""
        return self._hidden_qparams

    @property
    def cell_qparams(self) -> Tuple[float, int]:
        """(scale, zero_point) of c_n: layer 0's forward cell state."""
        return self._cell_qparams

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        s += f", bias={self.bias}, batch_first={self.batch_first}, bidirectional={self.bidirectional}"
        if self._packed:
            s += f", weights={'per-channel' if self._per_channel else 'per-tensor'} int8"
            s += f", input_qparams={self.input_qparams}, output_qparams={self.output_qparams}"
            s += f", h_n_qparams={self.hidden_qparams}, c_n_qparams={self.cell_qparams}"
        return s

    @torch.jit.unused
    def _check_python_types(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]]) -> None:
        # In Python any object can arrive; TorchScript checks these types itself.
        if not isinstance(input, Tensor):
            raise TypeError(f"qlstm: input must be a tensor, got {type(input).__name__}")
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"qlstm: hx must be a tuple (h0, c0), got {type(hx).__name__}")
            for t, name in ((hx[0], "h0"), (hx[1], "c0")):
                if not isinstance(t, Tensor):
                    raise TypeError(f"qlstm: {name} must be a tensor, got {type(t).__name__}")

    @torch.jit.unused
    def _check_per_tensor(self, t: Tensor, name: str) -> None:
        # TorchScript cannot compare qschemes; there q_scale() rejects a per-channel tensor.
        if t.qscheme() != torch.per_tensor_affine:
            raise TypeError(f"qlstm: a quantized {name} must be per-tensor torch.quint8, got "
                            f"{t.dtype} with {t.qscheme()}")

    def _as_uint8(self, t: Tensor, name: str, has_float_qparams: bool,
                  float_qparams: Tuple[float, int]) -> Tuple[Tensor, float, int, bool]:
        if t.is_quantized:
            if t.dtype != torch.quint8:
                raise TypeError("qlstm: a quantized " + name + " must be per-tensor torch.quint8, "
                                "got " + str(t.dtype))
            if not torch.jit.is_scripting():
                self._check_per_tensor(t, name)
            return t.int_repr(), t.q_scale(), t.q_zero_point(), True
        if not t.is_floating_point():
            raise TypeError("qlstm: " + name + " must be a floating-point or quint8 tensor, got "
                            + str(t.dtype))
        if not has_float_qparams:
            raise ValueError(
                "qlstm: a float " + name + " needs observed input qparams, and this module was "
                "converted from torch.ao.nn.quantizable.LSTM, which does not observe its input; "
                "pass a quint8 tensor (QuantStub) or convert from qlstm.nn.ObservedLSTM (qlstm.prepare)")
        scale, zero_point = float_qparams
        return torch.ops.qlstm.quantize(t.float(), scale, zero_point), scale, zero_point, False

    def _float_interface(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]]) -> bool:
        # float32 input and state with observed input qparams: one op call.
        if not (input.dtype == torch.float32 and input.dim() == 3 and self._has_input_qparams):
            return False
        if hx is None:
            return True
        h0, c0 = hx
        return h0.dtype == torch.float32 and h0.dim() == 3 and c0.dtype == torch.float32 and c0.dim() == 3

    def _result(self, t: Tensor, qparams: Tuple[float, int], quantized: bool) -> Tensor:
        scale, zero_point = qparams
        if quantized:
            return torch._make_per_tensor_quantized_tensor(t, scale, zero_point)
        return torch.ops.qlstm.dequantize(t, scale, zero_point)

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        if not torch.jit.is_scripting():
            self._check_python_types(input, hx)
        if len(self._packed) == 0:
            raise RuntimeError("qlstm: this LSTM holds no weights; build it with LSTM.from_observed "
                               "or load a state_dict")
        if self._float_interface(input, hx):
            scale, zero_point = self._input_qparams
            h0f: Optional[Tensor] = None
            c0f: Optional[Tensor] = None
            if hx is not None:
                h0f, c0f = hx
            y, h_n, c_n = torch.ops.qlstm.quantized_lstm_float(
                input, scale, zero_point, h0f, c0f, self._packed, self.hidden_size,
                self.num_layers, self.bidirectional, self.batch_first)
            return y, (h_n, c_n)
        x, x_scale, x_zp, quantized = self._as_uint8(input, "input", self._has_input_qparams,
                                                     self._input_qparams)
        if x.dim() != 2 and x.dim() != 3:
            raise ValueError("qlstm: input must be 2-d (unbatched) or 3-d, got shape "
                             + str(list(x.shape)))
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
                if s.dim() != (3 if batched else 2):
                    raise ValueError("qlstm: " + name + " must be " + str(3 if batched else 2)
                                     + "-d for a " + ("batched" if batched else "unbatched")
                                     + " input, got shape " + str(list(s.shape)))
                states.append((s if batched else s.unsqueeze(1), s_scale, s_zp))
            h0, h0_s, h0_z = states[0]
            c0, c0_s, c0_z = states[1]
        y, h_n, c_n = torch.ops.qlstm.quantized_lstm(
            x, x_scale, x_zp, h0, h0_s, h0_z, c0, c0_s, c0_z, self._packed, self.hidden_size,
            self.num_layers, self.bidirectional, self.batch_first)
        if not batched:
            y = y.squeeze(0 if self.batch_first else 1)
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return (self._result(y, self._output_qparams, quantized),
                (self._result(h_n, self._hidden_qparams, quantized),
                 self._result(c_n, self._cell_qparams, quantized)))

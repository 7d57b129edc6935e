"""The quantized LSTM cell: one step per call, for streaming."""

from typing import Optional, Tuple

import torch
from torch import Tensor

from .lstm import LSTM
from .observed import ObservedLSTMCell


class LSTMCell(LSTM):
    r"""A quantized ``nn.LSTMCell``: one step of one layer per call.

    Built by :func:`qlstm.prepare` / :func:`qlstm.convert` / :func:`qlstm.quantize`
    from an ``nn.LSTMCell`` (through :class:`qlstm.nn.ObservedLSTMCell`), with the
    numerics of :class:`qlstm.nn.LSTM` (``mode="torch"``, or ``"accurate"``: float
    input and states only, the float c carried from step to step).

    ``forward(input, hx=None) -> (h_1, c_1)`` as ``nn.LSTMCell``: ``input`` is
    ``[B, input_size]`` or unbatched ``[input_size]``. A float input (any
    floating dtype) with float or no state gives float ``(h_1, c_1)`` in its
    dtype, in one ``quantized_lstm_float`` call; fed back, they continue the
    sequence exactly (the bytes of :class:`qlstm.nn.LSTM` over the whole
    sequence). A quint8 input with quint8 or no state runs
    ``quantized_lstm_cell`` and gives quint8 ``(h_1, c_1)`` in the cell's hidden
    and cell qparams; with a float state it gives float states.

    Its ``state_dict`` uses ``nn.LSTMCell``'s names (``weight_ih``, ``bias_hh``, ...)
    with int8 weights and qparams, like :class:`qlstm.nn.LSTM`'s.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 mode: str = "torch") -> None:
        super().__init__(input_size, hidden_size, 1, bias, False, 0.0, False, 0, mode)

    def _layer_suffix(self, index: int) -> str:
        return ""

    def _get_name(self) -> str:
        return "QuantizedLSTMCell"

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, bias={self.bias}"
        if self._packed:
            s += self._weights_repr()
            s += f", input_qparams={self.input_qparams}, h_qparams={self.hidden_qparams}"
            s += f", c_qparams={self.cell_qparams}"
        return s

    @classmethod
    def from_observed(cls, observed: torch.nn.Module) -> "LSTMCell":
        """Converts a calibrated :class:`qlstm.nn.ObservedLSTMCell`."""
        if not isinstance(observed, ObservedLSTMCell):
            raise TypeError("qlstm: LSTMCell.from_observed expects a qlstm.nn.ObservedLSTMCell, got "
                            f"{type(observed).__module__}.{type(observed).__name__}")
        data = observed.layer_data()
        module = cls(observed.input_size, observed.hidden_size, observed.bias, observed.mode)
        module._has_input_qparams = True
        module._input_qparams = observed.input_qparams()
        module._set_packed([module._pack_observed(data[0])])
        return module

    def __getattr__(self, name: str):
        # nn.LSTMCell's weight names, read-only (see qlstm.nn.LSTM).
        if name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") and self.__dict__.get("_packed"):
            return super().__getattr__(name + "_l0")
        return super().__getattr__(name)

    def _check_cell_input(self, x: Tensor) -> None:
        if x.dim() != 1 and x.dim() != 2:
            raise ValueError("qlstm: input must be 1-d (unbatched) or 2-d, got shape "
                             + str(list(x.shape)))
        if not torch.jit.is_scripting():
            if torch.compiler.is_compiling():
                self._check_features_compiling(x)
                return
        if x.size(-1) != self.input_size:
            raise ValueError("qlstm: input must have " + str(self.input_size)
                             + " features (input_size), got " + str(x.size(-1)))

    def _check_cell_state(self, t: Tensor, name: str, batched: bool) -> None:
        if t.dim() != (2 if batched else 1):
            raise ValueError("qlstm: " + name + " must be " + str(2 if batched else 1)
                             + "-d for a " + ("batched" if batched else "unbatched")
                             + " input, got shape " + str(list(t.shape)))

    @torch.jit.unused
    def _plain_float_step(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]]
                          ) -> Optional[Tuple[Tensor, Tensor]]:
        """forward's (h, c) when it is one quantized_lstm_float step on a float32
        [B, I] tensor and no states or two 2-d float32 ones, as LSTM's
        _plain_float_call takes a sequence; else None."""
        return self._plain_op_call(input, hx, True)

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tuple[Tensor, Tensor]:
        if not torch.jit.is_scripting():
            if len(self._packed) != 0 and not torch.compiler.is_compiling():
                # Streaming's common step, with the fewest Python steps before the op.
                plain = self._plain_float_step(input, hx)
                if plain is not None:
                    return plain
            self._check_python_types(input, hx)
        if len(self._packed) == 0:
            raise RuntimeError("qlstm: this LSTMCell holds no weights; build it with "
                               "LSTMCell.from_observed or load a state_dict")
        if self._accurate:
            self._check_accurate_types(input, hx)
        if (input.dtype == torch.float32 and input.dim() == 2 and input.size(1) == self.input_size
                and self._has_input_qparams
                and (hx is None or (hx[0].dtype == torch.float32 and hx[0].dim() == 2
                                    and hx[1].dtype == torch.float32 and hx[1].dim() == 2))):
            # The common streaming step in one op call: a one-step, one-layer sequence.
            h0: Optional[Tensor] = None
            c0: Optional[Tensor] = None
            if hx is not None:
                h0, c0 = hx[0].unsqueeze(0), hx[1].unsqueeze(0)
            scale, zero_point = self._input_qparams
            _, h_n, c_n = self._float_op(input.unsqueeze(0), scale, zero_point, h0, c0)
            return h_n.squeeze(0), c_n.squeeze(0)
        self._check_cell_input(input)
        batched = input.dim() == 2
        if hx is not None:
            self._check_cell_state(hx[0], "h0", batched)
            self._check_cell_state(hx[1], "c0", batched)
        float_state = hx is not None and hx[0].is_floating_point() and hx[1].is_floating_point()
        if self._float_interface(input, hx) or (input.is_quantized and float_state):
            # One timestep of a one-layer LSTM with float states: [1, B, ...].
            seq_hx: Optional[Tuple[Tensor, Tensor]] = None
            if hx is not None:
                seq_hx = (hx[0].unsqueeze(0), hx[1].unsqueeze(0))
            scale, zero_point = self._input_qparams
            if input.is_quantized:
                scale, zero_point = input.q_scale(), input.q_zero_point()
            _, (h, c) = self._forward_float_state(input.unsqueeze(0), scale, zero_point, seq_hx)
            return h[0], c[0]
        x, x_scale, x_zp, quantized = self._as_uint8(input, "input", self._has_input_qparams,
                                                     self._input_qparams)
        if not batched:
            x = x.unsqueeze(0)
        B = x.size(0)
        h0 = torch.zeros(B, self.hidden_size, dtype=torch.uint8)
        c0 = torch.zeros(B, self.hidden_size, dtype=torch.uint8)
        h_s, h_z, c_s, c_z = 1.0, 0, 1.0, 0  # no state: zeros quantized with (1.0, 0)
        if hx is not None:
            h0, h_s, h_z, _ = self._as_uint8(hx[0], "h0", True, self._hidden_qparams)
            c0, c_s, c_z, _ = self._as_uint8(hx[1], "c0", True, self._cell_qparams)
            if not batched:
                h0, c0 = h0.unsqueeze(0), c0.unsqueeze(0)
        h, c = torch.ops.qlstm.quantized_lstm_cell(x, x_scale, x_zp, h0, h_s, h_z, c0, c_s, c_z,
                                                   self._packed[0])
        if not batched:
            h, c = h.squeeze(0), c.squeeze(0)
        dtype = input.dtype if input.is_floating_point() else torch.float32
        return (self._result(h, self._hidden_qparams, quantized, dtype),
                self._result(c, self._cell_qparams, quantized, dtype))

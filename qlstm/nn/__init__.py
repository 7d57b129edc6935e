"""Modules: the quantized :class:`LSTM` and :class:`LSTMCell`, and the observed
:class:`ObservedLSTM` and :class:`ObservedLSTMCell` that calibrate them."""
from .cell import LSTMCell
from .lstm import LSTM
from .observed import ObservedLSTM, ObservedLSTMCell

__all__ = ["LSTM", "LSTMCell", "ObservedLSTM", "ObservedLSTMCell"]

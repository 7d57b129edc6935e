"""Modules: the quantized :class:`LSTM` and the :class:`ObservedLSTM` that calibrates it."""
from .lstm import LSTM
from .observed import ObservedLSTM

__all__ = ["LSTM", "ObservedLSTM"]

"""qlstm's own quantization flow for float models: prepare, calibrate, convert.

It needs no QuantStub and none of torch.ao.quantization's eager prepare/convert:
every ``nn.LSTM`` is swapped for an :class:`~qlstm.nn.ObservedLSTM`, which
observes its float input too, so the converted :class:`~qlstm.nn.LSTM` takes
and returns float tensors.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable, Union

import torch

from .nn import LSTM, ObservedLSTM
from .nn.observed import ACTIVATION_OBSERVERS, DEFAULT_WEIGHT_OBSERVER, ObserverFactory

__all__ = ["prepare", "convert", "quantize"]


def _activation_factory(observer: Union[str, ObserverFactory]) -> ObserverFactory:
    if isinstance(observer, str):
        if observer not in ACTIVATION_OBSERVERS:
            raise ValueError(f"qlstm: observer must be one of {sorted(ACTIVATION_OBSERVERS)} or an "
                             f"observer factory, got {observer!r}")
        return ACTIVATION_OBSERVERS[observer]
    if not callable(observer):
        raise TypeError(f"qlstm: observer must be a name or a callable, got {type(observer).__name__}")
    return observer


def _swap(model: torch.nn.Module, source: type, make) -> torch.nn.Module:
    if isinstance(model, source):
        return make(model)
    for name, child in model.named_children():
        setattr(model, name, _swap(child, source, make))
    return model


def prepare(model: torch.nn.Module, observer: Union[str, ObserverFactory] = "histogram",
            weight_observer: ObserverFactory = DEFAULT_WEIGHT_OBSERVER,
            inplace: bool = False) -> torch.nn.Module:
    """Swaps every ``nn.LSTM`` of ``model`` (or ``model`` itself) for an
    :class:`ObservedLSTM`. ``observer`` is ``"histogram"`` (default), ``"minmax"``
    or an observer factory (``Observer.with_args(...)``) producing quint8;
    weights default to per-channel symmetric int8. Run calibration batches
    through the result, then :func:`convert` it."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"qlstm: prepare expects a torch.nn.Module, got {type(model).__name__}")
    activation = _activation_factory(observer)
    if not inplace:
        model = copy.deepcopy(model)
    model = _swap(model, torch.nn.LSTM,
                  lambda lstm: ObservedLSTM(lstm, activation, weight_observer))
    return model.eval()


def convert(model: torch.nn.Module, inplace: bool = False) -> torch.nn.Module:
    """Swaps every :class:`ObservedLSTM` of a calibrated model for a :class:`qlstm.nn.LSTM`."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"qlstm: convert expects a torch.nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    return _swap(model, ObservedLSTM, LSTM.from_observed)


@torch.no_grad()
def quantize(model: torch.nn.Module, calibration_batches: Iterable[Any],
             observer: Union[str, ObserverFactory] = "histogram") -> torch.nn.Module:
    """prepare, run every calibration batch (a tensor, or a tuple of positional
    arguments), convert. Returns a new model; ``model`` is left as it was."""
    prepared = prepare(model, observer)
    ran = 0
    for batch in calibration_batches:
        prepared(*batch) if isinstance(batch, (tuple, list)) else prepared(batch)
        ran += 1
    if ran == 0:
        raise ValueError("qlstm: calibration_batches was empty; quantize needs at least one batch")
    return convert(prepared, inplace=True)

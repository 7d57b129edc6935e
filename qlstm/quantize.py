"""qlstm's own quantization flow for float models: prepare, calibrate, convert.

It needs no QuantStub and none of torch.ao.quantization's eager prepare/convert:
every ``nn.LSTM`` is swapped for an :class:`~qlstm.nn.ObservedLSTM`, which
observes its float input too, so the converted :class:`~qlstm.nn.LSTM` takes
and returns float tensors.
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, Union

import torch
from torch.nn.utils.rnn import PackedSequence

from .nn import LSTM, LSTMCell, ObservedLSTM, ObservedLSTMCell
from .nn._layer_data import check_mode
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


def _swap(model: torch.nn.Module, make: Dict[type, Callable]) -> Tuple[torch.nn.Module, int]:
    """model with every module whose type is a key of `make` replaced by
    make[type](module), and how many."""
    if type(model) in make:
        return make[type(model)](model), 1
    swapped = 0
    for name, child in model.named_children():
        new, n = _swap(child, make)
        setattr(model, name, new)
        swapped += n
    return model, swapped


# Recurrent modules qlstm does not quantize (yet): named when nothing was.
_OTHER_RECURRENT = (torch.nn.GRU, torch.nn.RNN, torch.nn.GRUCell, torch.nn.RNNCell)


def _warn_nothing(model: torch.nn.Module, what: str) -> None:
    skipped = sorted({f"{name or 'the model'} ({type(m).__name__})" for name, m in model.named_modules()
                      if isinstance(m, _OTHER_RECURRENT)})
    warnings.warn(f"qlstm: {what}; the model is left as it was" +
                  (f" (not quantized: {', '.join(skipped)})" if skipped else ""), UserWarning,
                  stacklevel=3)


def prepare(model: torch.nn.Module, observer: Union[str, ObserverFactory] = "histogram",
            weight_observer: ObserverFactory = DEFAULT_WEIGHT_OBSERVER,
            inplace: bool = False, split_gates: bool = False, mode: str = "torch") -> torch.nn.Module:
    """Swaps every ``nn.LSTM`` and ``nn.LSTMCell`` of ``model`` (or ``model``
    itself) for an :class:`ObservedLSTM` / :class:`ObservedLSTMCell`.
    ``observer`` is ``"histogram"`` (default), ``"minmax"`` or an observer
    factory (``Observer.with_args(...)``) producing quint8
    (:data:`qlstm.NARROW_ACTIVATION_OBSERVER` gives 7-bit activations, which the
    avx2 kernels multiply fastest against 7-bit weights); weights default to
    per-channel symmetric int8 in [-127, 127] (``weight_observer``;
    :data:`qlstm.NARROW_WEIGHT_OBSERVER` gives 7-bit weights in [-64, 64], which
    the avx2 kernels multiply faster). ``split_gates=True`` observes igates, hgates
    and gates (and quantizes per-tensor weights) gate by gate, as
    ``torch.ao.nn.quantizable.LSTM(split_gates=True)`` does. Run calibration
    batches through the result, then :func:`convert` it."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"qlstm: prepare expects a torch.nn.Module, got {type(model).__name__}")
    activation = _activation_factory(observer)
    check_mode(mode, split_gates)
    if not inplace:
        model = copy.deepcopy(model)
    model, swapped = _swap(model, {
        torch.nn.LSTM: lambda m: ObservedLSTM(m, activation, weight_observer, split_gates, mode),
        torch.nn.LSTMCell: lambda m: ObservedLSTMCell(m, activation, weight_observer, split_gates,
                                                      mode)})
    if swapped == 0:
        _warn_nothing(model, "prepare found no torch.nn.LSTM or torch.nn.LSTMCell to observe")
    return model.eval()


def convert(model: torch.nn.Module, inplace: bool = False) -> torch.nn.Module:
    """Swaps every :class:`ObservedLSTM` / :class:`ObservedLSTMCell` of a calibrated
    model for a :class:`qlstm.nn.LSTM` / :class:`qlstm.nn.LSTMCell`."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"qlstm: convert expects a torch.nn.Module, got {type(model).__name__}")
    if not inplace:
        model = copy.deepcopy(model)
    model, swapped = _swap(model, {ObservedLSTM: LSTM.from_observed,
                                   ObservedLSTMCell: LSTMCell.from_observed})
    if swapped == 0:
        _warn_nothing(model, "convert found no qlstm.nn.ObservedLSTM or ObservedLSTMCell "
                             "(from qlstm.prepare) to convert")
    return model


def _forward_args(batch: Any, index: int, input_fn: Optional[Callable[[Any], Any]]) -> tuple:
    """The positional arguments of the model's forward for one calibration batch."""
    args = input_fn(batch) if input_fn is not None else batch
    if isinstance(args, (torch.Tensor, PackedSequence)):
        return (args,)
    if input_fn is not None and isinstance(args, tuple):
        return args
    if input_fn is None:
        raise TypeError(
            f"qlstm: calibration batch {index} is a {type(batch).__name__}, not a tensor: pass "
            "input_fn= to map each batch to the forward's positional arguments (a tensor or a "
            "tuple), e.g. input_fn=lambda batch: batch[0] for (input, target) pairs")
    raise TypeError(f"qlstm: input_fn must return a tensor or a tuple of positional arguments, "
                    f"got {type(args).__name__} for batch {index}")


@torch.no_grad()
def quantize(model: torch.nn.Module, calibration_batches: Iterable[Any],
             observer: Union[str, ObserverFactory] = "histogram",
             input_fn: Optional[Callable[[Any], Any]] = None,
             split_gates: bool = False, mode: str = "torch",
             weight_observer: ObserverFactory = DEFAULT_WEIGHT_OBSERVER) -> torch.nn.Module:
    """prepare, run every calibration batch, convert. Returns a new model;
    ``model`` is left as it was.

    A batch that is a tensor (or a PackedSequence) is the model's input. Any other batch (a tuple from a
    DataLoader, a dict) needs ``input_fn``, which maps it to the forward's
    positional arguments: a tensor, or a tuple of them, e.g.
    ``input_fn=lambda batch: batch[0]`` for ``(input, target)`` pairs.
    ``split_gates``, ``mode`` (``"torch"`` or ``"accurate"``) and ``weight_observer`` as in
    :func:`prepare`."""
    prepared = prepare(model, observer, weight_observer, split_gates=split_gates, mode=mode)
    ran = 0
    for index, batch in enumerate(calibration_batches):
        prepared(*_forward_args(batch, index, input_fn))
        ran += 1
    if ran == 0:
        raise ValueError("qlstm: calibration_batches was empty; quantize needs at least one batch")
    with warnings.catch_warnings():
        # prepare has already said it when there was nothing to convert.
        warnings.filterwarnings("ignore", message="qlstm: convert found no")
        return convert(prepared, inplace=True)

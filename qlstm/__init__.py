"""qlstm: a fused int8 LSTM for PyTorch on CPUs.

Importing qlstm registers the ``torch.ops.qlstm.*`` ops. The module layer is
:class:`qlstm.nn.LSTM`; :func:`qlstm.prepare`, :func:`qlstm.convert` and
:func:`qlstm.quantize` quantize the ``nn.LSTM`` layers of a float model.
"""
import torch  # noqa: F401  (loads libtorch before the extension)

from . import _C  # noqa: F401  (registers torch.ops.qlstm)
from . import ops
from . import nn
from .isa import available_isas, isa, peak_macs_per_second, set_isa, use_isa
from .nn.observed import NARROW_ACTIVATION_OBSERVER, NARROW_WEIGHT_OBSERVER
from .quantize import convert, prepare, quantize

__all__ = ["ops", "nn", "prepare", "convert", "quantize", "NARROW_ACTIVATION_OBSERVER",
           "NARROW_WEIGHT_OBSERVER", "isa", "set_isa", "available_isas", "use_isa",
           "peak_macs_per_second"]

# A QLSTM_ISA naming a set this CPU cannot run fails here, not at the first forward.
isa()
__version__ = "0.1.0"

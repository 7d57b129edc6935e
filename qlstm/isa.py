"""Which kernel set (instruction set) the qlstm ops run.

At import the best set this CPU supports is chosen, unless the ``QLSTM_ISA``
environment variable names one: ``scalar`` anywhere; ``avx2``, ``avx_vnni``,
``avx512_vnni``, ``avx512_vnni_vbmi`` on x86-64; ``neon``, ``neon_dot`` on
aarch64. Every set gives
bit-identical results.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, List

import torch

__all__ = ["isa", "set_isa", "available_isas", "use_isa", "peak_macs_per_second"]


def isa() -> str:
    """Name of the kernel set the calling thread's op calls use."""
    return torch.ops.qlstm.isa()


def available_isas() -> List[str]:
    """Kernel sets this build has and this CPU can run, the best last."""
    return list(torch.ops.qlstm.available_isas())


def set_isa(name: str) -> None:
    """Runs the ops with kernel set ``name`` from now on, in every thread that
    is not inside a :func:`use_isa` block; raises ValueError if this CPU cannot
    run it."""
    torch.ops.qlstm.set_isa(name)


@contextlib.contextmanager
def use_isa(name: str) -> Iterator[None]:
    """Context manager: the calling thread's op calls use kernel set ``name``
    inside the block, and what they used before after it. Other threads are not
    affected, so overlapping blocks in several threads are safe; blocks nest."""
    previous = torch.ops.qlstm.thread_isa()
    torch.ops.qlstm.set_thread_isa(name)
    try:
        yield
    finally:
        torch.ops.qlstm.set_thread_isa(previous)


def peak_macs_per_second(seconds: float = 0.2) -> float:
    """int8 multiply-accumulates per second that the current kernel set's inner
    loop reaches on one core with its operands in registers (a microbenchmark)."""
    return torch.ops.qlstm.peak_macs_per_second(seconds)

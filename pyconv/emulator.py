"""The CUDA emulator: pyconv's CUDA kernels, unchanged, running on the CPU.

Every CUDA thread runs as a fiber with its own stack; fibers switch only at ``__syncthreads`` and warp collectives;
blocks are spread over a few OS threads. Barrier misuse (a thread returning before a barrier, threads waiting at
different barriers, a full-mask shuffle in a partial warp) raises an error instead of hanging. See the README section
"The CUDA emulator" and ``csrc/emu/cuda_emu.h``.

    import torch, pyconv
    y = pyconv.functional.conv2d(x, w, b, padding=1, backend="emulator", algo="implicit_gemm")   # CPU tensors
    with pyconv.emulator.config(order="random", seed=3, workers=2):
        y = pyconv.functional.conv2d(x, w, backend="emulator")

The emulated ops are ``torch.ops.pyconv_emu.conv2d_{fprop,dgrad,wgrad,bgrad}``: real custom ops with the same
schemas, fake kernels and autograd as ``torch.ops.pyconv``, on CPU tensors. The emulator checks the logic of a kernel
(indexing, tiling, boundaries, barriers, shuffles, atomics); it does not model timing, the memory model beyond
barriers, warp lock-step or the exact rounding of fast-math intrinsics and tensor cores.
"""
from __future__ import annotations

import contextlib
from typing import Optional

from . import _ops

__all__ = ["available", "get_config", "set_config", "config", "selftests", "selftest", "build_info"]

_ORDERS = ("forward", "reverse", "random")


def available() -> bool:
    """Whether this pyconv was built with the emulated CUDA backend (pyconv._C_emu)."""
    return _ops._C_emu is not None


def _module():
    if _ops._C_emu is None:
        raise RuntimeError("pyconv was built without the CUDA emulator (pyconv._C_emu): CUDA's headers were not found "
                           "at build time. Reinstall with CUDA_HOME set (or PYCONV_EMU=1 to insist).")
    return _ops._C_emu


def build_info() -> dict:
    """Algorithms the emulated backend offers, sanitizer it was built with, context-switch method."""
    return dict(_module().build_info())


def get_config() -> dict:
    """Current settings: workers (OS threads running blocks), order ('forward', 'reverse', 'random': block start
    order and fiber resume order), seed (for 'random'), stack_kib (per CUDA thread), max_dynamic_smem (bytes)."""
    return dict(_module().get_config())


def set_config(workers: Optional[int] = None, order: Optional[str] = None, seed: Optional[int] = None,
               stack_kib: Optional[int] = None, max_dynamic_smem: Optional[int] = None) -> None:
    """Change some settings for the launches that follow (process-wide). ``None`` keeps a setting as it is.
    Defaults come from PYCONV_EMU_WORKERS / _ORDER / _SEED / _STACK_KIB, else 2 workers, forward order, 64 KiB."""
    cur = get_config()
    new = dict(workers=cur["workers"] if workers is None else workers,
               order=cur["order"] if order is None else order,
               seed=cur["seed"] if seed is None else seed,
               stack_kib=cur["stack_kib"] if stack_kib is None else stack_kib,
               max_dynamic_smem=cur["max_dynamic_smem"] if max_dynamic_smem is None else max_dynamic_smem)
    if not isinstance(new["workers"], int) or isinstance(new["workers"], bool):
        raise TypeError(f"pyconv emulator: workers must be an int, got {type(new['workers']).__name__}")
    if new["order"] not in _ORDERS:
        raise ValueError(f"pyconv emulator: order must be one of {_ORDERS}, got {new['order']!r}")
    if not isinstance(new["seed"], int) or new["seed"] < 0:
        raise ValueError(f"pyconv emulator: seed must be a non-negative int, got {new['seed']!r}")
    _module().set_config(int(new["workers"]), new["order"], int(new["seed"]), int(new["stack_kib"]),
                         int(new["max_dynamic_smem"]))


@contextlib.contextmanager
def config(**settings):
    """``with pyconv.emulator.config(order="random", seed=1, workers=2): ...`` — settings restored on exit."""
    saved = get_config()
    set_config(**settings)
    try:
        yield get_config()
    finally:
        set_config(**saved)


def selftests() -> list:
    """(name, kind, expected) of the emulator's self-tests; kind is 'feature', 'emulator_bug' or 'sanitizer_bug'."""
    return [tuple(t) for t in _module().selftests()]


def selftest(name: str) -> str:
    """Runs one self-test kernel: '' when a feature test passes, else the message (a seeded bug's diagnosis, or
    what a feature test found wrong)."""
    return _module().selftest(name)

"""The conv2d autotuner: ``algo="auto"`` picks the fastest rung per (direction, shape, dtype, layout, device).

Off by default, like ``torch.backends.cudnn.benchmark``: without it "auto" follows a heuristic (CUDA: ``depthwise``
for one input channel per group, the tensor-core rung for float16/bfloat16 on sm_80+ (its wgmma form on a Hopper
GPU with an sm_90a build), else ``implicit_gemm``; CPU:
``im2col_gemm``). Turned on (:func:`enable`, or ``PYCONV_TUNING=1`` in the environment), the first call of each new
convolution times every rung that applies to it (forward, and the two gradients when autograd first needs them) on
random operands of the same shape, dtype and layout, and installs the winner in the native extension's table, which
the ops consult whenever they are called with ``algo="auto"``: in eager code, in autograd's backward and inside
compiled graphs. Results persist in a JSON cache (:func:`cache_path`: ``$PYCONV_TUNING_CACHE``, else
``~/.cache/pyconv/tuning-<pyconv version>.json``), keyed by device name, so a later process starts tuned; entries of
another pyconv version live in another file.

Inspect with :func:`entries`, move between machines with :func:`export` / :func:`load`, forget with :func:`clear`.
Tuning never changes results beyond the rungs' own rounding differences (each rung is tested against torch).
"""
from __future__ import annotations

import json
import os
import statistics
import threading
import time
from typing import Dict, List, Optional, Sequence

import torch

from . import _C

__all__ = ["enable", "enabled", "cache_path", "entries", "export", "load", "clear", "tune", "candidates"]

_lock = threading.RLock()
_enabled = os.environ.get("PYCONV_TUNING", "0") not in ("", "0", "false", "False")
_cache: Optional[Dict[str, Dict[str, dict]]] = None  # device name → key → {"algo", "ms", "tuned_at"}
_installed: set = set()  # (device string, key) already pushed to the native table


def enable(on: bool = True) -> None:
    """Turns timing-based selection for ``algo="auto"`` on (or off). While off, new convolutions are neither timed
    nor looked up in the disk cache; choices already installed in this process stay in force until :func:`clear`."""
    global _enabled
    _enabled = bool(on)


def enabled() -> bool:
    return _enabled


def cache_path() -> str:
    env = os.environ.get("PYCONV_TUNING_CACHE")
    if env:
        return env
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "pyconv", f"tuning-{_C.build_info()['version']}.json")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"cpu:{platform.machine()}:{platform.processor() or 'unknown'}:{torch.get_num_threads()}threads"


def _load_cache() -> Dict[str, Dict[str, dict]]:
    global _cache
    if _cache is None:
        _cache = {}
        try:
            with open(cache_path()) as f:
                data = json.load(f)
            if data.get("pyconv") == _C.build_info()["version"]:
                _cache = {dev: dict(v) for dev, v in data.get("devices", {}).items()}
        except (OSError, ValueError, AttributeError):
            pass  # no cache yet, or an unreadable one: start empty (it is rewritten on the next save)
    return _cache


def _save_cache() -> None:
    path = cache_path()
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({"pyconv": _C.build_info()["version"], "devices": _cache}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new file, never half of one
    except OSError:
        pass  # a read-only home: tuning still works for this process


def entries() -> Dict[str, Dict[str, dict]]:
    """A copy of every cached result: ``{device name: {key: {"algo": rung, "ms": {rung: median ms}}}}``. A key reads
    ``direction,N,C,H,W,K,R,S,P,Q,stride_h,stride_w,pad_top,pad_left,dil_h,dil_w,groups,dtype,layout``."""
    with _lock:
        return json.loads(json.dumps(_load_cache()))


def export(path: str) -> None:
    """Writes the cache (all devices) to ``path`` as JSON."""
    with _lock:
        with open(path, "w") as f:
            json.dump({"pyconv": _C.build_info()["version"], "devices": _load_cache()}, f, indent=1, sort_keys=True)


def load(path: str) -> int:
    """Merges a file written by :func:`export` into the cache (its entries win); returns how many entries it held.
    Files of another pyconv version are refused (their rung names may differ)."""
    with open(path) as f:
        data = json.load(f)
    if data.get("pyconv") != _C.build_info()["version"]:
        raise ValueError(f"pyconv.tuning.load: {path} was written by pyconv {data.get('pyconv')}, this is "
                         f"{_C.build_info()['version']}")
    n = 0
    with _lock:
        cache = _load_cache()
        for dev, table in data.get("devices", {}).items():
            cache.setdefault(dev, {}).update(table)
            n += len(table)
        _installed.clear()  # re-install on next use: entries may have changed
        _save_cache()
    return n


def clear(disk: bool = True) -> None:
    """Forgets every tuned choice (the native table too); with ``disk`` also deletes the cache file."""
    global _cache
    with _lock:
        _C.conv2d_clear_tuned()
        _installed.clear()
        _cache = {}
        if disk:
            try:
                os.remove(cache_path())
            except OSError:
                pass


def candidates(direction: str, device: torch.device, dtype: torch.dtype, x_size: Sequence[int],
               w_size: Sequence[int], groups: int, stride: Sequence[int] = (1, 1),
               dilation: Sequence[int] = (1, 1)) -> List[str]:
    """The rungs that can run this convolution on this device (what the tuner times)."""
    info = _C.build_info()
    kind = "cuda" if device.type == "cuda" else "cpu"
    only = dict(info["algorithm_dtypes"])["conv2d"]
    out = []
    dt = str(dtype).replace("torch.", "")
    for a in dict(info["algorithms"]).get(kind, {}).get("conv2d", []):
        if a in only and dt not in only[a]:
            continue
        if a == "depthwise" and w_size[1] != 1:
            continue
        if a == "winograd" and (direction == "wgrad"  # F(2x2, 3x3) is fprop/dgrad; wgrad would time auto's rung again
                                or list(w_size[2:]) != [3, 3] or list(stride) != [1, 1] or list(dilation) != [1, 1]):
            continue
        if a == "tensor_core_wgmma_64x16" and direction == "wgrad":
            continue  # an fprop/dgrad tile: wgrad named with it runs the rung's heuristic tile, timed already
        if a.startswith("tensor_core") and torch.cuda.get_device_capability(device)[0] < 8:
            continue
        if a.startswith("tensor_core_wgmma") and (
                torch.cuda.get_device_capability(device) != (9, 0) or "9.0a" not in info.get("arch_list", "")):
            continue
        out.append(a)
    return out


def _real(t) -> bool:
    return type(t) in (torch.Tensor, torch.nn.Parameter) and t.device.type in ("cpu", "cuda")


def _time(fn, device: torch.device, best: float, reps: int = 5) -> float:
    """Median milliseconds of fn() over `reps` runs after one warm-up run; a candidate whose warm-up alone takes
    over 5× the best median so far is not timed further (it cannot win, and the reference rung can be very slow)."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    fn()
    sync()
    first = (time.perf_counter() - t0) * 1e3
    if first > 5 * best:
        return first
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def tune(direction: str, layout_src: torch.Tensor, x_size: Sequence[int], w_size: Sequence[int],
         stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int], groups: int,
         force: bool = False) -> Optional[str]:
    """Makes sure the native table holds a choice for this convolution: from the cache, or (when tuning is on, or
    `force`) by timing every candidate now. Returns the chosen rung, or None when "auto" stays heuristic.
    ``layout_src`` is the tensor whose dtype, layout and device the op sees (fprop: input; dgrad/wgrad: grad_output).
    """
    if torch.compiler.is_compiling() or not _real(layout_src):
        return None  # traced (fake tensors) or an exotic tensor: the heuristic, or what was installed, applies
    x_size, w_size = [int(v) for v in x_size], [int(v) for v in w_size]
    stride, padding, dilation = list(stride), list(padding), list(dilation)
    key = _C.conv2d_tuning_key(direction, layout_src, x_size, w_size, stride, padding, dilation, int(groups))
    device = layout_src.device
    dev_str = str(device) if device.type == "cpu" else f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    with _lock:
        if (dev_str, key) in _installed and not force:
            return None
        name = _device_name(device)
        cached = _load_cache().get(name, {}).get(key)
        if cached is not None and not force:
            _C.conv2d_set_tuned(dev_str, key, cached["algo"])
            _installed.add((dev_str, key))
            return cached["algo"]
        if not (_enabled or force):
            return None
        ms = _measure(direction, layout_src, x_size, w_size, stride, padding, dilation, int(groups))
        if not ms:
            return None
        best = min(ms, key=ms.get)
        _load_cache().setdefault(name, {})[key] = {"algo": best, "ms": ms, "tuned_at": time.strftime("%Y-%m-%d")}
        _save_cache()
        _C.conv2d_set_tuned(dev_str, key, best)
        _installed.add((dev_str, key))
        return best


def _measure(direction, like, x_size, w_size, stride, padding, dilation, groups) -> Dict[str, float]:
    dev, dt = like.device, like.dtype
    fmt = torch.channels_last if (like.dim() == 4 and like.size(1) > 1 and like.stride(1) == 1) else \
        torch.contiguous_format
    ops = torch.ops.pyconv
    with torch.no_grad():
        x = torch.randn(x_size, device=dev, dtype=dt).contiguous(memory_format=fmt)
        w = torch.randn(w_size, device=dev, dtype=dt)
        y = ops.conv2d_fprop(x, w, None, stride, padding, dilation, groups, "auto")
        go = torch.randn(y.shape, device=dev, dtype=dt).contiguous(memory_format=fmt)
        ms = {}
        for a in candidates(direction, dev, dt, x_size, w_size, groups, stride, dilation):
            if direction == "fprop":
                fn = lambda a=a: ops.conv2d_fprop(x, w, None, stride, padding, dilation, groups, a)  # noqa: E731
            elif direction == "dgrad":
                fn = lambda a=a: ops.conv2d_dgrad(go, w, x_size, stride, padding, dilation, groups, a)  # noqa: E731
            else:
                fn = lambda a=a: ops.conv2d_wgrad(go, x, w_size, stride, padding, dilation, groups, a)  # noqa: E731
            try:
                ms[a] = _time(fn, dev, min(ms.values(), default=float("inf")))
            except RuntimeError:
                continue  # a rung that refuses this problem (size limits) is simply not a candidate
    return ms

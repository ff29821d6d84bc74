"""The benchmark harness: cases, providers, the correctness gate, timing, the device's ceilings.

A :class:`Case` is one thing to time (a convolution layer in one direction, a pooling or activation op, an end-to-end
step). Its ``setup(device, dtype)`` returns a :class:`Setup`: the providers (name → ``fn(i)``, where ``i`` picks one of
several rotating input copies so the caches do not hold the previous repetition's data), the reference result and the
name of the baseline provider. :func:`run_case` checks every provider's result against the reference before timing it
(a wrong provider is reported as a failure, never timed), warms up, then takes the median of ``reps`` timed calls:
CUDA events with an L2 flush before each call on a GPU, ``perf_counter`` on the CPU; a series disturbed by a burst of
slow repetitions (median above twice its minimum) is timed again and the calmest series kept.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

ProviderFn = Callable[[int], object]
# A timed series whose median exceeds RETIME_SPREAD × its fastest repetition is timed again, RETIME_MAX times at most.
RETIME_SPREAD = 2.0
RETIME_MAX = 2


@dataclasses.dataclass
class Setup:
    providers: Dict[str, ProviderFn]
    reference: Callable[[], torch.Tensor]  # float64 (or the best available) result every provider must match
    baseline: str  # the provider ratios are taken against (cuDNN on a GPU, torch on the CPU)
    tolerance: float  # max |out − ref| / max |ref| accepted
    skipped: Dict[str, str] = dataclasses.field(default_factory=dict)  # provider → why it is not run


@dataclasses.dataclass
class Case:
    suite: str
    name: str
    op: str  # conv2d | pool | act | e2e
    direction: str  # fprop | dgrad | wgrad | fwd | bwd | infer | train
    flops: Optional[float]  # None for memory-bound rows counted in bytes only
    elements: float  # the least traffic in elements (inputs read once, outputs written once); × element size = bytes
    shape: Dict[str, object]
    setup: Callable[[str, torch.dtype], Setup]


def _as_tensor(out) -> torch.Tensor:
    if isinstance(out, (tuple, list)):
        return torch.cat([o.detach().reshape(-1).double() for o in out if isinstance(o, torch.Tensor)])
    return out.detach().reshape(-1).double()


def relative_error(out, ref) -> float:
    a, b = _as_tensor(out), _as_tensor(ref)
    if a.shape != b.shape:
        return float("inf")
    scale = b.abs().max().clamp_min(1e-30)
    return ((a - b).abs().max() / scale).item() if a.numel() else 0.0


class Timer:
    """Median of timed calls. On CUDA: events around each call, and a write of a buffer twice the L2 size before it,
    so that no call finds the previous one's data in L2 (caches are cold for every provider alike)."""

    def __init__(self, device: str, flush_l2: bool = True, graph: bool = False):
        self.device = device
        # graph=True (CUDA): each call is captured once into a CUDA graph and the timed repetitions replay it, so the
        # figure is the GPU time of the call's kernels alone: the host work in front of them (Python, the dispatcher,
        # operand checks) is left out for every provider alike. A call that cannot be captured is timed eagerly.
        self.graph = graph and device == "cuda"
        self.eager_fallbacks: List[str] = []
        self._graph_fn, self._graphs = None, {}
        self.flush = None
        if device == "cuda" and flush_l2:
            l2 = getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", 50 << 20)
            self.flush = torch.empty(max(2 * l2, 8 << 20) // 4, dtype=torch.float32, device="cuda")

    def sync(self):
        if self.device == "cuda":
            torch.cuda.synchronize()

    def _captured(self, fn: ProviderFn, rotate: int) -> Optional[ProviderFn]:
        """fn with each input set i < rotate captured into its own CUDA graph, after a warm-up on a side stream (as
        torch.cuda.graphs asks: cuDNN's benchmark search and library handles must not happen during capture). The
        graphs of the last provider are kept, so its warm-up and timed calls capture once. None when capture fails."""
        if self._graph_fn is not fn:
            self._graph_fn, self._graphs = fn, {}
        try:
            todo = [i for i in range(rotate) if i not in self._graphs]
            if todo:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for i in todo:
                        fn(i)
                torch.cuda.current_stream().wait_stream(side)
                for i in todo:
                    g = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(g):
                        fn(i)
                    self._graphs[i] = g
        except Exception as e:  # noqa: BLE001 - not capturable: time it eagerly, and say so
            torch.cuda.synchronize()
            self._graphs = {}
            self.eager_fallbacks.append(f"{type(e).__name__}: {e}"[:200])
            return None
        graphs = self._graphs
        return lambda i: graphs[i].replay()

    def __call__(self, fn: ProviderFn, reps: int, rotate: int = 1) -> List[float]:
        times = []
        if self.graph:
            fn = self._captured(fn, rotate) or fn
        for r in range(reps):
            i = r % rotate
            if self.device == "cuda":
                if self.flush is not None:
                    self.flush.add_(1.0)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn(i)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t = time.perf_counter()
                fn(i)
                times.append(time.perf_counter() - t)
        return times


def measure_ceilings(device: str, dtype: torch.dtype, timer: Timer, quick: bool) -> Dict[str, float]:
    """The device's own ceilings, measured in the same run: copy bandwidth (read + write of a large tensor) and the
    throughput of a large matmul in the benchmark's dtype (torch's, i.e. cuBLAS / oneDNN)."""
    # Large enough that neither side fits in the last-level cache (a 32 MiB copy on this CPU reads 2.5× faster).
    mb = (64 if quick else 256) if device == "cuda" else 128
    src = torch.randn(mb * (1 << 20) // 4, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    timer.sync()
    # A ceiling is the best the device showed: the fastest repetition, not the median.
    t_copy = min(timer(lambda i: dst.copy_(src), 5 if quick else 20))
    n = (4096 if quick else 8192) if device == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    timer.sync()
    t_mm = min(timer(lambda i: torch.mm(a, b), 3 if quick else 10))
    return {"copy_GBps": 2 * src.numel() * 4 / t_copy / 1e9, "matmul_TFLOPs": 2 * n ** 3 / t_mm / 1e12,
            "matmul_n": n, "copy_MiB": mb}


def run_case(case: Case, device: str, dtype: torch.dtype, timer: Timer, reps: int, warmup: int,
             ceilings: Dict[str, float], rotate: int, max_seconds: float = float("inf")) -> List[dict]:
    """All providers of one case: checked, timed, turned into rows. A provider whose warm-up call shows that `reps`
    repetitions would take more than `max_seconds` gets fewer (at least 3): the slow reference rungs on big layers
    would otherwise dominate a run; the JSON records the repetitions each row really had."""
    s = case.setup(device, dtype)
    ref = s.reference()
    rows = []
    timings: Dict[str, float] = {}
    nbytes = case.elements * torch.empty((), dtype=dtype).element_size()
    base = dict(suite=case.suite, case=case.name, op=case.op, direction=case.direction, shape=case.shape,
                flops=case.flops, bytes=nbytes)
    for name, fn in s.providers.items():
        try:
            out = fn(0)
            timer.sync()
            err = relative_error(out, ref)
        except Exception as e:  # a provider that raises is a failure row, not a crash of the whole run
            rows.append(dict(base, provider=name, status="error", error=f"{type(e).__name__}: {e}"[:300]))
            continue
        if not err <= s.tolerance:
            rows.append(dict(base, provider=name, status="wrong", rel_err=err, tolerance=s.tolerance))
            continue
        for w in range(max(warmup, 1)):
            warm = timer(fn, 1, 1)[0]
        n = reps if warm * reps <= max_seconds else max(3, int(max_seconds / max(warm, 1e-9)))
        fallbacks = len(timer.eager_fallbacks)
        t = timer(fn, n, rotate)
        # A disturbed series: on the H100 lease of 2026-11-26 bursts of 5-20x slower repetitions (every provider,
        # cuDNN too, for a few ms) covered most of some rows' repetitions, so their medians were the burst's. Such a
        # series (median > 2x its fastest repetition) is timed again, twice at most, and the calmest one (lowest
        # median) kept; `retimed` records how often.
        retimed = 0
        while retimed < RETIME_MAX and statistics.median(t) > RETIME_SPREAD * min(t):
            again = timer(fn, n, rotate)
            retimed += 1
            if statistics.median(again) < statistics.median(t):
                t = again
        timing = "graph" if timer.graph and len(timer.eager_fallbacks) == fallbacks else "eager"
        timings[name] = statistics.median(t)
        rows.append(dict(base, provider=name, status="ok", rel_err=err, tolerance=s.tolerance, reps=n, timing=timing,
                         seconds=timings[name], seconds_min=min(t), seconds_all=t, retimed=retimed))
    for name, why in s.skipped.items():
        rows.append(dict(base, provider=name, status="skipped", error=why))
    base_t = timings.get(s.baseline)
    for row in rows:
        if row["status"] != "ok":
            continue
        t = row["seconds"]
        row["baseline"] = s.baseline
        row["ratio"] = base_t / t if base_t else None  # > 1: faster than the baseline
        row["GBps"] = nbytes / t / 1e9
        row["pct_copy_bw"] = 100 * row["GBps"] / ceilings["copy_GBps"]
        if case.flops:
            row["TFLOPs"] = case.flops / t / 1e12
            row["pct_matmul_peak"] = 100 * row["TFLOPs"] / ceilings["matmul_TFLOPs"]
            # Roofline: what this arithmetic intensity allows on this device (min of compute and bandwidth roofs).
            ai = case.flops / nbytes
            roof = min(ceilings["matmul_TFLOPs"], ai * ceilings["copy_GBps"] / 1e3)
            row["arith_intensity"] = ai
            row["pct_roofline"] = 100 * row["TFLOPs"] / roof
        else:
            row["pct_roofline"] = row["pct_copy_bw"]
    return rows

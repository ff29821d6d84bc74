"""``pyconv bench``: every pyconv kernel against cuDNN / torch's native kernels (GPU) or torch's oneDNN path (CPU).

    pyconv bench --quick                                  # CPU, every suite at batch 1, < 2 min on a 2-core CPU
    pyconv bench --device cuda --suite resnet50,pool      # GPU; writes JSON + markdown + plots
    python -m pyconv.bench --op conv2d --dtype float16 --json out.json

Method (see :mod:`pyconv.bench.harness`): each provider's result is checked against a float64 torch reference
before it is timed (a wrong result is a failure row, never a time); warm-up; median of many repetitions with rotating
input copies; on a GPU, CUDA events and an L2 flush before every repetition, ``cudnn.benchmark=True`` and TF32 off
(recorded in the JSON) so float32 rows compare IEEE float32 with IEEE float32. The device's ceilings are measured in
the same run (copy bandwidth, a large matmul in the same dtype); every row reports time, TFLOP/s and/or GB/s, the
percentage of the matching ceiling and of the roofline at its arithmetic intensity, and the ratio to the baseline
(cuDNN on a GPU, torch on the CPU; > 1 means pyconv is faster). Nothing asserts a speed.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time
from typing import Dict, List, Optional, Sequence

import torch

from .harness import Case, Setup, Timer, measure_ceilings, relative_error, run_case  # noqa: F401
from .. import tuning
from .report import write_markdown, write_plots
from .suites import CONV_SUITES, SUITES, act_cases, conv_cases, e2e_cases, fused_cases, pool_cases

__all__ = ["run", "collect_cases", "SUITES", "Case", "Setup", "main"]

OPS = {"conv2d": CONV_SUITES + ("fused",), "pool": ("pool",), "act": ("act",), "e2e": ("e2e",)}


def collect_cases(suites: Sequence[str], device: str, quick: bool, directions: Sequence[str] = ("fprop", "dgrad",
                                                                                                  "wgrad"),
                  batches: Optional[Sequence[int]] = None, rotate: int = 2, channels_last: bool = False,
                  algos: Optional[Sequence[str]] = None) -> List[Case]:
    """The cases of `suites`; `algos` (default: every conv2d rung of the device) limits the pyconv conv2d
    providers to those rungs ("auto" is always timed)."""
    from .. import build_info

    available = build_info()["algorithms"][device]["conv2d"]
    if algos is None:
        algos = available
    else:
        unknown = [a for a in algos if a not in available and a != "auto"]
        if unknown:
            raise ValueError(f"pyconv bench: unknown conv2d algorithm(s) {', '.join(unknown)} for {device}; "
                             f"choose from {', '.join(available)}")
        algos = [a for a in available if a in algos]
    if batches is None:
        batches = [1] if quick else ([1, 8, 32, 128] if device == "cuda" else [1, 8, 32])
    cases: List[Case] = []
    for suite in suites:
        if suite in CONV_SUITES:
            cases += conv_cases(suite, batches, directions, algos, rotate,
                                direct_max_flops=(2e8 if quick else 2e9) if device == "cpu" else 2e11,
                                channels_last=channels_last)
        elif suite == "fused":
            cases += fused_cases(batches, rotate, channels_last)
        elif suite == "pool":
            cases += pool_cases(quick, rotate)
        elif suite == "act":
            cases += act_cases(quick, rotate)
        elif suite == "e2e":
            cases += e2e_cases(quick, rotate)
        else:
            raise ValueError(f"pyconv bench: unknown suite {suite!r}; choose from {', '.join(SUITES)}")
    return cases


def environment(device: str, dtype: torch.dtype) -> Dict[str, object]:
    from .. import build_info

    info = build_info()
    env = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "device": device,
           "dtype": str(dtype).replace("torch.", ""), "torch": torch.__version__, "pyconv": info["version"],
           "pyconv_build": {k: info[k] for k in ("cuda", "cuda_version", "arch_list", "compiler")},
           "python": platform.python_version(), "host": platform.node(), "cpu": _cpu_name(),
           "threads": torch.get_num_threads()}
    if device == "cuda":
        p = torch.cuda.get_device_properties(torch.cuda.current_device())
        env.update(device_name=p.name, sm=f"{p.major}{p.minor}", sms=p.multi_processor_count,
                   memory_GiB=round(p.total_memory / 2 ** 30, 1), cuda_runtime=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), driver=_driver_version(),
                   flags={"cudnn.benchmark": torch.backends.cudnn.benchmark,
                          "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                          "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32})
    else:
        env.update(device_name=env["cpu"], flags={"mkldnn": torch.backends.mkldnn.is_available(),
                                                  "PYCONV_CPU_ISA": os.environ.get("PYCONV_CPU_ISA", "")})
    return env


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else _cpu_name()


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _driver_version() -> str:
    try:
        import subprocess

        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run(suites: Sequence[str] = SUITES, device: str = "cpu", dtype: torch.dtype = torch.float32, quick: bool = False,
        reps: Optional[int] = None, warmup: Optional[int] = None, directions: Sequence[str] = ("fprop", "dgrad", "wgrad"),
        batches: Optional[Sequence[int]] = None, progress: bool = True, cases: Optional[List[Case]] = None,
        tf32: bool = False, max_seconds: Optional[float] = None, channels_last: bool = False,
        checkpoint: Optional[str] = None, checkpoint_every: float = 30.0, graph: bool = False,
        algos: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Runs the suites; returns ``{"env": ..., "ceilings": ..., "rows": [...]}`` (what the JSON holds). With
    ``checkpoint`` (a path), the rows so far are written there every ``checkpoint_every`` seconds, marked ``"partial": true``, so a long run
    that is stopped still leaves its measurements behind. ``graph=True`` (CUDA) times CUDA-graph replays of each call:
    the kernels' GPU time without the host work in front of them (see :class:`harness.Timer`). ``algos`` limits the
    pyconv conv2d rungs timed (see :func:`collect_cases`)."""
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("pyconv bench: --device cuda, but no CUDA device is visible")
        torch.backends.cudnn.benchmark = True
        # torch enables TF32 for cuDNN convolutions by default: off, so float32 means IEEE float32 on both sides.
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
    reps = reps or (3 if quick else (50 if device == "cuda" else 7))
    warmup = warmup if warmup is not None else (1 if quick else 3)
    # Timed seconds per provider and case at most (fewer repetitions, never fewer than 3, past that).
    max_seconds = max_seconds if max_seconds is not None else (0.5 if quick or device == "cuda" else 2.0)
    rotate = 2 if device == "cpu" else 4
    timer = Timer(device, graph=graph)
    env = environment(device, dtype)
    env.update(reps=reps, warmup=warmup, quick=quick, suites=list(suites), rotate=rotate, max_seconds=max_seconds,
               channels_last=channels_last, graph=timer.graph, tuning=tuning.enabled(),
               algos=list(algos) if algos else "all")
    ceilings = measure_ceilings(device, dtype, Timer(device), quick)
    if cases is None:
        cases = collect_cases(suites, device, quick, directions, batches, rotate, channels_last, algos)
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(cases), desc="pyconv bench", unit="case")
        except ImportError:  # pragma: no cover
            bar = None
    rows: List[dict] = []
    last_dump = time.monotonic()
    for case in cases:
        if bar is not None:
            bar.set_postfix_str(f"{case.suite} {case.direction}", refresh=False)
        rows += run_case(case, device, dtype, timer, reps, warmup, ceilings, rotate, max_seconds)
        if bar is not None:
            bar.update(1)
        if device == "cuda":
            torch.cuda.empty_cache()
        if checkpoint and time.monotonic() - last_dump >= checkpoint_every:
            with open(checkpoint, "w") as f:
                json.dump({"env": env, "ceilings": ceilings, "rows": rows, "partial": True}, f, indent=1)
            last_dump = time.monotonic()
    if bar is not None:
        bar.close()
    return {"env": env, "ceilings": ceilings, "rows": rows}


def default_stem(result: Dict[str, object]) -> str:
    env = result["env"]
    name = str(env.get("device_name", env["device"])).lower()
    name = "".join(c if c.isalnum() else "-" for c in name).strip("-")
    while "--" in name:
        name = name.replace("--", "-")
    return f"{name or env['device']}-{env['date'][:10]}"


def main(argv=None) -> int:
    from ..cli import main as cli_main

    return cli_main(["bench"] + list(argv if argv is not None else sys.argv[1:]))

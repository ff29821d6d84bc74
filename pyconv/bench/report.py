"""Benchmark outputs: the markdown table and the plots (the JSON is the result dict itself)."""
from __future__ import annotations

import math
import statistics
from typing import Dict, List, Optional


def _fmt(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def summary_lines(result: Dict[str, object]) -> List[str]:
    """Geometric-mean ratio of pyconv auto to the baseline, per suite and direction."""
    groups: Dict[tuple, List[float]] = {}
    for r in result["rows"]:
        if r["status"] == "ok" and r.get("ratio") and r["provider"] in ("pyconv auto", "pyconv", "pyconv fused"):
            groups.setdefault((r["suite"], r["direction"]), []).append(r["ratio"])
    return [f"| {s} | {d} | {len(v)} | {statistics.geometric_mean(v):.2f}× |" for (s, d), v in groups.items()]


def rung_summary_lines(result: Dict[str, object]) -> List[str]:
    """Geometric-mean ratio of every pyconv rung to the baseline, per suite and direction, over the rows that rung ran
    (so a rung `auto` does not pick yet — a new kernel, a Winograd — reads at a glance), and of the best pyconv
    provider of each row ("best of the rungs timed": what a perfect autotuner over them would reach)."""
    per: Dict[tuple, List[float]] = {}
    best: Dict[tuple, float] = {}
    for r in result["rows"]:
        if r["status"] != "ok" or not r.get("ratio") or not r["provider"].startswith("pyconv"):
            continue
        per.setdefault((r["suite"], r["direction"], r["provider"]), []).append(r["ratio"])
        key = (r["suite"], r["direction"], r["case"])
        best[key] = max(best.get(key, 0.0), r["ratio"])
    lines = [f"| {s} | {d} | {p} | {len(v)} | {statistics.geometric_mean(v):.2f}× |" for (s, d, p), v in per.items()]
    best_groups: Dict[tuple, List[float]] = {}
    for (s, d, _), v in best.items():
        best_groups.setdefault((s, d), []).append(v)
    lines += [f"| {s} | {d} | best of the rungs timed | {len(v)} | {statistics.geometric_mean(v):.2f}× |"
              for (s, d), v in best_groups.items()]
    return lines


def compare_lines(old: Dict[str, object], new: Dict[str, object], top: int = 10) -> List[str]:
    """Two runs side by side (e.g. a GPU session's against the last one): per suite, direction and pyconv provider,
    the geometric mean of the baseline ratios over the rows *both* runs timed, and new / old; then the `top` rows of
    `pyconv auto` whose ratio moved most (either way). Ratios, not times: each run measured pyconv against the baseline
    side by side, so two runs (even on two GPUs of a kind) compare through them."""
    def ratios(result):
        out: Dict[tuple, float] = {}
        for r in result["rows"]:
            if r["status"] == "ok" and r.get("ratio") and r["provider"].startswith("pyconv"):
                out[(r["suite"], r["direction"], r["provider"], r["case"])] = r["ratio"]
        return out

    a, b = ratios(old), ratios(new)
    common = sorted(set(a) & set(b))
    groups: Dict[tuple, List[tuple]] = {}
    for k in common:
        groups.setdefault(k[:3], []).append((a[k], b[k]))
    lines = ["| suite | direction | provider | rows | old | new | new / old |", "|---|---|---|---:|---:|---:|---:|"]
    for (s, d, p), v in groups.items():
        go, gn = statistics.geometric_mean([x for x, _ in v]), statistics.geometric_mean([y for _, y in v])
        lines.append(f"| {s} | {d} | {p} | {len(v)} | {go:.2f}× | {gn:.2f}× | {gn / go:.2f} |")
    moved = sorted((k for k in common if k[2] == "pyconv auto"), key=lambda k: -abs(math.log(b[k] / a[k])))[:top]
    if moved:
        lines += ["", "| suite | case | direction | old | new | new / old |", "|---|---|---|---:|---:|---:|"]
        lines += [f"| {k[0]} | {k[3]} | {k[1]} | {a[k]:.2f}× | {b[k]:.2f}× | {b[k] / a[k]:.2f} |" for k in moved]
    return lines


def write_markdown(result: Dict[str, object], path: str) -> str:
    env, ceil = result["env"], result["ceilings"]
    lines = [f"# pyconv benchmark: {env.get('device_name', env['device'])} ({env['device']}), {env['dtype']}", "",
             f"{env['date']} · torch {env['torch']} · pyconv {env['pyconv']} · threads {env['threads']} · "
             f"median of {env['reps']} (warm-up {env['warmup']}, {env['rotate']} rotating input copies) · flags "
             f"{env.get('flags')} · pyconv tuning {'on' if env.get('tuning') else 'off (auto = heuristic)'}" + (f" · driver {env['driver']} · CUDA {env.get('cuda_runtime')} · cuDNN "
                                      f"{env.get('cudnn')}" if env["device"] == "cuda" else ""), "",
             f"Ceilings measured in this run: copy {ceil['copy_GBps']:.1f} GB/s (read + write of "
             f"{ceil['copy_MiB']} MiB), matmul {ceil['matmul_TFLOPs']:.3f} TFLOP/s ({ceil['matmul_n']}² in "
             f"{env['dtype']}). Ratio = baseline time / provider time (> 1: faster than the baseline). "
             f"% roof = achieved / min(matmul peak, arithmetic intensity × copy bandwidth).", "",
             "## Summary: pyconv `auto` against the baseline (geometric mean of the ratios)", "",
             "| suite | direction | rows | geomean ratio |", "|---|---|---:|---:|"]
    lines += summary_lines(result)
    lines += ["", "## Every rung (geometric mean of the ratios over the rows it ran)", "",
              "| suite | direction | provider | rows | geomean ratio |", "|---|---|---|---:|---:|"]
    lines += rung_summary_lines(result)
    lines += ["", "## Every row", "",
              "| suite | case | dir | provider | ms | TFLOP/s | GB/s | % roof | ratio | status |",
              "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        if r["status"] == "ok":
            lines.append(f"| {r['suite']} | {r['case']} | {r['direction']} | {r['provider']} | "
                         f"{1e3 * r['seconds']:.3f} | {_fmt(r.get('TFLOPs'), '.3f')} | {r['GBps']:.1f} | "
                         f"{r['pct_roofline']:.0f} | {_fmt(r.get('ratio'), '.2f')} | ok |")
        else:
            why = r.get("error") or f"rel err {r.get('rel_err', float('nan')):.1e} > {r.get('tolerance')}"
            lines.append(f"| {r['suite']} | {r['case']} | {r['direction']} | {r['provider']} | | | | | | "
                         f"**{r['status']}**: {why} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def write_plots(result: Dict[str, object], path: str) -> Optional[str]:
    """Two panels: pyconv's ratio to the baseline per conv layer and direction; a roofline (achieved TFLOP/s against
    arithmetic intensity, every provider, under the measured compute and bandwidth roofs)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib comes with the test/demo extras
        return None
    rows = [r for r in result["rows"] if r["status"] == "ok"]
    env, ceil = result["env"], result["ceilings"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(16, 6), constrained_layout=True)
    ours = [r for r in rows if r["provider"] in ("pyconv auto", "pyconv", "pyconv fused") and r.get("ratio")]
    colors = {"fprop": "C0", "dgrad": "C1", "wgrad": "C2", "fwd": "C3", "bwd": "C4", "infer": "C5", "train": "C6",
              "conv+bias+relu": "C7", "conv+bias+add+relu": "C8"}
    for d, c in colors.items():
        pts = [(i, r["ratio"]) for i, r in enumerate(ours) if r["direction"] == d]
        if pts:
            ax1.bar([p[0] for p in pts], [p[1] for p in pts], color=c, label=d)
    ax1.axhline(1.0, color="k", lw=0.8)
    ax1.set_yscale("log")
    ax1.set_ylabel(f"speed relative to {'cuDNN' if env['device'] == 'cuda' else 'torch'} (> 1: pyconv faster)")
    ax1.set_xlabel("benchmark row (suite order: " + ", ".join(dict.fromkeys(r["suite"] for r in ours)) + ")")
    ax1.set_title("pyconv auto vs the baseline")
    ax1.legend(ncol=4, fontsize=8)
    peak, bw = ceil["matmul_TFLOPs"], ceil["copy_GBps"] / 1e3
    ais = [r["arith_intensity"] for r in rows if r.get("arith_intensity")]
    if ais:
        lo, hi = min(ais + [0.1]) / 2, max(ais + [peak / bw]) * 2
        xs = [lo * (hi / lo) ** (k / 99) for k in range(100)]
        ax2.plot(xs, [min(peak, x * bw) for x in xs], "k-", lw=1.2, label="measured roofs (matmul, copy)")
        by_provider: Dict[str, List[dict]] = {}
        for r in rows:
            if r.get("arith_intensity"):
                by_provider.setdefault(r["provider"], []).append(r)
        for name, rs in by_provider.items():
            ax2.scatter([r["arith_intensity"] for r in rs], [r["TFLOPs"] for r in rs], s=12, label=name, alpha=0.7)
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("arithmetic intensity (FLOP / byte, least traffic)")
        ax2.set_ylabel("TFLOP/s")
        ax2.legend(fontsize=8)
    ax2.set_title(f"roofline: {env.get('device_name', env['device'])}, {env['dtype']}")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def update_readme(result: Dict[str, object], json_path: str, readme: str) -> bool:
    """Replaces the block between the bench markers in `readme` with this run's summary table (the "latest results"
    the README shows). Returns False when the markers are missing."""
    with open(readme) as f:
        text = f.read()
    if README_START not in text or README_END not in text:
        return False
    env, ceil = result["env"], result["ceilings"]
    rel = json_path.replace("\\", "/")
    block = [README_START, "",
             f"Latest run: **{env.get('device_name', env['device'])}** ({env['device']}, {env['dtype']}"
             f"{', --quick: batch 1, small pooling/activation/e2e sizes' if env.get('quick') else ''}), "
             f"{env['date'][:10]}, torch {env['torch']}; measured ceilings: copy {ceil['copy_GBps']:.0f} GB/s, "
             f"matmul {ceil['matmul_TFLOPs']:.2f} TFLOP/s. Every row: `{rel}` and its `.md` / `.png`.", "",
             "| suite | direction | rows | pyconv auto vs baseline (geomean) |", "|---|---|---:|---:|"]
    block += summary_lines(result) + ["", README_END]
    start, end = text.index(README_START), text.index(README_END) + len(README_END)
    with open(readme, "w") as f:
        f.write(text[:start] + "\n".join(block) + text[end:])
    return True

"""The benchmark harness on the CPU with tiny cases: the JSON's schema, ratios computed right, a wrong or failing
provider reported as a failure (never timed), the markdown and the plot, the suites' layer tables, the CLI. Nothing
here asserts a speed."""
import json
import subprocess
import sys

import pytest
import torch

import pyconv
from pyconv import bench
from pyconv.bench import report, suites
from pyconv.bench.harness import Case, Setup

ROW_KEYS = {"suite", "case", "op", "direction", "shape", "flops", "bytes", "provider", "status"}
OK_KEYS = ROW_KEYS | {"seconds", "seconds_min", "seconds_all", "rel_err", "tolerance", "reps", "ratio", "baseline",
                      "GBps", "pct_copy_bw", "pct_roofline", "retimed"}


def _tiny_conv_cases():
    g = suites.conv_geometry(C=4, H=9, W=8, K=6, R=3, S=3, stride=2, padding=1, name="tiny")
    algos = pyconv.build_info()["algorithms"]["cpu"]["conv2d"]
    return suites.conv_cases("tiny", [2], ["fprop", "dgrad", "wgrad"], algos, rotate=2, direct_max_flops=1e12,
                             geometries=[g])


def _faulty_case():
    """A case with a correct provider, a wrong one (off by 1 %) and one that raises."""

    def setup(device, dtype):
        xs = [torch.randn(64, 64, dtype=dtype) for _ in range(2)]

        def boom(i):
            raise RuntimeError("kernel exploded")

        return Setup({"good": lambda i: xs[i] * 2, "wrong": lambda i: xs[i] * 2.02, "raises": boom},
                     lambda: xs[0].double() * 2, "good", 1e-4, skipped={"slow": "not run here"})

    return Case("faulty", "scale", "act", "fwd", None, 2 * 64 * 64, {"shape": [64, 64]}, setup)


@pytest.fixture(scope="module")
def result():
    cases = _tiny_conv_cases() + [_faulty_case()]
    return bench.run(device="cpu", reps=3, warmup=1, progress=False, cases=cases, quick=True)


def test_json_schema(result, tmp_path):
    text = json.dumps(result)  # serialisable as it is
    back = json.loads(text)
    env = back["env"]
    for key in ("date", "device", "device_name", "dtype", "torch", "pyconv", "pyconv_build", "threads", "flags",
                "reps", "warmup", "rotate"):
        assert key in env, key
    assert env["pyconv"] == pyconv.__version__ and env["dtype"] == "float32"
    assert back["ceilings"]["copy_GBps"] > 0 and back["ceilings"]["matmul_TFLOPs"] > 0
    for row in back["rows"]:
        assert ROW_KEYS <= set(row), row
        if row["status"] == "ok":
            assert OK_KEYS <= set(row), set(row) ^ OK_KEYS
            assert len(row["seconds_all"]) == 3 and all(t > 0 for t in row["seconds_all"])


def test_ratios_and_rates_computed_right(result):
    ok = [r for r in result["rows"] if r["status"] == "ok" and r["suite"] == "tiny"]
    assert {r["direction"] for r in ok} == {"fprop", "dgrad", "wgrad"}
    for d in ("fprop", "dgrad", "wgrad"):
        rows = {r["provider"]: r for r in ok if r["direction"] == d}
        assert {"pyconv auto", "torch (oneDNN)"} <= set(rows)
        base = rows["torch (oneDNN)"]
        assert base["ratio"] == 1.0
        for r in rows.values():
            assert r["baseline"] == "torch (oneDNN)"
            assert r["ratio"] == pytest.approx(base["seconds"] / r["seconds"], rel=1e-12)
            assert r["seconds"] == sorted(r["seconds_all"])[1]  # the median of 3
            assert r["TFLOPs"] == pytest.approx(r["flops"] / r["seconds"] / 1e12)
            assert r["GBps"] == pytest.approx(r["bytes"] / r["seconds"] / 1e9)
    fprop = next(r for r in ok if r["direction"] == "fprop")
    assert fprop["flops"] == 2 * 2 * 6 * 5 * 4 * 4 * 9  # 2·N·K·P·Q·C·R·S with P = 5, Q = 4
    assert fprop["bytes"] == 4 * (2 * 4 * 9 * 8 + 6 * 4 * 9 + 2 * 6 * 5 * 4)


def test_wrong_or_failing_provider_is_a_failure_not_a_time(result):
    rows = {r["provider"]: r for r in result["rows"] if r["suite"] == "faulty"}
    assert rows["good"]["status"] == "ok" and rows["good"]["ratio"] == 1.0
    assert rows["wrong"]["status"] == "wrong" and "seconds" not in rows["wrong"]
    assert rows["wrong"]["rel_err"] == pytest.approx(0.01, rel=1e-3)
    assert rows["raises"]["status"] == "error" and "kernel exploded" in rows["raises"]["error"]
    assert "seconds" not in rows["raises"]
    assert rows["slow"]["status"] == "skipped"


def test_markdown_and_plot(result, tmp_path):
    md = report.write_markdown(result, str(tmp_path / "r.md"))
    text = open(md).read()
    assert "| tiny |" in text and "**wrong**" in text and "**error**: RuntimeError: kernel exploded" in text
    assert "geomean ratio" in text and "Ceilings measured in this run" in text
    assert "## Every rung" in text and "best of the rungs timed" in text
    png = report.write_plots(result, str(tmp_path / "r.png"))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_rung_summary():
    """Per rung: the geomean over the rows it ran; best of the rungs: the geomean of each row's best pyconv ratio."""
    rows = [dict(suite="s", direction="fprop", case=c, provider=p, status="ok", ratio=v)
            for c, p, v in (("a", "pyconv auto", 0.5), ("a", "pyconv winograd", 2.0), ("b", "pyconv auto", 0.8),
                            ("a", "cuDNN", 1.0), ("b", "cuDNN", 1.0))]
    rows.append(dict(suite="s", direction="fprop", case="b", provider="pyconv winograd", status="skipped"))
    lines = report.rung_summary_lines({"rows": rows})
    assert lines == ["| s | fprop | pyconv auto | 2 | 0.63× |", "| s | fprop | pyconv winograd | 1 | 2.00× |",
                     "| s | fprop | best of the rungs timed | 2 | 1.26× |"]


def test_compare_two_runs(tmp_path):
    """--compare: per provider the geomean ratio over the rows both runs timed (a row only one run has, or one that
    failed, does not count), new / old, and auto's rows that moved most; no benchmark runs."""
    def rows(vals):
        return [dict(suite="s", direction="fprop", case=c, provider=p, status=st, ratio=v)
                for c, p, v, st in vals]
    old = {"rows": rows([("a", "pyconv auto", 0.5, "ok"), ("b", "pyconv auto", 0.8, "ok"),
                         ("c", "pyconv auto", 0.1, "ok"), ("a", "cuDNN", 1.0, "ok")])}
    new = {"rows": rows([("a", "pyconv auto", 1.0, "ok"), ("b", "pyconv auto", 0.8, "ok"),
                         ("c", "pyconv auto", None, "wrong"), ("d", "pyconv auto", 9.0, "ok")])}
    lines = report.compare_lines(old, new, top=1)
    assert lines[2] == "| s | fprop | pyconv auto | 2 | 0.63× | 0.89× | 1.41 |", lines
    assert lines[-1] == "| s | a | fprop | 0.50× | 1.00× | 2.00 |" and len(lines) == 7, lines
    paths = []
    for name, result in (("old", old), ("new", new)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(result))
    r = subprocess.run([sys.executable, "-m", "pyconv", "bench", "--compare", *map(str, paths)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "| s | fprop | pyconv auto | 2 | 0.63× | 0.89× | 1.41 |" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-m", "pyconv", "bench", "--compare", str(paths[0]), str(tmp_path / "no.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "cannot read" in r.stderr, r.stderr


def test_suite_tables():
    r50 = suites.distinct_convs("resnet50")
    assert sum(len(g["layers"]) for g in r50) == 53  # every Conv2d of ResNet-50, each in exactly one entry
    assert len(r50) == len({(g["C"], g["H"], g["K"], g["R"], g["stride"]) for g in r50})
    assert r50[0]["layers"] == ["conv1"] and (r50[0]["R"], r50[0]["stride"], r50[0]["P"]) == (7, 2, 112)
    mb = suites.distinct_convs("mobilenet_v2")
    assert any(g["groups"] == g["C"] > 1 for g in mb) and any(g["R"] == 1 for g in mb)  # depthwise and pointwise
    assert sum(len(g["layers"]) for g in suites.distinct_convs("vgg16")) == 13
    cases = bench.collect_cases(["pool", "act"], "cpu", quick=True)
    assert {c.direction for c in cases} == {"fwd", "bwd"} and all(c.flops is None for c in cases)


def test_pool_act_e2e_fused_cases_check_out():
    """Each pooling/activation/e2e/fused provider passes its own correctness gate (tiny reps, quick sizes)."""
    cases = [c for c in bench.collect_cases(["pool", "act"], "cpu", quick=True)
             if "global" in c.name or c.name.startswith("relu")]
    from pyconv.bench.suites import e2e_cases

    cases += [c for c in e2e_cases(True, 2) if c.name.startswith("demo")]
    cases += suites.fused_cases([1], 2)[:4]  # conv+bias+relu and conv+bias+add+relu on two ResNet-50 layers
    res = bench.run(device="cpu", reps=1, warmup=0, progress=False, cases=cases, quick=True)
    assert res["rows"] and all(r["status"] == "ok" for r in res["rows"]), [r for r in res["rows"]
                                                                          if r["status"] != "ok"]


def test_cli_bench(tmp_path):
    out = tmp_path / "b.json"
    proc = subprocess.run([sys.executable, "-m", "pyconv", "bench", "--suite", "act", "--quick", "--reps", "1",
                           "--device", "cpu", "--json", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert {r["provider"] for r in data["rows"]} == {"pyconv", "torch"}
    assert (tmp_path / "b.md").exists() and (tmp_path / "b.png").exists()
    assert "0 failed the correctness check" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "pyconv", "bench", "--op", "nope"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1 and "unknown --op" in bad.stderr


def test_update_readme_block(result, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- bench:start -->\nold table\n<!-- bench:end -->\n\nafter\n")
    assert report.update_readme(result, "benchmarks/results/x.json", str(readme))
    text = readme.read_text()
    assert "old table" not in text and "benchmarks/results/x.json" in text and text.endswith("after\n")
    assert "| tiny | fprop | 1 |" in text
    plain = tmp_path / "plain.md"
    plain.write_text("no markers here\n")
    assert not report.update_readme(result, "x.json", str(plain))
    assert plain.read_text() == "no markers here\n"


def test_checkpoint_keeps_partial_rows(tmp_path):
    path = tmp_path / "partial.json"
    res = bench.run(device="cpu", reps=1, warmup=0, progress=False, cases=[_faulty_case(), _faulty_case()],
                    quick=True, checkpoint=str(path), checkpoint_every=0.0)
    data = json.loads(path.read_text())
    assert data["partial"] is True and len(data["rows"]) == len(res["rows"])  # written after the last case too


def test_tune_settles_auto_before_timing(tmp_path, monkeypatch):
    """``pyconv bench --tune``: each conv layer's "auto" is tuned (every rung timed once, the winner installed) before
    the auto row is timed, and the run records that tuning was on; without it nothing is tuned."""
    from pyconv import tuning

    monkeypatch.setenv("PYCONV_TUNING_CACHE", str(tmp_path / "tuning.json"))
    monkeypatch.setattr(tuning, "_cache", None)
    tuning.clear(disk=False)
    res = bench.run(device="cpu", reps=1, warmup=0, progress=False, cases=_tiny_conv_cases()[:1], quick=True)
    assert res["env"]["tuning"] is False and not tuning.entries()
    tuning.enable()
    try:
        res = bench.run(device="cpu", reps=1, warmup=0, progress=False, cases=_tiny_conv_cases(), quick=True)
    finally:
        tuning.enable(False)
    assert res["env"]["tuning"] is True
    keys = [k for dev in tuning.entries().values() for k in dev]
    assert sorted(k.split(",")[0] for k in keys) == ["dgrad", "fprop", "wgrad"]  # one tuned choice per direction
    assert all(r["status"] == "ok" for r in res["rows"] if r["provider"] == "pyconv auto")
    tuning.clear(disk=False)


class _CannedTimer:
    """A Timer stand-in: single warm-up calls take 1 ms, timed series come from `series` in turn (per provider)."""
    graph = False

    def __init__(self, series):
        self.series, self.eager_fallbacks = series, []

    def sync(self):
        pass

    def __call__(self, fn, reps, rotate=1):
        return [1e-3] if reps == 1 else self.series.pop(0)


def test_disturbed_series_is_timed_again():
    """A series whose median is over twice its fastest repetition (a burst of slow repetitions) is timed again, at
    most twice, and the calmest series (lowest median) is kept; a calm series is timed once."""
    from pyconv.bench.harness import run_case

    burst, calm, worse = [9e-3, 9e-3, 1e-3, 9e-3, 1e-3], [1.0e-3, 1.1e-3, 1.2e-3, 1.0e-3, 1.3e-3], [5e-3] * 4 + [1e-3]
    case = _faulty_case()
    ceilings = {"copy_GBps": 1.0, "matmul_TFLOPs": 1.0}
    # provider "good" only (the others fail their check before timing): burst, then calm
    rows = run_case(case, "cpu", torch.float32, _CannedTimer([burst, calm]), 5, 1, ceilings, 2)
    good = next(r for r in rows if r["provider"] == "good")
    assert good["retimed"] == 1 and good["seconds"] == 1.1e-3 and good["seconds_all"] == calm
    # never calm: two re-timings, the lowest median of the three kept
    rows = run_case(case, "cpu", torch.float32, _CannedTimer([burst, worse, list(burst)]), 5, 1, ceilings, 2)
    good = next(r for r in rows if r["provider"] == "good")
    assert good["retimed"] == 2 and good["seconds"] == 5e-3 and good["seconds_all"] == worse
    rows = run_case(case, "cpu", torch.float32, _CannedTimer([calm]), 5, 1, ceilings, 2)
    assert next(r for r in rows if r["provider"] == "good")["retimed"] == 0


def test_algos_limit_the_conv_rungs():
    """``pyconv bench --algos``: only the named conv2d rungs (plus auto and torch) are providers; unknown names are
    an error naming the choices."""
    cases = bench.collect_cases(["resnet50"], "cpu", True, ("fprop",), algos=["im2col_gemm"])
    setup = cases[0].setup("cpu", torch.float32)
    assert set(setup.providers) == {"pyconv im2col_gemm", "pyconv auto", "torch (oneDNN)"}
    assert len(pyconv.build_info()["algorithms"]["cpu"]["conv2d"]) > 1  # so the limit removed some
    with pytest.raises(ValueError, match="unknown conv2d algorithm.*nope.*choose from direct"):
        bench.collect_cases(["resnet50"], "cpu", True, algos=["nope"])

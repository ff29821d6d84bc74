"""pyconv.tuning: algo="auto" by timing, per (direction, shape, dtype, layout, device), with the native table the ops
consult, the JSON cache on disk, and inspect/export/load/clear. Timing itself is not asserted (machines are noisy):
what is asserted is which rungs were timed, that the recorded winner is the fastest recorded, that the ops then run
it (bit-identical to calling it by name), and that the cache round-trips."""
import json

import pytest
import torch
import torch.nn.functional as F

import pyconv
from pyconv import functional as PF
from pyconv import tuning


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PYCONV_TUNING_CACHE", str(tmp_path / "tuning.json"))
    tuning.clear(disk=False)
    was = tuning.enabled()
    yield
    tuning.enable(was)
    tuning.clear(disk=False)


def _conv():
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    return x, w


def test_off_by_default_changes_nothing():
    assert not tuning.enabled()
    x, w = _conv()
    PF.conv2d(x, w, None, 1, 1).sum().backward()
    assert tuning.entries() == {}


def test_tunes_every_direction_and_installs_the_winner():
    tuning.enable()
    x, w = _conv()
    y = PF.conv2d(x, w, None, 1, 1)
    y.backward(torch.randn_like(y))
    (dev, table), = tuning.entries().items()
    assert dev.startswith("cpu:")
    by_dir = {k.split(",")[0]: v for k, v in table.items()}
    assert set(by_dir) == {"fprop", "dgrad", "wgrad"}
    for v in by_dir.values():
        # every CPU rung that takes this shape was timed ('depthwise' needs one input channel per group)
        assert set(v["ms"]) == set(pyconv.build_info()["algorithms"]["cpu"]["conv2d"]) - {"depthwise"}
        assert v["algo"] == min(v["ms"], key=v["ms"].get)
    # The ops now run the recorded rung for "auto": bit-identical to naming it.
    fp = by_dir["fprop"]["algo"]
    torch.testing.assert_close(torch.ops.pyconv.conv2d_fprop(x, w, None, [1, 1], [1, 1], [1, 1], 1, "auto"),
                               torch.ops.pyconv.conv2d_fprop(x, w, None, [1, 1], [1, 1], [1, 1], 1, fp), rtol=0, atol=0)
    torch.testing.assert_close(y, F.conv2d(x, w, None, 1, 1), rtol=1e-10, atol=1e-10)


def test_forced_choice_is_what_auto_runs():
    """Install a choice by hand through the cache (load): auto must follow it — proven with a rung whose rounding
    differs from the default's on float32."""
    x = torch.randn(2, 8, 20, 20)
    w = torch.randn(8, 8, 3, 3)
    key = pyconv._C.conv2d_tuning_key("fprop", x, list(x.shape), list(w.shape), [1, 1], [1, 1], [1, 1], 1)
    direct = torch.ops.pyconv.conv2d_fprop(x, w, None, [1, 1], [1, 1], [1, 1], 1, "direct")
    gemm = torch.ops.pyconv.conv2d_fprop(x, w, None, [1, 1], [1, 1], [1, 1], 1, "im2col_gemm")
    assert not torch.equal(direct, gemm)  # different summation orders
    tuning.enable()
    name = tuning._device_name(x.device)
    for chosen, expect in (("direct", direct), ("im2col_gemm", gemm)):
        tuning.clear(disk=False)
        tuning._load_cache()[name] = {key: {"algo": chosen, "ms": {chosen: 1.0}}}
        y = PF.conv2d(x, w, None, 1, 1)
        assert torch.equal(y, expect), chosen


def test_cache_persists_exports_loads_and_clears(tmp_path):
    tuning.enable()
    x, w = _conv()
    PF.conv2d(x, w, None, 1, 1)
    saved = json.loads(open(tuning.cache_path()).read())
    assert saved["pyconv"] == pyconv.__version__ and saved["devices"] == tuning.entries()
    out = tmp_path / "export.json"
    tuning.export(str(out))
    tuning.clear()
    assert tuning.entries() == {}
    with pytest.raises(OSError):
        open(tuning.cache_path())
    assert tuning.load(str(out)) == 1
    assert tuning.entries() == saved["devices"]
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps({"pyconv": "0.0.0", "devices": {}}))
    with pytest.raises(ValueError, match="written by pyconv 0.0.0"):
        tuning.load(str(bad))


def test_layout_and_dtype_are_part_of_the_key():
    tuning.enable()
    x, w = _conv()
    PF.conv2d(x.detach(), w.detach(), None, 1, 1)
    PF.conv2d(x.detach().contiguous(memory_format=torch.channels_last), w.detach(), None, 1, 1)
    PF.conv2d(x.detach().float(), w.detach().float(), None, 1, 1)
    keys = sorted(next(iter(tuning.entries().values())))
    assert len(keys) == 3
    assert {k.split(",")[-1] for k in keys} == {"nchw", "nhwc"}
    assert {k.split(",")[-2] for k in keys} == {"Double", "Float"}


def test_compile_uses_installed_choice_without_tuning():
    tuning.enable()
    x, w = _conv()
    f = torch.compile(lambda a, b: PF.conv2d(a, b, None, 1, 1), fullgraph=True, backend="aot_eager")
    y = f(x.detach(), w.detach())
    torch.testing.assert_close(y, F.conv2d(x.detach(), w.detach(), None, 1, 1), rtol=1e-10, atol=1e-10)
    assert tuning.entries() == {}  # nothing is timed while tracing


def test_candidates():
    cpu = torch.device("cpu")
    assert tuning.candidates("fprop", cpu, torch.float32, [1, 4, 8, 8], [4, 1, 3, 3], 4) == \
        pyconv.build_info()["algorithms"]["cpu"]["conv2d"]

"""scripts/sass_report.py: the SASS rules CI enforces really bite (a violated rule and a stale rule both fail)."""
import os
import subprocess
import sys

import pytest

import pyconv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "sass_report.py")

pytestmark = pytest.mark.skipif(not pyconv.build_info()["cuda"], reason="a CPU-only build has no SASS")


def _run(expect, tmp_path):
    return subprocess.run([sys.executable, SCRIPT, "--check", "--expect", str(expect), "--out",
                           str(tmp_path / "sass.md")], capture_output=True, text=True, timeout=300)


def test_rules_hold_and_violations_fail(tmp_path):
    expect = tmp_path / "expect.txt"
    expect.write_text(
        "# a rule that holds, one that is violated, one that matches nothing\n"
        "emu_selftest::mma_kernel | require | ^HMMA\\.16816\\.F32 | tensor cores\n"
        "emu_selftest::mma_kernel | forbid | ^HMMA|^LDG | seeded violation (regex with a bar)\n"
        "emu_selftest::mma_kernel | max | 8 | seeded violation: a code-size budget it exceeds\n"
        "emu_selftest::mma_kernel | max | 100000 | a budget it keeps\n"
        "no_such_kernel_anywhere | require | ^FFMA | stale\n")
    r = _run(expect, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    fails = [l for l in r.stdout.splitlines() if l.startswith("FAIL")]
    assert len(fails) == 5, fails  # the forbid and the small budget on sm_80 and sm_90, and the stale rule
    assert sum("HMMA.16816.F32" in f for f in fails) == 2 and "matches no kernel" in fails[-1]
    assert sum("over the budget of 8" in f for f in fails) == 2
    table = (tmp_path / "sass.md").read_text()
    assert "| `pyconv::emu_selftest::mma_kernel(" in table and "| sm_90 |" in table


def test_project_rules_hold(tmp_path):
    r = _run(os.path.join(ROOT, "csrc", "sass_expect.txt"), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr

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
        "emu_selftest::mma_kernel @sm_90a | max | 9 | seeded violation on one architecture only\n"
        "emu_selftest::wgmma_kernel @sm_90a | require | ^HGMMA\\.64x128x16\\.F32 | holds on sm_90a, not checked on sm_80\n"
        "no_such_kernel_anywhere | require | ^FFMA | stale\n")
    r = _run(expect, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    fails = [l for l in r.stdout.splitlines() if l.startswith("FAIL")]
    # the forbid and the small budget on sm_80 and sm_90a, the sm_90a-only budget, and the stale rule
    assert len(fails) == 6, fails
    assert sum("HMMA.16816.F32" in f for f in fails) == 2 and "matches no kernel" in fails[-1]
    assert sum("over the budget of 8" in f for f in fails) == 2
    assert [f for f in fails if "over the budget of 9" in f and "[sm_90a]" in f] == \
        [f for f in fails if "over the budget of 9" in f], fails
    assert sum("over the budget of 9" in f for f in fails) == 1, fails
    table = (tmp_path / "sass.md").read_text()
    assert "| `pyconv::emu_selftest::mma_kernel(" in table and "| sm_90a |" in table


def test_project_rules_hold(tmp_path):
    r = _run(os.path.join(ROOT, "csrc", "sass_expect.txt"), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_kernel_resources_flags_ptxas_performance_loss():
    """scripts/kernel_resources.py parses ptxas -v output: registers and spills per kernel, and ptxas's "Potential
    Performance Loss" notes (a serialised wgmma pipeline, C7515, was this project's first wgmma kernel), which --check
    turns into failures."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import kernel_resources

    text = ("ptxas info    : Compiling entry function '_Z1kv' for 'sm_90a'\n"
            "ptxas info    : (C7515) Potential Performance Loss: wgmma.mma_async instructions are serialized due to "
            "non wgmma instructions defining accumulator registers of a wgmma between start and end of the pipeline "
            "stage in the function '_Z1kv'\n"
            "ptxas info    : Function properties for _Z1kv\n"
            "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
            "ptxas info    : Used 90 registers, used 1 barriers\n"
            "ptxas info    : Compiling entry function '_Z1jv' for 'sm_90a'\n"
            "ptxas info    : Function properties for _Z1jv\n"
            "    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads\n"
            "ptxas info    : Used 40 registers\n")
    res = kernel_resources.parse(text)
    assert res[("_Z1kv", "sm_90a")]["registers"] == 90
    assert res[("_Z1kv", "sm_90a")]["perf_loss"] == [
        "C7515: wgmma.mma_async instructions are serialized due to non wgmma instructions defining accumulator "
        "registers of a wgmma between start and end of the pipeline stage"]
    assert "perf_loss" not in res[("_Z1jv", "sm_90a")] and res[("_Z1jv", "sm_90a")]["spill_stores"] == 4


def test_hgmma_operand_layout_is_part_of_the_opcode():
    """wgmma's operand layout lives in the descriptor operand (gdesc[UR16].tnspA.tnspB), not the opcode: the parser
    appends it, so that a rule can require MN-major operands (wgrad) or forbid them (fprop/dgrad)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sass_report", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sass = ("\tarch = sm_90a\n\t\tFunction : k\n"
            "        /*58c0*/                   HGMMA.64x128x16.F32 R24, gdesc[UR16].tnspA.tnspB, R24 ;  /* 0x6 */\n"
            "        /*5ac0*/                   HGMMA.64x64x16.F32.BF16 R24, gdesc[UR8], R24, gsb0 ;  /* 0x6 */\n"
            "        /*5ad0*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;  /* 0x0 */\n")
    ops = mod.parse(sass)[("sm_90a", "k")]
    assert ops == {"HGMMA.64x128x16.F32.tnspA.tnspB": 1, "HGMMA.64x64x16.F32.BF16": 1, "WARPGROUP.DEPBAR.LE": 1}, ops


def test_main_loop_budgets_measure_the_innermost_loop():
    """`mma loop` / `copy loop` rules cap the innermost loop holding a tensor-core MMA / four cp.async: the shortest
    range [backward-branch target, branch], NOPs not counted; forward branches and outer loops do not count."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sass_report", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def ins(addr, text):
        return f"        /*{addr:04x}*/                   {text} ;  /* 0x0 */\n"

    body = [ins(0x10, "IMAD R1, R2, R3, RZ"),                                # outer loop head
            ins(0x20, "LDGSTS.E.BYPASS.128 [R1], desc[UR4][R2.64]"),        # copy loop: 0x20 .. 0x80
            ins(0x30, "LDGSTS.E.BYPASS.128 [R1+0x10], desc[UR4][R2.64]"),
            ins(0x40, "@P0 BRA 0x60"),                                      # forward: no loop
            ins(0x50, "NOP"),
            ins(0x60, "LDGSTS.E.BYPASS.128 [R1+0x20], desc[UR4][R2.64]"),
            ins(0x70, "LDGSTS.E.BYPASS.128 [R1+0x30], desc[UR4][R2.64]"),
            ins(0x80, "@P1 BRA 0x20"),
            ins(0x90, "HGMMA.64x128x16.F32 R24, gdesc[UR8], R24"),
            ins(0xa0, "IADD3 R1, R1, 0x1, RZ"),
            ins(0xb0, "@P2 BRA 0x10")]                                      # mma loop: the outer one
    ops = mod.parse("\tarch = sm_90a\n\t\tFunction : k\n" + "".join(body))[("sm_90a", "k")]
    assert mod.loop_size(ops, "copy") == 6  # 0x20-0x80 without the NOP
    assert mod.loop_size(ops, "mma") == 10  # 0x10-0xb0 without the NOP
    assert mod.loop_size(mod.parse("\tarch = sm_90a\n\t\tFunction : j\n" + body[0])[("sm_90a", "j")], "mma") is None
    row = mod.classify(ops)
    assert row["copy loop"] == 6 and row["mma loop"] == 10
    # a TMA producer's loop: the UTMALDG sits in ptxas's waterfall (ELECT .. BRA.U.ANY back), which runs once and
    # is no main loop; the loop measured is the one around it
    tma = [ins(0x10, "SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [R1+URZ], R2"),     # producer loop: 0x10 .. 0x60
           ins(0x20, "@P0 ELECT P2, URZ, PT"),                              # waterfall: 0x20 .. 0x40
           ins(0x30, "UTMALDG.4D.IM2COL [UR8], [UR6], UR18"),
           ins(0x40, "@P0 BRA.U.ANY 0x20"),
           ins(0x50, "VIADD R7, R7, 0x1"),
           ins(0x60, "@P1 BRA 0x10")]
    ops = mod.parse("\tarch = sm_90a\n\t\tFunction : t\n" + "".join(tma))[("sm_90a", "t")]
    assert mod.loop_size(ops, "copy") == 6

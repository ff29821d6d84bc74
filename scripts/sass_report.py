#!/usr/bin/env python3
"""The instruction mix of every CUDA kernel, read from the SASS that nvcc put into the built extension, and the
checks that CI runs on it — static evidence about the kernels for a project that rarely gets a GPU.

`cuobjdump -sass` (it calls `nvdisasm`) disassembles pyconv._C; every kernel and architecture gets a row: instruction
count and the classes that matter for performance — tensor-core MMA (HMMA), ldmatrix (LDSM), 128-bit global loads and
stores (LDG.E.128 / STG.E.128), shared-memory traffic (LDS / STS), barriers, warp shuffles, floating-point FMAs, and
local-memory traffic (LDL / STL: spills or stack arrays). With --check, the rules in csrc/sass_expect.txt must hold
(e.g. the mma self-test kernel contains HMMA.16816.F32; the float activation kernels load and store 16 bytes at a
time; the shared-memory GEMM has no local-memory traffic).

Tools: $CUOBJDUMP, else cuobjdump on PATH, in the CUDA toolkit, or the copies that ship inside triton (which a CUDA
torch installs), with nvdisasm beside it.

    python scripts/sass_report.py --check --out build/sass_report.md
"""
from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPECT = os.path.join(ROOT, "csrc", "sass_expect.txt")

# Column → regex over the opcode (the first token of an instruction, predicates stripped).
CLASSES = collections.OrderedDict([
    ("HMMA", r"^HMMA\b"),
    ("HGMMA", r"^HGMMA\b"),  # Hopper's warpgroup MMA (wgmma)
    ("LDSM", r"^LDSM\b"),
    ("LDG.128", r"^LDG\.E\.128\b|^LDG\.E\.[A-Z.]*128\b"),
    ("STG.128", r"^STG\.E\.128\b|^STG\.E\.[A-Z.]*128\b"),
    ("LDG", r"^LDG\b"),
    ("LDS", r"^LDS\b"),
    ("STS", r"^STS\b"),
    ("BAR", r"^BAR\b"),
    ("SHFL", r"^SHFL\b"),
    ("FFMA", r"^(FFMA|HFMA2|DFMA)\b"),
    ("LDL/STL", r"^(LDL|STL)\b"),
])
_COMPILED = {k: re.compile(v) for k, v in CLASSES.items()}
# opcode with its modifiers (HGMMA's shape has a lower-case x: HGMMA.64x128x16.F32)
INSTR = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Za-z0-9_.]*)")


def find_cuobjdump() -> str:
    candidates = [os.environ.get("CUOBJDUMP"), shutil.which("cuobjdump")]
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            candidates.append(os.path.join(home, "bin", "cuobjdump"))
    try:
        import triton

        candidates.append(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump"))
    except ImportError:
        pass
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK) and os.path.isfile(os.path.join(os.path.dirname(c),
                                                                                              "nvdisasm")):
            return c
        if c and os.path.isfile(c) and shutil.which("nvdisasm"):
            return c
    raise SystemExit("sass_report: cuobjdump with nvdisasm beside it (or on PATH) not found: set CUOBJDUMP, install "
                     "the CUDA toolkit's binary utilities, or a CUDA build of torch (its triton ships both)")


def extension_path() -> str:
    paths = glob.glob(os.path.join(ROOT, "pyconv", "_C.*.so"))
    if not paths:
        raise SystemExit("sass_report: pyconv/_C*.so not found; build pyconv first (scripts/install.sh)")
    return paths[0]


def demangle(names):
    if not names or not shutil.which("c++filt"):
        return {n: n for n in names}
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


ADDR = re.compile(r"/\*([0-9a-f]{4,})\*/")
BRANCH_TARGET = re.compile(r"\bBRA\b.*?0x([0-9a-f]+)")


class Kernel(collections.Counter):
    """Opcode counts of one kernel build, plus its instructions in order as (address, opcode) for the loop checks."""

    def __init__(self):
        super().__init__()
        self.code = []  # (address, opcode, backward-branch target or None)


def parse(sass: str):
    """{(arch, mangled kernel): Kernel (a Counter of opcodes)}."""
    kernels = {}
    arch, current = None, None
    for line in sass.splitlines():
        s = line.strip()
        if s.startswith("arch = "):
            arch = s.split("=", 1)[1].strip()
        elif s.startswith("Function : "):
            current = kernels.setdefault((arch, s.split(":", 1)[1].strip()), Kernel())
        elif current is not None:
            m = INSTR.search(line)
            if m:
                op = m.group(1)
                if op.startswith("HGMMA"):  # the operand layout is a descriptor modifier: gdesc[UR4].tnspA.tnspB
                    op += "".join(f".{t}" for t in ("tnspA", "tnspB") if f".{t}" in line)
                current[op] += 1
                addr = int(ADDR.search(line).group(1), 16)
                # (a BRA.U.ANY back edge closes a "waterfall" loop, which ptxas wraps around an instruction taking
                # uniform registers — UTMALDG — in case the values differ across the warp: it runs once when they
                # do not, so it is no main loop)
                t = BRANCH_TARGET.search(line) if op.startswith("BRA") and not op.startswith("BRA.U.ANY") else None
                target = int(t.group(1), 16) if t and int(t.group(1), 16) < addr else None
                current.code.append((addr, op, target))
    return kernels


# The loops the main-loop budgets measure: the innermost loop (the shortest address range [target, backward branch])
# that holds a tensor-core MMA ("mma loop": one reduction tile of the mma.sync / wgmma main loop, or of a
# warp-specialised consumer), or at least four cp.async copies or a TMA load ("copy loop": the producer warps' loop of
# those kernels, the TMA producer thread's; the plain kernels' main loop again). Its static instruction count — every path of the body counted, NOPs
# not — is what each thread issues per reduction tile, give or take the branches not taken.
LOOP_KINDS = {
    "mma": lambda body: any(op.startswith(("HMMA", "HGMMA")) for _, op, _ in body),
    "copy": lambda body: sum(op.startswith("LDGSTS") for _, op, _ in body) >= 4
    or any(op.startswith("UTMALDG") for _, op, _ in body),
}


def loop_size(kernel, kind: str):
    """Instructions in the innermost loop of `kind` ("mma" or "copy"), or None when the kernel has none."""
    code = getattr(kernel, "code", [])
    best = None
    for i, (addr, _, target) in enumerate(code):
        if target is None:
            continue
        body = [c for c in code[:i + 1] if c[0] >= target and c[1] != "NOP"]
        if LOOP_KINDS[kind](body) and (best is None or len(body) < best):
            best = len(body)
    return best


def classify(ops: collections.Counter):
    row = {k: 0 for k in CLASSES}
    for op, n in ops.items():
        for k, rx in _COMPILED.items():
            if rx.search(op):
                row[k] += n
    row["total"] = sum(ops.values())
    for kind in LOOP_KINDS:
        size = loop_size(ops, kind)
        row[f"{kind} loop"] = "" if size is None else size
    return row


def load_rules(path: str):
    """Lines: `kernel substring | require or forbid | opcode regex | reason`, or `kernel substring | max | N | reason`
    (at most N SASS instructions: a code-size budget), or `kernel substring | mma loop | N | reason` /
    `... | copy loop | N | ...` (at most N instructions in that main loop, see LOOP_KINDS); '#' starts a comment
    line. `kernel substring @sm_XX` limits a rule to one architecture."""
    rules = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            # The regex may hold '|' itself: kernel and kind are the first two fields, the reason follows the last
            # ' | ', the regex is what lies between.
            head = line.split("|", 2)
            tail = head[2].rsplit(" | ", 1) if len(head) == 3 else []
            parts = [p.strip() for p in head[:2] + tail]
            budgets = ("max", "mma loop", "copy loop")
            if len(parts) != 4 or parts[1] not in ("require", "forbid") + budgets or \
                    (parts[1] in budgets and not parts[2].isdigit()):
                raise SystemExit(f"{path}:{lineno}: expected 'kernel | require|forbid | regex | reason' or "
                                 "'kernel | max|mma loop|copy loop | N | reason'")
            rules.append((parts[0], parts[1], re.compile(parts[2]), parts[3], lineno))
    return rules


def check(kernels, names, rules):
    failures, matched = [], collections.Counter()
    for (arch, mangled), ops in kernels.items():
        name = names[mangled]
        for sub, kind, rx, reason, lineno in rules:
            sub, _, only_arch = sub.partition(" @")  # `kernel @sm_90a`: the rule holds for that architecture only
            if sub not in name or (only_arch and arch != only_arch):
                continue
            matched[lineno] += 1
            if kind == "max":
                total = sum(ops.values())
                if total > int(rx.pattern):
                    failures.append(f"{name} [{arch}]: {total} instructions, over the budget of {rx.pattern} "
                                    f"({reason})")
                continue
            if kind.endswith(" loop"):
                size = loop_size(ops, kind.split()[0])
                if size is None:
                    failures.append(f"{name} [{arch}]: no {kind} found ({reason})")
                elif size > int(rx.pattern):
                    failures.append(f"{name} [{arch}]: {kind} of {size} instructions, over the budget of "
                                    f"{rx.pattern} ({reason})")
                continue
            hits = sum(n for op, n in ops.items() if rx.search(op))
            if kind == "require" and hits == 0:
                failures.append(f"{name} [{arch}]: no instruction matches /{rx.pattern}/ ({reason})")
            if kind == "forbid" and hits:
                bad = sorted(op for op in ops if rx.search(op))
                failures.append(f"{name} [{arch}]: {hits} × {', '.join(bad)} ({reason})")
    for sub, kind, rx, reason, lineno in rules:
        if not matched[lineno]:
            failures.append(f"rule {EXPECT}:{lineno} ('{sub}') matches no kernel: stale rule?")
    return failures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", help="the shared object to disassemble (default pyconv/_C*.so)")
    ap.add_argument("--out", help="write the markdown table here")
    ap.add_argument("--check", action="store_true", help="enforce csrc/sass_expect.txt")
    ap.add_argument("--expect", default=EXPECT)
    args = ap.parse_args(argv)
    lib = args.lib or extension_path()
    tool = find_cuobjdump()
    env = dict(os.environ, PATH=os.path.dirname(tool) + os.pathsep + os.environ.get("PATH", ""))
    res = subprocess.run([tool, "-sass", lib], capture_output=True, text=True, env=env)
    if res.returncode != 0 or "Function :" not in res.stdout:
        sys.stderr.write(res.stderr[-2000:])
        raise SystemExit(f"sass_report: {tool} -sass {lib} failed (a CPU-only build has no SASS)")
    kernels = parse(res.stdout)
    names = demangle(sorted({m for _, m in kernels}))
    rows = sorted(((names[m], arch, classify(ops)) for (arch, m), ops in kernels.items()), key=lambda r: (r[0], r[1]))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        cols = ["total"] + list(CLASSES) + [f"{k} loop" for k in LOOP_KINDS]
        with open(args.out, "w") as f:
            f.write("# CUDA kernel instruction mix (SASS)\n\n")
            f.write(f"From `cuobjdump -sass {os.path.relpath(lib, ROOT)}`, generated by scripts/sass_report.py. "
                    "Static counts (instructions in the code, not executed). LDG.128/STG.128: 16-byte global "
                    "accesses; LDL/STL: local memory (spills or stack arrays). mma loop / copy loop: instructions in "
                    "the innermost loop holding a tensor-core MMA / at least four cp.async (a main loop's reduction "
                    "tile: what each thread issues per tile, every path counted). Checked rules: "
                    "csrc/sass_expect.txt.\n\n")
            f.write("| kernel | arch | " + " | ".join(cols) + " |\n|---|---|" + "---:|" * len(cols) + "\n")
            for name, arch, row in rows:
                f.write(f"| `{name}` | {arch} | " + " | ".join(str(row[c]) for c in cols) + " |\n")
    print(f"sass_report: {len(rows)} kernel builds disassembled" + (f", table in {args.out}" if args.out else ""))
    if args.check:
        failures = check(kernels, names, load_rules(args.expect))
        for f in failures:
            print("FAIL " + f)
        if failures:
            return 1
        print(f"sass_report: every rule of {os.path.relpath(args.expect, ROOT)} holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())

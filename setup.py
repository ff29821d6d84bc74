"""Build pyconv's extension with torch.utils.cpp_extension.

Switches (printed at build time):
  PYCONV_CUDA=1/0        force the CUDA extension on or off. Default: on when a CUDA toolkit (nvcc) and a CUDA
                         build of torch are present, whether or not a GPU is visible (GPU-less CI compiles every .cu).
  TORCH_CUDA_ARCH_LIST   architectures to compile for (default "8.0;9.0a": sm_80 and sm_90a, Hopper with wgmma).
  PYCONV_EMU=1/0         force the emulated CUDA backend (pyconv._C_emu) on or off. Default: on when CUDA's headers
                         are found (a toolkit, or the nvidia-* wheels that come with a CUDA build of torch); it
                         needs only the host compiler.
  PYCONV_DEBUG=1         -O0 -g host code and -G device code.
  CUDA_HOME / CUDA_PATH  the toolkit to use; otherwise it is located from nvcc (see find_cuda_home).
"""
import glob
import os
import re
import shutil
import subprocess
import sys

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))


# Link libstdc++ as the shared library torch itself uses, even where the compiler driver is set up to link it
# statically (the H200 image of 2026-11-26 has a g++ wrapper whose library directory holds only libstdc++.a, with
# -static-libstdc++). A private static copy of libstdc++'s stream and locale code inside _C.so meets a process whose
# locale facets were registered by the shared libstdc++ torch loaded: formatting an integer into a TORCH_CHECK message
# then segfaulted there (std::ostream::_M_insert<long>) and silently drops the number elsewhere (cf.
# pytorch/pytorch#109923). So the link gets the very file this process has loaded (torch is imported by then), by
# path: a path bypasses the library search that found the archive for a plain -lstdc++ on that image, and coming
# before the driver's own libstdc++ it resolves every symbol, so nothing is taken from the archive.
# tests/test_build.py checks the result.
def shared_libstdcxx():
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/maps") as maps:
                for line in maps:
                    path = line.split()[-1]
                    if os.path.basename(path).startswith("libstdc++.so") and os.path.isfile(path):
                        return [path]
        except OSError:
            pass
    return ["-lstdc++"]


def _log(msg):
    print(f"[pyconv build] {msg}", flush=True)


def _is_toolkit(path):
    """A CUDA toolkit root has nvcc, the runtime headers and the runtime library."""
    if not path or not os.path.isdir(path):
        return False
    has_nvcc = os.path.exists(os.path.join(path, "bin", "nvcc"))
    has_hdr = os.path.exists(os.path.join(path, "include", "cuda_runtime.h"))
    has_lib = any(glob.glob(os.path.join(path, d, "libcudart.so*")) for d in ("lib64", "lib", "targets/*/lib"))
    return has_nvcc and has_hdr and has_lib


def find_cuda_home():
    """Locate the real CUDA toolkit.

    torch guesses CUDA_HOME as the parent of the folder holding the first `nvcc` on PATH. When that nvcc is a wrapper
    script outside the toolkit (e.g. /usr/local/bin/nvcc exec'ing /usr/local/cuda-13.0/bin/nvcc) the guess is
    /usr/local and the link fails with `cannot find -lcudart`. So: honour CUDA_HOME/CUDA_PATH, else validate torch's
    guess, else ask nvcc where it really lives (`nvcc --dryrun` prints its _HERE_ folder), else try the conventional
    locations.
    """
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    candidates = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(nvcc)))
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
        try:
            out = subprocess.run([nvcc, "--dryrun", "--version"], capture_output=True, text=True, timeout=60)
            m = re.search(r"_HERE_=(\S+)", out.stdout + out.stderr)
            if m:
                candidates.append(os.path.dirname(os.path.normpath(m.group(1))))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates.append("/usr/local/cuda")
    candidates += sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    for c in candidates:
        if _is_toolkit(c):
            return os.path.normpath(c)
    return None


def want_cuda(cuda_home):
    import torch

    forced = os.environ.get("PYCONV_CUDA")
    if forced is not None and forced not in ("0", "1"):
        sys.exit(f"PYCONV_CUDA must be 0 or 1, got {forced!r}")
    if forced == "0":
        return False, "PYCONV_CUDA=0"
    if torch.version.cuda is None:
        if forced == "1":
            sys.exit("PYCONV_CUDA=1 but this torch is a CPU-only build (torch.version.cuda is None)")
        return False, "torch is a CPU-only build"
    if cuda_home is None:
        if forced == "1":
            sys.exit("PYCONV_CUDA=1 but no CUDA toolkit was found: set CUDA_HOME to the toolkit root")
        return False, "no CUDA toolkit (nvcc) found"
    return True, "PYCONV_CUDA=1" if forced == "1" else "nvcc and a CUDA build of torch found"


def find_cuda_include(cuda_home):
    """A folder with cuda_runtime.h and cuda_fp16.h, for the emulated build: the toolkit's, else the nvidia wheels'."""
    candidates = [os.path.join(cuda_home, "include")] if cuda_home else []
    for site in sys.path:
        candidates += sorted(glob.glob(os.path.join(site, "nvidia", "cu*", "include")), reverse=True)
        candidates.append(os.path.join(site, "nvidia", "cuda_runtime", "include"))
    for c in candidates:
        if all(os.path.exists(os.path.join(c, h)) for h in ("cuda_runtime.h", "cuda_fp16.h", "cuda_bf16.h")):
            return os.path.normpath(c)
    return None


def emu_extension(cuda_home, opt, cxx_common, stdcxx):
    """pyconv._C_emu: the CUDA sources compiled by the host compiler against csrc/emu/cuda_emu.h."""
    from torch.utils.cpp_extension import CppExtension

    forced = os.environ.get("PYCONV_EMU")
    if forced is not None and forced not in ("0", "1"):
        sys.exit(f"PYCONV_EMU must be 0 or 1, got {forced!r}")
    if forced == "0":
        _log("not building pyconv._C_emu (PYCONV_EMU=0)")
        return None
    inc = find_cuda_include(cuda_home)
    if inc is None:
        if forced == "1":
            sys.exit("PYCONV_EMU=1 but CUDA's headers (cuda_runtime.h, cuda_fp16.h) were not found: set CUDA_HOME")
        _log("not building pyconv._C_emu: CUDA headers not found (set CUDA_HOME)")
        return None
    sources = sorted(glob.glob(os.path.join("csrc", "**", "*_emu.cpp"), recursive=True))
    _log(f"building CppExtension pyconv._C_emu (CUDA kernels on the CPU emulator); CUDA headers from {inc}")
    _log(f"  sources: {', '.join(sources)}")
    # -pthread: blocks run on std::threads. No -ffast-math anywhere: the emulator compares kernels bit for bit.
    # -Wno-psabi: GCC's note that 64-byte-aligned parameters (the TMA descriptors) pass differently than before GCC 4.6
    return CppExtension("pyconv._C_emu", sources, include_dirs=[inc],
                        extra_compile_args={"cxx": cxx_common + ["-pthread", "-Wno-psabi"]},
                        extra_link_args=["-pthread"] + stdcxx)


def _version():
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        return re.search(r'^version\s*=\s*"([^"]+)"', f.read(), re.M).group(1)


def write_build_config(arch_list):
    """Build facts go into a generated header (string macros do not survive ninja's command-line quoting)."""
    import torch

    text = (
        "// Generated by setup.py at build time; do not edit or commit.\n#pragma once\n"
        f'#define PYCONV_VERSION "{_version()}"\n#define PYCONV_ARCH_LIST "{arch_list}"\n'
        f'#define PYCONV_TORCH_VERSION "{torch.__version__}"\n'
    )
    path = os.path.join(ROOT, "csrc", "build_config.h")
    old = open(path).read() if os.path.exists(path) else None
    if old != text:  # rewrite only on change, so ninja does not rebuild everything every time
        with open(path, "w") as f:
            f.write(text)


def main():
    cuda_home = find_cuda_home()
    if cuda_home:
        # Must be set before torch.utils.cpp_extension is imported: it reads CUDA_HOME once, at import.
        os.environ["CUDA_HOME"] = cuda_home
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0a")
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    with_cuda, why = want_cuda(cuda_home)
    debug = os.environ.get("PYCONV_DEBUG", "0") == "1"

    all_cpp = sorted(glob.glob(os.path.join("csrc", "**", "*.cpp"), recursive=True))
    cpp_sources = [f for f in all_cpp if not f.endswith("_emu.cpp")]  # *_emu.cpp go into pyconv._C_emu
    cu_sources = sorted(glob.glob(os.path.join("csrc", "**", "*.cu"), recursive=True))
    opt = ["-O0", "-g"] if debug else ["-O3"]
    # No -std flag: torch.utils.cpp_extension adds the standard its headers need (C++17 up to torch 2.9, C++20 after).
    # -fopenmp: at::parallel_for is an inline template whose OpenMP pragmas are compiled *here*; without the flag it
    # silently runs serially. The extension then links libgomp.so.1, the same soname torch ships and has loaded.
    # -fno-trapping-math: pyconv never enables floating-point traps, so the compiler may turn the selects in the CPU
    # loops (max pooling's "greater or NaN", clamps) into vector blends. It changes no result (unlike -ffast-math).
    cxx = opt + ["-fvisibility=hidden", "-fopenmp", "-fno-trapping-math"]
    stdcxx = shared_libstdcxx()
    link = ["-fopenmp"] + stdcxx
    defines = []
    arch_list = os.environ["TORCH_CUDA_ARCH_LIST"] if with_cuda else ""
    write_build_config(arch_list)

    if with_cuda:
        import torch.utils.cpp_extension as ce

        nvcc_ver = subprocess.run([os.path.join(cuda_home, "bin", "nvcc"), "--version"], capture_output=True,
                                  text=True).stdout.strip().splitlines()[-1]
        # -Xcompiler -Wno-psabi: see the emulator's flags (the host stubs pass the TMA descriptors by value)
        nvcc = opt + ["--expt-relaxed-constexpr", "-lineinfo", "-Xptxas=-warn-spills", "-Xcompiler=-Wno-psabi"]
        if debug:
            nvcc.append("-G")
        defines.append(("PYCONV_WITH_CUDA", "1"))
        ext = CUDAExtension("pyconv._C", cpp_sources + cu_sources, define_macros=defines,
                            extra_compile_args={"cxx": cxx, "nvcc": nvcc}, extra_link_args=link)
        _log(f"building CUDAExtension pyconv._C ({why})")
        _log(f"  CUDA_HOME={ce.CUDA_HOME}; {nvcc_ver}")
        _log(f"  TORCH_CUDA_ARCH_LIST={arch_list}")
        _log(f"  .cu sources: {', '.join(cu_sources)}")
    else:
        ext = CppExtension("pyconv._C", cpp_sources, define_macros=defines, extra_compile_args={"cxx": cxx}, extra_link_args=link)
        _log(f"building CppExtension pyconv._C, CPU only ({why})")
    _log(f"  .cpp sources: {', '.join(cpp_sources)}")
    _log(f"  debug={'on' if debug else 'off'}; ninja={'yes' if shutil.which('ninja') else 'no'}")
    _log(f"  libstdc++ linked as: {stdcxx[0]} (the shared library torch uses)")

    exts = [ext]
    emu = emu_extension(cuda_home, opt, opt + ["-fvisibility=hidden"], stdcxx)
    if emu is not None:
        exts.append(emu)
    setup(ext_modules=exts, cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)})


if __name__ == "__main__":
    main()

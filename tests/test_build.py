"""Facts of the built extension modules that no op test sees directly."""
import glob
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import pyconv

MODULES = sorted(glob.glob(os.path.join(os.path.dirname(pyconv.__file__), "_C*.so")))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF shared objects: Linux only")
@pytest.mark.skipif(shutil.which("readelf") is None or shutil.which("nm") is None, reason="needs binutils")
@pytest.mark.parametrize("so", MODULES, ids=[os.path.basename(m).split(".")[0] for m in MODULES])
def test_links_the_shared_libstdcxx(so):
    # A compiler driver that links libstdc++ statically puts a private copy of the stream/locale code into the
    # module; with torch's shared libstdc++ in the same process, formatting an integer in a TORCH_CHECK message
    # then crashes or drops the number (setup.py: SHARED_LIBSTDCXX). Both halves of the symptom are checked.
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]",
                        subprocess.run(["readelf", "-d", so], capture_output=True, text=True, check=True).stdout)
    assert any(n.startswith("libstdc++.so") for n in needed), f"{so} does not link libstdc++.so: NEEDED {needed}"
    # Inline templates (operator<< clones) are normal in any build; these are out-of-line members that only
    # libstdc++ itself defines, so a definition here means a private (static) copy of the library.
    defined = subprocess.run(["nm", "-C", "--defined-only", so], capture_output=True, text=True, check=True).stdout
    own = re.findall(r" [TtWw] (std::locale::classic\(\)|std::locale::locale\(\)|std::basic_ostream<char, "
                     r"std::char_traits<char> >& std::basic_ostream<char, std::char_traits<char> >::_M_insert<\w+>)",
                     defined)
    assert not own, f"{so} carries its own copy of libstdc++'s stream/locale code, e.g. {own[:3]}"


def test_error_message_formats_integers():
    # The message is built inside _C by TORCH_CHECK's ostream: the numbers must be there.
    x = torch.randn(1, 4, 5, 5)
    with pytest.raises(RuntimeError, match=r"C=4 with groups=2"):
        pyconv.functional.conv2d(x, torch.randn(4, 2, 3, 3), None, 1, 1, 1, 2, algo="depthwise")

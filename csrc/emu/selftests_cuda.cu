// The emulator's feature self-tests compiled by nvcc into pyconv._C, so that on a GPU the same kernels check that the
// emulator's model (shuffle segments, votes, __activemask, atomics, mma fragment layouts) matches the hardware:
// tests/test_emulator.py runs them on the GPU when there is one. Seeded-bug kernels are not run on a GPU (they would
// hang or corrupt memory there).
#include <string>
#include <vector>

#include "selftests.h"

namespace pyconv {

std::vector<std::string> gpu_selftests() {
  std::vector<std::string> names;
  for (const auto& t : emu_selftest::selftests())
    if (std::string(t.kind) == "feature") names.emplace_back(t.name);
  return names;
}

std::string gpu_selftest(const std::string& name) {
  for (const auto& t : emu_selftest::selftests())
    if (name == t.name) {
      if (std::string(t.kind) != "feature") return "not a feature self-test: seeded bugs are not run on a GPU";
      std::string r = t.run();
      const cudaError_t e = cudaDeviceSynchronize();
      if (r.empty() && e != cudaSuccess) r = cudaGetErrorString(e);
      return r;
    }
  return "no self-test named '" + name + "'";
}

}  // namespace pyconv

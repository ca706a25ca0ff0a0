// Python bindings of onebit's compute engine (onebit._C).
//
// Everything here works on numpy buffers; the engine never links PyTorch.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <cstdint>

#include "cpu_features.h"
#include "dispatch.h"

namespace nb = nanobind;

NB_MODULE(_C, m) {
  m.doc() = "onebit compute engine: bit-packed XNOR-popcount kernels over numpy buffers";

  m.def("cpu_features", &onebit::cpu_features_string,
        "Instruction-set extensions of this CPU that the OS enables.");
  m.def("active_isa", [] { return std::string(onebit::isa_name(onebit::active_isa())); },
        "Instruction set the kernels use now (ONEBIT_ISA overrides the best one).");
  m.def("best_isa", [] { return std::string(onebit::isa_name(onebit::best_isa())); },
        "Best instruction set this CPU supports.");
  m.def("isa_supported",
        [](const std::string& name) { return onebit::isa_supported(onebit::parse_isa(name)); },
        nb::arg("name"));
  m.def("set_isa",
        [](const std::string& name) { onebit::set_active_isa(onebit::parse_isa(name)); },
        nb::arg("name"), "Force an instruction set for this process (raises if unsupported).");
  m.def("popcount64", [](uint64_t x) { return static_cast<int>(__builtin_popcountll(x)); },
        nb::arg("x"), "Number of set bits of a 64-bit word (build smoke test).");
}

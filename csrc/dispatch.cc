#include "dispatch.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "cpu_features.h"

namespace onebit {
namespace {

std::atomic<int> g_active{-1};

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kReference: return "reference";
    case Isa::kPortable: return "portable";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kNeon: return "neon";
    case Isa::kAmx: return "amx";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  if (name == "reference") return Isa::kReference;
  if (name == "portable") return Isa::kPortable;
  if (name == "avx2") return Isa::kAvx2;
  if (name == "avx512") return Isa::kAvx512;
  if (name == "neon") return Isa::kNeon;
  if (name == "amx") return Isa::kAmx;
  throw std::invalid_argument("unknown instruction set '" + name +
                              "': expected one of reference, portable, avx2, avx512, amx, neon");
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::kReference:
    case Isa::kPortable: return true;
    case Isa::kAvx2: return f.avx2 && f.fma;
    case Isa::kAvx512: return f.avx512f && f.avx512bw && f.avx512vl && f.avx512vpopcntdq;
    case Isa::kNeon: return f.neon;
    case Isa::kAmx: return isa_supported(Isa::kAvx512) && f.amx_tile && f.amx_int8;
  }
  return false;
}

Isa best_isa() {
  if (isa_supported(Isa::kNeon)) return Isa::kNeon;
  // Not kAmx: its only tile kernel (the opt-in int8 float layers) made whole
  // models slower on the one AMX CPU measured (docs/performance.md, "AMX").
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kPortable;
}

void set_active_isa(Isa isa) {
  if (!isa_supported(isa)) {
    throw std::invalid_argument(std::string("instruction set '") + isa_name(isa) +
                                "' is not supported by this CPU (has: " +
                                cpu_features_string() + ")");
  }
  g_active.store(static_cast<int>(isa));
}

Isa active_isa() {
  int v = g_active.load();
  if (v >= 0) return static_cast<Isa>(v);
  const char* env = std::getenv("ONEBIT_ISA");
  Isa isa = (env && *env) ? parse_isa(env) : best_isa();
  set_active_isa(isa);  // validates a forced ISA
  return isa;
}

}  // namespace onebit

#include "cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace onebit {
namespace {

#if defined(__x86_64__)
// Linux keeps AMX's 8 KiB tile data off until a process asks for it (Linux 5.16+;
// older kernels do not enable the state in XCR0 at all).
bool request_amx_permission() {
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}
#endif

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = (ecx >> 27) & 1;
  const bool cpu_fma = (ecx >> 12) & 1;
  if (!osxsave) return f;
  unsigned int xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  (void)xcr0_hi;
  const bool os_amx = (xcr0_lo & 0x60000) == 0x60000;   // XTILECFG + XTILEDATA state
  const bool os_avx = (xcr0_lo & 0x6) == 0x6;            // XMM + YMM state
  const bool os_avx512 = os_avx && (xcr0_lo & 0xE0) == 0xE0;  // opmask + ZMM state
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return f;
  const unsigned int max_subleaf = eax;
  f.avx2 = os_avx && ((ebx >> 5) & 1);
  f.fma = os_avx && cpu_fma;
  f.avx512f = os_avx512 && ((ebx >> 16) & 1);
  f.avx512bw = os_avx512 && ((ebx >> 30) & 1);
  f.avx512vl = os_avx512 && ((ebx >> 31) & 1);
  f.avx512vpopcntdq = os_avx512 && ((ecx >> 14) & 1);
  f.avx512bitalg = os_avx512 && ((ecx >> 12) & 1);
  f.avx512vnni = os_avx512 && ((ecx >> 11) & 1);
  const unsigned int edx7 = edx;
  if (max_subleaf >= 1 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx))
    f.avx512bf16 = f.avx512f && ((eax >> 5) & 1);
#if defined(__x86_64__)
  if (os_amx && ((edx7 >> 24) & 1) && request_amx_permission()) {
    f.amx_tile = true;
    f.amx_int8 = (edx7 >> 25) & 1;
    f.amx_bf16 = (edx7 >> 22) & 1;
  }
#endif
#endif
#if defined(__aarch64__)
  f.neon = true;  // Advanced SIMD is mandatory in AArch64 (and the ABI passes vectors in it)
#if defined(__linux__)
  // Bit numbers from the Linux uapi <asm/hwcap.h> (spelled out: older headers lack them).
  const unsigned long hwcap = getauxval(AT_HWCAP);
  const unsigned long hwcap2 = getauxval(AT_HWCAP2);
  f.dotprod = (hwcap >> 20) & 1;  // HWCAP_ASIMDDP
  f.i8mm = (hwcap2 >> 13) & 1;    // HWCAP2_I8MM
#endif
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::string cpu_features_string() {
  const CpuFeatures& f = cpu_features();
  std::string s;
  auto add = [&s](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl");
  add(f.avx512vpopcntdq, "avx512vpopcntdq");
  add(f.avx512bitalg, "avx512bitalg");
  add(f.avx512vnni, "avx512vnni");
  add(f.avx512bf16, "avx512bf16");
  add(f.amx_tile, "amx_tile");
  add(f.amx_int8, "amx_int8");
  add(f.amx_bf16, "amx_bf16");
  add(f.neon, "neon");
  add(f.dotprod, "dotprod");
  add(f.i8mm, "i8mm");
  return s.empty() ? std::string("none") : s;
}

}  // namespace onebit

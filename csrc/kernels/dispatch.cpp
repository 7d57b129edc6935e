// Which kernel sets this build has and which of them this CPU can run.
#include <cstring>

#include "kernel_set.h"

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace qlstm {

#if defined(__x86_64__)
const KernelSet& avx2_kernels();
const KernelSet& avx_vnni_kernels();
const KernelSet& avx512_vnni_kernels();
const KernelSet& avx512_vnni_vbmi_kernels();
#elif defined(__aarch64__)
const KernelSet& neon_kernels();
const KernelSet& neon_dot_kernels();
#endif

namespace {
struct IsaInfo {
  Isa isa;
  const char* name;
};
constexpr IsaInfo kIsaNames[] = {{Isa::kScalar, "scalar"},
                                 {Isa::kAvx2, "avx2"},
                                 {Isa::kAvxVnni, "avx_vnni"},
                                 {Isa::kAvx512Vnni, "avx512_vnni"},
                                 {Isa::kAvx512VnniVbmi, "avx512_vnni_vbmi"},
                                 {Isa::kNeon, "neon"},
                                 {Isa::kNeonDot, "neon_dot"}};
}  // namespace

const char* isa_name(Isa isa) {
  for (const IsaInfo& i : kIsaNames) {
    if (i.isa == isa) return i.name;
  }
  return "unknown";
}

bool parse_isa(const char* name, Isa* out) {
  for (const IsaInfo& i : kIsaNames) {
    if (std::strcmp(i.name, name) == 0) {
      *out = i.isa;
      return true;
    }
  }
  return false;
}

const KernelSet* kernels_for(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return &scalar_kernels();
#if defined(__x86_64__)
    case Isa::kAvx2:
      return &avx2_kernels();
    case Isa::kAvxVnni:
      return &avx_vnni_kernels();
    case Isa::kAvx512Vnni:
      return &avx512_vnni_kernels();
    case Isa::kAvx512VnniVbmi:
      return &avx512_vnni_vbmi_kernels();
#elif defined(__aarch64__)
    case Isa::kNeon:
      return &neon_kernels();
    case Isa::kNeonDot:
      return &neon_dot_kernels();
#endif
    default:
      return nullptr;
  }
}

bool cpu_supports(Isa isa) {
#if defined(__x86_64__)
  // libgcc's feature bits also require the OS to save the wider registers.
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512_vnni = avx2 && __builtin_cpu_supports("avx512f") &&
                           __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kAvx2:
      return avx2;
    case Isa::kAvxVnni:
      return avx2 && __builtin_cpu_supports("avxvnni");
    case Isa::kAvx512Vnni:
      return avx512_vnni;
    case Isa::kAvx512VnniVbmi:
      return avx512_vnni && __builtin_cpu_supports("avx512vbmi");
    default:
      return false;
  }
#elif defined(__aarch64__)
  const unsigned long hwcap = getauxval(AT_HWCAP);
  switch (isa) {
    case Isa::kScalar:
      return true;
    case Isa::kNeon:
      return (hwcap & HWCAP_ASIMD) != 0;
    case Isa::kNeonDot:
      return (hwcap & HWCAP_ASIMD) != 0 && (hwcap & HWCAP_ASIMDDP) != 0;
    default:
      return false;
  }
#else
  return isa == Isa::kScalar;
#endif
}

Isa best_isa() {
  Isa best = Isa::kScalar;
  for (Isa isa : kAllIsas) {
    if (kernels_for(isa) != nullptr && cpu_supports(isa)) best = isa;
  }
  return best;
}

}  // namespace qlstm

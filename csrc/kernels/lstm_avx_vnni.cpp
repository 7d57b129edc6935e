// AVX-VNNI kernels (256-bit vpdpbusd, for CPUs with VNNI but no AVX-512):
// uint8 x int8 products summed 4 at a time straight into int32, no int16 step.
#if defined(__x86_64__)
#include <immintrin.h>

#include <chrono>
#include <cstring>

#include "kernel_set.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,avxvnni")
#include "lstm_x86.h"
#include "peak_loop.h"

namespace qlstm {
namespace {

struct DotAvxVnni : TwoHalves256 {
  using Act = __m256i;
  // 4 rows x 2 accumulators + 2 weights + 1 activation of the 16 registers.
  static constexpr bool kCentered = false;
  static constexpr bool kNegatesWeights = false;
  static constexpr int kGemmRows = 4;

  static Act act(uint32_t four_bytes) { return _mm256_set1_epi32(static_cast<int>(four_bytes)); }
  static void madd(Acc& a, Act x, const W& w) {
    a.q[0] = _mm256_dpbusd_avx_epi32(a.q[0], x, w.q[0]);
    a.q[1] = _mm256_dpbusd_avx_epi32(a.q[1], x, w.q[1]);
  }
};

}  // namespace

const KernelSet& avx_vnni_kernels() {
  static const KernelSet k = make_kernel_set<DotAvxVnni>("avx_vnni");
  return k;
}

// 3 chains of 2 accumulators on one weight panel (vpdpbusd reads its
// accumulator). GCC 12 copies each accumulator around a vpdpbusd and, from 4
// chains on, stores copies to the stack inside the loop; 3 keep it in registers.
double avx_vnni_peak_macs(double seconds) { return peak_loop<DotAvxVnni, 3, 1>(seconds); }

}  // namespace qlstm
#pragma GCC pop_options
#endif  // __x86_64__

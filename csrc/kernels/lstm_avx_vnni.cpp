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
  // 6 rows x 2 accumulators + 2 weights + 1 activation: 15 of the 16 registers.
  static constexpr bool kCentered = false;
  static constexpr int kGemmRows = 6;
  static constexpr int kGemmPanels = 1;
  // A single row: 4 panels of 2 accumulators, 8 vpdpbusd chains in flight.
  static constexpr int kGemvPanels = 4;
  static constexpr int kGemvSplits = 1;

  static Act act(uint32_t four_bytes) { return _mm256_set1_epi32(static_cast<int>(four_bytes)); }
  // In asm, as avx512_vnni's: GCC 12 copies _mm256_dpbusd_avx_epi32's
  // accumulator around each vpdpbusd. {vex}: the AVX-VNNI encoding, not
  // AVX512-VL's; "x" keeps the registers VEX can encode.
  static void madd(Acc& a, Act x, const W& w) {
    for (int i = 0; i < 2; ++i) {
      __m256i sum = a.q[i];  // a local, as in avx512_vnni's
      __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(sum) : "x"(x), "xm"(w.q[i]));
      a.q[i] = sum;
    }
  }
};

}  // namespace

const KernelSet& avx_vnni_kernels() {
  static const KernelSet k = make_kernel_set<DotAvxVnni>("avx_vnni");
  return k;
}

// 6 chains of 2 accumulators on one weight panel (vpdpbusd reads its
// accumulator, so chains may share weights): 12 accumulators, 2 weights and
// the activation in 15 of the 16 ymm registers, none stored in the loop.
double avx_vnni_peak_macs(double seconds) { return peak_loop<DotAvxVnni, 6, 1>(seconds); }

}  // namespace qlstm
#pragma GCC pop_options
#endif  // __x86_64__

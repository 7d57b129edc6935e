// AVX-VNNI kernels (256-bit vpdpbusd, for CPUs with VNNI but no AVX-512):
// uint8 x int8 products summed 4 at a time straight into int32, no int16 step.
#if defined(__x86_64__)
#include <immintrin.h>

#include <chrono>
#include <cstring>

#include "lstm_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,avxvnni")
#include "lstm_x86.h"

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

double peak_macs_avx_vnni(double seconds) {
  __m256i acc[8], w[8];
  for (int j = 0; j < 8; ++j) {
    acc[j] = _mm256_setzero_si256();
    w[j] = _mm256_set1_epi8(static_cast<char>(j + 1));
  }
  const __m256i x = _mm256_set1_epi8(3);
  const double rate = time_peak(seconds, 8 * 32, [&] {
    for (int j = 0; j < 8; ++j) {
      asm volatile("" : "+x"(w[j]));  // keeps the multiply inside the loop
      acc[j] = _mm256_dpbusd_avx_epi32(acc[j], x, w[j]);
    }
  });
  volatile int sink = _mm256_extract_epi32(acc[0], 0) + _mm256_extract_epi32(acc[7], 0);
  (void)sink;
  return rate;
}

}  // namespace

const KernelSet& avx_vnni_kernels() {
  static const KernelSet k = make_kernel_set<DotAvxVnni>("avx_vnni", peak_macs_avx_vnni);
  return k;
}

}  // namespace qlstm
#pragma GCC pop_options
#endif  // __x86_64__

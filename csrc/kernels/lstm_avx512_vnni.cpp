// AVX-512 VNNI kernels: one 512-bit vpdpbusd multiplies a whole panel (16 rows
// x 4 k) by 4 broadcast activation bytes. The epilogue stays 256-bit.
#if defined(__x86_64__)
#include <immintrin.h>

#include <chrono>
#include <cstring>

#include "lstm_kernels.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")
#include "lstm_x86.h"

namespace qlstm {
namespace {

struct DotAvx512Vnni : X86Epilogue {
  using W = __m512i;
  using Acc = __m512i;
  using Act = __m512i;
  // 8 rows x 1 accumulator + 1 weight + 1 activation of the 32 registers.
  static constexpr bool kCentered = false;
  static constexpr bool kNegatesWeights = false;
  static constexpr int kGemmRows = 8;

  static W load(const int8_t* w) { return _mm512_loadu_si512(w); }
  static Acc zero() { return _mm512_setzero_si512(); }
  static Act act(uint32_t four_bytes) { return _mm512_set1_epi32(static_cast<int>(four_bytes)); }
  static void madd(Acc& a, Act x, const W& w) { a = _mm512_dpbusd_epi32(a, x, w); }
  static void finish(const Acc& a, Sums* s) {
    // The zero-masking forms: GCC 12's casts and unmasked extracts pass an
    // undefined source that -Wall reports as uninitialized.
    *s = Sums{{_mm512_maskz_extracti64x4_epi64(0xF, a, 0), _mm512_maskz_extracti64x4_epi64(0xF, a, 1)}};
  }
};

double peak_macs_avx512_vnni(double seconds) {
  __m512i acc[8], w[8];
  for (int j = 0; j < 8; ++j) {
    acc[j] = _mm512_setzero_si512();
    w[j] = _mm512_set1_epi8(static_cast<char>(j + 1));
  }
  const __m512i x = _mm512_set1_epi8(3);
  const double rate = time_peak(seconds, 8 * 64, [&] {
    for (int j = 0; j < 8; ++j) {
      asm volatile("" : "+v"(w[j]));  // keeps the multiply inside the loop
      acc[j] = _mm512_dpbusd_epi32(acc[j], x, w[j]);
    }
  });
  volatile int sink = _mm_cvtsi128_si32(_mm512_maskz_extracti32x4_epi32(0xF, _mm512_add_epi32(acc[0], acc[7]), 0));
  (void)sink;
  return rate;
}

}  // namespace

const KernelSet& avx512_vnni_kernels() {
  static const KernelSet k = make_kernel_set<DotAvx512Vnni>("avx512_vnni", peak_macs_avx512_vnni);
  return k;
}

}  // namespace qlstm
#pragma GCC pop_options
#endif  // __x86_64__

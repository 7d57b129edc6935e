// AVX-512 VNNI kernels: one 512-bit vpdpbusd multiplies a whole panel (16 rows
// x 4 k) by 4 broadcast activation bytes. The epilogue stays 256-bit.
#if defined(__x86_64__)
#include <immintrin.h>

#include <chrono>
#include <cstring>

#include "kernel_set.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")
#include "lstm_x86.h"
#include "peak_loop.h"

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

}  // namespace

const KernelSet& avx512_vnni_kernels() {
  static const KernelSet k = make_kernel_set<DotAvx512Vnni>("avx512_vnni");
  return k;
}

// 12 independent vpdpbusd chains, enough to cover its latency at two per
// cycle, on one weight panel: 14 of the 32 zmm registers.
double avx512_vnni_peak_macs(double seconds) { return peak_loop<DotAvx512Vnni, 12, 1>(seconds); }

}  // namespace qlstm
#pragma GCC pop_options
#endif  // __x86_64__

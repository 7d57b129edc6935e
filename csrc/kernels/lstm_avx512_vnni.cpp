// AVX-512 VNNI kernels: one 512-bit vpdpbusd multiplies a whole panel (16 rows
// x 4 k) by 4 broadcast activation bytes; the requantization and the cell
// epilogue run on 16 lanes, a panel or a unit block per register.
#if defined(__x86_64__)
#include <immintrin.h>

#include <chrono>
#include <cstring>

#include "kernel_set.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")
#include "lstm_x86_512.h"
#include "peak_loop.h"

namespace qlstm {
namespace {

struct DotAvx512Vnni : X86Epilogue<Lanes512> {
  using W = __m512i;
  using Acc = __m512i;
  using Act = __m512i;
  // 8 rows x 2 panels of accumulators + 2 weights + 1 activation: 19 of the 32 registers.
  static constexpr bool kCentered = false;
  static constexpr bool kNegatesWeights = false;
  static constexpr int kGemmRows = 8;
  static constexpr int kGemmPanels = 2;
  // A single row: 4 panels x 2 accumulators, 8 vpdpbusd chains in flight.
  static constexpr int kGemvPanels = 4;
  static constexpr int kGemvSplits = 2;

  static W load(const int8_t* w) { return _mm512_loadu_si512(w); }
  static Acc zero() { return _mm512_setzero_si512(); }
  static Act act(uint32_t four_bytes) { return _mm512_set1_epi32(static_cast<int>(four_bytes)); }
  // In asm: GCC 12 copies the accumulator of _mm512_dpbusd_epi32 to another
  // register and back around every vpdpbusd inside the loop, two extra
  // instructions per multiply. AT&T order: weights (s8), activations (u8), sums.
  static void madd(Acc& a, Act x, const W& w) {
    Acc sum = a;  // a local: with an array element as its operand, the array stays in memory
    __asm__("vpdpbusd %2, %1, %0" : "+v"(sum) : "v"(x), "vm"(w));
    a = sum;
  }
  static void add(Acc& a, const Acc& b) { a = _mm512_add_epi32(a, b); }
  static void finish(const Acc& a, Sums* s) { *s = Sums{{a}}; }
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

// The AVX-512 VNNI Dot policy and its 16 float or int32 lanes (AVX-512
// F/BW/VL) for lstm_x86.h's generic parts: a whole panel's 16 rows, or a unit
// block's 16 units, per register. Included by the two AVX-512 ISA files only,
// between their target pragmas; they differ in the lanes' table lookups.
#pragma once

#include <immintrin.h>

#include "lstm_x86.h"

namespace qlstm {
namespace {

struct Lanes512 {
  using F = __m512;
  using I = __m512i;
  static constexpr int kLanes = 16;
  // The zero-masking forms with every lane selected: GCC 12's unmasked forms
  // pass an undefined source that -Wall reports as uninitialized (GCC PR 105593).
  static constexpr __mmask16 kAll = 0xFFFF;

  static F set1(float v) { return _mm512_set1_ps(v); }
  static I set1(int32_t v) { return _mm512_set1_epi32(v); }
  static F zero() { return _mm512_setzero_ps(); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static I load(const int32_t* p) { return _mm512_loadu_si512(p); }
  static void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static I widen(const int8_t* p) {
    return _mm512_maskz_cvtepi8_epi32(kAll, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static I widen(const uint8_t* p) {
    return _mm512_maskz_cvtepu8_epi32(kAll, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  // vpmovdb truncates; the values are integers in [0, 255] already.
  static void store_bytes(F v, uint8_t* p) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm512_maskz_cvtepi32_epi8(kAll, to_int(v)));
  }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F min(F a, F b) { return _mm512_maskz_min_ps(kAll, a, b); }
  static F max(F a, F b) { return _mm512_maskz_max_ps(kAll, a, b); }
  // Round half to even, as _mm256_round_ps with _MM_FROUND_TO_NEAREST_INT.
  static F round(F a) {
    return _mm512_maskz_roundscale_ps(kAll, a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static I add(I a, I b) { return _mm512_add_epi32(a, b); }
  static I sub(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I mullo(I a, I b) { return _mm512_mullo_epi32(a, b); }
  static I mul_byte(I a, I b) { return _mm512_madd_epi16(a, b); }  // as Lanes256's
  static I times128(I a) { return _mm512_slli_epi32(a, 7); }
  static F to_float(I a) { return _mm512_maskz_cvtepi32_ps(kAll, a); }
  static I to_int(F a) { return _mm512_maskz_cvtps_epi32(kAll, a); }
  static I lookup(const int32_t* table, const uint8_t*, I index) {
    return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), kAll, index, table, 4);
  }
};

// One 512-bit vpdpbusd multiplies a whole panel (16 rows x 4 k) by 4
// broadcast activation bytes. L: Lanes512 or a type derived from it.
template <class L>
struct DotAvx512 : X86Epilogue<L> {
  using Sums = typename X86Epilogue<L>::Sums;
  using W = __m512i;
  using Acc = __m512i;
  using Act = __m512i;
  // 8 rows x 2 panels of accumulators + 2 weights + 1 activation: 19 of the 32 registers.
  static constexpr bool kCentered = false;
  static constexpr int kGemmRows = 8;
  static constexpr int kGemmPanels = 2;
  // A single row: 4 panels x 2 accumulators, 8 vpdpbusd chains in flight.
  static constexpr int kGemvPanels = 4;
  static constexpr int kGemvSplits = 2;
  // A riding step (panels_dot_riding): the row's 4 accumulators and 8 rider
  // rows' against one panel, 12 chains and 15 registers. A batch-1 step reads
  // 64 bytes of W_hh per vpdpbusd, and Zen 4's L2 gives a core 32 bytes a
  // cycle: half the multiplies are free for rows that share their weights.
  static constexpr int kRiderRows = 8;

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
}  // namespace qlstm

// AVX2 kernels. vpmaddubsw multiplies unsigned by signed bytes but saturates
// its int16 pair sums, and 255 * 127 * 2 does not fit. The exact form centers
// the activations, c = x - 128, and feeds vpmaddubsw |c| <= 128 against w, or
// against ~w = -w - 1 where c < 0: |c| * ~w = c * w - |c|, so every product is
// c * w, short by |c| where c < 0, a shortfall of the activation row alone
// that lstm_tiled.h's panels_dot adds back with 128 times the column sums.
// Its pair sums lie in [2 * 128 * -128, 2 * 128 * 127], inside int16, for
// every weight, -128 included. Rows whose bytes are all <= 128 (every
// 7-bit activation, as PyTorch's 'x86' qconfig calibrates) take the plain
// sequence instead: x0 * w0 + x1 * w1 then lies in [-32768, 32512], inside
// int16, so vpmaddubsw is exact without the centering. Against a matrix of
// 7-bit weights (packed_format.h's kNarrowWeightMax) every row takes it:
// 2 * 255 * 64 = 32640, and rows whose bytes are all <= 127 sum two groups of
// 4 k before widening them: 4 * 127 * 64 = 32512.
#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "kernel_set.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "lstm_x86.h"
#include "peak_loop.h"

namespace qlstm {
namespace {

// acc + v into acc's own register. In asm, as the VNNI sets' vpdpbusd: GCC 12
// gives the sum a new register and copies it back once per group.
inline __m256i add_into(__m256i acc, __m256i v) {
  __asm__("vpaddd %1, %0, %0" : "+x"(acc) : "x"(v));
  return acc;
}

// The plain sequence, exact for activation bytes <= kMaxActivation or weights
// in [-kNarrowWeightMax, kNarrowWeightMax]: one instruction fewer per 32
// multiply-accumulates than DotAvx2, and no column-sum or row corrections.
struct DotAvx2Narrow : TwoHalves256 {
  struct Act {
    __m256i bytes;
  };
  static constexpr bool kCentered = false;
  static constexpr bool kNegatesWeights = false;
  // 2 * 128 * -128 = -32768 is the int16 minimum; 129 against two -128 weights is not.
  static constexpr uint8_t kMaxActivation = 128;
  static constexpr bool kExactWithNarrowWeights = 2 * 255 * kNarrowWeightMax <= 32767;
  static constexpr int kGemvSplits = 1;

  static Act act(uint32_t four_bytes) {
    return Act{_mm256_set1_epi32(static_cast<int>(four_bytes))};
  }
  static void madd(Acc& a, const Act& x, const W& w) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int i = 0; i < 2; ++i) {
      a.q[i] = add_into(a.q[i], _mm256_madd_epi16(_mm256_maddubs_epi16(x.bytes, w.q[i]), ones));
    }
  }
};

// The plain sequence two groups of 4 k at a time, for activation bytes
// <= kMaxActivation against a matrix of narrow weights: vpaddw of the two
// groups' vpmaddubsw pair sums is then still exact in int16, so one vpmaddwd
// widens 8 k, 3 multiplies per 64 multiply-accumulates instead of 4.
struct DotAvx2Pairs : DotAvx2Narrow {
  // 4 * 128 * 64 = 32768 is one past the int16 maximum.
  static constexpr uint8_t kMaxActivation = 127;
  static_assert(4 * kMaxActivation * kNarrowWeightMax <= 32767,
                "a sum of two pair sums fits int16");

  static void madd_pair(Acc& a, const Act& x0, const W& w0, const Act& x1, const W& w1) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int i = 0; i < 2; ++i) {
      const __m256i quads = _mm256_add_epi16(_mm256_maddubs_epi16(x0.bytes, w0.q[i]),
                                             _mm256_maddubs_epi16(x1.bytes, w1.q[i]));
      a.q[i] = add_into(a.q[i], _mm256_madd_epi16(quads, ones));
    }
  }
};

struct DotAvx2 : TwoHalves256 {
  using Narrow = DotAvx2Narrow;
  using Pairs = DotAvx2Pairs;
  // The 4 activation bytes' |x - 128|, and all ones where x < 128, broadcast.
  struct Act {
    __m256i magnitude, below;
  };
  static constexpr bool kCentered = true;
  static constexpr bool kCorrectsRows = true;
  // 3 rows x 2 accumulators + 2 weights + 2 activations + 3 constants + 2
  // temporaries of the 16 registers (4 rows spill).
  static constexpr int kGemmRows = 3;
  static constexpr int kGemmPanels = 1;
  // A single row: 2 panels. The products do not wait on the accumulators,
  // and vpaddd adds in a cycle, so one accumulator per panel keeps up.
  static constexpr int kGemvPanels = 2;
  static constexpr int kGemvSplits = 1;

  static Act act(uint32_t four_bytes) {
    const __m256i bytes = _mm256_set1_epi32(static_cast<int>(four_bytes));
    const __m256i centered = _mm256_xor_si256(bytes, _mm256_set1_epi8(static_cast<char>(0x80)));
    // x < 128 is a signed byte >= 0.
    return Act{_mm256_abs_epi8(centered), _mm256_cmpgt_epi8(bytes, _mm256_set1_epi8(-1))};
  }
  // vpxor, not vpsignb, makes the weights' sign: on Zen 1 vpsignb competes
  // with the multiplies, and 8-bit-weight models ran 1.03x to 1.14x slower
  // with it (batch 8 and 64, and batch 1 from size 512, one thread).
  static void madd(Acc& a, const Act& x, const W& w) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int i = 0; i < 2; ++i) {
      const __m256i pairs = _mm256_maddubs_epi16(x.magnitude, _mm256_xor_si256(w.q[i], x.below));
      a.q[i] = add_into(a.q[i], _mm256_madd_epi16(pairs, ones));
    }
  }
  // What a row's sums lack, sum over x < 128 of 128 - x: 128 K - sum min(x, 128).
  static int32_t row_correction(const uint8_t* x, int64_t K) {
    const __m256i cap = _mm256_set1_epi8(static_cast<char>(128));
    __m256i sums = _mm256_setzero_si256();
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + k));
      sums = _mm256_add_epi64(sums, _mm256_sad_epu8(_mm256_min_epu8(v, cap), _mm256_setzero_si256()));
    }
    alignas(32) int64_t part[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(part), sums);
    int64_t capped = part[0] + part[1] + part[2] + part[3];
    for (; k < K; ++k) capped += std::min<int>(x[k], 128);
    return static_cast<int32_t>(128 * K - capped);
  }
};

}  // namespace

const KernelSet& avx2_kernels() {
  static const KernelSet k = make_kernel_set<DotAvx2>("avx2");
  return k;
}

// The pair sums, the fastest the set runs: the true peak, which 7-bit
// activations against 7-bit weights reach (about 1.2x the plain sequence's
// rate on Zen 3, whose own is about 1.2x the exact one's). vpmaddubsw's
// products do not depend on the accumulator, so each chain needs its own
// weights: 3 chains x 2 halves of accumulators, 3 panels x 2 halves of
// weights (3 of them L1 memory operands, as in the kernels), 2 activations
// and the ones; 4 chains spill accumulators.
double avx2_peak_macs(double seconds) { return peak_loop<DotAvx2Pairs, 3, 3>(seconds); }

}  // namespace qlstm
#pragma GCC pop_options
#endif  // __x86_64__

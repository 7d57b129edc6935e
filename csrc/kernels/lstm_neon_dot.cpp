// Armv8.2-A dot-product kernels (sdot): 4 signed byte products summed
// straight into each int32 lane, one instruction per 4 rows x 4 k. Centered
// activations times the weights, both signed, are exact.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <chrono>
#include <cstring>

#include "kernel_set.h"

#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")
#include "lstm_arm.h"
#include "peak_loop.h"

namespace qlstm {
namespace {

struct DotNeonDot : NeonEpilogue {
  // 16 bytes each: 4 rows x 4 k, the operand of one sdot.
  struct W {
    int8x16_t q[4];
  };
  using Acc = Sums;
  using Act = int8x16_t;
  // 4 rows x 4 accumulators + 4 weights + 4 activations of the 32 registers.
  static constexpr int kGemmRows = 4;
  static constexpr int kGemmPanels = 1;
  static constexpr int kGemvPanels = 2;
  static constexpr int kGemvSplits = 1;

  static W load(const int8_t* w) {
    const int8x16x4_t v = vld1q_s8_x4(w);
    return W{{v.val[0], v.val[1], v.val[2], v.val[3]}};
  }
  static Acc zero() { return Acc{{vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0)}}; }
  static Act act(uint32_t four_bytes) { return centered_act(four_bytes); }
  static void madd(Acc& a, Act x, const W& w) {
    for (int j = 0; j < 4; ++j) a.q[j] = vdotq_s32(a.q[j], w.q[j], x);
  }
  static void finish(const Acc& a, Sums* s) { *s = a; }
};

}  // namespace

const KernelSet& neon_dot_kernels() {
  static const KernelSet k = make_kernel_set<DotNeonDot>("neon_dot");
  return k;
}

// 5 chains of 4 accumulators on one weight panel (sdot reads its
// accumulator): 25 of the 32 vector registers.
double neon_dot_peak_macs(double seconds) { return peak_loop<DotNeonDot, 5, 1>(seconds); }

}  // namespace qlstm
#pragma GCC pop_options
#endif  // __aarch64__

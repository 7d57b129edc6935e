// Armv8-A NEON kernels (every aarch64 CPU): centered activations times the
// weights with vmull_s8 (exact int16 products, |(x - 128) * w| <= 16384),
// pairs added into int32 with vpadal; no int16 sum of two products, which
// could reach 32768.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <chrono>
#include <cstring>

#include "lstm_arm.h"
#include "peak_loop.h"

namespace qlstm {
namespace {

struct DotNeon : NeonEpilogue {
  // 16 bytes each: 4 rows x 4 k.
  struct W {
    int8x16_t q[4];
  };
  // Lane pairs (k 0-1, k 2-3) of rows 2j and 2j + 1 in q[j].
  struct Acc {
    int32x4_t q[8];
  };
  using Act = int8x16_t;
  // 2 rows x 8 accumulators + 4 weights + products of the 32 registers.
  static constexpr int kGemmRows = 2;
  static constexpr int kGemmPanels = 1;
  static constexpr int kGemvPanels = 2;
  static constexpr int kGemvSplits = 1;

  static W load(const int8_t* w) {
    const int8x16x4_t v = vld1q_s8_x4(w);
    return W{{v.val[0], v.val[1], v.val[2], v.val[3]}};
  }
  static Acc zero() {
    Acc a;
    for (int32x4_t& q : a.q) q = vdupq_n_s32(0);
    return a;
  }
  static Act act(uint32_t four_bytes) { return centered_act(four_bytes); }
  static void madd(Acc& a, Act x, const W& w) {
    for (int j = 0; j < 4; ++j) {
      a.q[2 * j] = vpadalq_s16(a.q[2 * j], vmull_s8(vget_low_s8(w.q[j]), vget_low_s8(x)));
      a.q[2 * j + 1] = vpadalq_s16(a.q[2 * j + 1], vmull_high_s8(w.q[j], x));
    }
  }
  static void finish(const Acc& a, Sums* s) {
    for (int j = 0; j < 4; ++j) s->q[j] = vpaddq_s32(a.q[2 * j], a.q[2 * j + 1]);
  }
};

}  // namespace

const KernelSet& neon_kernels() {
  static const KernelSet k = make_kernel_set<DotNeon>("neon");
  return k;
}

// 1 chain of 8 accumulators, each row pair with its own weights, + 4
// weights, the activation and 8 products: 21 of the 32 vector registers.
double neon_peak_macs(double seconds) { return peak_loop<DotNeon, 1, 1>(seconds); }

}  // namespace qlstm
#endif  // __aarch64__

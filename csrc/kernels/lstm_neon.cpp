// Armv8-A NEON kernels (every aarch64 CPU): centered activations times the
// weights with vmull_s8 (exact int16 products, |(x - 128) * w| <= 16384),
// pairs added into int32 with vpadal; no int16 sum of two products, which
// could reach 32768.
#if defined(__aarch64__)
#include <arm_neon.h>

#include <chrono>
#include <cstring>

#include "lstm_arm.h"

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

double peak_macs_neon(double seconds) {
  int32x4_t acc[8];
  int8x16_t w[4];
  for (int j = 0; j < 8; ++j) acc[j] = vdupq_n_s32(0);
  for (int j = 0; j < 4; ++j) w[j] = vdupq_n_s8(static_cast<int8_t>(j + 1));
  const int8x16_t x = DotNeon::act(0x01020304u);
  const double rate = time_peak(seconds, 4 * 16, [&] {
    for (int j = 0; j < 4; ++j) {
      asm volatile("" : "+w"(w[j]));  // keeps the multiply inside the loop
      acc[2 * j] = vpadalq_s16(acc[2 * j], vmull_s8(vget_low_s8(w[j]), vget_low_s8(x)));
      acc[2 * j + 1] = vpadalq_s16(acc[2 * j + 1], vmull_high_s8(w[j], x));
    }
  });
  volatile int32_t sink = vaddvq_s32(acc[0]) + vaddvq_s32(acc[7]);
  (void)sink;
  return rate;
}

}  // namespace

const KernelSet& neon_kernels() {
  static const KernelSet k = make_kernel_set<DotNeon>("neon", peak_macs_neon);
  return k;
}

}  // namespace qlstm
#endif  // __aarch64__

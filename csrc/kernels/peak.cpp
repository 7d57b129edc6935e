// Each instruction set's throughput probe (its peak_loop instantiation lives
// in its own file, compiled for its target); the scalar one is here.
#include "peak.h"

#include <cstring>

#include "peak_loop.h"

namespace qlstm {

#if defined(__x86_64__)
double avx2_peak_macs(double seconds);
double avx_vnni_peak_macs(double seconds);
double avx512_vnni_peak_macs(double seconds);
#elif defined(__aarch64__)
double neon_peak_macs(double seconds);
double neon_dot_peak_macs(double seconds);
#endif

namespace {

// The scalar reference's multiply, sum_k x[k] * w[row][k] over a panel, in
// whatever instructions the compiler gives the reference. The probe's sums
// wrap around, which only unsigned arithmetic may do.
struct DotScalar {
  struct W {
    int8_t v[kPanelRows * kKGroup];
  };
  struct Acc {
    uint32_t v[kPanelRows];
  };
  using Sums = Acc;
  using Act = uint32_t;
  static W load(const int8_t* w) {
    W out;
    std::memcpy(out.v, w, sizeof(out.v));
    return out;
  }
  static Acc zero() { return Acc{}; }
  static Act act(uint32_t four_bytes) { return four_bytes; }
  static void madd(Acc& a, Act x, const W& w) {
    for (int r = 0; r < kPanelRows; ++r) {
      for (int k = 0; k < kKGroup; ++k) {
        a.v[r] += static_cast<uint32_t>(static_cast<int32_t>((x >> (8 * k)) & 0xFF) * w.v[r * kKGroup + k]);
      }
    }
  }
  static void finish(const Acc& a, Sums* s) { *s = a; }
};

}  // namespace

double peak_macs_per_second(Isa isa, double seconds) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::kAvx2:
      return avx2_peak_macs(seconds);
    case Isa::kAvxVnni:
      return avx_vnni_peak_macs(seconds);
    case Isa::kAvx512Vnni:
    case Isa::kAvx512VnniVbmi:
      return avx512_vnni_peak_macs(seconds);
#elif defined(__aarch64__)
    case Isa::kNeon:
      return neon_peak_macs(seconds);
    case Isa::kNeonDot:
      return neon_dot_peak_macs(seconds);
#endif
    default:
      return peak_loop<DotScalar, 2, 2>(seconds);
  }
}

}  // namespace qlstm

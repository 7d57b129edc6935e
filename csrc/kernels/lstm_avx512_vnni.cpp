// AVX-512 VNNI kernels (lstm_x86_512.h's DotAvx512), the cell's table
// lookups by vpgatherdd: for CPUs without AVX-512 VBMI (Cascade Lake).
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

const KernelSet& avx512_vnni_kernels() {
  static const KernelSet k = make_kernel_set<DotAvx512<Lanes512>>("avx512_vnni");
  return k;
}

// 12 independent vpdpbusd chains, enough to cover its latency at two per
// cycle, on one weight panel: 14 of the 32 zmm registers. The peak of
// avx512_vnni_vbmi too, whose multiply is the same.
double avx512_vnni_peak_macs(double seconds) {
  return peak_loop<DotAvx512<Lanes512>, 12, 1>(seconds);
}

}  // namespace qlstm
#pragma GCC pop_options
#endif  // __x86_64__

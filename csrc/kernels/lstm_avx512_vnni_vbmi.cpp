// AVX-512 VNNI kernels whose cell looks its 256-entry tables up with AVX-512
// VBMI's vpermi2b (Ice Lake, Zen 4 and later): the 16 indices as bytes, two
// 128-byte lookups, and a blend by the index's top bit, in place of a
// 16-lane vpgatherdd, whose latency the cell's chain of conversions waits on.
#if defined(__x86_64__)
#include <immintrin.h>

#include <chrono>
#include <cstring>

#include "kernel_set.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")
#include "lstm_x86_512.h"

namespace qlstm {
namespace {

struct Lanes512Vbmi : Lanes512 {
  static I lookup(const int32_t*, const uint8_t* table, I index) {
    const __m512i idx = _mm512_zextsi128_si512(_mm512_maskz_cvtepi32_epi8(kAll, index));
    // vpermi2b reads the low 7 bits of each index byte.
    const __m512i low = _mm512_permutex2var_epi8(_mm512_load_si512(table), idx,
                                                 _mm512_load_si512(table + 64));
    const __m512i high = _mm512_permutex2var_epi8(_mm512_load_si512(table + 128), idx,
                                                  _mm512_load_si512(table + 192));
    const __m512i bytes = _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), low, high);
    return _mm512_maskz_cvtepu8_epi32(kAll, _mm512_maskz_extracti32x4_epi32(0xF, bytes, 0));
  }
};

}  // namespace

const KernelSet& avx512_vnni_vbmi_kernels() {
  static const KernelSet k = make_kernel_set<DotAvx512<Lanes512Vbmi>>("avx512_vnni_vbmi");
  return k;
}

}  // namespace qlstm
#pragma GCC pop_options
#endif  // __x86_64__

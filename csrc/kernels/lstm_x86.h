// The x86 vector parts of the tiled kernels (lstm_tiled.h): 8-lane float
// requantization, the fused cell epilogue with table gathers, and the sums of
// a panel held as two 256-bit registers. Each x86 ISA file includes this
// between its own target pragmas and supplies the multiply of its Dot policy.
#pragma once

#include <immintrin.h>

#include "lstm_tiled.h"

namespace qlstm {
namespace {

// quantize_value on 8 lanes: an integer-valued float in [0, 255].
inline __m256 quantize8(__m256 x, __m256 inv_scale, __m256 zero_point) {
  const __m256 r = _mm256_round_ps(_mm256_mul_ps(x, inv_scale),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // max first: a NaN becomes 0, as fmax(NaN, 0) does in the reference.
  return _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, zero_point), _mm256_setzero_ps()),
                       _mm256_set1_ps(255.0f));
}

inline __m256 dequantize8(__m256 q, DequantConstants d) {
  return _mm256_fmadd_ps(q, _mm256_set1_ps(d.scale), _mm256_set1_ps(d.offset));
}
inline __m256 dequantize8(__m256 q, QParams qp) { return dequantize8(q, dequant_constants(qp)); }

inline __m256 quantize8(__m256 x, float inv_scale, int32_t zero_point) {
  return quantize8(x, _mm256_set1_ps(inv_scale), _mm256_set1_ps(static_cast<float>(zero_point)));
}

inline __m256 load_bytes8(const uint8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

inline void store_bytes8(__m256 v, uint8_t* p) {
  const __m256i i = _mm256_cvtps_epi32(v);
  const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(w, w));
}

// float(raw) + bias_term of FBGEMM's requantization for packed rows
// [n, n + 8), raw = acc + offset - w_zp * row_sum.
inline __m256 linear_sum8(__m256i acc, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                          int32_t x_row_sum) {
  __m256i raw = _mm256_add_epi32(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.offset + n)));
  if (x_row_sum != 0) {
    const __m256i zp = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w_zp + n)));
    raw = _mm256_sub_epi32(raw, _mm256_mullo_epi32(zp, _mm256_set1_epi32(x_row_sum)));
  }
  return _mm256_add_ps(_mm256_cvtepi32_ps(raw), _mm256_loadu_ps(r.bias_term + n));
}

// Requantized outputs of those rows: FBGEMM's (float(raw) + bias_term) * multiplier, rounded.
inline __m256 linear_output8(__m256i acc, const LinearRequant& r, const int8_t* w_zp,
                             int64_t n, int32_t x_row_sum) {
  return quantize8(linear_sum8(acc, r, w_zp, n, x_row_sum), _mm256_loadu_ps(r.multiplier + n),
                   _mm256_set1_ps(static_cast<float>(r.output_zero_point[gate_of_row(n)])));
}

// The same unrounded: the accurate mode's float linear.
inline __m256 linear_float8(__m256i acc, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                            int32_t x_row_sum) {
  return _mm256_mul_ps(linear_sum8(acc, r, w_zp, n, x_row_sum), _mm256_loadu_ps(r.multiplier + n));
}

// float_cell.h's clamp on 8 lanes: max returns its second operand, lo, when
// a lane is NaN, as the scalar reference does.
inline __m256 clamp8(__m256 v, float lo, float hi) {
  return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(lo)), _mm256_set1_ps(hi));
}

// The fused element-wise part of a step for N groups of 8 hidden units of one
// batch row, group j at units 8 j. hg[j]: the requantized hgates of each gate;
// ig: igates at the units' gate-i row. A group is one long chain of
// conversions and table gathers; the groups go through it stage by stage, so
// that the core overlaps their latencies instead of waiting out each chain.
template <int N>
inline void epilogue8(const EpilogueParams& e, const __m256 (&hg)[N][4], const uint8_t* ig,
                      const uint8_t* c, uint8_t* h_next, uint8_t* c_next) {
  const CellQParams& q = e.p.q;
  const CellConstants& cc = e.cc;
  const StepMultipliers& m = e.m;
  __m256i gate[N][4];
  for (int g = 0; g < 4; ++g) {
    const DequantConstants ig_d = cc.igates[g], hg_d = cc.hgates[g];
    const __m256 inv = _mm256_set1_ps(cc.inv_gates[g]), zp = _mm256_set1_ps(cc.gates_zero_point[g]);
    for (int j = 0; j < N; ++j) {
      const __m256 sum = _mm256_add_ps(dequantize8(load_bytes8(ig + g * kUnitBlock + 8 * j), ig_d),
                                       dequantize8(hg[j][g], hg_d));
      gate[j][g] = _mm256_cvtps_epi32(quantize8(sum, inv, zp));
    }
  }
  const __m256i tz = _mm256_set1_epi32(kTanhQParams.zero_point);
  const __m256i c_zp = _mm256_set1_epi32(e.c_prev.zero_point);
  __m256 c_new[N];
  __m256i o[N];
  for (int j = 0; j < N; ++j) {
    const __m256i i = _mm256_i32gather_epi32(cc.gates[kInputGate], gate[j][kInputGate], 4);
    const __m256i f = _mm256_i32gather_epi32(cc.gates[kForgetGate], gate[j][kForgetGate], 4);
    const __m256i gg = _mm256_i32gather_epi32(cc.gates[kCellGate], gate[j][kCellGate], 4);
    o[j] = _mm256_i32gather_epi32(cc.gates[kOutputGate], gate[j][kOutputGate], 4);
    const __m256i c_centered = _mm256_sub_epi32(_mm256_cvtps_epi32(load_bytes8(c + 8 * j)), c_zp);
    // Products of two bytes are exact in float.
    const __m256 fc = quantize8(_mm256_cvtepi32_ps(_mm256_mullo_epi32(f, c_centered)),
                                m.fgate_cx, q.fgate_cx.zero_point);
    const __m256 igc = quantize8(
        _mm256_cvtepi32_ps(_mm256_mullo_epi32(i, _mm256_sub_epi32(gg, tz))), m.igate_cgate,
        q.igate_cgate.zero_point);
    c_new[j] = quantize8(
        _mm256_add_ps(dequantize8(fc, q.fgate_cx), dequantize8(igc, q.igate_cgate)), m.inv_cell,
        q.cell.zero_point);
  }
  for (int j = 0; j < N; ++j) {
    const __m256i tc = _mm256_i32gather_epi32(cc.tanh_cell, _mm256_cvtps_epi32(c_new[j]), 4);
    const __m256 h = quantize8(
        _mm256_cvtepi32_ps(_mm256_mullo_epi32(o[j], _mm256_sub_epi32(tc, tz))), m.hidden,
        q.hidden.zero_point);
    store_bytes8(c_new[j], c_next + 8 * j);
    store_bytes8(h, h_next + 8 * j);
  }
}

// The x86 part of every x86 Dot policy: a panel's sums as two registers,
// rows 0-7 and 8-15, the 8-lane epilogue, and quantize.h's conversions.
struct X86Epilogue {
  static void quantize_bytes(const float* x, int64_t n, QParams q, uint8_t* out) {
    const float inv = 1.0f / q.scale;
    const __m256 inv8 = _mm256_set1_ps(inv), zp8 = _mm256_set1_ps(static_cast<float>(q.zero_point));
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) store_bytes8(quantize8(_mm256_loadu_ps(x + i), inv8, zp8), out + i);
    for (; i < n; ++i) out[i] = quantize_value(x[i], inv, q.zero_point);
  }
  static void dequantize_bytes(const uint8_t* x, int64_t n, QParams q, float* out) {
    const __m256i zp8 = _mm256_set1_epi32(q.zero_point);
    const __m256 scale8 = _mm256_set1_ps(q.scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + i)));
      _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v, zp8)), scale8));
    }
    dequantize(x + i, n - i, q, out + i);
  }

  struct Sums {
    __m256i q[2];
  };
  // Requantized hgates of a unit block: [half][gate], 8 units each.
  struct BlockGates {
    __m256 q[2][4];
  };
  static void add_colsum128(Sums& s, const int32_t* colsum) {
    for (int half = 0; half < 2; ++half) {
      const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(colsum + 8 * half));
      s.q[half] = _mm256_add_epi32(s.q[half], _mm256_slli_epi32(c, 7));
    }
  }
  static void add16(Sums& s, const int32_t* v) {
    for (int half = 0; half < 2; ++half) {
      s.q[half] = _mm256_add_epi32(
          s.q[half], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 8 * half)));
    }
  }
  static void store_outputs(const Sums& s, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                            int32_t x_row_sum, uint8_t* dst) {
    for (int half = 0; half < 2; ++half) {
      store_bytes8(linear_output8(s.q[half], r, w_zp, n + 8 * half, x_row_sum), dst + 8 * half);
    }
  }
  static void requant_gate(const Sums& s, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                           int32_t x_row_sum, int gate, BlockGates* out) {
    for (int half = 0; half < 2; ++half) {
      out->q[half][gate] = linear_output8(s.q[half], r, w_zp, n + 8 * half, x_row_sum);
    }
  }
  static void store_outputs(const Sums& s, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                            int32_t x_row_sum, float* dst) {
    for (int half = 0; half < 2; ++half) {
      _mm256_storeu_ps(dst + 8 * half, linear_float8(s.q[half], r, w_zp, n + 8 * half, x_row_sum));
    }
  }
  static void float_gate(const Sums& s, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                         int32_t x_row_sum, int gate, BlockGates* out) {
    for (int half = 0; half < 2; ++half) {
      out->q[half][gate] = linear_float8(s.q[half], r, w_zp, n + 8 * half, x_row_sum);
    }
  }
  // The accurate mode's cell for the 16 units of a row: hg the float hgates,
  // ig the row's igates at the block's first row; h's bytes are quantized
  // with 1 / scale and the zero point of its qparams, formed once per call.
  static void float_epilogue(const BlockGates& hg, const float* ig, const float* c,
                             float h_inv_scale, float h_zero_point, float* h_next,
                             uint8_t* h_next_bytes, float* c_next) {
    const __m256 inv = _mm256_set1_ps(h_inv_scale), zp = _mm256_set1_ps(h_zero_point);
    for (int half = 0; half < 2; ++half) {
      const int64_t u = 8 * half;
      __m256 pre[4];
      for (int g = 0; g < 4; ++g) {
        pre[g] = _mm256_add_ps(_mm256_loadu_ps(ig + g * kUnitBlock + u), hg.q[half][g]);
      }
      __m256 c_new, h;
      float_cell_update(pre, _mm256_loadu_ps(c + u), clamp8, &c_new, &h);
      _mm256_storeu_ps(c_next + u, c_new);
      _mm256_storeu_ps(h_next + u, h);
      store_bytes8(quantize8(h, inv, zp), h_next_bytes + u);
    }
  }
  static void epilogue(const EpilogueParams& e, const BlockGates& g, const uint8_t* ig,
                       const uint8_t* c, uint8_t* h_next, uint8_t* c_next) {
    epilogue8<2>(e, g.q, ig, c, h_next, c_next);
  }
};

// The parts of a 256-bit Dot policy that hold a panel as two registers,
// one row's 4 k per 32-bit lane.
struct TwoHalves256 : X86Epilogue {
  struct W {
    __m256i q[2];
  };
  struct Acc {
    __m256i q[2];
  };
  static W load(const int8_t* w) {
    return W{{_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)),
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32))}};
  }
  static Acc zero() { return Acc{{_mm256_setzero_si256(), _mm256_setzero_si256()}}; }
  static void finish(const Acc& a, Sums* s) { *s = Sums{{a.q[0], a.q[1]}}; }
};

}  // namespace
}  // namespace qlstm

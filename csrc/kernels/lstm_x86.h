// The x86 vector parts of the tiled kernels (lstm_tiled.h): float
// requantization, the fused cell epilogue with table lookups, and the sums of
// a panel as registers of 8 or 16 int32 lanes. Written once over a Lanes type
// (Lanes256 here, Lanes512 in lstm_x86_512.h), so that every x86 set runs the
// same operations per lane. Each x86 ISA file includes this between its own
// target pragmas and supplies the multiply of its Dot policy.
#pragma once

#include <immintrin.h>

#include "lstm_tiled.h"

namespace qlstm {
namespace {

// 8 float or int32 lanes (AVX2): the operations the generic parts below use.
struct Lanes256 {
  using F = __m256;
  using I = __m256i;
  static constexpr int kLanes = 8;

  static F set1(float v) { return _mm256_set1_ps(v); }
  static I set1(int32_t v) { return _mm256_set1_epi32(v); }
  static F zero() { return _mm256_setzero_ps(); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static I load(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  // kLanes int8 or uint8 values widened to int32.
  static I widen(const int8_t* p) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static I widen(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  // Integer-valued floats in [0, 255] to kLanes bytes.
  static void store_bytes(F v, uint8_t* p) {
    const __m256i i = _mm256_cvtps_epi32(v);
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(w, w));
  }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F round(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static I add(I a, I b) { return _mm256_add_epi32(a, b); }
  static I sub(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I mullo(I a, I b) { return _mm256_mullo_epi32(a, b); }
  // a * b for a in [0, 255] and b in [-32768, 32767] per lane: vpmaddwd sees
  // each lane as two int16 and sums a * b + 0 * (b's high half), exactly,
  // where vpmulld takes two uops on Intel cores.
  static I mul_byte(I a, I b) { return _mm256_madd_epi16(a, b); }
  static I times128(I a) { return _mm256_slli_epi32(a, 7); }
  static F to_float(I a) { return _mm256_cvtepi32_ps(a); }
  static I to_int(F a) { return _mm256_cvtps_epi32(a); }
  // table[index] from the table widened to int32 or as bytes (CellConstants holds both).
  static I lookup(const int32_t* table, const uint8_t*, I index) {
    return _mm256_i32gather_epi32(table, index, 4);
  }
};

// quantize_value on every lane: an integer-valued float in [0, 255].
template <class L>
inline typename L::F quantize(typename L::F x, typename L::F inv_scale, typename L::F zero_point) {
  const typename L::F r = L::round(L::mul(x, inv_scale));
  // max first: a NaN becomes 0, as fmax(NaN, 0) does in the reference.
  return L::min(L::max(L::add(r, zero_point), L::zero()), L::set1(255.0f));
}

// quantize_per_tensor_value on every lane.
template <class L>
inline typename L::F quantize_per_tensor(typename L::F x, typename L::F inv_scale,
                                         typename L::F zero_point) {
  const typename L::F r = L::round(L::fmadd(x, inv_scale, zero_point));
  // min first: a NaN becomes 255, as fmin(NaN, 255) does in the reference.
  return L::max(L::min(r, L::set1(255.0f)), L::zero());
}

template <class L>
inline typename L::F dequantize(typename L::F q, DequantConstants d) {
  return L::fmadd(q, L::set1(d.scale), L::set1(d.offset));
}

template <class L>
inline typename L::F load_bytes(const uint8_t* p) {
  return L::to_float(L::widen(p));
}

// float(raw) + bias_term of FBGEMM's requantization for packed rows
// [n, n + kLanes), raw = acc + offset - w_zp * row_sum.
template <class L>
inline typename L::F linear_sum(typename L::I acc, const LinearRequant& r, const int8_t* w_zp,
                                int64_t n, int32_t x_row_sum) {
  typename L::I raw = L::add(acc, L::load(r.offset + n));
  if (x_row_sum != 0) raw = L::sub(raw, L::mullo(L::widen(w_zp + n), L::set1(x_row_sum)));
  return L::add(L::to_float(raw), L::load(r.bias_term + n));
}

// Requantized outputs of those rows: FBGEMM's (float(raw) + bias_term) * multiplier, rounded.
template <class L>
inline typename L::F linear_output(typename L::I acc, const LinearRequant& r, const int8_t* w_zp,
                                   int64_t n, int32_t x_row_sum) {
  return quantize<L>(linear_sum<L>(acc, r, w_zp, n, x_row_sum), L::load(r.multiplier + n),
                     L::set1(r.output_zero_point[gate_of_row(n)]));
}

// The same unrounded: the accurate mode's float linear.
template <class L>
inline typename L::F linear_float(typename L::I acc, const LinearRequant& r, const int8_t* w_zp,
                                  int64_t n, int32_t x_row_sum) {
  return L::mul(linear_sum<L>(acc, r, w_zp, n, x_row_sum), L::load(r.multiplier + n));
}

// float_cell.h's clamp on every lane: max returns its second operand, lo,
// when a lane is NaN, as the scalar reference does.
template <class L>
struct ClampLanes {
  typename L::F operator()(typename L::F v, float lo, float hi) const {
    return L::min(L::max(v, L::set1(lo)), L::set1(hi));
  }
};

// The fused element-wise part of a step for N groups of kLanes hidden units:
// hg[j] the requantized hgates of group j's gates, ig[j] its igates at the
// gate-i row, c[j] its cell state, h_next[j] and c_next[j] where its outputs
// go. A group is one long chain of conversions and table lookups; the groups
// go through it stage by stage, so that the core overlaps their latencies
// instead of waiting out each chain.
template <class L, int N>
inline void cell_epilogue(const EpilogueParams& e, const typename L::F* const (&hg)[N],
                          const uint8_t* const (&ig)[N], const uint8_t* const (&c)[N],
                          uint8_t* const (&h_next)[N], uint8_t* const (&c_next)[N]) {
  using F = typename L::F;
  using I = typename L::I;
  const CellConstants& cc = e.cc;
  const StepMultipliers& m = e.m;
  I gate[N][4];
  for (int g = 0; g < 4; ++g) {
    const DequantConstants ig_d = cc.igates[g], hg_d = cc.hgates[g];
    const F inv = L::set1(cc.inv_gates[g]), zp = L::set1(cc.gates_zero_point[g]);
    for (int j = 0; j < N; ++j) {
      const F sum = L::add(dequantize<L>(load_bytes<L>(ig[j] + g * kUnitBlock), ig_d),
                           dequantize<L>(hg[j][g], hg_d));
      gate[j][g] = L::to_int(quantize<L>(sum, inv, zp));
    }
  }
  const I tz = L::set1(kTanhQParams.zero_point);
  const I c_zp = L::set1(e.c_prev.zero_point);
  F c_new[N];
  I o[N];
  for (int j = 0; j < N; ++j) {
    const I i = L::lookup(cc.gates[kInputGate], cc.gate_bytes[kInputGate], gate[j][kInputGate]);
    const I f = L::lookup(cc.gates[kForgetGate], cc.gate_bytes[kForgetGate], gate[j][kForgetGate]);
    const I gg = L::lookup(cc.gates[kCellGate], cc.gate_bytes[kCellGate], gate[j][kCellGate]);
    o[j] = L::lookup(cc.gates[kOutputGate], cc.gate_bytes[kOutputGate], gate[j][kOutputGate]);
    const I c_centered = L::sub(L::widen(c[j]), c_zp);
    // Products of a table's byte and a centered byte: exact in int32 and in float.
    const F fc = quantize<L>(L::to_float(L::mul_byte(f, c_centered)), L::set1(m.fgate_cx),
                             L::set1(e.fgate_cx_zp));
    const F igc = quantize<L>(L::to_float(L::mul_byte(i, L::sub(gg, tz))), L::set1(m.igate_cgate),
                              L::set1(e.igate_cgate_zp));
    c_new[j] = quantize<L>(L::add(dequantize<L>(fc, e.fgate_cx), dequantize<L>(igc, e.igate_cgate)),
                           L::set1(m.inv_cell), L::set1(e.cell_zp));
  }
  for (int j = 0; j < N; ++j) {
    const I tc = L::lookup(cc.tanh_cell, cc.tanh_cell_bytes, L::to_int(c_new[j]));
    const F h = quantize<L>(L::to_float(L::mul_byte(o[j], L::sub(tc, tz))), L::set1(m.hidden),
                            L::set1(e.hidden_zp));
    L::store_bytes(c_new[j], c_next[j]);
    L::store_bytes(h, h_next[j]);
  }
}

// The x86 part of every x86 Dot policy: a panel's sums as kParts registers of
// L::kLanes rows, the epilogue on those lanes, and quantize.h's conversions.
template <class L>
struct X86Epilogue {
  static constexpr int kParts = kPanelRows / L::kLanes;
  // Rows per epilogue: four 16-lane groups' gates take 16 of AVX-512's 32
  // registers; AVX2's 16 registers hold one row's two 8-lane halves.
  static constexpr int kCellGroups = L::kLanes == 16 ? 4 : 1;

  static void quantize_bytes(const float* x, int64_t n, QParams q, uint8_t* out) {
    const float inv = 1.0f / q.scale;
    const typename L::F inv_l = L::set1(inv), zp_l = L::set1(static_cast<float>(q.zero_point));
    int64_t i = 0;
    for (; i + L::kLanes <= n; i += L::kLanes) {
      L::store_bytes(quantize_per_tensor<L>(L::load(x + i), inv_l, zp_l), out + i);
    }
    for (; i < n; ++i) out[i] = quantize_per_tensor_value(x[i], inv, q.zero_point);
  }
  static void dequantize_bytes(const uint8_t* x, int64_t n, QParams q, float* out) {
    const typename L::I zp_l = L::set1(q.zero_point);
    const typename L::F scale_l = L::set1(q.scale);
    int64_t i = 0;
    for (; i + L::kLanes <= n; i += L::kLanes) {
      L::store(out + i, L::mul(L::to_float(L::sub(L::widen(x + i), zp_l)), scale_l));
    }
    dequantize(x + i, n - i, q, out + i);
  }

  struct Sums {
    typename L::I q[kParts];
  };
  // Requantized hgates of a unit block: [part][gate], kLanes units each.
  struct BlockGates {
    typename L::F q[kParts][4];
  };
  static void add_colsum128(Sums& s, const int32_t* colsum) {
    for (int part = 0; part < kParts; ++part) {
      const typename L::I c = L::load(colsum + L::kLanes * part);
      s.q[part] = L::add(s.q[part], L::times128(c));
    }
  }
  static void add_row(Sums& s, int32_t v) {
    const typename L::I v_l = L::set1(v);
    for (int part = 0; part < kParts; ++part) s.q[part] = L::add(s.q[part], v_l);
  }
  static void store_outputs(const Sums& s, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                            int32_t x_row_sum, uint8_t* dst) {
    for (int part = 0; part < kParts; ++part) {
      const int64_t at = L::kLanes * part;
      L::store_bytes(linear_output<L>(s.q[part], r, w_zp, n + at, x_row_sum), dst + at);
    }
  }
  static void requant_gate(const Sums& s, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                           int32_t x_row_sum, int gate, BlockGates* out) {
    for (int part = 0; part < kParts; ++part) {
      out->q[part][gate] = linear_output<L>(s.q[part], r, w_zp, n + L::kLanes * part, x_row_sum);
    }
  }
  static void store_outputs(const Sums& s, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                            int32_t x_row_sum, float* dst) {
    for (int part = 0; part < kParts; ++part) {
      const int64_t at = L::kLanes * part;
      L::store(dst + at, linear_float<L>(s.q[part], r, w_zp, n + at, x_row_sum));
    }
  }
  static void float_gate(const Sums& s, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                         int32_t x_row_sum, int gate, BlockGates* out) {
    for (int part = 0; part < kParts; ++part) {
      out->q[part][gate] = linear_float<L>(s.q[part], r, w_zp, n + L::kLanes * part, x_row_sum);
    }
  }
  // The accurate mode's cell for the 16 units of a row: hg the float hgates,
  // ig the row's igates at the block's first row; h's bytes are quantized
  // with 1 / scale and the zero point of its qparams, formed once per call.
  static void float_epilogue(const BlockGates& hg, const float* ig, const float* c,
                             float h_inv_scale, float h_zero_point, float* h_next,
                             uint8_t* h_next_bytes, float* c_next) {
    const typename L::F inv = L::set1(h_inv_scale), zp = L::set1(h_zero_point);
    for (int part = 0; part < kParts; ++part) {
      const int64_t u = L::kLanes * part;
      typename L::F pre[4];
      for (int g = 0; g < 4; ++g) pre[g] = L::add(L::load(ig + g * kUnitBlock + u), hg.q[part][g]);
      typename L::F c_new, h;
      float_cell_update(pre, L::load(c + u), ClampLanes<L>{}, &c_new, &h);
      L::store(c_next + u, c_new);
      L::store(h_next + u, h);
      L::store_bytes(quantize_per_tensor<L>(h, inv, zp), h_next_bytes + u);
    }
  }
  // G rows' unit blocks: kParts groups of kLanes units each.
  template <int G>
  static void epilogue(const EpilogueParams& e, const BlockGates* hg, const uint8_t* const* ig,
                       const uint8_t* const* c, uint8_t* const* h_next, uint8_t* const* c_next) {
    constexpr int N = G * kParts;
    const typename L::F* hg_n[N];
    const uint8_t *ig_n[N], *c_n[N];
    uint8_t *h_n[N], *cn_n[N];
    for (int k = 0; k < G; ++k) {
      for (int part = 0; part < kParts; ++part) {
        const int j = k * kParts + part, at = L::kLanes * part;
        hg_n[j] = hg[k].q[part];
        ig_n[j] = ig[k] + at;
        c_n[j] = c[k] + at;
        h_n[j] = h_next[k] + at;
        cn_n[j] = c_next[k] + at;
      }
    }
    cell_epilogue<L, N>(e, hg_n, ig_n, c_n, h_n, cn_n);
  }
};

// The parts of a 256-bit Dot policy that hold a panel as two registers,
// one row's 4 k per 32-bit lane.
struct TwoHalves256 : X86Epilogue<Lanes256> {
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

// The Arm NEON parts of the tiled kernels (lstm_tiled.h): 4-lane float
// requantization, the fused cell epilogue over a whole unit block with
// 256-byte table lookups (tbl/tbx), and the sums of a panel as four 128-bit
// registers of 4 rows. Each NEON ISA file includes this after its own target
// pragmas and supplies the multiply of its Dot policy.
//
// Both NEON policies multiply signed bytes: activations are centered,
// x - 128, and the weights stay as they are, so every product is exact and
// sum x * w = sum (x - 128) * w + 128 * colsum with no -128 corrections.
#pragma once

#include <arm_neon.h>

#include "lstm_tiled.h"

namespace qlstm {
namespace {

// quantize_value on 4 lanes: an integer-valued float in [0, 255]. vmaxnm and
// vminnm return the number when one operand is NaN, as fmax and fmin do.
inline float32x4_t quantize4(float32x4_t x, float32x4_t inv_scale, float32x4_t zero_point) {
  const float32x4_t r = vrndnq_f32(vmulq_f32(x, inv_scale));
  return vminnmq_f32(vmaxnmq_f32(vaddq_f32(r, zero_point), vdupq_n_f32(0.0f)),
                     vdupq_n_f32(255.0f));
}

inline float32x4_t quantize4(float32x4_t x, float inv_scale, int32_t zero_point) {
  return quantize4(x, vdupq_n_f32(inv_scale), vdupq_n_f32(static_cast<float>(zero_point)));
}

// quantize_per_tensor_value on 4 lanes: vfma rounds once, as std::fma does.
inline float32x4_t quantize_per_tensor4(float32x4_t x, float32x4_t inv_scale, float32x4_t zero_point) {
  const float32x4_t r = vrndnq_f32(vfmaq_f32(zero_point, x, inv_scale));
  // min first: a NaN becomes 255, as fmin(NaN, 255) does in the reference.
  return vmaxnmq_f32(vminnmq_f32(r, vdupq_n_f32(255.0f)), vdupq_n_f32(0.0f));
}

// make_dequantize_table's fma(q, scale, -zero_point * scale), fused as there.
inline float32x4_t dequantize4(float32x4_t q, DequantConstants d) {
  return vfmaq_f32(vdupq_n_f32(d.offset), q, vdupq_n_f32(d.scale));
}
inline float32x4_t dequantize4(float32x4_t q, QParams qp) { return dequantize4(q, dequant_constants(qp)); }

// 16 bytes as four float32x4 (lanes 0-3, 4-7, 8-11, 12-15).
inline void widen16(uint8x16_t b, float32x4_t out[4]) {
  const uint16x8_t lo = vmovl_u8(vget_low_u8(b)), hi = vmovl_high_u8(b);
  out[0] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo)));
  out[1] = vcvtq_f32_u32(vmovl_high_u16(lo));
  out[2] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi)));
  out[3] = vcvtq_f32_u32(vmovl_high_u16(hi));
}

// Four integer-valued floats in [0, 255] back to 16 bytes.
inline uint8x16_t narrow16(const float32x4_t v[4]) {
  const uint16x8_t lo = vcombine_u16(vmovn_u32(vcvtq_u32_f32(v[0])), vmovn_u32(vcvtq_u32_f32(v[1])));
  const uint16x8_t hi = vcombine_u16(vmovn_u32(vcvtq_u32_f32(v[2])), vmovn_u32(vcvtq_u32_f32(v[3])));
  return vcombine_u8(vmovn_u16(lo), vmovn_u16(hi));
}

// table[idx] for 16 indices into a 256-byte table: tbl over the first 64
// bytes (0 for indices past them), then tbx over each next 64 (unchanged
// where the shifted index is out of range).
inline uint8x16_t lookup256(const uint8_t* table, uint8x16_t idx) {
  const uint8x16_t step = vdupq_n_u8(64);
  uint8x16_t out = vqtbl4q_u8(vld1q_u8_x4(table), idx);
  for (int part = 1; part < 4; ++part) {
    idx = vsubq_u8(idx, step);
    out = vqtbx4q_u8(out, vld1q_u8_x4(table + 64 * part), idx);
  }
  return out;
}

// float(raw) + bias_term of FBGEMM's requantization for packed rows
// [n, n + 4), raw = acc + offset - w_zp * x_row_sum.
inline float32x4_t linear_sum4(int32x4_t acc, const LinearRequant& r, const int8_t* w_zp,
                               int64_t n, int32_t x_row_sum) {
  int32x4_t raw = vaddq_s32(acc, vld1q_s32(r.offset + n));
  if (x_row_sum != 0) {
    int32_t zp[4];
    for (int i = 0; i < 4; ++i) zp[i] = w_zp[n + i];
    raw = vmlsq_s32(raw, vld1q_s32(zp), vdupq_n_s32(x_row_sum));
  }
  return vaddq_f32(vcvtq_f32_s32(raw), vld1q_f32(r.bias_term + n));
}

// FBGEMM's (float(raw) + bias_term) * multiplier for those rows, rounded.
inline float32x4_t linear_output4(int32x4_t acc, const LinearRequant& r, const int8_t* w_zp,
                                  int64_t n, int32_t x_row_sum) {
  return quantize4(linear_sum4(acc, r, w_zp, n, x_row_sum), vld1q_f32(r.multiplier + n),
                   vdupq_n_f32(r.output_zero_point[gate_of_row(n)]));
}

// The same unrounded: the accurate mode's float linear.
inline float32x4_t linear_float4(int32x4_t acc, const LinearRequant& r, const int8_t* w_zp,
                                 int64_t n, int32_t x_row_sum) {
  return vmulq_f32(linear_sum4(acc, r, w_zp, n, x_row_sum), vld1q_f32(r.multiplier + n));
}

// float_cell.h's clamp on 4 lanes: vmaxnm and vminnm give the number when a
// lane is NaN, so a NaN becomes lo, as in the scalar reference and on x86.
inline float32x4_t clamp4(float32x4_t v, float lo, float hi) {
  return vminnmq_f32(vmaxnmq_f32(v, vdupq_n_f32(lo)), vdupq_n_f32(hi));
}

// The requantized product a * b of 16 lanes (a unsigned, b signed, both
// widened to int16): exact in int32 and in float, then scaled and rounded.
inline void product16(uint8x16_t a, int16x8_t b_lo, int16x8_t b_hi, float multiplier,
                      int32_t zero_point, float32x4_t out[4]) {
  const int16x8_t a_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(a)));
  const int16x8_t a_hi = vreinterpretq_s16_u16(vmovl_high_u8(a));
  const int32x4_t p[4] = {vmull_s16(vget_low_s16(a_lo), vget_low_s16(b_lo)),
                          vmull_high_s16(a_lo, b_lo),
                          vmull_s16(vget_low_s16(a_hi), vget_low_s16(b_hi)),
                          vmull_high_s16(a_hi, b_hi)};
  for (int j = 0; j < 4; ++j) out[j] = quantize4(vcvtq_f32_s32(p[j]), multiplier, zero_point);
}

// b - zero_point for 16 bytes, as two int16x8.
inline void centered16(uint8x16_t b, int32_t zero_point, int16x8_t* lo, int16x8_t* hi) {
  const int16x8_t z = vdupq_n_s16(static_cast<int16_t>(zero_point));
  *lo = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(b))), z);
  *hi = vsubq_s16(vreinterpretq_s16_u16(vmovl_high_u8(b)), z);
}

// The Arm part of every NEON Dot policy: a panel's sums as four registers of
// 4 rows, the epilogue over the 16 units of a block, and quantize.h's
// conversions.
struct NeonEpilogue {
  static void quantize_bytes(const float* x, int64_t n, QParams q, uint8_t* out) {
    const float inv = 1.0f / q.scale;
    const float32x4_t inv4 = vdupq_n_f32(inv), zp4 = vdupq_n_f32(static_cast<float>(q.zero_point));
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      float32x4_t v[4];
      for (int j = 0; j < 4; ++j) v[j] = quantize_per_tensor4(vld1q_f32(x + i + 4 * j), inv4, zp4);
      vst1q_u8(out + i, narrow16(v));
    }
    for (; i < n; ++i) out[i] = quantize_per_tensor_value(x[i], inv, q.zero_point);
  }
  static void dequantize_bytes(const uint8_t* x, int64_t n, QParams q, float* out) {
    const float32x4_t zp4 = vdupq_n_f32(static_cast<float>(q.zero_point)), scale4 = vdupq_n_f32(q.scale);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      float32x4_t v[4];
      widen16(vld1q_u8(x + i), v);
      // q - zero_point is a small integer: exact in float, as in the scalar int subtraction.
      for (int j = 0; j < 4; ++j) vst1q_f32(out + i + 4 * j, vmulq_f32(vsubq_f32(v[j], zp4), scale4));
    }
    dequantize(x + i, n - i, q, out + i);
  }

  struct Sums {
    int32x4_t q[4];
  };
  // Requantized hgates of a unit block: [gate][4 units].
  struct BlockGates {
    float32x4_t q[4][4];
  };
  static constexpr bool kCentered = true;

  // Centered activations: 4 bytes x - 128 as int8, repeated over 16 lanes.
  static int8x16_t centered_act(uint32_t four_bytes) {
    return vreinterpretq_s8_u32(vdupq_n_u32(four_bytes ^ 0x80808080u));
  }
  static void add_colsum128(Sums& s, const int32_t* colsum) {
    for (int j = 0; j < 4; ++j) s.q[j] = vaddq_s32(s.q[j], vshlq_n_s32(vld1q_s32(colsum + 4 * j), 7));
  }
  static void store_outputs(const Sums& s, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                            int32_t x_row_sum, uint8_t* dst) {
    float32x4_t out[4];
    for (int j = 0; j < 4; ++j) out[j] = linear_output4(s.q[j], r, w_zp, n + 4 * j, x_row_sum);
    vst1q_u8(dst, narrow16(out));
  }
  static void requant_gate(const Sums& s, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                           int32_t x_row_sum, int gate, BlockGates* out) {
    for (int j = 0; j < 4; ++j) {
      out->q[gate][j] = linear_output4(s.q[j], r, w_zp, n + 4 * j, x_row_sum);
    }
  }
  static void store_outputs(const Sums& s, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                            int32_t x_row_sum, float* dst) {
    for (int j = 0; j < 4; ++j) vst1q_f32(dst + 4 * j, linear_float4(s.q[j], r, w_zp, n + 4 * j, x_row_sum));
  }
  static void float_gate(const Sums& s, const LinearRequant& r, const int8_t* w_zp, int64_t n,
                         int32_t x_row_sum, int gate, BlockGates* out) {
    for (int j = 0; j < 4; ++j) {
      out->q[gate][j] = linear_float4(s.q[j], r, w_zp, n + 4 * j, x_row_sum);
    }
  }
  // The accurate mode's cell for the 16 units of a row, as X86Epilogue's.
  static void float_epilogue(const BlockGates& hg, const float* ig, const float* c,
                             float h_inv_scale, float h_zero_point, float* h_next,
                             uint8_t* h_next_bytes, float* c_next) {
    const float32x4_t inv = vdupq_n_f32(h_inv_scale), zp = vdupq_n_f32(h_zero_point);
    float32x4_t hq[4];
    for (int j = 0; j < 4; ++j) {
      const int64_t u = 4 * j;
      float32x4_t pre[4];
      for (int g = 0; g < 4; ++g) pre[g] = vaddq_f32(vld1q_f32(ig + g * kUnitBlock + u), hg.q[g][j]);
      float32x4_t c_new, h;
      float_cell_update(pre, vld1q_f32(c + u), clamp4, &c_new, &h);
      vst1q_f32(c_next + u, c_new);
      vst1q_f32(h_next + u, h);
      hq[j] = quantize_per_tensor4(h, inv, zp);
    }
    vst1q_u8(h_next_bytes, narrow16(hq));
  }
  // One row's 16 units per epilogue: its four 4-lane parts already give the
  // chain independent work.
  static constexpr int kCellGroups = 1;
  template <int G>
  static void epilogue(const EpilogueParams& e, const BlockGates* hg, const uint8_t* const* ig,
                       const uint8_t* const* c, uint8_t* const* h_next, uint8_t* const* c_next) {
    static_assert(G == 1, "one row per epilogue");
    epilogue_row(e, hg[0], ig[0], c[0], h_next[0], c_next[0]);
  }
  static void epilogue_row(const EpilogueParams& e, const BlockGates& hg, const uint8_t* ig,
                           const uint8_t* c, uint8_t* h_next, uint8_t* c_next) {
    const CellQParams& q = e.p.q;
    const StepMultipliers& m = e.m;
    uint8x16_t gate[4];
    for (int g = 0; g < 4; ++g) {
      float32x4_t igf[4], sum[4];
      widen16(vld1q_u8(ig + g * kUnitBlock), igf);
      for (int j = 0; j < 4; ++j) {
        sum[j] = quantize4(
            vaddq_f32(dequantize4(igf[j], e.cc.igates[g]), dequantize4(hg.q[g][j], e.cc.hgates[g])),
            vdupq_n_f32(e.cc.inv_gates[g]), vdupq_n_f32(e.cc.gates_zero_point[g]));
      }
      gate[g] = narrow16(sum);
    }
    const uint8x16_t i = lookup256(e.p.gate_tables[kInputGate], gate[kInputGate]);
    const uint8x16_t f = lookup256(e.p.gate_tables[kForgetGate], gate[kForgetGate]);
    const uint8x16_t gg = lookup256(e.p.gate_tables[kCellGate], gate[kCellGate]);
    const uint8x16_t o = lookup256(e.p.gate_tables[kOutputGate], gate[kOutputGate]);
    int16x8_t lo, hi;
    float32x4_t fc[4], igc[4], c_new[4], h[4];
    centered16(vld1q_u8(c), e.c_prev.zero_point, &lo, &hi);
    product16(f, lo, hi, m.fgate_cx, q.fgate_cx.zero_point, fc);
    centered16(gg, kTanhQParams.zero_point, &lo, &hi);
    product16(i, lo, hi, m.igate_cgate, q.igate_cgate.zero_point, igc);
    for (int j = 0; j < 4; ++j) {
      c_new[j] = quantize4(vaddq_f32(dequantize4(fc[j], q.fgate_cx), dequantize4(igc[j], q.igate_cgate)),
                           m.inv_cell, q.cell.zero_point);
    }
    const uint8x16_t c_bytes = narrow16(c_new);
    centered16(lookup256(e.p.tanh_cell, c_bytes), kTanhQParams.zero_point, &lo, &hi);
    product16(o, lo, hi, m.hidden, q.hidden.zero_point, h);
    vst1q_u8(c_next, c_bytes);
    vst1q_u8(h_next, narrow16(h));
  }
};

}  // namespace
}  // namespace qlstm

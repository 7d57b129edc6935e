// Scalar reference kernels: the input projection over all timesteps and the
// fused recurrent step. Every ISA-specific path must match these bit for bit.
#include "lstm_kernels.h"

namespace qlstm {
namespace {

int32_t dot_u8s8(const uint8_t* x, const int8_t* w, int64_t k) {
  int32_t acc = 0;
  for (int64_t i = 0; i < k; ++i) acc += static_cast<int32_t>(x[i]) * w[i];
  return acc;
}

int32_t row_sum(const uint8_t* x, int64_t k) {
  int32_t s = 0;
  for (int64_t i = 0; i < k; ++i) s += x[i];
  return s;
}

// FBGEMM's ReQuantizeOutput with a float bias: (float(raw) + bias_term) * multiplier,
// rounded half to even, shifted by the zero point and clamped to uint8.
uint8_t requantize_linear(int64_t raw, float bias_term, float multiplier, int32_t zero_point) {
  return quantize_value(static_cast<float>(raw) + bias_term, multiplier, zero_point);
}

// ATen's quantized mul: zero_point + round(float(a * b) * multiplier), clamped.
uint8_t requantize_product(int32_t product, float multiplier, int32_t zero_point) {
  return quantize_value(static_cast<float>(product), multiplier, zero_point);
}

// One output row of a uint8 x int8 linear: out[n] for n in [0, rows).
void linear_row(const uint8_t* x, int64_t k, const int8_t* w, const int32_t* w_zp, bool has_zp,
                const LinearRequant& r, int64_t n, int32_t x_row_sum, uint8_t* out) {
  int64_t raw = static_cast<int64_t>(dot_u8s8(x, w + n * k, k)) + r.offset[n];
  if (has_zp) raw -= static_cast<int64_t>(w_zp[n]) * x_row_sum;
  *out = requantize_linear(raw, r.bias_term[n], r.multiplier[n], r.output_zero_point);
}

// ATen's quantized mul multiplier: a_scale * b_scale * (1 / out_scale), in float.
float product_multiplier(float a_scale, float b_scale, float out_scale) {
  return a_scale * b_scale * (1.0f / out_scale);
}

}  // namespace

void input_projection(const PackedLayer& p, const LinearRequant& r, const uint8_t* x,
                      int64_t row_begin, int64_t row_end, uint8_t* igates) {
  const int64_t K = p.input_size, N = 4 * p.hidden_size;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const uint8_t* xr = x + row * K;
    const int32_t rs = p.w_ih_has_zp ? row_sum(xr, K) : 0;
    for (int64_t n = 0; n < N; ++n) {
      linear_row(xr, K, p.w_ih, p.w_ih_zp, p.w_ih_has_zp, r, n, rs, igates + row * N + n);
    }
  }
}

void lstm_step(const PackedLayer& p, const LinearRequant& hh, const uint8_t* igates,
               const StepState& state, int64_t b_begin, int64_t b_end, uint8_t* h_next,
               uint8_t* c_next) {
  const int64_t H = p.hidden_size, N = 4 * H;
  const CellQParams& q = p.q;
  const float inv_gates = 1.0f / q.gates.scale;
  const float inv_cell = 1.0f / q.cell.scale;
  const float fc_mult = product_multiplier(kSigmoidQParams.scale, state.c_qparams.scale,
                                           q.fgate_cx.scale);
  const float ig_mult = product_multiplier(kSigmoidQParams.scale, kTanhQParams.scale,
                                           q.igate_cgate.scale);
  const float h_mult = product_multiplier(kSigmoidQParams.scale, kTanhQParams.scale,
                                          q.hidden.scale);
  const int32_t cz = state.c_qparams.zero_point, tz = kTanhQParams.zero_point;

  for (int64_t b = b_begin; b < b_end; ++b) {
    const uint8_t* h = state.h + b * H;
    const uint8_t* c = state.c + b * H;
    const uint8_t* ig = igates + b * N;
    const int32_t rs = p.w_hh_has_zp ? row_sum(h, H) : 0;
    for (int64_t u = 0; u < H; ++u) {
      uint8_t gate[4];
      for (int g = 0; g < 4; ++g) {
        const int64_t n = 4 * u + g;
        uint8_t hg;
        linear_row(h, H, p.w_hh, p.w_hh_zp, p.w_hh_has_zp, hh, n, rs, &hg);
        gate[g] = quantize_value(p.deq_igates[ig[n]] + p.deq_hgates[hg], inv_gates,
                                 q.gates.zero_point);
      }
      const int32_t i = p.sigmoid_gates[gate[kInputGate]];
      const int32_t f = p.sigmoid_gates[gate[kForgetGate]];
      const int32_t gg = p.tanh_gates[gate[kCellGate]];
      const int32_t o = p.sigmoid_gates[gate[kOutputGate]];
      // Sigmoid outputs have zero point 0, so they enter the products as they are.
      const uint8_t fc = requantize_product(f * (c[u] - cz), fc_mult, q.fgate_cx.zero_point);
      const uint8_t igc = requantize_product(i * (gg - tz), ig_mult, q.igate_cgate.zero_point);
      const uint8_t c_new = quantize_value(p.deq_fgate_cx[fc] + p.deq_igate_cgate[igc],
                                           inv_cell, q.cell.zero_point);
      c_next[b * H + u] = c_new;
      h_next[b * H + u] =
          requantize_product(o * (p.tanh_cell[c_new] - tz), h_mult, q.hidden.zero_point);
    }
  }
}

}  // namespace qlstm

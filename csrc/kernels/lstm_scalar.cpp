// Scalar reference kernels: the input projection over all timesteps and the
// fused recurrent step. Every ISA-specific path must match these bit for bit.
#include <algorithm>
#include <type_traits>

#include "float_cell.h"
#include "kernel_set.h"

namespace qlstm {
namespace {

// sum_k x[k] * w[row][k] over a packed matrix.
int32_t dot_row(const uint8_t* x, const int8_t* w, int64_t row, int64_t K) {
  int32_t acc = 0;
  for (int64_t k = 0; k < K; ++k) {
    acc += static_cast<int32_t>(x[k]) * w[packed_weight_offset(row, k, K)];
  }
  return acc;
}

// float(raw) + bias_term of FBGEMM's requantization, raw the zero-point-corrected sum.
float linear_sum(const uint8_t* x, const PackedMatrix& m, const LinearRequant& r, int64_t n,
                 int32_t x_row_sum) {
  int64_t raw = static_cast<int64_t>(dot_row(x, m.weights, n, m.K)) + r.offset[n];
  if (x_row_sum != 0) raw -= static_cast<int64_t>(m.zero_point[n]) * x_row_sum;
  return static_cast<float>(raw) + r.bias_term[n];
}

// FBGEMM's ReQuantizeOutput with a float bias: (float(raw) + bias_term) * multiplier,
// rounded half to even, shifted by the zero point and clamped to uint8.
uint8_t linear_output(const uint8_t* x, const PackedMatrix& m, const LinearRequant& r, int64_t n,
                      int32_t x_row_sum) {
  return quantize_value(linear_sum(x, m, r, n, x_row_sum), r.multiplier[n],
                        static_cast<int32_t>(r.output_zero_point[gate_of_row(n)]));
}

// The same product unrounded: the accurate mode's float linear.
float linear_float_output(const uint8_t* x, const PackedMatrix& m, const LinearRequant& r,
                          int64_t n, int32_t x_row_sum) {
  return linear_sum(x, m, r, n, x_row_sum) * r.multiplier[n];
}

// ATen's quantized mul: zero_point + round(float(a * b) * multiplier), clamped.
uint8_t requantize_product(int32_t product, float multiplier, int32_t zero_point) {
  return quantize_value(static_cast<float>(product), multiplier, zero_point);
}

template <class Out>
void linear_scalar(const PackedMatrix& m, const LinearRequant& r, const uint8_t* x,
                   int64_t row_begin, int64_t row_end, int64_t panel_begin, int64_t panel_end,
                   Out* out) {
  const int64_t K = m.K, N = m.rows;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const uint8_t* xr = x + row * K;
    const int32_t rs = m.has_zero_point ? row_sum(xr, K) : 0;
    for (int64_t n = panel_begin * kPanelRows; n < panel_end * kPanelRows; ++n) {
      if constexpr (std::is_same_v<Out, float>) {
        out[row * N + n] = linear_float_output(xr, m, r, n, rs);
      } else {
        out[row * N + n] = linear_output(xr, m, r, n, rs);
      }
    }
  }
}

void lstm_step_float_scalar(const PackedLayer& p, const LinearRequant& hh, QParams h_q,
                            const float* igates, const FloatStepState& state, int64_t b_begin,
                            int64_t b_end, int64_t block_begin, int64_t block_end,
                            float* h_next, uint8_t* h_next_bytes, float* c_next) {
  const int64_t H = p.hidden_size, N = p.rows, K = p.hh.K;
  const int64_t u_end = std::min(H, block_end * kUnitBlock);
  const float inv_h = 1.0f / h_q.scale;
  for (int64_t b = b_begin; b < b_end; ++b) {
    const uint8_t* h = state.h + b * K;
    const float* ig = igates + b * N;
    const int32_t rs = p.hh.has_zero_point ? row_sum(h, K) : 0;
    for (int64_t u = block_begin * kUnitBlock; u < u_end; ++u) {
      float pre[4];
      for (int g = 0; g < 4; ++g) {
        const int64_t n = packed_row(u, g);
        pre[g] = ig[n] + linear_float_output(h, p.hh, hh, n, rs);
      }
      const int64_t at = b * H + u;
      float h_new;
      float_cell_update(pre, state.c[at], clamp_float, &c_next[at], &h_new);
      h_next[at] = h_new;
      h_next_bytes[at] = quantize_per_tensor_value(h_new, inv_h, h_q.zero_point);
    }
  }
}

void lstm_step_scalar(const PackedLayer& p, const LinearRequant& hh, const CellConstants& cc,
                      const uint8_t* igates, const StepState& state, int64_t b_begin,
                      int64_t b_end, int64_t block_begin, int64_t block_end, uint8_t* h_next,
                      uint8_t* c_next) {
  const int64_t H = p.hidden_size, N = p.rows, K = p.hh.K;
  const CellQParams& q = p.q;
  const StepMultipliers m = step_multipliers(q, state.c_qparams);
  const int32_t cz = state.c_qparams.zero_point, tz = kTanhQParams.zero_point;
  const int64_t u_end = std::min(H, block_end * kUnitBlock);
  float deq_igates[kNumGates][256], deq_hgates[kNumGates][256], deq_fgate_cx[256],
      deq_igate_cgate[256];
  for (int g = 0; g < kNumGates; ++g) {
    make_dequantize_table(q.igates[g], deq_igates[g]);
    make_dequantize_table(q.hgates[g], deq_hgates[g]);
  }
  make_dequantize_table(q.fgate_cx, deq_fgate_cx);
  make_dequantize_table(q.igate_cgate, deq_igate_cgate);

  for (int64_t b = b_begin; b < b_end; ++b) {
    const uint8_t* h = state.h + b * K;
    const uint8_t* c = state.c + b * H;
    const uint8_t* ig = igates + b * N;
    const int32_t rs = p.hh.has_zero_point ? row_sum(h, K) : 0;
    for (int64_t u = block_begin * kUnitBlock; u < u_end; ++u) {
      uint8_t gate[4];
      for (int g = 0; g < 4; ++g) {
        const int64_t n = packed_row(u, g);
        const uint8_t hg = linear_output(h, p.hh, hh, n, rs);
        gate[g] = quantize_value(deq_igates[g][ig[n]] + deq_hgates[g][hg], cc.inv_gates[g],
                                 q.gates[g].zero_point);
      }
      const int32_t i = cc.gates[kInputGate][gate[kInputGate]];
      const int32_t f = cc.gates[kForgetGate][gate[kForgetGate]];
      const int32_t gg = cc.gates[kCellGate][gate[kCellGate]];
      const int32_t o = cc.gates[kOutputGate][gate[kOutputGate]];
      // Sigmoid outputs have zero point 0, so they enter the products as they are.
      const uint8_t fc = requantize_product(f * (c[u] - cz), m.fgate_cx, q.fgate_cx.zero_point);
      const uint8_t igc = requantize_product(i * (gg - tz), m.igate_cgate, q.igate_cgate.zero_point);
      const uint8_t c_new = quantize_value(deq_fgate_cx[fc] + deq_igate_cgate[igc],
                                           m.inv_cell, q.cell.zero_point);
      c_next[b * H + u] = c_new;
      h_next[b * H + u] =
          requantize_product(o * (cc.tanh_cell[c_new] - tz), m.hidden, q.hidden.zero_point);
    }
  }
}

}  // namespace

const KernelSet& scalar_kernels() {
  static const KernelSet k{"scalar",           linear_scalar<uint8_t>, lstm_step_scalar,
                           linear_scalar<float>, lstm_step_float_scalar, quantize,
                           dequantize,         /*rider_rows=*/0};
  return k;
}

}  // namespace qlstm

// Requantization constants: what one call needs to turn a linear's int32 sums
// into uint8 (FBGEMM's float requantization), and the cell's per-step
// multipliers and activation tables.
#pragma once

#include <cstdint>

#include "packed_format.h"
#include "quantize.h"

namespace qlstm {

// Per-call constants of one linear whose input qparams are known only at run
// time: offset[n] folds the zero-point corrections, bias_term and multiplier
// are FBGEMM's float requantization constants. Each gate's rows have their
// own output qparams (equal unless the gates are split): the multiplier folds
// the scale in, output_zero_point[gate_of_row(n)] is the zero point, as the
// float (an integer in [0, 255]) that the quantization adds.
struct LinearRequant {
  int32_t* offset;     // [rows]
  float* bias_term;    // [rows]
  float* multiplier;   // [rows]
  float output_zero_point[kNumGates];
};

// Fills r (whose arrays hold m.rows entries) for input * m^T, an input with
// qparams `input` and gate g's outputs with qparams output[g].
void prepare_linear_requant(const PackedMatrix& m, QParams input,
                            const QParams output[kNumGates], LinearRequant* r);

// sum_k x[k]: what a nonzero weight zero point multiplies.
inline int32_t row_sum(const uint8_t* x, int64_t k) {
  int32_t s = 0;
  for (int64_t i = 0; i < k; ++i) s += x[i];
  return s;
}

// Per-call constants of the cell epilogue, built once before the time loop:
// the activation tables widened to int32, as vector gathers read them, and as
// bytes, as byte permutes read them (copied: the blob's own tables may be
// rewritten during the call), and each gate's dequantization of igates and
// hgates and the quantization of its sum.
struct CellConstants {
  int32_t gates[kNumGates][256], tanh_cell[256];
  alignas(64) uint8_t gate_bytes[kNumGates][256];
  alignas(64) uint8_t tanh_cell_bytes[256];
  DequantConstants igates[kNumGates], hgates[kNumGates];
  float inv_gates[kNumGates], gates_zero_point[kNumGates];
};
void prepare_cell_constants(const PackedLayer& p, CellConstants* c);

// Float multipliers of the cell's element-wise ops for one step; forget*cell
// depends on the qparams the previous cell state came with.
struct StepMultipliers {
  float inv_cell, fgate_cx, igate_cgate, hidden;
};
// ATen's quantized mul multiplier: a_scale * b_scale * (1 / out_scale), in float.
inline float product_multiplier(float a_scale, float b_scale, float out_scale) {
  return a_scale * b_scale * (1.0f / out_scale);
}
inline StepMultipliers step_multipliers(const CellQParams& q, QParams c_prev) {
  return {1.0f / q.cell.scale,
          product_multiplier(kSigmoidQParams.scale, c_prev.scale, q.fgate_cx.scale),
          product_multiplier(kSigmoidQParams.scale, kTanhQParams.scale, q.igate_cgate.scale),
          product_multiplier(kSigmoidQParams.scale, kTanhQParams.scale, q.hidden.scale)};
}

}  // namespace qlstm

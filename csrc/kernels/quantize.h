// Element-wise conversions between float and uint8 activations, exactly as
// ATen computes them.
#pragma once

#include <cmath>
#include <cstdint>

#include "qparams.h"

namespace qlstm {

// The requantization inside the graph, as ATen's quantized ops compute it:
// zero_point + round_half_even(x * (1 / scale)), clamped to [0, 255].
inline uint8_t quantize_value(float x, float inv_scale, int32_t zero_point) {
  const float r = std::nearbyint(x * inv_scale);
  // Clamp in float first: a huge x must not overflow the integer conversion.
  const float q = std::fmin(std::fmax(r + static_cast<float>(zero_point), 0.0f), 255.0f);
  return static_cast<uint8_t>(q);
}

// torch.quantize_per_tensor (a QuantStub): the zero point is added, in one
// fused multiply-add, before the rounding, which gives another byte than
// quantize_value where x / scale is within half an ulp of a tie, or on a tie
// with an odd zero point; clamped to [0, 255], where a NaN becomes 255 as it
// does in torch.
inline uint8_t quantize_per_tensor_value(float x, float inv_scale, int32_t zero_point) {
  const float r = std::nearbyint(std::fma(x, inv_scale, static_cast<float>(zero_point)));
  return static_cast<uint8_t>(std::fmax(std::fmin(r, 255.0f), 0.0f));
}

// Float inputs, states and the accurate mode's h, as quantize_per_tensor_value.
void quantize(const float* x, int64_t n, QParams q, uint8_t* out);
// Tensor.dequantize's (q - zero_point) * scale; inside the graph, the
// element-wise ops use make_dequantize_table's fused form instead.
void dequantize(const uint8_t* x, int64_t n, QParams q, float* out);

// The operands of ATen's vectorized dequantize, fma(q, scale, offset) with
// offset = -zero_point * scale, formed once.
struct DequantConstants {
  float scale, offset;
};
inline DequantConstants dequant_constants(QParams q) {
  return {q.scale, q.scale * static_cast<float>(-q.zero_point)};
}

// Dequantized value of every uint8 under qparams `q`, exactly as ATen's
// vectorized dequantize computes it.
void make_dequantize_table(QParams q, float* out /*[256]*/);

// table[v] = quantize(dequantize(v, from), to): what ATen's cat and stack do to
// quantized inputs whose qparams differ from the first input's.
void make_requantize_table(QParams from, QParams to, uint8_t* table /*[256]*/);

// Maps n bytes through a 256-entry table; a null table copies.
void map_bytes(const uint8_t* table, const uint8_t* src, int64_t n, uint8_t* dst);

}  // namespace qlstm

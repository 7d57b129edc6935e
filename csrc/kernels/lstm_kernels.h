// Torch-free int8 LSTM kernel core: packing, the hoisted input projection and
// the recurrent step with its fused element-wise epilogue. Raw pointers only.
//
// Numerics follow PyTorch's eager static quantized LSTM on the FBGEMM engine:
// every intermediate is uint8 with its own (scale, zero_point), sigmoid and
// tanh have fixed output qparams, and linear outputs are requantized as
// FBGEMM's ReQuantizeOutput with a float bias does.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace qlstm {

struct QParams {
  float scale;
  int32_t zero_point;
};

// Fixed output qparams of quantized sigmoid and tanh for quint8.
inline constexpr QParams kSigmoidQParams{1.0f / 256.0f, 0};
inline constexpr QParams kTanhQParams{2.0f / 256.0f, 128};

// Largest inner dimension for which every zero-point-corrected dot product,
// |sum_k (x - xz)(w - wz)| <= 255 * 255 * K, fits an int32.
inline constexpr int64_t kMaxInnerDim = 32768;

// Gate order inside a packed layer, as in nn.LSTM's weight rows.
enum Gate : int { kInputGate = 0, kForgetGate = 1, kCellGate = 2, kOutputGate = 3 };

// The observed qparams of one layer-direction's intermediates, in the order
// of the graph: igates, hgates, gates, forget*cell, input*cell_gate, cell, hidden.
struct CellQParams {
  QParams igates, hgates, gates, fgate_cx, igate_cgate, cell, hidden;
};
inline constexpr int kNumCellQParams = 7;

// Unpacked weights of one layer-direction, nn.LSTM layout (rows i, f, g, o).
struct LayerWeights {
  int64_t input_size;
  int64_t hidden_size;
  const int8_t* w_ih;        // [4H][I]
  const float* w_ih_scale;   // [4H] (per-tensor: the same value repeated)
  const int32_t* w_ih_zp;    // [4H]
  const int8_t* w_hh;        // [4H][H]
  const float* w_hh_scale;   // [4H]
  const int32_t* w_hh_zp;    // [4H]
  const float* b_ih;         // [4H] or nullptr
  const float* b_hh;         // [4H] or nullptr
  bool per_channel;
};

// Element-wise maps of uint8 operands whose qparams are fixed at pack time.
// The ops layer computes them with PyTorch's own float ops so that they agree
// with ATen's quantized sigmoid and tanh bit for bit.
struct LayerTables {
  const uint8_t* sigmoid_gates;  // [256] gates -> sigmoid
  const uint8_t* tanh_gates;     // [256] gates -> tanh
  const uint8_t* tanh_cell;      // [256] cell -> tanh
};

// Read-only view of one packed layer-direction inside a packed blob.
// Rows are gate-interleaved: row 4*u + gate holds that gate of hidden unit u,
// so the epilogue finds i, f, g, o of a unit side by side.
struct PackedLayer {
  int64_t input_size;
  int64_t hidden_size;
  bool per_channel;
  bool has_bias;
  CellQParams q;
  const int8_t* w_ih;          // [4H][I]
  const int8_t* w_hh;          // [4H][H]
  const float* w_ih_scale;     // [4H]
  const float* w_hh_scale;     // [4H]
  const int32_t* w_ih_zp;      // [4H]
  const int32_t* w_hh_zp;      // [4H]
  const int32_t* w_ih_colsum;  // [4H] sum over k of w_ih
  const int32_t* w_hh_colsum;  // [4H]
  const float* b_ih;           // [4H] (zeros when !has_bias)
  const float* b_hh;           // [4H]
  const float* deq_igates;     // [256] dequantized igates values
  const float* deq_hgates;     // [256]
  const float* deq_fgate_cx;   // [256]
  const float* deq_igate_cgate;  // [256]
  const uint8_t* sigmoid_gates;  // [256]
  const uint8_t* tanh_gates;     // [256]
  const uint8_t* tanh_cell;      // [256]
  bool w_ih_has_zp;
  bool w_hh_has_zp;
};

// Size in bytes of a packed layer-direction.
size_t packed_layer_size(int64_t input_size, int64_t hidden_size);

// Packs one layer-direction into `out` (packed_layer_size bytes, 64-byte aligned).
void pack_layer(const LayerWeights& w, const CellQParams& q, const LayerTables& t,
                uint8_t* out);

// Validates a packed blob and returns its view. Returns nullptr on success,
// or a static message naming what is wrong.
const char* unpack_layer_view(const uint8_t* data, size_t size, PackedLayer* out);

// Dequantized value of every uint8 under qparams `q`, exactly as ATen's
// vectorized dequantize (fma(q, scale, -zero_point * scale)) computes it.
void make_dequantize_table(QParams q, float* out /*[256]*/);

// Per-call constants of one linear whose input qparams are known only at run
// time: offset[n] folds the zero-point corrections, bias_term and multiplier
// are FBGEMM's float requantization constants.
struct LinearRequant {
  int32_t* offset;     // [4H]
  float* bias_term;    // [4H]
  float* multiplier;   // [4H]
  int32_t output_zero_point;
};

// Fills r (whose arrays hold 4H entries) for x * w_ih^T (ih = true) or h * w_hh^T.
void prepare_linear_requant(const PackedLayer& p, bool ih, QParams input, LinearRequant* r);

// igates[r][n] for rows [row_begin, row_end) of x ([rows][input_size], uint8).
// All timesteps go through here at once, before the time loop.
void input_projection(const PackedLayer& p, const LinearRequant& r, const uint8_t* x,
                      int64_t row_begin, int64_t row_end, uint8_t* igates /*[rows][4H]*/);

// State of one recurrent step: the previous h and c with their qparams.
struct StepState {
  const uint8_t* h;  // [B][H]
  const uint8_t* c;  // [B][H]
  QParams c_qparams;
};

// One timestep for batch rows [b_begin, b_end): hgates = h * w_hh^T, then
// gates, sigmoid/tanh, the cell update and the new hidden state, all fused.
// hh must have been prepared with the qparams of state.h.
void lstm_step(const PackedLayer& p, const LinearRequant& hh, const uint8_t* igates /*[B][4H]*/,
               const StepState& state, int64_t b_begin, int64_t b_end, uint8_t* h_next,
               uint8_t* c_next);

// ATen's quantize: zero_point + round_half_even(x * (1 / scale)), clamped to [0, 255].
inline uint8_t quantize_value(float x, float inv_scale, int32_t zero_point) {
  const float r = std::nearbyint(x * inv_scale);
  // Clamp in float first: a huge x must not overflow the integer conversion.
  const float q = std::fmin(std::fmax(r + static_cast<float>(zero_point), 0.0f), 255.0f);
  return static_cast<uint8_t>(q);
}

void quantize(const float* x, int64_t n, QParams q, uint8_t* out);
// Tensor.dequantize's (q - zero_point) * scale; inside the graph, the
// element-wise ops use make_dequantize_table's fused form instead.
void dequantize(const uint8_t* x, int64_t n, QParams q, float* out);

// table[v] = quantize(dequantize(v, from), to): what ATen's cat and stack do to
// quantized inputs whose qparams differ from the first input's.
void make_requantize_table(QParams from, QParams to, uint8_t* table /*[256]*/);

// Maps n bytes through a 256-entry table; a null table copies.
void map_bytes(const uint8_t* table, const uint8_t* src, int64_t n, uint8_t* dst);

}  // namespace qlstm

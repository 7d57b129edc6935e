// Torch-free int8 LSTM kernel core: packing, the hoisted input projection and
// the recurrent step with its fused element-wise epilogue. Raw pointers only.
//
// Numerics follow PyTorch's eager static quantized LSTM on the FBGEMM engine:
// every intermediate is uint8 with its own (scale, zero_point), sigmoid and
// tanh have fixed output qparams, and linear outputs are requantized as
// FBGEMM's ReQuantizeOutput with a float bias does.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace qlstm {

struct QParams {
  float scale;
  int32_t zero_point;
};
inline bool operator==(QParams a, QParams b) {
  return a.scale == b.scale && a.zero_point == b.zero_point;
}

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

// Packed weight layout, read by every ISA path (so a blob does not depend on
// the CPU it was made on). Hidden units are taken in blocks of kUnitBlock; a
// block's rows are ordered gate-major, [i u0..u15, f u0..u15, g .., o ..], so
// the epilogue finds the four gates of 16 units side by side. Each group of 16
// rows (a panel) stores its int8 weights as [K/4][16 rows][4 consecutive k]:
// one 64-byte line per 4 k, the operand layout of vpdpbusd (4 k per 32-bit
// lane). Rows past hidden_size and k past K are zero-filled.
inline constexpr int64_t kUnitBlock = 16;
inline constexpr int64_t kPanelRows = 16;
inline constexpr int64_t kKGroup = 4;

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }
inline int64_t padded_hidden(int64_t hidden_size) { return round_up(hidden_size, kUnitBlock); }
// Packed row of gate g of hidden unit u.
inline int64_t packed_row(int64_t u, int g) {
  return (u / kUnitBlock) * 4 * kUnitBlock + g * kUnitBlock + u % kUnitBlock;
}
// Offset of weight (row, k) inside a packed matrix with inner dimension K.
inline int64_t packed_weight_offset(int64_t row, int64_t k, int64_t K) {
  return (row / kPanelRows) * round_up(K, kKGroup) * kPanelRows +
         (k / kKGroup) * kPanelRows * kKGroup + (row % kPanelRows) * kKGroup + k % kKGroup;
}

// One weight equal to -128: its panel (13 bits: 4 * 32768 rows / 16), its row
// in the panel (4 bits) and its k (15 bits), so that sorted entries run panel
// by panel and row by row.
inline constexpr int kMinWeightPanelShift = 19;
inline constexpr int kMinWeightRowShift = 15;
inline constexpr uint32_t kMinWeightKMask = (1u << 15) - 1;
inline uint32_t min_weight_entry(int64_t panel, int64_t row, int64_t k) {
  return static_cast<uint32_t>(panel) << kMinWeightPanelShift |
         static_cast<uint32_t>(row) << kMinWeightRowShift | static_cast<uint32_t>(k);
}

// Read-only view of one packed layer-direction inside a packed blob. Per-row
// arrays have 4 * padded_hidden entries in packed row order.
struct PackedLayer {
  int64_t input_size;
  int64_t hidden_size;
  int64_t rows;  // 4 * padded_hidden(hidden_size)
  bool per_channel;
  bool has_bias;
  CellQParams q;
  const int8_t* w_ih;          // panels over input_size
  const int8_t* w_hh;          // panels over hidden_size
  const float* w_ih_scale;     // [rows]
  const float* w_hh_scale;     // [rows]
  const int8_t* w_ih_zp;       // [rows], or nullptr when every weight zero point is 0
  const int8_t* w_hh_zp;       // [rows], or nullptr likewise
  const int32_t* w_ih_colsum;  // [rows] sum over k of w_ih
  const int32_t* w_hh_colsum;  // [rows]
  const float* b_ih;           // [rows] (zeros when !has_bias)
  const float* b_hh;           // [rows]
  const uint8_t* sigmoid_gates;  // [256]
  const uint8_t* tanh_gates;     // [256]
  const uint8_t* tanh_cell;      // [256]
  // The weights equal to -128, sorted, as min_weight_entry values. Kernels
  // that negate weights (where -128 has no int8 opposite) correct for these.
  const uint32_t* w_ih_min;
  int64_t w_ih_min_count;
  const uint32_t* w_hh_min;
  int64_t w_hh_min_count;
  bool w_ih_has_zp;  // some zero point of w_ih is nonzero: rows of x need their sums
  bool w_hh_has_zp;
};

// Size in bytes of the packed form of w.
size_t packed_layer_size(const LayerWeights& w);

// Packs one layer-direction into `out` (packed_layer_size bytes, 64-byte aligned).
void pack_layer(const LayerWeights& w, const CellQParams& q, const LayerTables& t,
                uint8_t* out);

// Validates a packed blob's structure (header, sizes, qparams, scales, -128
// lists: everything an out-of-bounds read could come from) and returns its
// view. Returns nullptr on success, or a static message naming what is wrong.
// O(rows + list entries): cheap enough for every call.
const char* unpack_layer_view(const uint8_t* data, size_t size, PackedLayer* out);

// The checksum pack_layer stores in a blob's header, over all of its bytes,
// and whether a blob (that unpack_layer_view accepted) still matches it: an
// altered weight, bias, column sum or table is caught here, in O(size).
uint64_t blob_checksum(const uint8_t* data, size_t size);
bool verify_checksum(const uint8_t* data, size_t size);

// Inverse of pack_layer's weight part, in nn.LSTM's layout: w_ih [4H][I],
// w_hh [4H][H], per-row scales, zero points and biases [4H] (biases are
// skipped when the layer has none).
void unpack_layer_weights(const PackedLayer& p, int8_t* w_ih, float* w_ih_scale,
                          int32_t* w_ih_zp, int8_t* w_hh, float* w_hh_scale, int32_t* w_hh_zp,
                          float* b_ih, float* b_hh);

// Dequantized value of every uint8 under qparams `q`, exactly as ATen's
// vectorized dequantize, fma(q, scale, -zero_point * scale), computes it.
void make_dequantize_table(QParams q, float* out /*[256]*/);

// Per-call constants of one linear whose input qparams are known only at run
// time: offset[n] folds the zero-point corrections, bias_term and multiplier
// are FBGEMM's float requantization constants.
struct LinearRequant {
  int32_t* offset;     // [rows]
  float* bias_term;    // [rows]
  float* multiplier;   // [rows]
  int32_t output_zero_point;
  // Where each panel's entries start in the linear's -128 list ([panels + 1]).
  int32_t* min_weights_start;
};

// Fills r (whose arrays hold p.rows entries) for x * w_ih^T (ih = true) or h * w_hh^T.
void prepare_linear_requant(const PackedLayer& p, bool ih, QParams input, LinearRequant* r);

// Per-call constants of the cell epilogue, built once before the time loop:
// the activation tables widened to int32, as vector gathers read them.
struct CellConstants {
  int32_t sigmoid_gates[256], tanh_gates[256], tanh_cell[256];
};
void prepare_cell_constants(const PackedLayer& p, CellConstants* c);

// Float multipliers of the cell's element-wise ops for one step; forget*cell
// depends on the qparams the previous cell state came with.
struct StepMultipliers {
  float inv_gates, inv_cell, fgate_cx, igate_cgate, hidden;
};
// ATen's quantized mul multiplier: a_scale * b_scale * (1 / out_scale), in float.
inline float product_multiplier(float a_scale, float b_scale, float out_scale) {
  return a_scale * b_scale * (1.0f / out_scale);
}
inline StepMultipliers step_multipliers(const CellQParams& q, QParams c_prev) {
  return {1.0f / q.gates.scale, 1.0f / q.cell.scale,
          product_multiplier(kSigmoidQParams.scale, c_prev.scale, q.fgate_cx.scale),
          product_multiplier(kSigmoidQParams.scale, kTanhQParams.scale, q.igate_cgate.scale),
          product_multiplier(kSigmoidQParams.scale, kTanhQParams.scale, q.hidden.scale)};
}

// State of one recurrent step: the previous h and c with their qparams.
struct StepState {
  const uint8_t* h;  // [B][H]
  const uint8_t* c;  // [B][H]
  QParams c_qparams;
};

// The kernels of one instruction set. Work is split over rows (timesteps x
// batch, or batch) and over panels (input projection) or unit blocks (step);
// time stays sequential. Every set gives the scalar reference's results bit
// for bit.
struct KernelSet {
  const char* name;
  // igates[r][n] for rows [row_begin, row_end) of x ([rows][input_size]) and
  // packed rows n in panels [panel_begin, panel_end).
  void (*input_projection)(const PackedLayer& p, const LinearRequant& r, const uint8_t* x,
                           int64_t row_begin, int64_t row_end, int64_t panel_begin,
                           int64_t panel_end, uint8_t* igates /*[rows][p.rows]*/);
  // One timestep for batch rows [b_begin, b_end) and unit blocks
  // [block_begin, block_end): hgates = h * w_hh^T, then gates, sigmoid/tanh,
  // the cell update and the new hidden state, fused. hh must have been
  // prepared with the qparams of state.h.
  void (*lstm_step)(const PackedLayer& p, const LinearRequant& hh, const CellConstants& cc,
                    const uint8_t* igates /*[B][p.rows]*/, const StepState& state,
                    int64_t b_begin, int64_t b_end, int64_t block_begin, int64_t block_end,
                    uint8_t* h_next /*[B][H]*/, uint8_t* c_next /*[B][H]*/);
  // int8 multiply-accumulates per second that this set's inner-loop
  // instructions reach on one core, registers only, timed over `seconds`.
  double (*peak_macs_per_second)(double seconds);
};

enum class Isa { kScalar, kAvx2, kAvxVnni, kAvx512Vnni, kNeon, kNeonDot };

const KernelSet& scalar_kernels();
// The kernels of `isa`, or nullptr when this build has none for it.
const KernelSet* kernels_for(Isa isa);
// Whether this CPU (and OS) can run `isa`'s kernels.
bool cpu_supports(Isa isa);
const char* isa_name(Isa isa);
// Parses "scalar", "avx2", "avx_vnni", "avx512_vnni", "neon", "neon_dot";
// returns false for an unknown name.
bool parse_isa(const char* name, Isa* out);
// All ISAs in order of preference within an architecture, best last.
inline constexpr Isa kAllIsas[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512Vnni,
                                   Isa::kNeon, Isa::kNeonDot};
// The best ISA this CPU can run that this build has kernels for.
Isa best_isa();

// ATen's quantize: zero_point + round_half_even(x * (1 / scale)), clamped to [0, 255].
inline uint8_t quantize_value(float x, float inv_scale, int32_t zero_point) {
  const float r = std::nearbyint(x * inv_scale);
  // Clamp in float first: a huge x must not overflow the integer conversion.
  const float q = std::fmin(std::fmax(r + static_cast<float>(zero_point), 0.0f), 255.0f);
  return static_cast<uint8_t>(q);
}

// sum_k x[k]: what a nonzero weight zero point multiplies.
inline int32_t row_sum(const uint8_t* x, int64_t k) {
  int32_t s = 0;
  for (int64_t i = 0; i < k; ++i) s += x[i];
  return s;
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

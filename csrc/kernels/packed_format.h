// The packed form of one LSTM layer-direction: a self-describing blob (header,
// weight panels, per-row constants, activation tables) that every kernel set
// reads, so that a blob does not depend on the CPU it was made on.
#pragma once

#include <cstddef>
#include <cstdint>

#include "qparams.h"

namespace qlstm {

// Largest inner dimension for which every zero-point-corrected dot product,
// |sum_k (x - xz)(w - wz)| <= 255 * 255 * K, fits an int32.
inline constexpr int64_t kMaxInnerDim = 32768;

// A matrix whose weights all lie in [-kNarrowWeightMax, kNarrowWeightMax]
// (7-bit weights, as onnxruntime's reduce_range gives) is marked so at pack
// time: against such weights, a pair of products x0 * w0 + x1 * w1 of any
// activation bytes is at most 2 * 255 * 64 = 32640 in magnitude, inside int16.
inline constexpr int kNarrowWeightMax = 64;

// Hidden units are taken in blocks of kUnitBlock; a block's rows are ordered
// gate-major, [i u0..u15, f u0..u15, g .., o ..], so the epilogue finds the
// four gates of 16 units side by side. Each group of 16 rows (a panel) stores
// its int8 weights as [K/4][16 rows][4 consecutive k]: one 64-byte line per
// 4 k, the operand layout of vpdpbusd (4 k per 32-bit lane). Rows past
// hidden_size and k past K are zero-filled.
inline constexpr int64_t kUnitBlock = 16;
inline constexpr int64_t kPanelRows = 16;
inline constexpr int64_t kKGroup = 4;

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }
inline int64_t padded_hidden(int64_t hidden_size) { return round_up(hidden_size, kUnitBlock); }
// The unit blocks of a step: what its work is split over.
inline int64_t unit_blocks(int64_t hidden_size) { return padded_hidden(hidden_size) / kUnitBlock; }
// Packed row of gate g of hidden unit u, and the gate of packed row n (a
// panel's 16 rows are all of one gate).
inline int64_t packed_row(int64_t u, int g) {
  return (u / kUnitBlock) * 4 * kUnitBlock + g * kUnitBlock + u % kUnitBlock;
}
inline int gate_of_row(int64_t n) {
  static_assert(kUnitBlock == 16 && kNumGates == 4, "a gate block is 16 rows, 4 of them a unit block");
  return static_cast<int>((static_cast<uint64_t>(n) >> 4) & 3);  // rows are never negative
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

// One unpacked weight matrix with its linear's bias, nn.LSTM layout: W_ih and
// W_hh have rows i, f, g, o of hidden_size each, W_hr proj_size rows.
struct MatrixWeights {
  const int8_t* weights;      // [rows][K]
  const float* scale;         // [rows] (per-tensor: one value, or one per gate, repeated)
  const int32_t* zero_point;  // [rows]
  const float* bias;          // [rows] or nullptr (W_hr has none)
};

// Unpacked weights of one layer-direction. With a projection (proj_size > 0,
// nn.LSTM's LSTMP) the layer's h is hidden * W_hr^T, of proj_size, and W_hh
// multiplies that h.
struct LayerWeights {
  int64_t input_size;
  int64_t hidden_size;
  int64_t proj_size;     // 0: none
  MatrixWeights ih, hh;  // K = input_size and the h size; both biases or neither
  MatrixWeights hr;      // [proj_size][hidden_size], when proj_size > 0
  bool per_channel;

  int64_t h_size() const { return proj_size > 0 ? proj_size : hidden_size; }
};

// Element-wise maps of uint8 operands whose qparams are fixed at pack time.
// The ops layer computes them with PyTorch's own float ops so that they agree
// with ATen's quantized sigmoid and tanh bit for bit.
struct LayerTables {
  const uint8_t* gates[kNumGates];  // [256] each: gate g's sum -> sigmoid (tanh for g)
  const uint8_t* tanh_cell;         // [256] cell -> tanh
};

// Read-only view of one packed weight matrix (W_ih, W_hh or W_hr) and its
// linear's per-row constants. Per-row arrays have `rows` entries in packed row order.
struct PackedMatrix {
  int64_t rows;  // 4 * padded_hidden(hidden_size), W_hr: round_up(proj_size, kPanelRows)
  int64_t K;     // inner dimension
  bool per_channel;
  bool narrow_weights;        // every weight in [-kNarrowWeightMax, kNarrowWeightMax]
  const int8_t* weights;      // panels over K
  const float* scale;         // [rows]
  const int8_t* zero_point;   // [rows], or nullptr when no weight zero point is stored
  bool has_zero_point;        // some zero point is nonzero: rows of x need their sums
  const int32_t* colsum;      // [rows] sum over k of the weights
  const float* bias;          // [rows], or nullptr when the layer has no bias

  int64_t panels() const { return rows / kPanelRows; }
  int64_t panel_bytes() const { return round_up(K, kKGroup) * kPanelRows; }
};

// Read-only view of one packed layer-direction inside a packed blob.
struct PackedLayer {
  int64_t input_size;
  int64_t hidden_size;
  int64_t proj_size;  // 0: no projection
  int64_t rows;       // 4 * padded_hidden(hidden_size)
  bool per_channel;
  bool has_bias;
  CellQParams q;
  PackedMatrix ih;  // x * W_ih^T, K = input_size
  PackedMatrix hh;  // h * W_hh^T, K = h_size()
  PackedMatrix hr;  // hidden * W_hr^T, K = hidden_size (with a projection only)
  const uint8_t* gate_tables[kNumGates];  // [256] each, as LayerTables::gates
  const uint8_t* tanh_cell;               // [256]

  // The size of the layer's h: proj_size, or hidden_size without a projection.
  int64_t h_size() const { return proj_size > 0 ? proj_size : hidden_size; }
};

// Size in bytes of the packed form of w.
size_t packed_layer_size(const LayerWeights& w);

// Bytes of a blob's header, at its start (at most: version 5 blobs, which are
// read too, have 128).
inline constexpr size_t kPackedHeaderBytes = 256;

// The size a blob must have, read from its header alone (the first
// min(available, kPackedHeaderBytes) bytes), so that a caller can reject a
// wrong size before it copies or reads the rest. Returns nullptr on success,
// or a static message naming what is wrong.
const char* packed_size_from_header(const uint8_t* header, size_t available, size_t* total);

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

// Where unpack_layer_weights writes one matrix, nn.LSTM layout: weights
// [rows][K], per-row scales, zero points and bias [rows] (the bias is skipped
// when the layer has none).
struct MatrixWeightsOut {
  int8_t* weights;
  float* scale;
  int32_t* zero_point;
  float* bias;
};

// Inverse of pack_layer's weight part; hr is written only with a projection.
void unpack_layer_weights(const PackedLayer& p, const MatrixWeightsOut& ih,
                          const MatrixWeightsOut& hh, const MatrixWeightsOut& hr);

}  // namespace qlstm

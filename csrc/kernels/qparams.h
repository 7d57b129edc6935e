// Quantization parameters of uint8 activations, and the observed intermediates
// of one LSTM layer-direction, named once here.
#pragma once

#include <cstdint>
#include <string>

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

// Gate order inside a layer, as in nn.LSTM's weight rows, and the names
// torch.ao.nn.quantizable's split-gates cell gives them.
enum Gate : int { kInputGate = 0, kForgetGate = 1, kCellGate = 2, kOutputGate = 3 };
inline constexpr int kNumGates = 4;
inline constexpr const char* kGateNames[kNumGates] = {"input", "forget", "cell", "output"};

// The observed qparams of one layer-direction's intermediates, in the order
// of the graph: igates = x W_ih^T, hgates = h W_hh^T, gates = their sum (one
// qparams each for all four gates, or, with split gates, one per gate),
// then fgate_cx = f * c, igate_cgate = i * g, cell = the new c, hidden =
// o * tanh(c), the new h; a layer with a projection (nn.LSTM's proj_size)
// adds projection = hidden * W_hr^T, which is then its h. These lists (and
// projection last) are the one source of the names and their order: the
// packed header, the pack op's arguments, unpack's outputs and the Python
// layer's CELL_QPARAM_NAMES (read from the op qlstm::cell_qparam_names) follow them.
#define QLSTM_FOR_EACH_GATE_QPARAM(X) X(igates) X(hgates) X(gates)
#define QLSTM_FOR_EACH_STATE_QPARAM(X) X(fgate_cx) X(igate_cgate) X(cell) X(hidden)

// Every kernel reads the gate qparams per gate; without split gates the four are equal.
struct CellQParams {
#define QLSTM_GATE_FIELD(name) QParams name[kNumGates];
#define QLSTM_STATE_FIELD(name) QParams name;
  QLSTM_FOR_EACH_GATE_QPARAM(QLSTM_GATE_FIELD)
  QLSTM_FOR_EACH_STATE_QPARAM(QLSTM_STATE_FIELD)
#undef QLSTM_GATE_FIELD
#undef QLSTM_STATE_FIELD
  QParams projection;  // with has_projection only
  bool split_gates;
  bool has_projection;
  // The accurate mode (float gates and cell) keeps only hidden, the qparams
  // of the h bytes that the recurrent product and the next layer multiply;
  // every other field holds the same.
  bool accurate;

  // What the layer's h comes in: its projection's output, or hidden.
  QParams h() const { return has_projection ? projection : hidden; }
};

#define QLSTM_COUNT(name) +1
inline constexpr int kNumGateQParams = 0 QLSTM_FOR_EACH_GATE_QPARAM(QLSTM_COUNT);
inline constexpr int kNumStateQParams = 0 QLSTM_FOR_EACH_STATE_QPARAM(QLSTM_COUNT);
#undef QLSTM_COUNT
// Length of the flat list: 7, or 16 with split gates, one more with a
// projection; 1 (hidden) in the accurate mode, which has neither.
inline constexpr int kNumCellQParams = kNumGateQParams + kNumStateQParams;
inline constexpr int kNumSplitCellQParams = kNumGateQParams * kNumGates + kNumStateQParams;
inline constexpr int kMaxCellQParams = kNumSplitCellQParams + 1;
inline constexpr int num_cell_qparams(bool split_gates, bool projection = false,
                                      bool accurate = false) {
  return accurate ? 1 : (split_gates ? kNumSplitCellQParams : kNumCellQParams) + (projection ? 1 : 0);
}

// The flat list's order: each gate qparam (once, or per gate in gate order:
// igates_input, igates_forget, igates_cell, igates_output, hgates_input, ...),
// then the state qparams, then projection when there is one. list has
// num_cell_qparams(split_gates, projection) entries.
CellQParams cell_qparams_from_list(const QParams* list, bool split_gates, bool projection = false,
                                   bool accurate = false);
void cell_qparams_to_list(const CellQParams& q, QParams* list);
std::string cell_qparam_name(int index, bool split_gates, bool projection = false,
                             bool accurate = false);

}  // namespace qlstm

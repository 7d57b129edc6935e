// Quantization parameters of uint8 activations, and the seven observed
// intermediates of one LSTM layer-direction, named once here.
#pragma once

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

// The observed qparams of one layer-direction's intermediates, in the order
// of the graph: igates = x W_ih^T, hgates = h W_hh^T, gates = their sum,
// fgate_cx = f * c, igate_cgate = i * g, cell = the new c, hidden = the new h.
// This list is the one source of the names and their order: the packed
// header, the pack op's arguments, unpack's outputs and the Python layer's
// CELL_QPARAM_NAMES (read from the op qlstm::cell_qparam_names) follow it.
#define QLSTM_FOR_EACH_CELL_QPARAM(X) \
  X(igates) X(hgates) X(gates) X(fgate_cx) X(igate_cgate) X(cell) X(hidden)

enum class CellQParam : int {
#define QLSTM_ENUM_ENTRY(name) name,
  QLSTM_FOR_EACH_CELL_QPARAM(QLSTM_ENUM_ENTRY)
#undef QLSTM_ENUM_ENTRY
};

struct CellQParams {
#define QLSTM_FIELD(name) QParams name;
  QLSTM_FOR_EACH_CELL_QPARAM(QLSTM_FIELD)
#undef QLSTM_FIELD
};

#define QLSTM_COUNT(name) +1
inline constexpr int kNumCellQParams = 0 QLSTM_FOR_EACH_CELL_QPARAM(QLSTM_COUNT);
#undef QLSTM_COUNT

inline constexpr const char* kCellQParamNames[kNumCellQParams] = {
#define QLSTM_NAME(name) #name,
    QLSTM_FOR_EACH_CELL_QPARAM(QLSTM_NAME)
#undef QLSTM_NAME
};

// CellQParams' fields in list order, for loops over all seven.
inline constexpr QParams CellQParams::*kCellQParamFields[kNumCellQParams] = {
#define QLSTM_MEMBER(name) &CellQParams::name,
    QLSTM_FOR_EACH_CELL_QPARAM(QLSTM_MEMBER)
#undef QLSTM_MEMBER
};

}  // namespace qlstm

#include "requant.h"

#include <algorithm>

namespace qlstm {

void prepare_linear_requant(const PackedMatrix& m, QParams input,
                            const QParams output[kNumGates], LinearRequant* r) {
  const int64_t rows = m.rows;
  const int32_t xz = input.zero_point, k = static_cast<int32_t>(m.K);
  for (int g = 0; g < kNumGates; ++g) r->output_zero_point[g] = static_cast<float>(output[g].zero_point);
  // Separate branch-free loops, so that each vectorizes; this runs on every call.
  // sum_k (x - xz)(w - wz) = acc - xz * (colsum - K * wz) - wz * rowsum(x);
  // the row-sum term is added per row in the GEMM.
  if (m.zero_point != nullptr) {
    for (int64_t n = 0; n < rows; ++n) r->offset[n] = -xz * (m.colsum[n] - k * m.zero_point[n]);
  } else {
    for (int64_t n = 0; n < rows; ++n) r->offset[n] = -xz * m.colsum[n];
  }
  // FBGEMM: act_times_w_scale = x_scale * w_scale; multiplier = that / out_scale;
  // a float bias enters as bias / act_times_w_scale, computed per channel by
  // division and per tensor by multiplying with a reciprocal taken in double.
  for (int64_t panel = 0; panel < m.panels(); ++panel) {
    const float out_scale = output[gate_of_row(panel * kPanelRows)].scale;
    for (int64_t n = panel * kPanelRows; n < (panel + 1) * kPanelRows; ++n) {
      r->multiplier[n] = (input.scale * m.scale[n]) / out_scale;
    }
  }
  if (m.bias == nullptr) {
    std::fill(r->bias_term, r->bias_term + rows, 0.0f);
  } else if (m.per_channel) {
    for (int64_t n = 0; n < rows; ++n) r->bias_term[n] = m.bias[n] / (input.scale * m.scale[n]);
  } else {
    for (int64_t n = 0; n < rows; ++n) {
      r->bias_term[n] =
          m.bias[n] * static_cast<float>(1.0 / static_cast<double>(input.scale * m.scale[n]));
    }
  }
}

void prepare_cell_constants(const PackedLayer& p, CellConstants* c) {
  for (int g = 0; g < kNumGates; ++g) {
    std::copy(p.gate_tables[g], p.gate_tables[g] + 256, c->gates[g]);
    std::copy(p.gate_tables[g], p.gate_tables[g] + 256, c->gate_bytes[g]);
    c->igates[g] = dequant_constants(p.q.igates[g]);
    c->hgates[g] = dequant_constants(p.q.hgates[g]);
    c->inv_gates[g] = 1.0f / p.q.gates[g].scale;
    c->gates_zero_point[g] = static_cast<float>(p.q.gates[g].zero_point);
  }
  std::copy(p.tanh_cell, p.tanh_cell + 256, c->tanh_cell);
  std::copy(p.tanh_cell, p.tanh_cell + 256, c->tanh_cell_bytes);
}

}  // namespace qlstm

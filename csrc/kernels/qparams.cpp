#include "qparams.h"

namespace qlstm {
namespace {

// Visits the flat list's slots in order: f(name, gate or -1, field).
template <class CellQ, class F>
void for_each_slot(CellQ& q, bool split_gates, bool projection, const F& f) {
  const int gates = split_gates ? kNumGates : 1;
#define QLSTM_GATE_SLOT(name) \
  for (int g = 0; g < gates; ++g) f(#name, split_gates ? g : -1, q.name[g]);
#define QLSTM_STATE_SLOT(name) f(#name, -1, q.name);
  QLSTM_FOR_EACH_GATE_QPARAM(QLSTM_GATE_SLOT)
  QLSTM_FOR_EACH_STATE_QPARAM(QLSTM_STATE_SLOT)
#undef QLSTM_GATE_SLOT
#undef QLSTM_STATE_SLOT
  if (projection) f("projection", -1, q.projection);
}

}  // namespace

CellQParams cell_qparams_from_list(const QParams* list, bool split_gates, bool projection) {
  CellQParams q{};
  q.split_gates = split_gates;
  q.has_projection = projection;
  int i = 0;
  for_each_slot(q, split_gates, projection,
                [&](const char*, int, QParams& slot) { slot = list[i++]; });
  if (!split_gates) {
#define QLSTM_BROADCAST(name) \
  for (int g = 1; g < kNumGates; ++g) q.name[g] = q.name[0];
    QLSTM_FOR_EACH_GATE_QPARAM(QLSTM_BROADCAST)
#undef QLSTM_BROADCAST
  }
  return q;
}

void cell_qparams_to_list(const CellQParams& q, QParams* list) {
  int i = 0;
  for_each_slot(q, q.split_gates, q.has_projection,
                [&](const char*, int, const QParams& slot) { list[i++] = slot; });
}

std::string cell_qparam_name(int index, bool split_gates, bool projection) {
  std::string out;
  int i = 0;
  const CellQParams q{};
  for_each_slot(q, split_gates, projection, [&](const char* name, int gate, const QParams&) {
    if (i++ == index) out = gate < 0 ? name : std::string(name) + "_" + kGateNames[gate];
  });
  return out;
}

}  // namespace qlstm

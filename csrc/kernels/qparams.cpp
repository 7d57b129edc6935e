#include "qparams.h"

namespace qlstm {
namespace {

// Visits the flat list's slots in order: f(name, gate or -1, field).
template <class CellQ, class F>
void for_each_slot(CellQ& q, bool split_gates, bool projection, bool accurate, const F& f) {
  if (accurate) {
    f("hidden", -1, q.hidden);
    return;
  }
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

CellQParams cell_qparams_from_list(const QParams* list, bool split_gates, bool projection,
                                   bool accurate) {
  CellQParams q{};
  if (accurate) {
    QParams* all[] = {
#define QLSTM_GATE_ADDRESSES(name) &q.name[0], &q.name[1], &q.name[2], &q.name[3],
#define QLSTM_STATE_ADDRESS(name) &q.name,
        QLSTM_FOR_EACH_GATE_QPARAM(QLSTM_GATE_ADDRESSES) QLSTM_FOR_EACH_STATE_QPARAM(QLSTM_STATE_ADDRESS)
#undef QLSTM_GATE_ADDRESSES
#undef QLSTM_STATE_ADDRESS
        &q.projection};
    for (QParams* slot : all) *slot = list[0];
    q.accurate = true;
    return q;
  }
  q.split_gates = split_gates;
  q.has_projection = projection;
  int i = 0;
  for_each_slot(q, split_gates, projection, false,
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
  for_each_slot(q, q.split_gates, q.has_projection, q.accurate,
                [&](const char*, int, const QParams& slot) { list[i++] = slot; });
}

std::string cell_qparam_name(int index, bool split_gates, bool projection, bool accurate) {
  std::string out;
  int i = 0;
  const CellQParams q{};
  for_each_slot(q, split_gates, projection, accurate, [&](const char* name, int gate, const QParams&) {
    if (i++ == index) out = gate < 0 ? name : std::string(name) + "_" + kGateNames[gate];
  });
  return out;
}

}  // namespace qlstm

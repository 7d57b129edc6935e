// Packing of one LSTM layer-direction into a self-describing blob, and the
// tables and per-call requantization constants derived from qparams.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "lstm_kernels.h"

namespace qlstm {
namespace {

constexpr char kMagic[8] = {'Q', 'L', 'S', 'T', 'M', 'P', 'K', '\0'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kFlagPerChannel = 1u;
constexpr uint32_t kFlagHasBias = 2u;
constexpr size_t kAlign = 64;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t flags;
  int64_t input_size;
  int64_t hidden_size;
  float scales[kNumCellQParams];
  int32_t zero_points[kNumCellQParams];
};
static_assert(sizeof(Header) <= 128, "header must fit its slot");

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Byte offsets of every section; one definition serves packing and viewing.
struct Layout {
  size_t w_ih, w_hh, w_ih_scale, w_hh_scale, w_ih_zp, w_hh_zp, w_ih_colsum, w_hh_colsum, b_ih,
      b_hh, deq_igates, deq_hgates, deq_fgate_cx, deq_igate_cgate, sigmoid_gates, tanh_gates,
      tanh_cell, total;

  Layout(int64_t input_size, int64_t hidden_size) {
    const size_t rows = 4 * static_cast<size_t>(hidden_size);
    size_t at = align_up(sizeof(Header));
    auto take = [&](size_t bytes) {
      const size_t here = at;
      at = align_up(at + bytes);
      return here;
    };
    w_ih = take(rows * static_cast<size_t>(input_size));
    w_hh = take(rows * static_cast<size_t>(hidden_size));
    w_ih_scale = take(rows * sizeof(float));
    w_hh_scale = take(rows * sizeof(float));
    w_ih_zp = take(rows * sizeof(int32_t));
    w_hh_zp = take(rows * sizeof(int32_t));
    w_ih_colsum = take(rows * sizeof(int32_t));
    w_hh_colsum = take(rows * sizeof(int32_t));
    b_ih = take(rows * sizeof(float));
    b_hh = take(rows * sizeof(float));
    deq_igates = take(256 * sizeof(float));
    deq_hgates = take(256 * sizeof(float));
    deq_fgate_cx = take(256 * sizeof(float));
    deq_igate_cgate = take(256 * sizeof(float));
    sigmoid_gates = take(256);
    tanh_gates = take(256);
    tanh_cell = take(256);
    total = at;
  }
};

QParams* qparams_slot(CellQParams& q, int i) {
  QParams* slots[kNumCellQParams] = {&q.igates,      &q.hgates, &q.gates, &q.fgate_cx,
                                     &q.igate_cgate, &q.cell,   &q.hidden};
  return slots[i];
}

// Row 4*u + gate of the packed matrix is row gate*H + u of nn.LSTM's.
int64_t source_row(int64_t packed_row, int64_t hidden_size) {
  return (packed_row % 4) * hidden_size + packed_row / 4;
}

template <typename T>
void interleave_rows(const T* src, int64_t hidden_size, int64_t cols, T* dst) {
  for (int64_t r = 0; r < 4 * hidden_size; ++r) {
    std::memcpy(dst + r * cols, src + source_row(r, hidden_size) * cols, cols * sizeof(T));
  }
}

void column_sums(const int8_t* w, int64_t rows, int64_t cols, int32_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    int32_t s = 0;
    for (int64_t k = 0; k < cols; ++k) s += w[r * cols + k];
    out[r] = s;
  }
}

bool valid_qparams(QParams q) {
  return std::isfinite(q.scale) && q.scale > 0.0f && q.zero_point >= 0 && q.zero_point <= 255;
}

}  // namespace

size_t packed_layer_size(int64_t input_size, int64_t hidden_size) {
  return Layout(input_size, hidden_size).total;
}

void make_dequantize_table(QParams q, float* out) {
  // ATen dequantizes vectors as fma(v, scale, -zero_point * scale). The product
  // of an 8-bit integer and a float is exact in double, so one rounding of the
  // double sum reproduces the fused multiply-add on any CPU.
  const float premul = q.scale * static_cast<float>(-q.zero_point);
  for (int v = 0; v < 256; ++v) {
    out[v] = static_cast<float>(static_cast<double>(v) * q.scale + static_cast<double>(premul));
  }
}

void make_requantize_table(QParams from, QParams to, uint8_t* table) {
  float deq[256];
  make_dequantize_table(from, deq);
  const float inv = 1.0f / to.scale;
  for (int v = 0; v < 256; ++v) table[v] = quantize_value(deq[v], inv, to.zero_point);
}

void pack_layer(const LayerWeights& w, const CellQParams& q, const LayerTables& t, uint8_t* out) {
  const int64_t I = w.input_size, H = w.hidden_size, rows = 4 * H;
  const Layout L(I, H);
  std::memset(out, 0, L.total);

  Header h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kVersion;
  h.flags = (w.per_channel ? kFlagPerChannel : 0u) | (w.b_ih ? kFlagHasBias : 0u);
  h.input_size = I;
  h.hidden_size = H;
  CellQParams qc = q;
  for (int i = 0; i < kNumCellQParams; ++i) {
    h.scales[i] = qparams_slot(qc, i)->scale;
    h.zero_points[i] = qparams_slot(qc, i)->zero_point;
  }
  std::memcpy(out, &h, sizeof(h));

  auto at = [&](size_t off) { return out + off; };
  interleave_rows(w.w_ih, H, I, reinterpret_cast<int8_t*>(at(L.w_ih)));
  interleave_rows(w.w_hh, H, H, reinterpret_cast<int8_t*>(at(L.w_hh)));
  interleave_rows(w.w_ih_scale, H, 1, reinterpret_cast<float*>(at(L.w_ih_scale)));
  interleave_rows(w.w_hh_scale, H, 1, reinterpret_cast<float*>(at(L.w_hh_scale)));
  interleave_rows(w.w_ih_zp, H, 1, reinterpret_cast<int32_t*>(at(L.w_ih_zp)));
  interleave_rows(w.w_hh_zp, H, 1, reinterpret_cast<int32_t*>(at(L.w_hh_zp)));
  if (w.b_ih) {
    interleave_rows(w.b_ih, H, 1, reinterpret_cast<float*>(at(L.b_ih)));
    interleave_rows(w.b_hh, H, 1, reinterpret_cast<float*>(at(L.b_hh)));
  }
  column_sums(reinterpret_cast<const int8_t*>(at(L.w_ih)), rows, I,
              reinterpret_cast<int32_t*>(at(L.w_ih_colsum)));
  column_sums(reinterpret_cast<const int8_t*>(at(L.w_hh)), rows, H,
              reinterpret_cast<int32_t*>(at(L.w_hh_colsum)));
  make_dequantize_table(q.igates, reinterpret_cast<float*>(at(L.deq_igates)));
  make_dequantize_table(q.hgates, reinterpret_cast<float*>(at(L.deq_hgates)));
  make_dequantize_table(q.fgate_cx, reinterpret_cast<float*>(at(L.deq_fgate_cx)));
  make_dequantize_table(q.igate_cgate, reinterpret_cast<float*>(at(L.deq_igate_cgate)));
  std::memcpy(at(L.sigmoid_gates), t.sigmoid_gates, 256);
  std::memcpy(at(L.tanh_gates), t.tanh_gates, 256);
  std::memcpy(at(L.tanh_cell), t.tanh_cell, 256);
}

const char* unpack_layer_view(const uint8_t* data, size_t size, PackedLayer* out) {
  if (reinterpret_cast<uintptr_t>(data) % alignof(int64_t) != 0) return "is not 8-byte aligned";
  if (size < sizeof(Header)) return "is shorter than its header";
  Header h;
  std::memcpy(&h, data, sizeof(h));
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) return "is not a qlstm packed layer";
  if (h.version != kVersion) return "has an unsupported packing version";
  if (h.input_size < 1 || h.input_size > kMaxInnerDim || h.hidden_size < 1 ||
      h.hidden_size > kMaxInnerDim) {
    return "has input or hidden size out of range";
  }
  const Layout L(h.input_size, h.hidden_size);
  if (size != L.total) return "has a size that does not match its input and hidden sizes";

  PackedLayer& p = *out;
  p.input_size = h.input_size;
  p.hidden_size = h.hidden_size;
  p.per_channel = (h.flags & kFlagPerChannel) != 0;
  p.has_bias = (h.flags & kFlagHasBias) != 0;
  for (int i = 0; i < kNumCellQParams; ++i) {
    const QParams qp{h.scales[i], h.zero_points[i]};
    if (!valid_qparams(qp)) return "holds an invalid scale or zero point";
    *qparams_slot(p.q, i) = qp;
  }
  auto f32 = [&](size_t off) { return reinterpret_cast<const float*>(data + off); };
  auto i32 = [&](size_t off) { return reinterpret_cast<const int32_t*>(data + off); };
  p.w_ih = reinterpret_cast<const int8_t*>(data + L.w_ih);
  p.w_hh = reinterpret_cast<const int8_t*>(data + L.w_hh);
  p.w_ih_scale = f32(L.w_ih_scale);
  p.w_hh_scale = f32(L.w_hh_scale);
  p.w_ih_zp = i32(L.w_ih_zp);
  p.w_hh_zp = i32(L.w_hh_zp);
  p.w_ih_colsum = i32(L.w_ih_colsum);
  p.w_hh_colsum = i32(L.w_hh_colsum);
  p.b_ih = f32(L.b_ih);
  p.b_hh = f32(L.b_hh);
  p.deq_igates = f32(L.deq_igates);
  p.deq_hgates = f32(L.deq_hgates);
  p.deq_fgate_cx = f32(L.deq_fgate_cx);
  p.deq_igate_cgate = f32(L.deq_igate_cgate);
  p.sigmoid_gates = data + L.sigmoid_gates;
  p.tanh_gates = data + L.tanh_gates;
  p.tanh_cell = data + L.tanh_cell;
  const int64_t rows = 4 * p.hidden_size;
  p.w_ih_has_zp = std::any_of(p.w_ih_zp, p.w_ih_zp + rows, [](int32_t z) { return z != 0; });
  p.w_hh_has_zp = std::any_of(p.w_hh_zp, p.w_hh_zp + rows, [](int32_t z) { return z != 0; });
  for (int64_t r = 0; r < rows; ++r) {
    if (p.w_ih_zp[r] < -128 || p.w_ih_zp[r] > 127 || p.w_hh_zp[r] < -128 || p.w_hh_zp[r] > 127) {
      return "holds a weight zero point outside [-128, 127]";
    }
  }
  return nullptr;
}

void prepare_linear_requant(const PackedLayer& p, bool ih, QParams input, LinearRequant* r) {
  const int64_t rows = 4 * p.hidden_size;
  const int64_t K = ih ? p.input_size : p.hidden_size;
  const float* w_scale = ih ? p.w_ih_scale : p.w_hh_scale;
  const int32_t* w_zp = ih ? p.w_ih_zp : p.w_hh_zp;
  const int32_t* colsum = ih ? p.w_ih_colsum : p.w_hh_colsum;
  const float* bias = ih ? p.b_ih : p.b_hh;
  const QParams out = ih ? p.q.igates : p.q.hgates;
  const int32_t xz = input.zero_point;
  r->output_zero_point = out.zero_point;
  for (int64_t n = 0; n < rows; ++n) {
    // sum_k (x - xz)(w - wz) = acc - xz * (colsum - K * wz) - wz * rowsum(x);
    // the row-sum term is added per row in the GEMM.
    r->offset[n] = -xz * (colsum[n] - static_cast<int32_t>(K) * w_zp[n]);
    // FBGEMM: act_times_w_scale = x_scale * w_scale; multiplier = that / out_scale;
    // a float bias enters as bias / act_times_w_scale, computed per channel by
    // division and per tensor by multiplying with a reciprocal taken in double.
    const float ats = input.scale * w_scale[n];
    r->multiplier[n] = ats / out.scale;
    if (!p.has_bias) {
      r->bias_term[n] = 0.0f;
    } else if (p.per_channel) {
      r->bias_term[n] = bias[n] / ats;
    } else {
      r->bias_term[n] = bias[n] * static_cast<float>(1.0 / static_cast<double>(ats));
    }
  }
}

void quantize(const float* x, int64_t n, QParams q, uint8_t* out) {
  const float inv = 1.0f / q.scale;
  for (int64_t i = 0; i < n; ++i) out[i] = quantize_value(x[i], inv, q.zero_point);
}

void dequantize(const uint8_t* x, int64_t n, QParams q, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = static_cast<float>(static_cast<int32_t>(x[i]) - q.zero_point) * q.scale;
  }
}

void map_bytes(const uint8_t* table, const uint8_t* src, int64_t n, uint8_t* dst) {
  if (table == nullptr) {
    std::memmove(dst, src, static_cast<size_t>(n));
    return;
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = table[src[i]];
}

}  // namespace qlstm

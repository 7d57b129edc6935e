// Packing of one LSTM layer-direction into a self-describing blob, and the
// tables and per-call requantization constants derived from qparams.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>

#include "lstm_kernels.h"

namespace qlstm {
namespace {

constexpr char kMagic[8] = {'Q', 'L', 'S', 'T', 'M', 'P', 'K', '\0'};
constexpr uint32_t kVersion = 5;
constexpr uint32_t kFlagPerChannel = 1u;
constexpr uint32_t kFlagHasBias = 2u;
// Weight zero points are stored only when one is nonzero (symmetric weights have none).
constexpr uint32_t kFlagWeightZeroPoints = 4u;
constexpr size_t kAlign = 64;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t flags;
  int64_t input_size;
  int64_t hidden_size;
  float scales[kNumCellQParams];
  int32_t zero_points[kNumCellQParams];
  int64_t min_weights_ih;  // entries of the -128 lists
  int64_t min_weights_hh;
  uint64_t checksum;  // blob_checksum of the whole blob with this field zero
};
static_assert(sizeof(Header) <= 128, "header must fit its slot");
constexpr size_t kChecksumOffset = offsetof(Header, checksum);

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Byte offsets of every section; one definition serves packing and viewing.
struct Layout {
  size_t w_ih, w_hh, w_ih_scale, w_hh_scale, w_ih_zp, w_hh_zp, w_ih_colsum, w_hh_colsum, b_ih,
      b_hh, sigmoid_gates, tanh_gates, tanh_cell, min_ih, min_hh, total;
  int64_t min_weights_ih, min_weights_hh;  // entries of the -128 lists
  bool zero_points;                        // whether the weight zero points are stored

  Layout(int64_t input_size, int64_t hidden_size, int64_t min_weights_ih, int64_t min_weights_hh,
         bool zero_points)
      : min_weights_ih(min_weights_ih), min_weights_hh(min_weights_hh), zero_points(zero_points) {
    const size_t rows = 4 * static_cast<size_t>(padded_hidden(hidden_size));
    size_t at = align_up(sizeof(Header));
    auto take = [&](size_t bytes) {
      const size_t here = at;
      at = align_up(at + bytes);
      return here;
    };
    w_ih = take(rows * static_cast<size_t>(round_up(input_size, kKGroup)));
    w_hh = take(rows * static_cast<size_t>(round_up(hidden_size, kKGroup)));
    w_ih_scale = take(rows * sizeof(float));
    w_hh_scale = take(rows * sizeof(float));
    w_ih_zp = take(zero_points ? rows : 0);
    w_hh_zp = take(zero_points ? rows : 0);
    w_ih_colsum = take(rows * sizeof(int32_t));
    w_hh_colsum = take(rows * sizeof(int32_t));
    b_ih = take(rows * sizeof(float));
    b_hh = take(rows * sizeof(float));
    sigmoid_gates = take(256);
    tanh_gates = take(256);
    tanh_cell = take(256);
    min_ih = take(static_cast<size_t>(min_weights_ih) * sizeof(uint32_t));
    min_hh = take(static_cast<size_t>(min_weights_hh) * sizeof(uint32_t));
    total = at;
  }
};

QParams* qparams_slot(CellQParams& q, int i) {
  QParams* slots[kNumCellQParams] = {&q.igates,      &q.hgates, &q.gates, &q.fgate_cx,
                                     &q.igate_cgate, &q.cell,   &q.hidden};
  return slots[i];
}

// Copies an nn.LSTM weight matrix ([4H][K], rows i, f, g, o) into panels.
void pack_matrix(const int8_t* src, int64_t hidden_size, int64_t K, int8_t* dst) {
  for (int64_t u = 0; u < hidden_size; ++u) {
    for (int g = 0; g < 4; ++g) {
      const int8_t* row = src + (g * hidden_size + u) * K;
      const int64_t r = packed_row(u, g);
      for (int64_t k = 0; k < K; ++k) dst[packed_weight_offset(r, k, K)] = row[k];
    }
  }
}

// Reorders a per-row array from nn.LSTM's row order to packed rows; padding
// rows keep what dst held.
template <typename Src, typename Dst>
void pack_rows(const Src* src, int64_t hidden_size, Dst* dst) {
  for (int64_t u = 0; u < hidden_size; ++u) {
    for (int g = 0; g < 4; ++g) dst[packed_row(u, g)] = static_cast<Dst>(src[g * hidden_size + u]);
  }
}

template <typename Src, typename Dst>
void unpack_rows(const Src* src, int64_t hidden_size, Dst* dst) {
  for (int64_t u = 0; u < hidden_size; ++u) {
    for (int g = 0; g < 4; ++g) dst[g * hidden_size + u] = static_cast<Dst>(src[packed_row(u, g)]);
  }
}

void column_sums(const int8_t* panels, int64_t rows, int64_t K, int32_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += panels[packed_weight_offset(r, k, K)];
    out[r] = s;
  }
}

int64_t count_min_weights(const int8_t* w, int64_t n) {
  return std::count(w, w + n, int8_t{-128});
}

bool has_zero_points(const LayerWeights& w) {
  const int64_t rows = 4 * w.hidden_size;
  auto nonzero = [](int32_t z) { return z != 0; };
  return std::any_of(w.w_ih_zp, w.w_ih_zp + rows, nonzero) ||
         std::any_of(w.w_hh_zp, w.w_hh_zp + rows, nonzero);
}

Layout layout_of(const LayerWeights& w) {
  const int64_t rows = 4 * w.hidden_size;
  return Layout(w.input_size, w.hidden_size, count_min_weights(w.w_ih, rows * w.input_size),
                count_min_weights(w.w_hh, rows * w.hidden_size), has_zero_points(w));
}

// Lists the weights equal to -128 as min_weight_entry values, sorted.
void list_min_weights(const int8_t* panels, int64_t rows, int64_t K, uint32_t* entries) {
  int64_t n = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < K; ++k) {
      if (panels[packed_weight_offset(r, k, K)] == -128) {
        entries[n++] = min_weight_entry(r / kPanelRows, r % kPanelRows, k);
      }
    }
  }
}

// A -128 list must be sorted and stay inside its matrix. The checks of every
// view are branch-free reductions, which the compiler vectorizes.
bool valid_min_weights(const uint32_t* entries, int64_t n, int64_t panels, int64_t K) {
  uint32_t unsorted = 0, max_k = 0, max_panel = 0;
  for (int64_t i = 1; i < n; ++i) unsorted |= static_cast<uint32_t>(entries[i] < entries[i - 1]);
  for (int64_t i = 0; i < n; ++i) {
    max_k = std::max(max_k, entries[i] & kMinWeightKMask);
    max_panel = std::max(max_panel, entries[i] >> kMinWeightPanelShift);
  }
  return n == 0 || (unsorted == 0 && static_cast<int64_t>(max_k) < K &&
                    static_cast<int64_t>(max_panel) < panels);
}

bool valid_scales(const float* s, int64_t n) {
  int32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    bad |= static_cast<int32_t>(!(s[i] > 0.0f)) |
           static_cast<int32_t>(!(s[i] <= std::numeric_limits<float>::max()));
  }
  return bad == 0;
}

bool any_nonzero(const int8_t* v, int64_t n) {
  int8_t acc = 0;
  for (int64_t i = 0; i < n; ++i) acc |= v[i];
  return acc != 0;
}

bool valid_qparams(QParams q) {
  return std::isfinite(q.scale) && q.scale > 0.0f && q.zero_point >= 0 && q.zero_point <= 255;
}

}  // namespace

size_t packed_layer_size(const LayerWeights& w) { return layout_of(w).total; }

void make_dequantize_table(QParams q, float* out) {
  // std::fma rounds once, as the vector fused multiply-add does, on any CPU.
  const float premul = q.scale * static_cast<float>(-q.zero_point);
  for (int v = 0; v < 256; ++v) out[v] = std::fma(static_cast<float>(v), q.scale, premul);
}

void make_requantize_table(QParams from, QParams to, uint8_t* table) {
  float deq[256];
  make_dequantize_table(from, deq);
  const float inv = 1.0f / to.scale;
  for (int v = 0; v < 256; ++v) table[v] = quantize_value(deq[v], inv, to.zero_point);
}

void pack_layer(const LayerWeights& w, const CellQParams& q, const LayerTables& t, uint8_t* out) {
  const int64_t I = w.input_size, H = w.hidden_size, rows = 4 * padded_hidden(H);
  const Layout L = layout_of(w);
  std::memset(out, 0, L.total);

  Header h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kVersion;
  h.flags = (w.per_channel ? kFlagPerChannel : 0u) | (w.b_ih ? kFlagHasBias : 0u) |
            (L.zero_points ? kFlagWeightZeroPoints : 0u);
  h.input_size = I;
  h.hidden_size = H;
  h.min_weights_ih = L.min_weights_ih;
  h.min_weights_hh = L.min_weights_hh;
  CellQParams qc = q;
  for (int i = 0; i < kNumCellQParams; ++i) {
    h.scales[i] = qparams_slot(qc, i)->scale;
    h.zero_points[i] = qparams_slot(qc, i)->zero_point;
  }
  std::memcpy(out, &h, sizeof(h));

  auto f32 = [&](size_t off) { return reinterpret_cast<float*>(out + off); };
  auto i8 = [&](size_t off) { return reinterpret_cast<int8_t*>(out + off); };
  pack_matrix(w.w_ih, H, I, i8(L.w_ih));
  pack_matrix(w.w_hh, H, H, i8(L.w_hh));
  // Padding rows have zero weights; scale 1 keeps their (unused) outputs finite.
  std::fill(f32(L.w_ih_scale), f32(L.w_ih_scale) + rows, 1.0f);
  std::fill(f32(L.w_hh_scale), f32(L.w_hh_scale) + rows, 1.0f);
  pack_rows(w.w_ih_scale, H, f32(L.w_ih_scale));
  pack_rows(w.w_hh_scale, H, f32(L.w_hh_scale));
  if (L.zero_points) {
    pack_rows(w.w_ih_zp, H, i8(L.w_ih_zp));
    pack_rows(w.w_hh_zp, H, i8(L.w_hh_zp));
  }
  if (w.b_ih) {
    pack_rows(w.b_ih, H, f32(L.b_ih));
    pack_rows(w.b_hh, H, f32(L.b_hh));
  }
  column_sums(i8(L.w_ih), rows, I, reinterpret_cast<int32_t*>(out + L.w_ih_colsum));
  column_sums(i8(L.w_hh), rows, H, reinterpret_cast<int32_t*>(out + L.w_hh_colsum));
  std::memcpy(out + L.sigmoid_gates, t.sigmoid_gates, 256);
  std::memcpy(out + L.tanh_gates, t.tanh_gates, 256);
  std::memcpy(out + L.tanh_cell, t.tanh_cell, 256);
  list_min_weights(i8(L.w_ih), rows, I, reinterpret_cast<uint32_t*>(out + L.min_ih));
  list_min_weights(i8(L.w_hh), rows, H, reinterpret_cast<uint32_t*>(out + L.min_hh));
  const uint64_t sum = blob_checksum(out, L.total);
  std::memcpy(out + kChecksumOffset, &sum, sizeof(sum));
}

uint64_t blob_checksum(const uint8_t* data, size_t size) {
  // xxHash64's rounds over four lanes of 8-byte words (the blob is a multiple
  // of 64 bytes), the checksum field read as zero. The rotation carries every
  // bit of a word into every later one, so no two edits cancel but by chance
  // (a plain multiply-xor chain keeps a top-byte change in the top byte).
  // Not cryptographic: it catches altered or corrupted bytes, not a forgery.
  constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full,
                     kP3 = 0x165667B19E3779F9ull;
  auto rotl = [](uint64_t x, int r) { return (x << r) | (x >> (64 - r)); };
  auto round = [&](uint64_t acc, uint64_t word) { return rotl(acc + word * kP2, 31) * kP1; };
  uint64_t lane[4] = {kP1 + kP2, kP2, 0, 0 - kP1};
  for (size_t i = 0; i + 32 <= size; i += 32) {
    for (int j = 0; j < 4; ++j) {
      const size_t at = i + 8 * static_cast<size_t>(j);
      uint64_t word;
      std::memcpy(&word, data + at, sizeof(word));
      if (at == kChecksumOffset) word = 0;
      lane[j] = round(lane[j], word);
    }
  }
  uint64_t h = rotl(lane[0], 1) + rotl(lane[1], 7) + rotl(lane[2], 12) + rotl(lane[3], 18);
  for (uint64_t l : lane) h = (h ^ round(0, l)) * kP1 + kP3;
  h += size;
  h = (h ^ (h >> 33)) * kP2;
  h = (h ^ (h >> 29)) * kP3;
  return h ^ (h >> 32);
}

bool verify_checksum(const uint8_t* data, size_t size) {
  uint64_t stored;
  std::memcpy(&stored, data + kChecksumOffset, sizeof(stored));
  return blob_checksum(data, size) == stored;
}

void unpack_layer_weights(const PackedLayer& p, int8_t* w_ih, float* w_ih_scale,
                          int32_t* w_ih_zp, int8_t* w_hh, float* w_hh_scale, int32_t* w_hh_zp,
                          float* b_ih, float* b_hh) {
  const int64_t I = p.input_size, H = p.hidden_size;
  for (int64_t u = 0; u < H; ++u) {
    for (int g = 0; g < 4; ++g) {
      const int64_t r = packed_row(u, g), n = g * H + u;
      for (int64_t k = 0; k < I; ++k) w_ih[n * I + k] = p.w_ih[packed_weight_offset(r, k, I)];
      for (int64_t k = 0; k < H; ++k) w_hh[n * H + k] = p.w_hh[packed_weight_offset(r, k, H)];
    }
  }
  unpack_rows(p.w_ih_scale, H, w_ih_scale);
  unpack_rows(p.w_hh_scale, H, w_hh_scale);
  if (p.w_ih_zp) {
    unpack_rows(p.w_ih_zp, H, w_ih_zp);
    unpack_rows(p.w_hh_zp, H, w_hh_zp);
  } else {
    std::fill(w_ih_zp, w_ih_zp + 4 * H, 0);
    std::fill(w_hh_zp, w_hh_zp + 4 * H, 0);
  }
  if (p.has_bias) {
    unpack_rows(p.b_ih, H, b_ih);
    unpack_rows(p.b_hh, H, b_hh);
  }
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
  const int64_t rows = 4 * padded_hidden(h.hidden_size);
  if (h.min_weights_ih < 0 || h.min_weights_ih > rows * h.input_size || h.min_weights_hh < 0 ||
      h.min_weights_hh > rows * h.hidden_size) {
    return "has a weight list longer than its weights";
  }
  const bool zero_points = (h.flags & kFlagWeightZeroPoints) != 0;
  const Layout L(h.input_size, h.hidden_size, h.min_weights_ih, h.min_weights_hh, zero_points);
  if (size != L.total) return "has a size that does not match its header";

  PackedLayer& p = *out;
  p.input_size = h.input_size;
  p.hidden_size = h.hidden_size;
  p.rows = 4 * padded_hidden(h.hidden_size);
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
  p.w_ih_zp = zero_points ? reinterpret_cast<const int8_t*>(data + L.w_ih_zp) : nullptr;
  p.w_hh_zp = zero_points ? reinterpret_cast<const int8_t*>(data + L.w_hh_zp) : nullptr;
  p.w_ih_colsum = i32(L.w_ih_colsum);
  p.w_hh_colsum = i32(L.w_hh_colsum);
  p.b_ih = f32(L.b_ih);
  p.b_hh = f32(L.b_hh);
  p.sigmoid_gates = data + L.sigmoid_gates;
  p.tanh_gates = data + L.tanh_gates;
  p.tanh_cell = data + L.tanh_cell;
  p.w_ih_min = reinterpret_cast<const uint32_t*>(data + L.min_ih);
  p.w_ih_min_count = h.min_weights_ih;
  p.w_hh_min = reinterpret_cast<const uint32_t*>(data + L.min_hh);
  p.w_hh_min_count = h.min_weights_hh;
  if (!valid_min_weights(p.w_ih_min, p.w_ih_min_count, rows / kPanelRows, h.input_size) ||
      !valid_min_weights(p.w_hh_min, p.w_hh_min_count, rows / kPanelRows, h.hidden_size)) {
    return "has a corrupt list of -128 weights";
  }
  if (!valid_scales(p.w_ih_scale, rows) || !valid_scales(p.w_hh_scale, rows)) {
    return "holds a weight scale that is not finite and > 0";
  }
  p.w_ih_has_zp = zero_points && any_nonzero(p.w_ih_zp, rows);
  p.w_hh_has_zp = zero_points && any_nonzero(p.w_hh_zp, rows);
  return nullptr;
}

void prepare_linear_requant(const PackedLayer& p, bool ih, QParams input, LinearRequant* r) {
  const int64_t rows = p.rows;
  const int64_t K = ih ? p.input_size : p.hidden_size;
  const float* w_scale = ih ? p.w_ih_scale : p.w_hh_scale;
  const int8_t* w_zp = ih ? p.w_ih_zp : p.w_hh_zp;
  const int32_t* colsum = ih ? p.w_ih_colsum : p.w_hh_colsum;
  const float* bias = ih ? p.b_ih : p.b_hh;
  const QParams out = ih ? p.q.igates : p.q.hgates;
  const int32_t xz = input.zero_point, k = static_cast<int32_t>(K);
  r->output_zero_point = out.zero_point;
  const uint32_t* min_weights = ih ? p.w_ih_min : p.w_hh_min;
  const int64_t min_count = ih ? p.w_ih_min_count : p.w_hh_min_count;
  int64_t at = 0;
  for (int64_t panel = 0; panel <= rows / kPanelRows; ++panel) {
    while (at < min_count && (min_weights[at] >> kMinWeightPanelShift) < panel) ++at;
    r->min_weights_start[panel] = static_cast<int32_t>(at);
  }
  // Separate branch-free loops, so that each vectorizes; this runs on every call.
  // sum_k (x - xz)(w - wz) = acc - xz * (colsum - K * wz) - wz * rowsum(x);
  // the row-sum term is added per row in the GEMM.
  if (w_zp != nullptr) {
    for (int64_t n = 0; n < rows; ++n) r->offset[n] = -xz * (colsum[n] - k * w_zp[n]);
  } else {
    for (int64_t n = 0; n < rows; ++n) r->offset[n] = -xz * colsum[n];
  }
  // FBGEMM: act_times_w_scale = x_scale * w_scale; multiplier = that / out_scale;
  // a float bias enters as bias / act_times_w_scale, computed per channel by
  // division and per tensor by multiplying with a reciprocal taken in double.
  for (int64_t n = 0; n < rows; ++n) r->multiplier[n] = (input.scale * w_scale[n]) / out.scale;
  if (!p.has_bias) {
    std::fill(r->bias_term, r->bias_term + rows, 0.0f);
  } else if (p.per_channel) {
    for (int64_t n = 0; n < rows; ++n) r->bias_term[n] = bias[n] / (input.scale * w_scale[n]);
  } else {
    for (int64_t n = 0; n < rows; ++n) {
      r->bias_term[n] =
          bias[n] * static_cast<float>(1.0 / static_cast<double>(input.scale * w_scale[n]));
    }
  }
}

void prepare_cell_constants(const PackedLayer& p, CellConstants* c) {
  std::copy(p.sigmoid_gates, p.sigmoid_gates + 256, c->sigmoid_gates);
  std::copy(p.tanh_gates, p.tanh_gates + 256, c->tanh_gates);
  std::copy(p.tanh_cell, p.tanh_cell + 256, c->tanh_cell);
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
  // An empty batch's buffers may be null, which memmove must not get even for 0 bytes.
  if (n == 0) return;
  if (table == nullptr) {
    std::memmove(dst, src, static_cast<size_t>(n));
    return;
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = table[src[i]];
}

}  // namespace qlstm

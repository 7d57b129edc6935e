// The packed blob: its header and section layout, packing, unpacking,
// validation of a view, and the checksum.
#include "packed_format.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace qlstm {
namespace {

constexpr char kMagic[8] = {'Q', 'L', 'S', 'T', 'M', 'P', 'K', '\0'};
// Packing writes version 9 and reads 5 (a model saved before split gates),
// 6 (before projections: version 7 without kFlagProjection), 7 (before the
// accurate mode: version 8 without kFlagAccurate) and 8 (before the narrow
// weight flags: version 9 without kNarrowFlags) too.
constexpr uint32_t kVersion = 9;
constexpr uint32_t kVersion8 = 8;
constexpr uint32_t kVersion7 = 7;
constexpr uint32_t kVersion6 = 6;
constexpr uint32_t kVersion5 = 5;
constexpr uint32_t kFlagPerChannel = 1u;
constexpr uint32_t kFlagHasBias = 2u;
// Weight zero points are stored only when one is nonzero (symmetric weights have none).
constexpr uint32_t kFlagWeightZeroPoints = 4u;
// Per-gate igates, hgates and gates qparams (torch.ao's split_gates).
constexpr uint32_t kFlagSplitGates = 8u;
// A projection W_hr (nn.LSTM's proj_size), its section after the -128 lists.
constexpr uint32_t kFlagProjection = 16u;
// The accurate mode (float gates and cell): the header's list holds hidden only.
constexpr uint32_t kFlagAccurate = 32u;
// Every weight of W_ih, W_hh or W_hr in [-kNarrowWeightMax, kNarrowWeightMax]
// (PackedMatrix::narrow_weights).
constexpr uint32_t kFlagNarrowIh = 64u;
constexpr uint32_t kFlagNarrowHh = 128u;
constexpr uint32_t kFlagNarrowHr = 256u;
constexpr uint32_t kNarrowFlags = kFlagNarrowIh | kFlagNarrowHh | kFlagNarrowHr;
constexpr uint32_t kKnownFlags = kFlagPerChannel | kFlagHasBias | kFlagWeightZeroPoints |
                                 kFlagSplitGates | kFlagProjection | kFlagAccurate | kNarrowFlags;
constexpr size_t kAlign = 64;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t flags;
  int64_t input_size;
  int64_t hidden_size;
  // The flat list of qparams.h, num_cell_qparams(split gates) entries; the rest zero.
  float scales[kNumSplitCellQParams];
  int32_t zero_points[kNumSplitCellQParams];
  int64_t min_weights_ih;  // entries of the -128 lists
  int64_t min_weights_hh;
  uint64_t checksum;  // blob_checksum of the whole blob with this field zero
  // Version 7, after what version 6 has, so that the checksum stays in place:
  // the projection's size, its -128 list and its output qparams (zero without one).
  int64_t proj_size;
  int64_t min_weights_hr;
  float projection_scale;
  int32_t projection_zero_point;
};
static_assert(sizeof(Header) <= kPackedHeaderBytes, "header must fit its slot");

// Version 5: a 128-byte slot, the seven qparams of an unsplit layer, and three
// tables (sigmoid and tanh of the gates, tanh of the cell) where version 6 has
// one per gate and the cell's.
struct HeaderV5 {
  char magic[8];
  uint32_t version;
  uint32_t flags;
  int64_t input_size;
  int64_t hidden_size;
  float scales[kNumCellQParams];
  int32_t zero_points[kNumCellQParams];
  int64_t min_weights_ih;
  int64_t min_weights_hh;
  uint64_t checksum;
};
constexpr size_t kV5HeaderBytes = 128;
static_assert(sizeof(HeaderV5) <= kV5HeaderBytes, "header must fit its slot");

size_t checksum_offset(uint32_t version) {
  return version == kVersion5 ? offsetof(HeaderV5, checksum) : offsetof(Header, checksum);
}

// Where the checksum of a blob of any version sits (its version field read as is).
size_t checksum_offset(const uint8_t* data, size_t size) {
  uint32_t version = kVersion;
  if (size >= offsetof(Header, flags)) std::memcpy(&version, data + offsetof(Header, version), 4);
  return checksum_offset(version);
}

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Byte offsets of one matrix's sections.
struct MatrixLayout {
  size_t weights, scale, zero_point, colsum, bias, min_weights;
  int64_t K, min_count;
};

// Where row n of a matrix in nn.LSTM's layout goes among its packed rows: the
// gate matrices interleave their gates by unit block, W_hr keeps its order.
struct RowOrder {
  int64_t count;        // rows in nn.LSTM's layout
  int64_t hidden_size;  // of a gate matrix; 0 for W_hr

  static RowOrder gates(int64_t hidden_size) { return {4 * hidden_size, hidden_size}; }
  static RowOrder projection(int64_t proj_size) { return {proj_size, 0}; }
  int64_t packed(int64_t n) const {
    return hidden_size == 0 ? n : packed_row(n % hidden_size, static_cast<int>(n / hidden_size));
  }
  int64_t packed_rows() const {
    return hidden_size == 0 ? round_up(count, kPanelRows) : 4 * padded_hidden(hidden_size);
  }
};

// What a blob's layout depends on, from its header or from the weights to pack.
struct Shape {
  uint32_t version;
  int64_t input_size, hidden_size, proj_size;
  int64_t min_weights_ih, min_weights_hh, min_weights_hr;
  bool zero_points;

  int64_t h_size() const { return proj_size > 0 ? proj_size : hidden_size; }
};

// Byte offsets of every section; one definition serves packing and viewing.
// Sections go field by field, each field for W_ih then W_hh; a projection's
// come last, so that a blob without one has version 6's layout.
struct Layout {
  MatrixLayout ih, hh, hr{};
  size_t gate_tables[kNumGates], tanh_cell, total;
  bool zero_points;  // whether the weight zero points are stored

  explicit Layout(const Shape& s) : zero_points(s.zero_points) {
    ih.K = s.input_size;
    hh.K = s.h_size();
    ih.min_count = s.min_weights_ih;
    hh.min_count = s.min_weights_hh;
    const size_t rows = 4 * static_cast<size_t>(padded_hidden(s.hidden_size));
    size_t at = s.version == kVersion5 ? kV5HeaderBytes : kPackedHeaderBytes;
    auto take = [&](size_t bytes) {
      const size_t here = at;
      at = align_up(at + bytes);
      return here;
    };
    MatrixLayout* both[] = {&ih, &hh};
    for (MatrixLayout* m : both) m->weights = take(rows * static_cast<size_t>(round_up(m->K, kKGroup)));
    for (MatrixLayout* m : both) m->scale = take(rows * sizeof(float));
    for (MatrixLayout* m : both) m->zero_point = take(zero_points ? rows : 0);
    for (MatrixLayout* m : both) m->colsum = take(rows * sizeof(int32_t));
    for (MatrixLayout* m : both) m->bias = take(rows * sizeof(float));
    if (s.version == kVersion5) {
      const size_t sigmoid = take(256), tanh = take(256);
      for (int g = 0; g < kNumGates; ++g) gate_tables[g] = g == kCellGate ? tanh : sigmoid;
    } else {
      for (size_t& table : gate_tables) table = take(256);
    }
    tanh_cell = take(256);
    for (MatrixLayout* m : both) {
      m->min_weights = take(static_cast<size_t>(m->min_count) * sizeof(uint32_t));
    }
    if (s.proj_size > 0) {
      const size_t hr_rows = static_cast<size_t>(RowOrder::projection(s.proj_size).packed_rows());
      hr.K = s.hidden_size;
      hr.min_count = s.min_weights_hr;
      hr.weights = take(hr_rows * static_cast<size_t>(round_up(hr.K, kKGroup)));
      hr.scale = take(hr_rows * sizeof(float));
      hr.zero_point = take(s.zero_points ? hr_rows : 0);
      hr.colsum = take(hr_rows * sizeof(int32_t));
      hr.bias = at;  // none
      hr.min_weights = take(static_cast<size_t>(hr.min_count) * sizeof(uint32_t));
    }
    total = at;
  }
};

// Copies a weight matrix in nn.LSTM's layout ([count][K]) into panels.
void pack_weights(const int8_t* src, RowOrder order, int64_t K, int8_t* dst) {
  for (int64_t n = 0; n < order.count; ++n) {
    const int8_t* row = src + n * K;
    const int64_t r = order.packed(n);
    for (int64_t k = 0; k < K; ++k) dst[packed_weight_offset(r, k, K)] = row[k];
  }
}

// Reorders a per-row array from nn.LSTM's row order to packed rows; padding
// rows keep what dst held.
template <typename Src, typename Dst>
void pack_rows(const Src* src, RowOrder order, Dst* dst) {
  for (int64_t n = 0; n < order.count; ++n) dst[order.packed(n)] = static_cast<Dst>(src[n]);
}

template <typename Src, typename Dst>
void unpack_rows(const Src* src, RowOrder order, Dst* dst) {
  for (int64_t n = 0; n < order.count; ++n) dst[n] = static_cast<Dst>(src[order.packed(n)]);
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

bool narrow_weights(const int8_t* w, int64_t n) {
  return std::all_of(w, w + n,
                     [](int8_t v) { return v >= -kNarrowWeightMax && v <= kNarrowWeightMax; });
}

bool has_zero_points(const LayerWeights& w) {
  const int64_t rows = 4 * w.hidden_size;
  auto nonzero = [](int32_t z) { return z != 0; };
  return std::any_of(w.ih.zero_point, w.ih.zero_point + rows, nonzero) ||
         std::any_of(w.hh.zero_point, w.hh.zero_point + rows, nonzero) ||
         (w.proj_size > 0 &&
          std::any_of(w.hr.zero_point, w.hr.zero_point + w.proj_size, nonzero));
}

Layout layout_of(const LayerWeights& w) {
  const int64_t rows = 4 * w.hidden_size;
  return Layout(Shape{kVersion, w.input_size, w.hidden_size, w.proj_size,
                      count_min_weights(w.ih.weights, rows * w.input_size),
                      count_min_weights(w.hh.weights, rows * w.h_size()),
                      w.proj_size > 0 ? count_min_weights(w.hr.weights, w.proj_size * w.hidden_size)
                                      : 0,
                      has_zero_points(w)});
}

// Lists the weights equal to -128 as min_weight_entry values, sorted. No
// kernel of this version reads the list; the format keeps it, written and
// validated, for the readers whose AVX2 kernels negated weights in int8 and
// corrected the -128 ones from it, so that they still read these blobs.
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

// Packs one matrix's weights and per-row constants into the sections of m.
void pack_matrix(const MatrixWeights& w, const MatrixLayout& m, RowOrder order, bool zero_points,
                 uint8_t* out) {
  const int64_t rows = order.packed_rows();
  int8_t* panels = reinterpret_cast<int8_t*>(out + m.weights);
  float* scale = reinterpret_cast<float*>(out + m.scale);
  pack_weights(w.weights, order, m.K, panels);
  // Padding rows have zero weights; scale 1 keeps their (unused) outputs finite.
  std::fill(scale, scale + rows, 1.0f);
  pack_rows(w.scale, order, scale);
  if (zero_points) pack_rows(w.zero_point, order, reinterpret_cast<int8_t*>(out + m.zero_point));
  if (w.bias) pack_rows(w.bias, order, reinterpret_cast<float*>(out + m.bias));
  column_sums(panels, rows, m.K, reinterpret_cast<int32_t*>(out + m.colsum));
  list_min_weights(panels, rows, m.K, reinterpret_cast<uint32_t*>(out + m.min_weights));
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

// The view of one matrix's sections; nullptr or the reason it is invalid.
const char* view_matrix(const uint8_t* data, const MatrixLayout& m, int64_t rows, bool per_channel,
                        bool has_bias, bool zero_points, bool narrow, PackedMatrix* out) {
  PackedMatrix& v = *out;
  v.rows = rows;
  v.K = m.K;
  v.per_channel = per_channel;
  v.narrow_weights = narrow;
  v.weights = reinterpret_cast<const int8_t*>(data + m.weights);
  v.scale = reinterpret_cast<const float*>(data + m.scale);
  v.zero_point = zero_points ? reinterpret_cast<const int8_t*>(data + m.zero_point) : nullptr;
  v.has_zero_point = zero_points && any_nonzero(v.zero_point, rows);
  v.colsum = reinterpret_cast<const int32_t*>(data + m.colsum);
  v.bias = has_bias ? reinterpret_cast<const float*>(data + m.bias) : nullptr;
  if (!valid_min_weights(reinterpret_cast<const uint32_t*>(data + m.min_weights), m.min_count,
                         v.panels(), v.K)) {
    return "has a corrupt list of -128 weights";
  }
  if (!valid_scales(v.scale, rows)) return "holds a weight scale that is not finite and > 0";
  return nullptr;
}

void unpack_matrix(const PackedMatrix& m, RowOrder order, const MatrixWeightsOut& out) {
  const int64_t K = m.K;
  for (int64_t n = 0; n < order.count; ++n) {
    const int64_t r = order.packed(n);
    for (int64_t k = 0; k < K; ++k) out.weights[n * K + k] = m.weights[packed_weight_offset(r, k, K)];
  }
  unpack_rows(m.scale, order, out.scale);
  if (m.zero_point) {
    unpack_rows(m.zero_point, order, out.zero_point);
  } else {
    std::fill(out.zero_point, out.zero_point + order.count, 0);
  }
  if (m.bias) unpack_rows(m.bias, order, out.bias);
}

// The header of a blob whose first `available` bytes are given, checked for
// everything its layout depends on. nullptr on success, else what is wrong.
const char* read_header(const uint8_t* data, size_t available, Header* out) {
  Header& h = *out;
  if (available < offsetof(Header, flags)) return "is shorter than its header";
  std::memcpy(&h, data, offsetof(Header, flags));
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) return "is not a qlstm packed layer";
  if (h.version == kVersion5) {
    HeaderV5 v;
    if (available < sizeof(v)) return "is shorter than its header";
    std::memcpy(&v, data, sizeof(v));
    h = Header{};
    std::memcpy(h.magic, v.magic, sizeof(h.magic));
    h.version = v.version;
    // Neither split gates nor narrow weights exist in version 5.
    if ((v.flags & (kFlagSplitGates | kNarrowFlags)) != 0) return "has unknown flags";
    h.flags = v.flags;
    h.input_size = v.input_size;
    h.hidden_size = v.hidden_size;
    std::copy(v.scales, v.scales + kNumCellQParams, h.scales);
    std::copy(v.zero_points, v.zero_points + kNumCellQParams, h.zero_points);
    h.min_weights_ih = v.min_weights_ih;
    h.min_weights_hh = v.min_weights_hh;
    h.checksum = v.checksum;
  } else {
    if (available < sizeof(Header)) return "is shorter than its header";
    std::memcpy(&h, data, sizeof(h));
    if ((h.version == kVersion6 || h.version == kVersion7) && (h.flags & kFlagAccurate) != 0) {
      return "has unknown flags";  // none before version 8
    }
    if (h.version <= kVersion8 && (h.flags & kNarrowFlags) != 0) {
      return "has unknown flags";  // none before version 9
    }
    if (h.version == kVersion6) {
      if ((h.flags & kFlagProjection) != 0) return "has unknown flags";  // none in version 6
      h.proj_size = h.min_weights_hr = 0;  // what version 6 leaves of its slot is not read
      h.projection_scale = 0.0f;
      h.projection_zero_point = 0;
    }
  }
  if (h.version < kVersion5) {
    return "was packed by an older qlstm (packing version < 5): load its module's state_dict "
           "into a new qlstm.nn.LSTM, or convert the model again, to pack it anew";
  }
  if (h.version > kVersion) return "was packed by a newer qlstm (packing version > 9)";
  if ((h.flags & ~kKnownFlags) != 0) return "has unknown flags";
  if ((h.flags & kFlagAccurate) != 0 && (h.flags & (kFlagSplitGates | kFlagProjection)) != 0) {
    return "has the accurate mode with split gates or a projection, which it does not support";
  }
  if (h.input_size < 1 || h.input_size > kMaxInnerDim || h.hidden_size < 1 ||
      h.hidden_size > kMaxInnerDim) {
    return "has input or hidden size out of range";
  }
  const bool projection = (h.flags & kFlagProjection) != 0;
  if (projection ? h.proj_size < 1 || h.proj_size > kMaxInnerDim : h.proj_size != 0) {
    return "has a projection size out of range";
  }
  const int64_t rows = 4 * padded_hidden(h.hidden_size);
  const int64_t h_size = projection ? h.proj_size : h.hidden_size;
  const int64_t hr_rows = projection ? RowOrder::projection(h.proj_size).packed_rows() : 0;
  if (h.min_weights_ih < 0 || h.min_weights_ih > rows * h.input_size || h.min_weights_hh < 0 ||
      h.min_weights_hh > rows * h_size || h.min_weights_hr < 0 ||
      h.min_weights_hr > hr_rows * h.hidden_size) {
    return "has a weight list longer than its weights";
  }
  return nullptr;
}

Layout layout_of(const Header& h) {
  return Layout(Shape{h.version, h.input_size, h.hidden_size, h.proj_size, h.min_weights_ih,
                      h.min_weights_hh, h.min_weights_hr,
                      (h.flags & kFlagWeightZeroPoints) != 0});
}

}  // namespace

size_t packed_layer_size(const LayerWeights& w) { return layout_of(w).total; }

const char* packed_size_from_header(const uint8_t* header, size_t available, size_t* total) {
  Header h;
  if (const char* e = read_header(header, std::min(available, kPackedHeaderBytes), &h)) return e;
  *total = layout_of(h).total;
  return nullptr;
}

void pack_layer(const LayerWeights& w, const CellQParams& q, const LayerTables& t, uint8_t* out) {
  const Layout L = layout_of(w);
  std::memset(out, 0, L.total);

  Header h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kVersion;
  h.flags = (w.per_channel ? kFlagPerChannel : 0u) | (w.ih.bias ? kFlagHasBias : 0u) |
            (L.zero_points ? kFlagWeightZeroPoints : 0u) | (q.split_gates ? kFlagSplitGates : 0u) |
            (w.proj_size > 0 ? kFlagProjection : 0u) | (q.accurate ? kFlagAccurate : 0u);
  const int64_t rows = 4 * w.hidden_size;
  if (narrow_weights(w.ih.weights, rows * w.input_size)) h.flags |= kFlagNarrowIh;
  if (narrow_weights(w.hh.weights, rows * w.h_size())) h.flags |= kFlagNarrowHh;
  if (w.proj_size > 0 && narrow_weights(w.hr.weights, w.proj_size * w.hidden_size)) {
    h.flags |= kFlagNarrowHr;
  }
  h.input_size = w.input_size;
  h.hidden_size = w.hidden_size;
  h.min_weights_ih = L.ih.min_count;
  h.min_weights_hh = L.hh.min_count;
  // The header's list holds the gate and state qparams; projection has its own field.
  QParams list[kMaxCellQParams];
  cell_qparams_to_list(q, list);
  for (int i = 0; i < num_cell_qparams(q.split_gates, false, q.accurate); ++i) {
    h.scales[i] = list[i].scale;
    h.zero_points[i] = list[i].zero_point;
  }
  if (w.proj_size > 0) {
    h.proj_size = w.proj_size;
    h.min_weights_hr = L.hr.min_count;
    h.projection_scale = q.projection.scale;
    h.projection_zero_point = q.projection.zero_point;
  }
  std::memcpy(out, &h, sizeof(h));

  pack_matrix(w.ih, L.ih, RowOrder::gates(w.hidden_size), L.zero_points, out);
  pack_matrix(w.hh, L.hh, RowOrder::gates(w.hidden_size), L.zero_points, out);
  if (w.proj_size > 0) pack_matrix(w.hr, L.hr, RowOrder::projection(w.proj_size), L.zero_points, out);
  for (int g = 0; g < kNumGates; ++g) std::memcpy(out + L.gate_tables[g], t.gates[g], 256);
  std::memcpy(out + L.tanh_cell, t.tanh_cell, 256);
  const uint64_t sum = blob_checksum(out, L.total);
  std::memcpy(out + checksum_offset(kVersion), &sum, sizeof(sum));
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
  const size_t skip = checksum_offset(data, size);
  uint64_t lane[4] = {kP1 + kP2, kP2, 0, 0 - kP1};
  for (size_t i = 0; i + 32 <= size; i += 32) {
    for (int j = 0; j < 4; ++j) {
      const size_t at = i + 8 * static_cast<size_t>(j);
      uint64_t word;
      std::memcpy(&word, data + at, sizeof(word));
      if (at == skip) word = 0;
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
  std::memcpy(&stored, data + checksum_offset(data, size), sizeof(stored));
  return blob_checksum(data, size) == stored;
}

void unpack_layer_weights(const PackedLayer& p, const MatrixWeightsOut& ih,
                          const MatrixWeightsOut& hh, const MatrixWeightsOut& hr) {
  unpack_matrix(p.ih, RowOrder::gates(p.hidden_size), ih);
  unpack_matrix(p.hh, RowOrder::gates(p.hidden_size), hh);
  if (p.proj_size > 0) unpack_matrix(p.hr, RowOrder::projection(p.proj_size), hr);
}

const char* unpack_layer_view(const uint8_t* data, size_t size, PackedLayer* out) {
  if (reinterpret_cast<uintptr_t>(data) % alignof(int64_t) != 0) return "is not 8-byte aligned";
  // The header is read once, into h: everything below comes from this copy.
  Header h;
  if (const char* e = read_header(data, size, &h)) return e;
  const int64_t rows = 4 * padded_hidden(h.hidden_size);
  const bool zero_points = (h.flags & kFlagWeightZeroPoints) != 0;
  const Layout L = layout_of(h);
  if (size != L.total) return "has a size that does not match its header";

  PackedLayer& p = *out;
  p.input_size = h.input_size;
  p.hidden_size = h.hidden_size;
  p.proj_size = h.proj_size;
  p.rows = rows;
  p.per_channel = (h.flags & kFlagPerChannel) != 0;
  p.has_bias = (h.flags & kFlagHasBias) != 0;
  const bool split_gates = (h.flags & kFlagSplitGates) != 0;
  const bool projection = p.proj_size > 0;
  const bool accurate = (h.flags & kFlagAccurate) != 0;
  const int n = num_cell_qparams(split_gates, false, accurate);
  QParams list[kMaxCellQParams];
  for (int i = 0; i < n; ++i) list[i] = QParams{h.scales[i], h.zero_points[i]};
  if (projection) list[n] = QParams{h.projection_scale, h.projection_zero_point};
  for (int i = 0; i < num_cell_qparams(split_gates, projection, accurate); ++i) {
    if (!valid_qparams(list[i])) return "holds an invalid scale or zero point";
  }
  p.q = cell_qparams_from_list(list, split_gates, projection, accurate);
  for (int g = 0; g < kNumGates; ++g) p.gate_tables[g] = data + L.gate_tables[g];
  p.tanh_cell = data + L.tanh_cell;
  if (const char* e = view_matrix(data, L.ih, rows, p.per_channel, p.has_bias, zero_points,
                                 (h.flags & kFlagNarrowIh) != 0, &p.ih)) {
    return e;
  }
  if (const char* e = view_matrix(data, L.hh, rows, p.per_channel, p.has_bias, zero_points,
                                 (h.flags & kFlagNarrowHh) != 0, &p.hh)) {
    return e;
  }
  p.hr = PackedMatrix{};
  if (!projection) return nullptr;
  return view_matrix(data, L.hr, RowOrder::projection(p.proj_size).packed_rows(), p.per_channel,
                     /*has_bias=*/false, zero_points, (h.flags & kFlagNarrowHr) != 0, &p.hr);
}

}  // namespace qlstm

// The tiled kernels shared by every vector instruction set: the panel loop of
// the int32 dot products, register tiles of activation rows, cache blocking of
// the input projection and the step's walk over unit blocks and batch tiles.
// Generic over a Dot policy; everything has internal linkage, so that each ISA
// file compiles its own copy for its own target. The standard headers must
// already have been included before that file's target pragmas.
//
// A Dot policy provides, for one panel (16 packed rows) and 4 k at a time:
//   W, Acc, Act        the panel's weights, one activation row's accumulators,
//                      4 activation bytes prepared for the multiply
//   Sums               the panel's 16 finished int32 sums
//   kGemmRows          activation rows per register tile
//   kGemmPanels        panels per pass for a tile of rows (a divisor of 4)
//   kGemvPanels        panels per pass for a single activation row (a divisor
//                      of 4, the panels of a unit block)
//   kGemvSplits        accumulators per panel for a single row, each summing
//                      every kGemvSplits-th group of 4 k: a multiply that adds
//                      into its accumulator (vpdpbusd) waits for the previous
//                      one, so one row needs kGemvPanels * kGemvSplits chains
//                      to cover its latency
//   kCentered          whether it sums (x - 128) * w instead of x * w
//   kCorrectsRows      whether its sums fall short by an amount of each
//                      activation row alone, row_correction(row, K), which
//                      panels_dot adds to every sum of the row (add_row)
//   load(w), zero(), act(bytes), madd(acc, act, w), finish(acc, &sums)
//   add(acc, acc)      (only with kGemvSplits > 1) the sum of two accumulators
//   add_colsum128(sums, colsum)
//   Narrow (optional)  a cheaper policy with the same W, Acc and Sums that is
//                      exact only when every activation byte of the rows is
//                      <= Narrow::kMaxActivation, or, with
//                      Narrow::kExactWithNarrowWeights, against a matrix whose
//                      weights are narrow (PackedMatrix::narrow_weights); the
//                      kernels pick it per matrix, else per tile
//   Pairs (optional)   a Narrow form cheaper still, exact only against a
//                      matrix of narrow weights with every activation byte
//                      of the rows <= Pairs::kMaxActivation: its
//                      madd_pair(acc, act0, w0, act1, w1) sums two groups of
//                      4 k (and its madd one, for an odd group out)
// and the vector epilogue of its architecture:
//   store_outputs(sums, r, w_zp, n, x_row_sum, dst)   16 requantized bytes
//   BlockGates, requant_gate(sums, r, w_zp, n, x_row_sum, gate, &block_gates)
//   kCellGroups        unit groups (a row's 16 units of a block) per epilogue
//   epilogue<G>(params, block_gates[G], ig[G], c[G], h_next[G], c_next[G])
//                      G <= kCellGroups groups, each a row's 16 units
//   store_outputs(..., float* dst), float_gate, float_epilogue   the same for the
//                      accurate mode: unrounded linear outputs, float_cell.h's cell
//   quantize_bytes, dequantize_bytes   quantize.h's quantize and dequantize
// The sums are exact int32, as in the scalar reference; only the instructions differ.
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>

#include "dot_traits.h"
#include "float_cell.h"
#include "kernel_set.h"

namespace qlstm {
namespace {

// What restores sum x * w from a policy's sums against P panels: each
// panel's 16 column sums (128 times them, for a centered policy), and for a
// policy with kCorrectsRows each activation row's correction.
template <int P>
struct TileFix {
  const int32_t* colsum[P];
  const int32_t* row;
};

template <class Dot, class = void>
struct CorrectsRows : std::false_type {};
template <class Dot>
struct CorrectsRows<Dot, std::enable_if_t<Dot::kCorrectsRows>> : std::true_type {};

template <int P>
TileFix<P> tile_fix(const PackedMatrix& m, int64_t panel, const int32_t* row_corrections) {
  TileFix<P> fix{{}, row_corrections};
  for (int j = 0; j < P; ++j) fix.colsum[j] = m.colsum + (panel + j) * kPanelRows;
  return fix;
}

// The int32 sums of R activation rows against P consecutive panels (each
// panel_bytes long), with S accumulators per row and panel over interleaved
// groups of 4 k, added at the end (int32 sums wrap the same in any order).
// Several panels per pass, and several accumulators per panel, give a single
// row (a GEMV) enough independent work. panels_dot runs one tile, a riding
// step (panels_dot_riding) two side by side.
template <class Dot, int R, int P, int S>
struct PanelTile {
  using Acc = typename Dot::Acc;

  PanelTile(const uint8_t* x_rows, int64_t stride, int64_t k, const int8_t* weights,
            int64_t bytes_per_panel, const TileFix<P>& tile_fix)
      : x(x_rows), x_stride(stride), K(k), panels(weights), panel_bytes(bytes_per_panel),
        fix(tile_fix) {
    for (int s = 0; s < S; ++s) {
      for (int r = 0; r < R; ++r) {
        for (int p = 0; p < P; ++p) acc[s][r][p] = Dot::zero();
      }
    }
  }

  int64_t full_groups() const { return K / kKGroup; }

  // Groups g and g + 1 (g + 1 < full_groups()) into a, with Dot::madd_pair.
  void group_pair(int64_t g, Acc (&a)[R][P]) {
    typename Dot::W w[P][2];
    for (int p = 0; p < P; ++p) {
      for (int i = 0; i < 2; ++i) {
        w[p][i] = Dot::load(panels + p * panel_bytes + (g + i) * kPanelRows * kKGroup);
      }
    }
    for (int r = 0; r < R; ++r) {
      uint32_t v[2];
      std::memcpy(v, x + r * x_stride + g * kKGroup, sizeof(v));
      const typename Dot::Act a0 = Dot::act(v[0]), a1 = Dot::act(v[1]);
      for (int p = 0; p < P; ++p) Dot::madd_pair(a[r][p], a0, w[p][0], a1, w[p][1]);
    }
  }

  void step(int64_t g, const uint32_t* v, Acc (&a)[R][P]) {
    typename Dot::W w[P];
    for (int p = 0; p < P; ++p) {
      w[p] = Dot::load(panels + p * panel_bytes + g * kPanelRows * kKGroup);
    }
    for (int r = 0; r < R; ++r) {
      const typename Dot::Act act = Dot::act(v[r]);
      for (int p = 0; p < P; ++p) Dot::madd(a[r][p], act, w[p]);
    }
  }
  // Group g of 4 k (g < full_groups()) into accumulator set a.
  void group(int64_t g, Acc (&a)[R][P]) {
    uint32_t v[R];
    for (int r = 0; r < R; ++r) std::memcpy(&v[r], x + r * x_stride + g * kKGroup, sizeof(v[r]));
    step(g, v, a);
  }

  // Groups [g, full_groups()) and the K tail, then the finished sums.
  void finish_from(int64_t g, typename Dot::Sums out[R][P]) {
    const int64_t full = full_groups();
    if constexpr (SumsPairs<Dot>::value) {
      for (; g + 2 * S <= full; g += 2 * S) {
        for (int s = 0; s < S; ++s) group_pair(g + 2 * s, acc[s]);
      }
    }
    for (; g + S <= full; g += S) {
      for (int s = 0; s < S; ++s) group(g + s, acc[s]);
    }
    // Constant trip counts only: an accumulator indexed at run time lives in memory.
    for (int s = 0; s < S; ++s) {
      if (g + s < full) group(g + s, acc[s]);
    }
    if (const int64_t tail = K % kKGroup) {
      // The packed weights past K are zero; the activations past K may not be
      // ours to read. They enter as 128, whose product with a zero weight is
      // zero in every form, centered (128 - 128) or not.
      uint32_t v[R];
      for (int r = 0; r < R; ++r) {
        v[r] = 0x80808080u;
        std::memcpy(&v[r], x + r * x_stride + full * kKGroup, static_cast<size_t>(tail));
      }
      step(full, v, acc[S - 1]);
    }
    for (int r = 0; r < R; ++r) {
      for (int p = 0; p < P; ++p) {
        if constexpr (S > 1) {
          for (int s = 1; s < S; ++s) Dot::add(acc[0][r][p], acc[s][r][p]);
        }
        Dot::finish(acc[0][r][p], &out[r][p]);
        if constexpr (Dot::kCentered) Dot::add_colsum128(out[r][p], fix.colsum[p]);
        if constexpr (CorrectsRows<Dot>::value) Dot::add_row(out[r][p], fix.row[r]);
      }
    }
  }

  const uint8_t* x;
  int64_t x_stride, K;
  const int8_t* panels;
  int64_t panel_bytes;
  const TileFix<P>& fix;
  Acc acc[S][R][P];
};

// Never inlined: inside its callers' epilogues GCC runs out of registers and
// spills the accumulators in the loop.
template <class Dot, int R, int P, int S = 1>
[[gnu::noinline]] void panels_dot(const uint8_t* x, int64_t x_stride, int64_t K,
                                  const int8_t* panels, int64_t panel_bytes,
                                  const TileFix<P>& fix, typename Dot::Sums out[R][P]) {
  PanelTile<Dot, R, P, S>(x, x_stride, K, panels, panel_bytes, fix).finish_from(0, out);
}

// One single row's tile of 4 panels (a unit block of W_hh) and a rider's tile
// of RX rows against one panel, their groups of k interleaved while both have
// them: the row's weights stream from the cache, the rider's multiply several
// rows each, so that the multiplies of the one fill the waits of the other.
template <class Dot, int RX>
[[gnu::noinline]] void panels_dot_riding(const uint8_t* h, int64_t K, const int8_t* panels,
                                         int64_t panel_bytes, const TileFix<4>& fix,
                                         typename Dot::Sums out[1][4], const uint8_t* x,
                                         int64_t x_K, const int8_t* x_panel,
                                         const TileFix<1>& x_fix,
                                         typename Dot::Sums x_out[RX][1]) {
  static_assert(!CorrectsRows<Dot>::value, "a riding step takes no row corrections");
  PanelTile<Dot, 1, 4, 1> a(h, K, K, panels, panel_bytes, fix);
  PanelTile<Dot, RX, 1, 1> b(x, x_K, x_K, x_panel, 0, x_fix);
  const int64_t both = std::min(a.full_groups(), b.full_groups());
  for (int64_t g = 0; g < both; ++g) {
    a.group(g, a.acc[0]);
    b.group(g, b.acc[0]);
  }
  a.finish_from(both, out);
  b.finish_from(both, x_out);
}

template <class Dot, class = void>
struct HasNarrow : std::false_type {};
template <class Dot>
struct HasNarrow<Dot, std::void_t<typename Dot::Narrow>> : std::true_type {};
template <class Dot, class = void>
struct HasPairs : std::false_type {};
template <class Dot>
struct HasPairs<Dot, std::void_t<typename Dot::Pairs>> : std::true_type {};

// Which of a Dot policy's forms a tile of rows takes: the exact one, its
// Narrow form, or its Pairs form.
enum class Form { kExact, kNarrow, kPairs };

// The cheapest form of Dot that is exact for R activation rows x (m.K bytes
// each, one after another) against m: Pairs when m's weights are narrow and
// every byte of the rows is at most its kMaxActivation; Narrow when m's
// weights are narrow, for a form exact with them, or every byte is at most
// its kMaxActivation. K bytes per row against 16 * K multiply-accumulates per
// panel: cheap next to the products.
template <class Dot, int R>
Form tile_form(const PackedMatrix& m, const uint8_t* x) {
  if constexpr (HasNarrow<Dot>::value) {
    using Narrow = typename Dot::Narrow;
    const bool narrow_weights = Narrow::kExactWithNarrowWeights && m.narrow_weights;
    if (narrow_weights && !HasPairs<Dot>::value) return Form::kNarrow;
    uint8_t most = 0;
    for (int64_t k = 0; k < R * m.K; ++k) most = std::max(most, x[k]);
    if constexpr (HasPairs<Dot>::value) {
      if (m.narrow_weights && most <= Dot::Pairs::kMaxActivation) return Form::kPairs;
    }
    return narrow_weights || most <= Narrow::kMaxActivation ? Form::kNarrow : Form::kExact;
  } else {
    return Form::kExact;
  }
}

// The row corrections (CorrectsRows) of R activation rows x, each m.K bytes,
// for the form `form` of Dot: only Dot's own, exact form has them. Written
// to corr and returned, or nullptr when the form needs none.
template <class Dot, int R>
const int32_t* row_corrections(Form form, const PackedMatrix& m, const uint8_t* x,
                               int32_t corr[R]) {
  if constexpr (CorrectsRows<Dot>::value) {
    if (form == Form::kExact) {
      for (int i = 0; i < R; ++i) corr[i] = Dot::row_correction(x + i * m.K, m.K);
      return corr;
    }
  }
  return nullptr;
}

// Accumulators per panel: a policy's kGemvSplits for a single row, one when a
// tile of rows already gives the loop its independent work.
template <class Dot, int R>
inline constexpr int kSplits = R == 1 ? Dot::kGemvSplits : 1;

// panels_dot with the form of Dot that `form` (tile_form) names.
template <class Dot, int R, int P>
void panels_dot_best(Form form, const uint8_t* x, int64_t x_stride, int64_t K,
                     const int8_t* panels, int64_t panel_bytes, const TileFix<P>& fix,
                     typename Dot::Sums out[R][P]) {
  if constexpr (HasPairs<Dot>::value) {
    static_assert(std::is_same_v<typename Dot::Sums, typename Dot::Pairs::Sums>,
                  "a Pairs form gives the same sums");
    if (form == Form::kPairs) {
      using Pairs = typename Dot::Pairs;
      panels_dot<Pairs, R, P, kSplits<Pairs, R>>(x, x_stride, K, panels, panel_bytes, fix, out);
      return;
    }
  }
  if constexpr (HasNarrow<Dot>::value) {
    static_assert(std::is_same_v<typename Dot::Sums, typename Dot::Narrow::Sums>,
                  "a Narrow form gives the same sums");
    if (form != Form::kExact) {
      using Narrow = typename Dot::Narrow;
      panels_dot<Narrow, R, P, kSplits<Narrow, R>>(x, x_stride, K, panels, panel_bytes, fix, out);
      return;
    }
  }
  panels_dot<Dot, R, P, kSplits<Dot, R>>(x, x_stride, K, panels, panel_bytes, fix, out);
}

// Panels per pass: a policy's kGemvPanels for a single row, its kGemmPanels
// for a tile of rows.
template <class Dot, int R>
inline constexpr int kPanelsPerPass = R == 1 ? Dot::kGemvPanels : Dot::kGemmPanels;

// The requantized outputs of rows [row, row + R) against panels [panel, panel + P).
template <class Dot, int R, int P, class Out>
void store_tile(const PackedMatrix& m, const LinearRequant& r, const typename Dot::Sums (&raw)[R][P],
                int64_t row, int64_t panel, const int32_t rs[R], Out* out) {
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < P; ++j) {
      const int64_t n = (panel + j) * kPanelRows;
      Dot::store_outputs(raw[i][j], r, m.zero_point, n, rs[i], out + (row + i) * m.rows + n);
    }
  }
}

template <class Dot, int R, int P, class Out>
void project_panels(const PackedMatrix& m, const LinearRequant& r, const uint8_t* x, int64_t row,
                    int64_t panel, const int32_t rs[R], Form form, const int32_t* corr,
                    Out* out) {
  const int64_t K = m.K, panel_bytes = m.panel_bytes();
  const TileFix<P> fix = tile_fix<P>(m, panel, corr);
  typename Dot::Sums raw[R][P];
  panels_dot_best<Dot, R, P>(form, x + row * K, K, K, m.weights + panel * panel_bytes,
                             panel_bytes, fix, raw);
  store_tile<Dot>(m, r, raw, row, panel, rs, out);
}

template <class Dot, int R, class Out>
void project_rows(const PackedMatrix& m, const LinearRequant& r, const uint8_t* x, int64_t row,
                  int64_t panel_begin, int64_t panel_end, Out* out) {
  const int64_t K = m.K;
  constexpr int P = kPanelsPerPass<Dot, R>;
  int32_t rs[R];
  for (int i = 0; i < R; ++i) rs[i] = m.has_zero_point ? row_sum(x + (row + i) * K, K) : 0;
  const Form form = tile_form<Dot, R>(m, x + row * K);
  int32_t corr_rows[R];
  const int32_t* corr = row_corrections<Dot, R>(form, m, x + row * K, corr_rows);
  int64_t panel = panel_begin;
  for (; panel + P <= panel_end; panel += P) {
    project_panels<Dot, R, P>(m, r, x, row, panel, rs, form, corr, out);
  }
  for (; panel < panel_end; ++panel) {
    project_panels<Dot, R, 1>(m, r, x, row, panel, rs, form, corr, out);
  }
}

// project_rows with R = min(rows, kGemmRows) as a compile-time tile height.
template <class Dot, class Out, int R = Dot::kGemmRows>
void project_tile(int64_t rows, const PackedMatrix& m, const LinearRequant& r, const uint8_t* x,
                  int64_t row, int64_t panel_begin, int64_t panel_end, Out* out) {
  if constexpr (R > 1) {
    if (rows < R) return project_tile<Dot, Out, R - 1>(rows, m, r, x, row, panel_begin, panel_end, out);
  }
  project_rows<Dot, R>(m, r, x, row, panel_begin, panel_end, out);
}

template <class Dot, class Out>
void linear_tiled(const PackedMatrix& m, const LinearRequant& r, const uint8_t* x,
                  int64_t row_begin, int64_t row_end, int64_t panel_begin, int64_t panel_end,
                  Out* out) {
  // A block of rows (about 32 KB of activations) stays in cache while a few
  // panels at a time (about 16 KB of weights) pass over it, rows inner.
  constexpr int64_t kPanelChunk = 4;
  const int64_t row_block =
      round_up(std::max<int64_t>(Dot::kGemmRows, (int64_t{32} << 10) / m.K), Dot::kGemmRows);
  for (int64_t rb = row_begin; rb < row_end; rb += row_block) {
    const int64_t re = std::min(row_end, rb + row_block);
    for (int64_t pc = panel_begin; pc < panel_end; pc += kPanelChunk) {
      const int64_t pe = std::min(panel_end, pc + kPanelChunk);
      for (int64_t row = rb; row < re; row += Dot::kGemmRows) {
        project_tile<Dot, Out>(re - row, m, r, x, row, pc, pe, out);
      }
    }
  }
}

// What the element-wise part of a step needs besides its operands. The
// zero points the vector code adds are floats formed here, once per call:
// read from the layer inside the epilogue, they would be loaded and converted
// again after every byte store, since a byte store may alias them.
struct EpilogueParams {
  EpilogueParams(const PackedLayer& layer, const CellConstants& constants, QParams c_prev_q)
      : p(layer), cc(constants), m(step_multipliers(layer.q, c_prev_q)), c_prev(c_prev_q),
        fgate_cx(dequant_constants(layer.q.fgate_cx)),
        igate_cgate(dequant_constants(layer.q.igate_cgate)),
        fgate_cx_zp(static_cast<float>(layer.q.fgate_cx.zero_point)),
        igate_cgate_zp(static_cast<float>(layer.q.igate_cgate.zero_point)),
        cell_zp(static_cast<float>(layer.q.cell.zero_point)),
        hidden_zp(static_cast<float>(layer.q.hidden.zero_point)) {}

  const PackedLayer& p;
  const CellConstants& cc;
  StepMultipliers m;
  QParams c_prev;
  DequantConstants fgate_cx, igate_cgate;
  float fgate_cx_zp, igate_cgate_zp, cell_zp, hidden_zp;
};

// The units [u, u + units) of batch row `row` in one unit block: what one
// epilogue finishes (units < kUnitBlock only in a hidden size's last block).
struct UnitGroup {
  int64_t row, u, units;
};

// The rows of a policy's riding step (KernelSet::rider_rows): its kRiderRows,
// or 0 for a policy that rides nothing.
template <class Dot, class = void>
struct RiderRowsOf : std::integral_constant<int, 0> {};
template <class Dot>
struct RiderRowsOf<Dot, std::void_t<decltype(Dot::kRiderRows)>>
    : std::integral_constant<int, Dot::kRiderRows> {};

// A step's StepRider with its rows' sums for the weight zero points, and
// each unit block's share of its panels: at most one, since a chunk's
// 4 panels per unit block are spread over kRows >= 4 steps.
template <class Dot>
struct Rider {
  static constexpr int kRows = RiderRowsOf<Dot>::value;
  static_assert(kRows == 0 || (kRows >= 4 && Dot::kGemvPanels == 4),
                "a block's share is at most one panel, riding its block's single pass");

  Rider(const StepRider& j, int64_t step_blocks) : job(j), blocks(step_blocks) {
    for (int i = 0; i < kRows; ++i) {
      rs[i] = j.m->has_zero_point ? row_sum(j.x + i * j.m->K, j.m->K) : 0;
    }
  }
  // The panel block `block` takes, or -1.
  int64_t share(int64_t block) const {
    const int64_t n = job.panel_end - job.panel_begin, first = n * block / blocks;
    return first < n * (block + 1) / blocks ? job.panel_begin + first : -1;
  }

  const StepRider& job;
  int64_t blocks;
  int32_t rs[std::max(kRows, 1)];
};

// The int32 sums of one unit block's four panels (gates i, f, g, o) of
// m = W_hh for batch rows [b, b + R) of h, each handed to
// take(row i, gate g, sums) as it is done; rs gets those rows' sums for the
// weight zero points. With a rider (a single row only), the block's share of
// its panels too, in the same pass as the block's four.
template <class Dot, int R, class Take>
void block_sums(const PackedMatrix& m, const uint8_t* h, int64_t b, int64_t block, int32_t rs[R],
                const Rider<Dot>* rider, const Take& take) {
  // h rows have m.K bytes (the projection's size with one, else H).
  const int64_t K = m.K, panel_bytes = m.panel_bytes();
  for (int i = 0; i < R; ++i) rs[i] = m.has_zero_point ? row_sum(h + (b + i) * K, K) : 0;
  const Form form = tile_form<Dot, R>(m, h + b * K);
  int32_t corr_rows[R];
  const int32_t* corr = row_corrections<Dot, R>(form, m, h + b * K, corr_rows);
  constexpr int P = kPanelsPerPass<Dot, R>;
  for (int g = 0; g < 4; g += P) {
    const int64_t panel = 4 * block + g;
    const TileFix<P> fix = tile_fix<P>(m, panel, corr);
    typename Dot::Sums part[R][P];
    const int8_t* weights = m.weights + panel * panel_bytes;
    bool rode = false;
    if constexpr (R == 1 && Rider<Dot>::kRows > 0) {
      if (const int64_t ride = rider ? rider->share(block) : -1; ride >= 0) {
        constexpr int RX = Rider<Dot>::kRows;
        const StepRider& job = rider->job;
        const TileFix<1> x_fix = tile_fix<1>(*job.m, ride, nullptr);
        typename Dot::Sums x_part[RX][1];
        panels_dot_riding<Dot, RX>(h + b * K, K, weights, panel_bytes, fix, part, job.x,
                                   job.m->K, job.m->weights + ride * job.m->panel_bytes(), x_fix,
                                   x_part);
        store_tile<Dot>(*job.m, *job.r, x_part, 0, ride, rider->rs, job.out);
        rode = true;
      }
    }
    if (!rode) panels_dot_best<Dot, R, P>(form, h + b * K, K, K, weights, panel_bytes, fix, part);
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < P; ++j) take(i, g + j, part[i][j]);
    }
  }
}

// cell.finish of G unit groups, kCellGroups at a time: a policy's epilogue
// interleaves the groups it is given, whose chains of conversions and
// lookups are independent.
template <class Dot, int G, class Cell>
void finish_groups(const Cell& cell, const typename Dot::BlockGates (&hg)[G],
                   const UnitGroup (&groups)[G]) {
  constexpr int kChunk = Dot::kCellGroups, kFull = G / kChunk * kChunk;
  for (int k = 0; k < kFull; k += kChunk) cell.template finish<kChunk>(hg + k, groups + k);
  if constexpr (kFull < G) cell.template finish<G - kFull>(hg + kFull, groups + kFull);
}

// Unit blocks `blocks` of one step for batch rows [b, b + R): the four gates'
// sums of h * W_hh^T, made into Dot::BlockGates by cell.gate, then
// cell.finish of each row's units (a Cell is the mode's epilogue: ByteCell or
// FloatCell). A single row takes several blocks, so that its epilogue, too,
// has independent groups to interleave.
template <class Dot, int R, int Q, class Cell>
void step_rows(const PackedLayer& p, const LinearRequant& hh, const uint8_t* h, int64_t b,
               const int64_t (&blocks)[Q], const Rider<Dot>* rider, const Cell& cell) {
  const PackedMatrix& m = p.hh;
  typename Dot::BlockGates hg[Q * R];
  UnitGroup groups[Q * R];
  for (int q = 0; q < Q; ++q) {
    const int64_t block = blocks[q], u = block * kUnitBlock;
    int32_t rs[R];
    block_sums<Dot, R>(m, h, b, block, rs, rider,
                       [&](int i, int g, const typename Dot::Sums& sums) {
                         cell.gate(sums, hh, m.zero_point, (4 * block + g) * kPanelRows, rs[i],
                                   g, &hg[q * R + i]);
                       });
    for (int i = 0; i < R; ++i) {
      groups[q * R + i] = UnitGroup{b + i, u, std::min(kUnitBlock, p.hidden_size - u)};
    }
  }
  finish_groups<Dot>(cell, hg, groups);
}

template <class Dot, class Cell, int R = Dot::kGemmRows>
void step_tile(int64_t rows, const PackedLayer& p, const LinearRequant& hh, const uint8_t* h,
               int64_t b, int64_t block, const Rider<Dot>* rider, const Cell& cell) {
  if constexpr (R > 1) {
    if (rows < R) return step_tile<Dot, Cell, R - 1>(rows, p, hh, h, b, block, rider, cell);
  }
  const int64_t blocks[1] = {block};
  step_rows<Dot, R>(p, hh, h, b, blocks, rider, cell);
}

// Batch tiles inner: a block's weights are read from memory once per step and
// stay in cache while every tile of the batch passes. Blocks in ascending
// order, or descending (StepState::descending); a single batch row takes
// kCellGroups blocks at a time. A rider comes with a single batch row only.
template <class Dot, class Cell>
void step_blocks(const PackedLayer& p, const LinearRequant& hh, const uint8_t* h, int64_t b_begin,
                 int64_t b_end, int64_t block_begin, int64_t block_end, bool descending,
                 const Rider<Dot>* rider, const Cell& cell) {
  auto block_at = [&](int64_t i) { return descending ? block_begin + block_end - 1 - i : i; };
  int64_t i = block_begin;
  if (b_end - b_begin == 1) {
    constexpr int Q = Dot::kCellGroups;
    for (; i + Q <= block_end; i += Q) {
      int64_t blocks[Q];
      for (int q = 0; q < Q; ++q) blocks[q] = block_at(i + q);
      step_rows<Dot, 1>(p, hh, h, b_begin, blocks, rider, cell);
    }
  }
  for (; i < block_end; ++i) {
    for (int64_t b = b_begin; b < b_end; b += Dot::kGemmRows) {
      step_tile<Dot>(b_end - b, p, hh, h, b, block_at(i), rider, cell);
    }
  }
}

// The default mode's epilogue: requantized gates, sigmoid and tanh tables, the
// byte cell and h.
template <class Dot>
struct ByteCell {
  const EpilogueParams& e;
  const uint8_t* igates;
  const StepState& s;
  uint8_t *h_next, *c_next;

  void gate(const typename Dot::Sums& sums, const LinearRequant& r, const int8_t* w_zp, int64_t n,
            int32_t rs, int g, typename Dot::BlockGates* out) const {
    Dot::requant_gate(sums, r, w_zp, n, rs, g, out);
  }
  template <int G>
  void finish(const typename Dot::BlockGates* hg, const UnitGroup* groups) const {
    const uint8_t* ig[G];
    const uint8_t* c[G];
    uint8_t *h[G], *cn[G];
    bool whole = true;
    for (int k = 0; k < G; ++k) {
      const int64_t at = groups[k].row * e.p.hidden_size + groups[k].u;
      ig[k] = igates + groups[k].row * e.p.rows + 4 * groups[k].u;
      c[k] = s.c + at;
      h[k] = h_next + at;
      cn[k] = c_next + at;
      whole &= groups[k].units == kUnitBlock;
    }
    if (whole) {
      Dot::template epilogue<G>(e, hg, ig, c, h, cn);
      return;
    }
    for (int k = 0; k < G; ++k) {
      // The last units of a hidden size that is not a multiple of the block:
      // staged, so that no element past the state rows is read or written.
      uint8_t cs[kUnitBlock] = {}, hs[kUnitBlock], cns[kUnitBlock];
      const size_t n = static_cast<size_t>(groups[k].units);
      std::memcpy(cs, c[k], n);
      const uint8_t* c1[1] = {cs};
      uint8_t* h1[1] = {hs};
      uint8_t* cn1[1] = {cns};
      Dot::template epilogue<1>(e, hg + k, ig + k, c1, h1, cn1);
      std::memcpy(h[k], hs, n);
      std::memcpy(cn[k], cns, n);
    }
  }
};

// The accurate mode's epilogue: float gates and cell (float_cell.h).
template <class Dot>
struct FloatCell {
  const PackedLayer& p;
  float h_inv_scale, h_zero_point;  // h's qparams as its quantization takes them
  const float* igates;
  const FloatStepState& s;
  float* h_next;
  uint8_t* h_next_bytes;
  float* c_next;

  void gate(const typename Dot::Sums& sums, const LinearRequant& r, const int8_t* w_zp, int64_t n,
            int32_t rs, int g, typename Dot::BlockGates* out) const {
    Dot::float_gate(sums, r, w_zp, n, rs, g, out);
  }
  template <int G>
  void finish(const typename Dot::BlockGates* hg, const UnitGroup* groups) const {
    for (int k = 0; k < G; ++k) finish_one(hg[k], groups[k]);
  }
  void finish_one(const typename Dot::BlockGates& hg, const UnitGroup& group) const {
    const float* ig = igates + group.row * p.rows + 4 * group.u;
    const int64_t at = group.row * p.hidden_size + group.u;
    if (group.units == kUnitBlock) {
      Dot::float_epilogue(hg, ig, s.c + at, h_inv_scale, h_zero_point, h_next + at,
                          h_next_bytes + at, c_next + at);
      return;
    }
    float c[kUnitBlock] = {}, h[kUnitBlock], cn[kUnitBlock];  // staged, as ByteCell's
    uint8_t hb[kUnitBlock];
    const size_t n = static_cast<size_t>(group.units);
    std::memcpy(c, s.c + at, n * sizeof(float));
    Dot::float_epilogue(hg, ig, c, h_inv_scale, h_zero_point, h, hb, cn);
    std::memcpy(h_next + at, h, n * sizeof(float));
    std::memcpy(h_next_bytes + at, hb, n);
    std::memcpy(c_next + at, cn, n * sizeof(float));
  }
};

template <class Dot>
void lstm_step_tiled(const PackedLayer& p, const LinearRequant& hh, const CellConstants& cc,
                     const uint8_t* igates, const StepState& s, int64_t b_begin, int64_t b_end,
                     int64_t block_begin, int64_t block_end, uint8_t* h_next, uint8_t* c_next) {
  const EpilogueParams e(p, cc, s.c_qparams);
  const ByteCell<Dot> cell{e, igates, s, h_next, c_next};
  if constexpr (Rider<Dot>::kRows > 0) {
    if (s.rider != nullptr) {
      const Rider<Dot> rider(*s.rider, unit_blocks(p.hidden_size));
      step_blocks<Dot>(p, hh, s.h, b_begin, b_end, block_begin, block_end, s.descending, &rider,
                       cell);
      return;
    }
  }
  step_blocks<Dot>(p, hh, s.h, b_begin, b_end, block_begin, block_end, s.descending, nullptr,
                   cell);
}

template <class Dot>
void lstm_step_float_tiled(const PackedLayer& p, const LinearRequant& hh, QParams h_q,
                           const float* igates, const FloatStepState& s, int64_t b_begin,
                           int64_t b_end, int64_t block_begin, int64_t block_end, float* h_next,
                           uint8_t* h_next_bytes, float* c_next) {
  const FloatCell<Dot> cell{p, 1.0f / h_q.scale, static_cast<float>(h_q.zero_point),
                            igates, s, h_next, h_next_bytes, c_next};
  step_blocks<Dot>(p, hh, s.h, b_begin, b_end, block_begin, block_end, s.descending,
                   /*rider=*/nullptr, cell);
}

template <class Dot>
KernelSet make_kernel_set(const char* name) {
  return KernelSet{name,
                   linear_tiled<Dot, uint8_t>,
                   lstm_step_tiled<Dot>,
                   linear_tiled<Dot, float>,
                   lstm_step_float_tiled<Dot>,
                   Dot::quantize_bytes,
                   Dot::dequantize_bytes,
                   RiderRowsOf<Dot>::value};
}

}  // namespace
}  // namespace qlstm

// The x86 kernels, generic over how one panel's multiply-accumulate is done.
// Each ISA file includes this between its own target pragmas and supplies a
// Dot policy; everything here has internal linkage, so code compiled for one
// ISA never stands in for another's at link time. The standard headers below
// must already have been included before the pragmas, so that no inline
// library function is compiled for the ISA.
//
// A Dot policy provides, for one panel (16 packed rows) and 4 k at a time:
//   W                  the panel's 64 weight bytes, loaded for the multiply
//   Acc                one activation row's accumulators for the panel
//   Act                4 activation bytes, broadcast for the multiply
//   kGemmRows          activation rows per register tile
//   kCentered          whether it sums (x - 128) * w with -128 weights negated
//                      as int8 does (see center_fixup) instead of x * w
//   load(w), zero(), act(bytes), madd(acc, act, w), finish(acc, &rows0_7, &rows8_15)
// The sums are exact int32, as in the scalar reference; only the instructions differ.
#pragma once

#include <immintrin.h>

#include <chrono>
#include <cstring>

#include "lstm_kernels.h"

namespace qlstm {
namespace {

// What restores sum x * w from a centered policy's sums for one panel.
struct PanelFix {
  const int32_t* colsum;        // the panel's 16 column sums
  const uint32_t* min_weights;  // its -128 weights, min_weight_entry values
  int32_t min_count;
};

PanelFix panel_fix(const int32_t* colsum, const uint32_t* min_weights, const LinearRequant& r,
                   int64_t panel) {
  const int32_t begin = r.min_weights_start[panel];
  return PanelFix{colsum + panel * kPanelRows, min_weights + begin,
                  r.min_weights_start[panel + 1] - begin};
}

// A centered policy computes, per k, |x - 128| * sign(w, x - 128) with bytes:
// exact (x - 128) * w, except that a -128 weight met by x < 128 cannot be
// negated and stays -128, which is 256 * (128 - x) short. Adding those back
// and 128 * colsum gives sum x * w. The -128 corrections are summed before
// the vector loop, so that reading them back never waits on the scalar stores.
template <int R, int P>
bool min_weight_corrections(const uint8_t* x, int64_t x_stride, const PanelFix fix[P],
                            int32_t corr[R][P][kPanelRows]) {
  bool any = false;
  for (int p = 0; p < P; ++p) {
    for (int r = 0; r < R; ++r) {
      for (int i = 0; i < kPanelRows; ++i) corr[r][p][i] = 0;
    }
    any |= fix[p].min_count != 0;
    // The list is sorted by row: sum a row's entries in registers, store once.
    for (int32_t i = 0; i < fix[p].min_count;) {
      const uint32_t row = (fix[p].min_weights[i] >> kMinWeightRowShift) & 15;
      int32_t sum[R] = {};
      for (; i < fix[p].min_count && ((fix[p].min_weights[i] >> kMinWeightRowShift) & 15) == row;
           ++i) {
        const int64_t k = fix[p].min_weights[i] & kMinWeightKMask;
        for (int r = 0; r < R; ++r) {
          sum[r] += std::max(0, 128 - static_cast<int32_t>(x[r * x_stride + k]));
        }
      }
      for (int r = 0; r < R; ++r) corr[r][p][row] += 256 * sum[r];
    }
  }
  return any;
}

template <int R, int P>
void center_fixup(const PanelFix fix[P], const int32_t corr[R][P][kPanelRows], bool any_corr,
                  __m256i out[R][P][2]) {
  for (int p = 0; p < P; ++p) {
    for (int half = 0; half < 2; ++half) {
      const __m256i c = _mm256_slli_epi32(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(fix[p].colsum + 8 * half)), 7);
      for (int r = 0; r < R; ++r) {
        out[r][p][half] = _mm256_add_epi32(out[r][p][half], c);
        if (any_corr) {
          out[r][p][half] = _mm256_add_epi32(
              out[r][p][half],
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(corr[r][p] + 8 * half)));
        }
      }
    }
  }
}

// The int32 sums of R activation rows against P consecutive panels (each
// panel_bytes long): out[r][p][0] holds the panel's rows 0-7, [1] rows 8-15.
// Several panels per pass give a single row (a GEMV) enough independent work.
template <class Dot, int R, int P>
void panels_dot(const uint8_t* x, int64_t x_stride, int64_t K, const int8_t* panels,
                int64_t panel_bytes, const PanelFix fix[P], __m256i out[R][P][2]) {
  alignas(32) int32_t corr[R][P][kPanelRows];
  bool any_corr = false;
  if constexpr (Dot::kCentered) any_corr = min_weight_corrections<R, P>(x, x_stride, fix, corr);
  typename Dot::Acc acc[R][P];
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) acc[r][p] = Dot::zero();
  }
  auto step = [&](int64_t g, const uint32_t* v) {
    typename Dot::W w[P];
    for (int p = 0; p < P; ++p) {
      w[p] = Dot::load(panels + p * panel_bytes + g * kPanelRows * kKGroup);
    }
    for (int r = 0; r < R; ++r) {
      const typename Dot::Act a = Dot::act(v[r]);
      for (int p = 0; p < P; ++p) Dot::madd(acc[r][p], a, w[p]);
    }
  };
  const int64_t full = K / kKGroup;
  for (int64_t g = 0; g < full; ++g) {
    uint32_t v[R];
    for (int r = 0; r < R; ++r) std::memcpy(&v[r], x + r * x_stride + g * kKGroup, sizeof(v[r]));
    step(g, v);
  }
  if (const int64_t tail = K % kKGroup) {
    // The packed weights past K are zero; the activations past K may not be ours to read.
    uint32_t v[R] = {};
    for (int r = 0; r < R; ++r) {
      std::memcpy(&v[r], x + r * x_stride + full * kKGroup, static_cast<size_t>(tail));
    }
    step(full, v);
  }
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) Dot::finish(acc[r][p], &out[r][p][0], &out[r][p][1]);
  }
  if constexpr (Dot::kCentered) center_fixup<R, P>(fix, corr, any_corr, out);
}

// Panels per pass: two for a single row, one when a tile of rows already
// gives the loop its independent work (and more would spill registers).
template <int R>
inline constexpr int kPanelsPerPass = R == 1 ? 2 : 1;

// quantize_value on 8 lanes: an integer-valued float in [0, 255].
inline __m256 quantize8(__m256 x, __m256 inv_scale, __m256 zero_point) {
  const __m256 r = _mm256_round_ps(_mm256_mul_ps(x, inv_scale),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // max first: a NaN becomes 0, as fmax(NaN, 0) does in the reference.
  return _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(r, zero_point), _mm256_setzero_ps()),
                       _mm256_set1_ps(255.0f));
}

inline __m256 dequantize8(__m256 q, QParams qp) {
  return _mm256_fmadd_ps(q, _mm256_set1_ps(qp.scale),
                         _mm256_set1_ps(qp.scale * static_cast<float>(-qp.zero_point)));
}

inline __m256 quantize8(__m256 x, float inv_scale, int32_t zero_point) {
  return quantize8(x, _mm256_set1_ps(inv_scale), _mm256_set1_ps(static_cast<float>(zero_point)));
}

inline __m256 load_bytes8(const uint8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

inline void store_bytes8(__m256 v, uint8_t* p) {
  const __m256i i = _mm256_cvtps_epi32(v);
  const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(w, w));
}

// Requantized outputs of packed rows [n, n + 8) from their int32 sums: FBGEMM's
// (float(raw) + bias_term) * multiplier with raw = acc + offset - w_zp * row_sum.
inline __m256 linear_output8(__m256i acc, const LinearRequant& r, const int8_t* w_zp,
                             int64_t n, int32_t x_row_sum) {
  __m256i raw = _mm256_add_epi32(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.offset + n)));
  if (x_row_sum != 0) {
    const __m256i zp = _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w_zp + n)));
    raw = _mm256_sub_epi32(raw, _mm256_mullo_epi32(zp, _mm256_set1_epi32(x_row_sum)));
  }
  const __m256 x = _mm256_add_ps(_mm256_cvtepi32_ps(raw), _mm256_loadu_ps(r.bias_term + n));
  return quantize8(x, _mm256_loadu_ps(r.multiplier + n),
                   _mm256_set1_ps(static_cast<float>(r.output_zero_point)));
}

int32_t row_sum(const uint8_t* x, int64_t k) {
  int32_t s = 0;
  for (int64_t i = 0; i < k; ++i) s += x[i];
  return s;
}

template <class Dot, int R, int P>
void project_panels(const PackedLayer& p, const LinearRequant& r, const uint8_t* x, int64_t row,
                    int64_t panel, const int32_t rs[R], uint8_t* igates) {
  const int64_t K = p.input_size, N = p.rows, panel_bytes = round_up(K, kKGroup) * kPanelRows;
  PanelFix fix[P];
  for (int j = 0; j < P; ++j) {
    fix[j] = panel_fix(p.w_ih_colsum, p.w_ih_min, r, panel + j);
  }
  __m256i raw[R][P][2];
  panels_dot<Dot, R, P>(x + row * K, K, K, p.w_ih + panel * panel_bytes, panel_bytes, fix, raw);
  for (int i = 0; i < R; ++i) {
    for (int j = 0; j < P; ++j) {
      for (int half = 0; half < 2; ++half) {
        const int64_t n = (panel + j) * kPanelRows + half * 8;
        store_bytes8(linear_output8(raw[i][j][half], r, p.w_ih_zp, n, rs[i]),
                     igates + (row + i) * N + n);
      }
    }
  }
}

template <class Dot, int R>
void project_rows(const PackedLayer& p, const LinearRequant& r, const uint8_t* x, int64_t row,
                  int64_t panel_begin, int64_t panel_end, uint8_t* igates) {
  const int64_t K = p.input_size;
  constexpr int P = kPanelsPerPass<R>;
  int32_t rs[R];
  for (int i = 0; i < R; ++i) rs[i] = p.w_ih_has_zp ? row_sum(x + (row + i) * K, K) : 0;
  int64_t panel = panel_begin;
  for (; panel + P <= panel_end; panel += P) {
    project_panels<Dot, R, P>(p, r, x, row, panel, rs, igates);
  }
  for (; panel < panel_end; ++panel) project_panels<Dot, R, 1>(p, r, x, row, panel, rs, igates);
}

// project_rows with R = min(rows, kGemmRows) as a compile-time tile height.
template <class Dot, int R = Dot::kGemmRows>
void project_tile(int64_t rows, const PackedLayer& p, const LinearRequant& r, const uint8_t* x,
                  int64_t row, int64_t panel_begin, int64_t panel_end, uint8_t* igates) {
  if constexpr (R > 1) {
    if (rows < R) return project_tile<Dot, R - 1>(rows, p, r, x, row, panel_begin, panel_end, igates);
  }
  project_rows<Dot, R>(p, r, x, row, panel_begin, panel_end, igates);
}

template <class Dot>
void input_projection_x86(const PackedLayer& p, const LinearRequant& r, const uint8_t* x,
                          int64_t row_begin, int64_t row_end, int64_t panel_begin,
                          int64_t panel_end, uint8_t* igates) {
  // A block of rows (about 32 KB of activations) stays in cache while a few
  // panels at a time (about 16 KB of weights) pass over it, rows inner.
  constexpr int64_t kPanelChunk = 4;
  const int64_t row_block =
      round_up(std::max<int64_t>(Dot::kGemmRows, (int64_t{32} << 10) / p.input_size), Dot::kGemmRows);
  for (int64_t rb = row_begin; rb < row_end; rb += row_block) {
    const int64_t re = std::min(row_end, rb + row_block);
    for (int64_t pc = panel_begin; pc < panel_end; pc += kPanelChunk) {
      const int64_t pe = std::min(panel_end, pc + kPanelChunk);
      for (int64_t row = rb; row < re; row += Dot::kGemmRows) {
        project_tile<Dot>(re - row, p, r, x, row, pc, pe, igates);
      }
    }
  }
}

// The fused element-wise part of a step for 8 hidden units of one batch row.
// hg: the requantized hgates of each gate; ig: igates at the units' gate-i row.
struct Epilogue {
  const PackedLayer& p;
  const CellConstants& cc;
  StepMultipliers m;
  QParams c_prev;

  void operator()(const __m256 hg[4], const uint8_t* ig, const uint8_t* c, uint8_t* h_next,
                  uint8_t* c_next) const {
    const CellQParams& q = p.q;
    __m256i gate[4];
    for (int g = 0; g < 4; ++g) {
      const __m256 sum = _mm256_add_ps(dequantize8(load_bytes8(ig + g * kUnitBlock), q.igates),
                                       dequantize8(hg[g], q.hgates));
      gate[g] = _mm256_cvtps_epi32(quantize8(sum, m.inv_gates, q.gates.zero_point));
    }
    const __m256i tz = _mm256_set1_epi32(kTanhQParams.zero_point);
    const __m256i i = _mm256_i32gather_epi32(cc.sigmoid_gates, gate[kInputGate], 4);
    const __m256i f = _mm256_i32gather_epi32(cc.sigmoid_gates, gate[kForgetGate], 4);
    const __m256i gg = _mm256_i32gather_epi32(cc.tanh_gates, gate[kCellGate], 4);
    const __m256i o = _mm256_i32gather_epi32(cc.sigmoid_gates, gate[kOutputGate], 4);
    const __m256i c_centered = _mm256_sub_epi32(
        _mm256_cvtps_epi32(load_bytes8(c)), _mm256_set1_epi32(c_prev.zero_point));
    // Products of two bytes are exact in float.
    const __m256 fc = quantize8(_mm256_cvtepi32_ps(_mm256_mullo_epi32(f, c_centered)),
                                m.fgate_cx, q.fgate_cx.zero_point);
    const __m256 igc = quantize8(
        _mm256_cvtepi32_ps(_mm256_mullo_epi32(i, _mm256_sub_epi32(gg, tz))), m.igate_cgate,
        q.igate_cgate.zero_point);
    const __m256 c_new = quantize8(
        _mm256_add_ps(dequantize8(fc, q.fgate_cx), dequantize8(igc, q.igate_cgate)), m.inv_cell,
        q.cell.zero_point);
    const __m256i tc = _mm256_i32gather_epi32(cc.tanh_cell, _mm256_cvtps_epi32(c_new), 4);
    const __m256 h = quantize8(_mm256_cvtepi32_ps(_mm256_mullo_epi32(o, _mm256_sub_epi32(tc, tz))),
                               m.hidden, q.hidden.zero_point);
    store_bytes8(c_new, c_next);
    store_bytes8(h, h_next);
  }
};

// One unit block of one step for batch rows [b, b + R).
template <class Dot, int R>
void step_rows(const PackedLayer& p, const LinearRequant& hh, const Epilogue& epilogue,
               const uint8_t* igates, const StepState& s, int64_t b, int64_t block,
               uint8_t* h_next, uint8_t* c_next) {
  const int64_t H = p.hidden_size, N = p.rows, panel_bytes = round_up(H, kKGroup) * kPanelRows;
  int32_t rs[R];
  for (int i = 0; i < R; ++i) rs[i] = p.w_hh_has_zp ? row_sum(s.h + (b + i) * H, H) : 0;
  __m256 hg[R][2][4];
  constexpr int P = kPanelsPerPass<R>;
  for (int g = 0; g < 4; g += P) {
    const int64_t panel = 4 * block + g;
    PanelFix fix[P];
    for (int j = 0; j < P; ++j) {
      fix[j] = panel_fix(p.w_hh_colsum, p.w_hh_min, hh, panel + j);
    }
    __m256i raw[R][P][2];
    panels_dot<Dot, R, P>(s.h + b * H, H, H, p.w_hh + panel * panel_bytes, panel_bytes, fix,
                          raw);
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < P; ++j) {
        for (int half = 0; half < 2; ++half) {
          hg[i][half][g + j] = linear_output8(raw[i][j][half], hh, p.w_hh_zp,
                                              (panel + j) * kPanelRows + half * 8, rs[i]);
        }
      }
    }
  }
  const int64_t u0 = block * kUnitBlock;
  for (int i = 0; i < R; ++i) {
    const uint8_t* ig = igates + (b + i) * N + 4 * u0;
    const int64_t row = (b + i) * H;
    for (int half = 0; half < 2; ++half) {
      const int64_t u = u0 + half * 8;
      if (u + 8 <= H) {
        epilogue(hg[i][half], ig + half * 8, s.c + row + u, h_next + row + u, c_next + row + u);
      } else if (u < H) {
        // The last units of a hidden size that is not a multiple of 8: stage
        // them so that no byte past the state rows is read or written.
        uint8_t c[8] = {}, hn[8], cn[8];
        const size_t n = static_cast<size_t>(H - u);
        std::memcpy(c, s.c + row + u, n);
        epilogue(hg[i][half], ig + half * 8, c, hn, cn);
        std::memcpy(h_next + row + u, hn, n);
        std::memcpy(c_next + row + u, cn, n);
      }
    }
  }
}

template <class Dot, int R = Dot::kGemmRows>
void step_tile(int64_t rows, const PackedLayer& p, const LinearRequant& hh,
               const Epilogue& epilogue, const uint8_t* igates, const StepState& s, int64_t b,
               int64_t block, uint8_t* h_next, uint8_t* c_next) {
  if constexpr (R > 1) {
    if (rows < R) {
      return step_tile<Dot, R - 1>(rows, p, hh, epilogue, igates, s, b, block, h_next, c_next);
    }
  }
  step_rows<Dot, R>(p, hh, epilogue, igates, s, b, block, h_next, c_next);
}

template <class Dot>
void lstm_step_x86(const PackedLayer& p, const LinearRequant& hh, const CellConstants& cc,
                   const uint8_t* igates, const StepState& s, int64_t b_begin, int64_t b_end,
                   int64_t block_begin, int64_t block_end, uint8_t* h_next, uint8_t* c_next) {
  const Epilogue epilogue{p, cc, step_multipliers(p.q, s.c_qparams), s.c_qparams};
  // Batch tiles inner: a block's weights are read from memory once per step
  // and stay in cache while every tile of the batch passes.
  for (int64_t block = block_begin; block < block_end; ++block) {
    for (int64_t b = b_begin; b < b_end; b += Dot::kGemmRows) {
      step_tile<Dot>(b_end - b, p, hh, epilogue, igates, s, b, block, h_next, c_next);
    }
  }
}

// The parts of a 256-bit Dot policy that hold a panel as two registers,
// rows 0-7 and 8-15, one row's 4 k per 32-bit lane.
struct TwoHalves256 {
  struct W {
    __m256i q[2];
  };
  struct Acc {
    __m256i q[2];
  };
  static W load(const int8_t* w) {
    return W{{_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)),
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32))}};
  }
  static Acc zero() { return Acc{{_mm256_setzero_si256(), _mm256_setzero_si256()}}; }
  static void finish(const Acc& a, __m256i* rows0_7, __m256i* rows8_15) {
    *rows0_7 = a.q[0];
    *rows8_15 = a.q[1];
  }
};

// Calls step() (macs_per_call multiply-accumulates on registers) until
// `seconds` have passed; returns multiply-accumulates per second.
template <class Step>
double time_peak(double seconds, double macs_per_call, Step&& step) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  double elapsed = 0;
  int64_t calls = 0;
  do {
    for (int i = 0; i < 1024; ++i) step();
    calls += 1024;
    elapsed = std::chrono::duration<double>(clock::now() - start).count();
  } while (elapsed < seconds);
  return static_cast<double>(calls) * macs_per_call / elapsed;
}

template <class Dot>
KernelSet make_kernel_set(const char* name, double (*peak)(double)) {
  return KernelSet{name, input_projection_x86<Dot>, lstm_step_x86<Dot>, peak};
}

}  // namespace
}  // namespace qlstm

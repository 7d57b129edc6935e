// The kernels of one instruction set behind a table of function pointers,
// the instruction sets this build knows, and which of them this CPU runs.
#pragma once

#include <cstdint>

#include "packed_format.h"
#include "requant.h"

namespace qlstm {

// Rows of a linear (KernelSet::linear, byte outputs) that a batch-1 step
// computes beside its own product, with kernel sets whose rider_rows > 0:
// x's rider_rows rows ([rider_rows][m->K]) against m's panels
// [panel_begin, panel_end), into out ([rider_rows][m->rows]), the same bytes
// as linear. A single row's W_hh product streams the weights from the cache
// and leaves most multiplies idle; the next steps' input projection, which
// multiplies each weight it reads by rider_rows rows, fills them. Unit block
// i of a step's nb takes its share of the panels, [n * i / nb, n * (i + 1) / nb)
// of the n, so that any split of the blocks computes each panel once.
struct StepRider {
  const PackedMatrix* m;
  const LinearRequant* r;
  const uint8_t* x;
  int64_t panel_begin, panel_end;
  uint8_t* out;
};

// State of one recurrent step: the previous h and c with their qparams.
struct StepState {
  const uint8_t* h;  // [B][p.h_size()]
  const uint8_t* c;  // [B][H]
  QParams c_qparams;
  // Walk the unit blocks from the last: successive steps of a time loop
  // alternate, so that a step starts on the weights the previous one read
  // last, which are still in cache when W_hh is about the cache's size.
  bool descending = false;
  // Panels of another linear to compute beside the step (batch 1 only), or none.
  const StepRider* rider = nullptr;
};

// State of one step of a layer in the accurate mode (float cell): h as the
// bytes the recurrent product multiplies (the layer's hidden qparams) and c in float.
struct FloatStepState {
  const uint8_t* h;  // [B][p.hh.K]
  const float* c;    // [B][H]
  bool descending = false;  // as StepState's
};

// The kernels of one instruction set. Work is split over rows (timesteps x
// batch, or batch) and over panels (input projection) or unit blocks (step);
// time stays sequential. Every set gives the scalar reference's results bit
// for bit.
struct KernelSet {
  const char* name;
  // out[r][n] = x * m^T requantized, for rows [row_begin, row_end) of x
  // ([rows][m.K]) and packed rows n in panels [panel_begin, panel_end): the
  // input projection (igates, m = W_ih) and a layer's projection (m = W_hr).
  void (*linear)(const PackedMatrix& m, const LinearRequant& r, const uint8_t* x,
                 int64_t row_begin, int64_t row_end, int64_t panel_begin, int64_t panel_end,
                 uint8_t* out /*[rows][m.rows]*/);
  // One timestep for batch rows [b_begin, b_end) and unit blocks
  // [block_begin, block_end): hgates = h * w_hh^T, then gates, sigmoid/tanh,
  // the cell update and hidden = o * tanh(c) (the new h, or the projection's
  // input), fused. hh must have been prepared with the qparams of state.h.
  void (*lstm_step)(const PackedLayer& p, const LinearRequant& hh, const CellConstants& cc,
                    const uint8_t* igates /*[B][p.rows]*/, const StepState& state,
                    int64_t b_begin, int64_t b_end, int64_t block_begin, int64_t block_end,
                    uint8_t* h_next /*[B][H]*/, uint8_t* c_next /*[B][H]*/);
  // The accurate mode (float_cell.h): linear's sums as floats,
  // (float(sum) + bias_term) * multiplier with r prepared for an output scale
  // of 1; and the step with float gates and cell, writing the new h as
  // floats and as bytes quantized with h_q (what the next step multiplies).
  void (*linear_float)(const PackedMatrix& m, const LinearRequant& r, const uint8_t* x,
                       int64_t row_begin, int64_t row_end, int64_t panel_begin,
                       int64_t panel_end, float* out /*[rows][m.rows]*/);
  void (*lstm_step_float)(const PackedLayer& p, const LinearRequant& hh, QParams h_q,
                          const float* igates /*[B][p.rows]*/, const FloatStepState& state,
                          int64_t b_begin, int64_t b_end, int64_t block_begin,
                          int64_t block_end, float* h_next /*[B][H]*/,
                          uint8_t* h_next_bytes /*[B][H]*/, float* c_next /*[B][H]*/);
  // quantize / dequantize of quantize.h, the same bytes and floats.
  void (*quantize)(const float* x, int64_t n, QParams q, uint8_t* out);
  void (*dequantize)(const uint8_t* x, int64_t n, QParams q, float* out);
  // The rows of a StepRider that lstm_step takes, or 0 when it takes none.
  int64_t rider_rows;
};

enum class Isa { kScalar, kAvx2, kAvxVnni, kAvx512Vnni, kAvx512VnniVbmi, kNeon, kNeonDot };

const KernelSet& scalar_kernels();
// The kernels of `isa`, or nullptr when this build has none for it.
const KernelSet* kernels_for(Isa isa);
// Whether this CPU (and OS) can run `isa`'s kernels.
bool cpu_supports(Isa isa);
const char* isa_name(Isa isa);
// Parses "scalar", "avx2", "avx_vnni", "avx512_vnni", "avx512_vnni_vbmi", "neon", "neon_dot";
// returns false for an unknown name.
bool parse_isa(const char* name, Isa* out);
// All ISAs in order of preference within an architecture, best last.
inline constexpr Isa kAllIsas[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512Vnni,
                                   Isa::kAvx512VnniVbmi,
                                   Isa::kNeon, Isa::kNeonDot};
// The best ISA this CPU can run that this build has kernels for.
Isa best_isa();

}  // namespace qlstm

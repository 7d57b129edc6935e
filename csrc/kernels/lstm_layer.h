// Running one layer-direction over a sequence with a kernel set: the input
// projection of every timestep, then the recurrent steps, each split into
// independent tasks over the caller's threads. Torch-free: the caller
// supplies the parallel loop (ATen's in the ops, std::thread in the C++ tests).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "kernel_set.h"

namespace qlstm {

// How the caller runs independent tasks: `run(n, grain, task)` calls
// task(begin, end) over disjoint ranges covering [0, n), each at least `grain`
// long but the last, possibly concurrently, and returns when all are done.
struct Parallel {
  int64_t threads;
  std::function<void(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& task)>
      run;
};
// One thread: task(0, n).
Parallel serial_parallel();

// Requantization constants of one linear for one call, owned here so that the
// kernels see plain arrays and nothing is allocated inside the time loop.
// Every array is 4-byte values, carved from one allocation (a call prepares
// two or three of these, and at small sizes the allocations show).
struct LinearRequantStorage {
  std::unique_ptr<unsigned char[]> storage;
  LinearRequant r{};

  LinearRequantStorage(const PackedMatrix& m, QParams input, const QParams output[kNumGates]);
  // r points into the vectors above: a copy would point into the original's.
  LinearRequantStorage(const LinearRequantStorage&) = delete;
  LinearRequantStorage& operator=(const LinearRequantStorage&) = delete;
};

// out ([rows][m.rows]) = x ([rows][m.K]) * m^T, requantized with r (or, into
// floats, the accurate mode's unrounded outputs).
void run_linear(const KernelSet& k, const PackedMatrix& m, const LinearRequant& r,
                const uint8_t* x, int64_t rows, uint8_t* out, const Parallel& par);
void run_linear(const KernelSet& k, const PackedMatrix& m, const LinearRequant& r,
                const uint8_t* x, int64_t rows, float* out, const Parallel& par);

// igates ([rows][p.rows]) of x ([rows][input_size]) with qparams x_q.
void run_input_projection(const KernelSet& k, const PackedLayer& p, QParams x_q, const uint8_t* x,
                          int64_t rows, uint8_t* igates, const Parallel& par);

// Rows of igates (N values of value_bytes each) that run_direction and
// run_direction_float project at a time: a chunk of consecutive steps, at
// least one step of B rows.
int64_t igates_chunk_rows(int64_t B, int64_t N, int64_t value_bytes);

// One step for the whole batch; hh must have been prepared for s.h's qparams.
// Writes the new c and hidden = o * tanh(c) ([batch][H] each): the new h, or
// with a projection what project_hidden takes.
void run_step(const KernelSet& k, const PackedLayer& p, const LinearRequant& hh,
              const CellConstants& cc, const uint8_t* igates, const StepState& s, int64_t batch,
              uint8_t* hidden, uint8_t* c_next, const Parallel& par);

// A layer's projection, h = hidden * W_hr^T in the projection qparams, for
// `batch` rows of hidden ([batch][H]) into h ([batch][proj_size]).
class Projection {
 public:
  explicit Projection(const PackedLayer& p);
  void run(const KernelSet& k, const uint8_t* hidden, int64_t batch, uint8_t* h,
           const Parallel& par);

 private:
  const PackedLayer& p_;
  LinearRequantStorage hr_;
  std::vector<uint8_t> out_;  // [batch][hr.rows], the padding rows dropped when copied to h
};

// quantize / dequantize of n values with a kernel set, split over the
// caller's threads.
void run_quantize(const KernelSet& k, const float* x, int64_t n, QParams q, uint8_t* out,
                  const Parallel& par);
void run_dequantize(const KernelSet& k, const uint8_t* x, int64_t n, QParams q, float* out,
                    const Parallel& par);

// Lookup table for requantizing from -> to, or null when they are the same.
struct RequantTable {
  uint8_t table[256];
  bool identity;
  RequantTable(QParams from, QParams to);
  const uint8_t* get() const { return identity ? nullptr : table; }
};

struct InitialState {
  const uint8_t* h;  // [B][p.h_size()], or nullptr for zeros (bytes equal to h_q's zero point)
  QParams h_q;
  const uint8_t* c;
  QParams c_q;
};

// The time structure of a batch of B sequences over T steps. Uniform
// (batch_sizes null): every sequence has T steps, rows of step t are
// [t * B, t * B + B). Packed (PackedSequence's layout): sequences sorted by
// length, longest first; batch_sizes[t] of them have a step t, and its rows
// follow those of the steps before it. A sequence's forward direction ends at
// its own last step, its reverse direction starts there.
struct Steps {
  int64_t T, B;
  const int64_t* batch_sizes;  // [T], non-increasing, in [0, B]; or nullptr

  int64_t at(int64_t t) const { return batch_sizes ? batch_sizes[t] : B; }
  // Rows of all steps (the sum of batch_sizes, or T * B).
  int64_t rows() const;
};

// How many parts of the batch run_direction hands to the threads, each with
// the whole time loop, or 1 to split each step instead. A sequence's steps
// depend on its own state only, so parts of the batch need no meeting per
// step, where a split step forks and joins its threads once a step (about
// 3 us on 2 cores of a shared VM: a fifth of a step at size 256, batch 8).
// Each part multiplies all of W_hh at every step, so only while W_hh is
// small: up to 512 KB for any batch, up to 2 MB when each part gets 4
// sequences or more.
int64_t sequence_parts(const PackedLayer& p, const Steps& steps, const Parallel& par);

struct DirectionResult {
  std::vector<uint8_t> h, c;
  QParams h_q, c_q;
};

// Runs one layer-direction over x ([steps.rows()][I]); writes the h of each
// row into out[row][out_offset : out_offset + p.h_size()] (row length out_width),
// through `out_table`. With packed steps the initial state must come in the
// layer's own hidden and cell qparams: rows that wait or have ended keep
// theirs while the others step.
DirectionResult run_direction(const KernelSet& k, const PackedLayer& p, const uint8_t* x,
                              QParams x_q, const Steps& steps, bool reverse,
                              const InitialState& init, uint8_t* out, int64_t out_width,
                              int64_t out_offset, const uint8_t* out_table, const Parallel& par);

// The accurate mode's run_direction (a layer packed with q.accurate): float
// gates and cell, h as floats and, for the recurrent product, as bytes in the
// layer's hidden qparams. The initial h and c are floats ([B][H] each, or
// nullptr for zeros); rows that wait or have ended keep theirs. Writes the h
// of each row into out[row][out_offset : out_offset + H] (row length
// out_width) when out is given, and quantized with out_q into out_bytes (same
// layout) when that is given: the next layer's input.
struct FloatInitialState {
  const float* h;
  const float* c;
};
struct FloatDirectionResult {
  std::vector<float> h, c;
};
FloatDirectionResult run_direction_float(const KernelSet& k, const PackedLayer& p,
                                         const uint8_t* x, QParams x_q, const Steps& steps,
                                         bool reverse, const FloatInitialState& init, float* out,
                                         uint8_t* out_bytes, QParams out_q, int64_t out_width,
                                         int64_t out_offset, const Parallel& par);

// Writes one direction's final h or c into h_n / c_n as PyTorch's module does:
// a bidirectional layer stacks its directions into the forward one's qparams
// (layer_q) first, then the layers are stacked into layer 0's (out_q). Each
// stack of quantized tensors requantizes, so the two steps are not one.
void stack_final_state(const uint8_t* state, QParams state_q, QParams layer_q, QParams out_q,
                       int64_t n, uint8_t* dst);

}  // namespace qlstm

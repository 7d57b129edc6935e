// Random packed layers and runs of the layer driver, for the kernel tests.
#pragma once

#include <cstdlib>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernel_set.h"
#include "lstm_layer.h"
#include "packed_format.h"

namespace qlstm::testing {

// What a random layer holds.
struct LayerSpec {
  int64_t input_size, hidden_size;
  bool per_channel = true;
  bool zero_points = false;  // nonzero weight zero points
  bool bias = true;
  uint32_t seed = 1;
  // Scales that are powers of two, so that requantized values often fall
  // exactly halfway and the rounding mode shows.
  bool power_of_two_scales = false;
  // Per-gate igates/hgates/gates qparams and, per tensor, per-gate weight scales.
  bool split_gates = false;
  // A projection W_hr [proj_size][hidden_size] (0: none).
  int64_t proj_size = 0;
  // Every weight of every matrix this value, instead of random ones.
  std::optional<int8_t> all_weights = std::nullopt;
  // Random weights in [-b, b] (more of -b and b than chance gives), instead of [-128, 127].
  std::optional<int> weight_bound = std::nullopt;
  // Packed for the accurate mode (float gates and cell; no split gates or projection).
  bool accurate = false;
};

// A 64-byte aligned copy of a blob (as pack_layer writes and the ops pass them).
class AlignedBlob {
 public:
  explicit AlignedBlob(size_t size);  // zeros
  AlignedBlob(const uint8_t* data, size_t size);
  uint8_t* data() const { return data_; }

 private:
  std::vector<uint8_t> storage_;
  uint8_t* data_;
};

// A packed layer with the unpacked weights it came from.
class RandomLayer {
 public:
  explicit RandomLayer(const LayerSpec& spec);
  const PackedLayer& view() const { return view_; }
  const std::vector<int8_t>& w_ih() const { return w_ih_; }
  const std::vector<int8_t>& w_hh() const { return w_hh_; }
  const std::vector<int8_t>& w_hr() const { return w_hr_; }
  const std::vector<float>& w_hr_scale() const { return w_hr_scale_; }
  const std::vector<float>& w_ih_scale() const { return w_ih_scale_; }
  const std::vector<int32_t>& w_ih_zp() const { return w_ih_zp_; }
  const std::vector<float>& b_ih() const { return b_ih_; }
  const CellQParams& qparams() const { return q_; }
  const uint8_t* blob() const { return blob_->data(); }
  size_t blob_size() const { return size_; }

 private:
  std::vector<int8_t> w_ih_, w_hh_, w_hr_;
  std::vector<float> w_ih_scale_, w_hh_scale_, w_hr_scale_, b_ih_, b_hh_;
  std::vector<int32_t> w_ih_zp_, w_hh_zp_, w_hr_zp_;
  CellQParams q_{};
  std::unique_ptr<AlignedBlob> blob_;
  size_t size_ = 0;
  PackedLayer view_{};
};

// Random bytes; with `extremes`, only 0, 1, 127, 128 and 255.
std::vector<uint8_t> random_bytes(size_t n, uint32_t seed, bool extremes = false);

// Runs tasks on `threads` std::threads (the calling one included).
Parallel thread_parallel(int threads);

// Everything one run_direction call produces.
struct RunResult {
  std::vector<uint8_t> out;
  DirectionResult final_state;
};
RunResult run_layer(const KernelSet& k, const PackedLayer& p, const std::vector<uint8_t>& x,
                    QParams x_q, int64_t T, int64_t B, bool reverse, const InitialState& init,
                    const Parallel& par);

// Everything one run_direction_float call produces: the h of every row as
// floats and quantized with out_q, and the final float h and c.
struct FloatRunResult {
  std::vector<float> out;
  std::vector<uint8_t> out_bytes;
  FloatDirectionResult final_state;
};
FloatRunResult run_layer_float(const KernelSet& k, const PackedLayer& p,
                               const std::vector<uint8_t>& x, QParams x_q, int64_t T, int64_t B,
                               bool reverse, const FloatInitialState& init, QParams out_q,
                               const Parallel& par);

// The set QLSTM_ISA names, if it is set (an unknown name throws).
std::optional<Isa> forced_isa();

// The kernel sets under test besides the scalar reference: the forced one,
// otherwise every set this build has and this CPU can run. Only sets this CPU
// can run: a forced one it cannot run fails KernelSets.UnderTestRunHere.
std::vector<Isa> isas_under_test();

}  // namespace qlstm::testing

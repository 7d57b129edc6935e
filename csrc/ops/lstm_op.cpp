// qlstm::quantized_lstm (whole sequences, all layers and directions) and
// qlstm::quantized_lstm_cell (one step, for streaming).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../kernels/lstm_layer.h"
#include "checks.h"
#include "isa.h"

namespace qlstm::ops {
namespace {

void check_layer_count(at::TensorList params, int64_t num_layers, bool bidirectional) {
  TORCH_CHECK_VALUE(num_layers >= 1, "qlstm: num_layers must be >= 1, got ", num_layers);
  const int64_t D = bidirectional ? 2 : 1;
  // Compared by division: a huge num_layers must not wrap num_layers * D.
  const int64_t n = static_cast<int64_t>(params.size());
  TORCH_CHECK_VALUE(n % D == 0 && n / D == num_layers, "qlstm: params must hold num_layers * ",
                    "num_directions = ", num_layers, " * ", D, " packed layers, got ", n);
}

// The packed layers of one call, validated against each other and the input,
// and the call's time structure.
struct CheckedLstm {
  std::vector<at::Tensor> blobs;  // keeps what the views point into alive
  std::vector<PackedLayer> layers;
  int64_t T, B, D, H, num_layers;
  int64_t S;  // the size of h: proj_size, or H without a projection
  bool accurate;  // the layers' mode: all the same
  std::vector<int64_t> batch_sizes;  // empty: every sequence has T steps

  Steps steps() const { return Steps{T, B, batch_sizes.empty() ? nullptr : batch_sizes.data()}; }
};

// `features`: the input's feature size; `rows`: its rows over all steps.
CheckedLstm checked_lstm(const char* op, const at::Tensor& input, int64_t features, int64_t T,
                         int64_t B, int64_t rows, at::TensorList params, int64_t hidden_size,
                         int64_t num_layers, bool bidirectional, int64_t proj_size) {
  check_layer_count(params, num_layers, bidirectional);
  TORCH_CHECK_VALUE(proj_size >= 0, "qlstm: proj_size must be >= 0, got ", proj_size);
  CheckedLstm c;
  c.D = bidirectional ? 2 : 1;
  c.H = hidden_size;
  c.num_layers = num_layers;
  c.T = T;
  c.B = B;
  c.blobs.resize(params.size());
  c.layers.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    c.layers[i] = checked_packed_layer(params[i], "params[" + std::to_string(i) + "]", &c.blobs[i]);
  }
  for (size_t i = 0; i < c.layers.size(); ++i) {
    TORCH_CHECK_VALUE(c.layers[i].hidden_size == c.H, "qlstm: params[", i, "] has hidden_size ",
                      c.layers[i].hidden_size, ", expected hidden_size = ", c.H);
    TORCH_CHECK_VALUE(c.layers[i].proj_size == proj_size, "qlstm: params[", i, "] has proj_size ",
                      c.layers[i].proj_size, ", expected proj_size = ", proj_size,
                      " (0: no projection)");
  }
  c.S = proj_size > 0 ? proj_size : c.H;
  c.accurate = c.layers[0].q.accurate;
  for (size_t i = 1; i < c.layers.size(); ++i) {
    TORCH_CHECK_VALUE(c.layers[i].q.accurate == c.accurate, "qlstm: params[", i, "] was packed ",
                      "in mode \"", c.layers[i].q.accurate ? "accurate" : "torch",
                      "\", expected every layer in params[0]'s mode \"",
                      c.accurate ? "accurate" : "torch", "\"");
  }
  for (size_t i = 0; i < c.layers.size(); ++i) {
    // S now is a packed layer's, at most kMaxInnerDim: D * S cannot wrap.
    const bool first = i < static_cast<size_t>(c.D);
    const int64_t expected_in = first ? features : c.D * c.S;
    TORCH_CHECK_VALUE(c.layers[i].input_size == expected_in, "qlstm: params[", i,
                      "] expects input size ", c.layers[i].input_size, ", got ", expected_in,
                      first ? " (input.size(-1))"
                      : proj_size > 0 ? " (num_directions * proj_size)"
                                      : " (num_directions * hidden_size)");
  }
  // The input's copy, one direction's chunk of igates, two layer outputs and
  // the states; the accurate mode's are floats.
  const int64_t width = c.accurate ? 4 : 1;
  const int64_t N = c.layers[0].rows;
  check_memory(op, {{input.numel(), input.element_size()},
                    {std::min(rows, igates_chunk_rows(B, N, width)), N, width},
                    {2, rows, c.D, c.S, width},
                    {8, num_layers, c.D, c.B, c.H, width}});
  return c;
}

// What the ops with uint8 states say of accurate-mode layers, whose states are float.
void check_torch_mode(bool accurate, const char* op) {
  TORCH_CHECK_VALUE(!accurate, "qlstm: params hold layers packed in mode \"accurate\", whose h ",
                    "and c are float32: ", op, " takes uint8 states (mode \"torch\"); run them ",
                    "with quantized_lstm_float or quantized_lstm_packed");
}

// h_n's and c_n's shapes: [num_layers * D, B, S] and [num_layers * D, B, H].
std::vector<int64_t> state_shape(const CheckedLstm& c, bool cell) {
  return {c.num_layers * c.D, c.B, cell ? c.H : c.S};
}

// The bytes a call reads: a uint8 argument's own (contiguous), or what the
// call quantized from a float one into a buffer of its own, which costs less
// than a tensor (the per-call cost of streaming); or none.
struct Bytes {
  at::Tensor tensor;
  std::vector<uint8_t> owned;

  const uint8_t* data() const {
    return tensor.defined() ? tensor.const_data_ptr<uint8_t>()
                            : owned.empty() ? nullptr : owned.data();
  }
};

// An initial state and the qparams of each of its layer-directions. None
// means zeros quantized with (1.0, 0), as PyTorch does.
struct State {
  Bytes bytes;                   // [num_layers * D][B][H], or none
  std::vector<QParams> qparams;  // one per layer-direction
};

State uint8_state(const c10::optional<at::Tensor>& s, const char* name, const CheckedLstm& c,
                  bool cell, double scale, int64_t zero_point) {
  State st{Bytes{}, std::vector<QParams>(c.layers.size(), QParams{1.0f, 0})};
  if (!s.has_value()) return st;
  check_activation(*s, name, 3);
  check_shape(*s, name, state_shape(c, cell));
  st.bytes.tensor = s->contiguous();
  std::fill(st.qparams.begin(), st.qparams.end(), checked_qparams(name, scale, zero_point));
  return st;
}

// A float32 state argument, checked and contiguous, or none.
c10::optional<at::Tensor> checked_float_state(const c10::optional<at::Tensor>& s, const char* name,
                                              const CheckedLstm& c, bool cell) {
  if (!s.has_value()) return c10::nullopt;
  check_cpu(*s, name);
  check_dtype(*s, name, at::kFloat);
  check_shape(*s, name, state_shape(c, cell));
  return s->contiguous();
}

// A float32 initial state, each layer-direction quantized with its own hidden
// (or cell) qparams, which is what that layer-direction's final state comes in.
State float_state(const c10::optional<at::Tensor>& s, const char* name, const CheckedLstm& c,
                  bool cell) {
  State st{Bytes{}, std::vector<QParams>(c.layers.size(), QParams{1.0f, 0})};
  if (!s.has_value()) return st;
  const at::Tensor f = *checked_float_state(s, name, c, cell);
  const int64_t n = c.B * (cell ? c.H : c.S);
  std::vector<uint8_t>& bytes = st.bytes.owned;
  bytes.resize(static_cast<size_t>(f.numel()));
  for (size_t i = 0; i < c.layers.size(); ++i) {
    st.qparams[i] = cell ? c.layers[i].q.cell : c.layers[i].q.h();
    run_quantize(current_kernels(), f.const_data_ptr<float>() + i * n, n, st.qparams[i],
                 bytes.data() + i * n, aten_parallel());
  }
  return st;
}

InitialState initial_state(const State& h0, const State& c0, size_t index, const CheckedLstm& c) {
  const int64_t h_n = c.B * c.S, c_n = c.B * c.H;
  const uint8_t *h = h0.bytes.data(), *cs = c0.bytes.data();
  return InitialState{h ? h + index * h_n : nullptr, h0.qparams[index],
                      cs ? cs + index * c_n : nullptr, c0.qparams[index]};
}

// The outputs of the layers between the first and the last: two buffers in
// turn, so that the one a layer reads (the previous layer's) stays whole while
// it writes the other; the last layer writes to the caller's rows, and the
// buffer it does not read is freed first, so at most two layer outputs live.
class InnerLayerOutputs {
 public:
  explicit InnerLayerOutputs(size_t bytes) : bytes_(bytes) {}

  // Layer l's output buffer, or nullptr for the last layer.
  uint8_t* of_layer(int64_t l, int64_t num_layers) {
    std::vector<uint8_t>& buffer = buffers_[l % 2];
    if (l + 1 == num_layers) {
      std::vector<uint8_t>().swap(buffer);
      return nullptr;
    }
    buffer.resize(bytes_);
    return buffer.data();
  }

 private:
  size_t bytes_;
  std::vector<uint8_t> buffers_[2];
};

// The qparams of the output rows (the last layer's forward h qparams) and
// every layer-direction's final state in its own qparams.
struct LstmRun {
  QParams output_q;
  std::vector<DirectionResult> finals;
};

// x: uint8 rows of every step, [steps.rows()][input_size]; out: the last
// layer's output rows, [steps.rows()][D * S].
LstmRun run_lstm(const CheckedLstm& c, const uint8_t* x, QParams x_q, const State& h0,
                 const State& c0, uint8_t* out) {
  const KernelSet& k = current_kernels();
  const Parallel par = aten_parallel();
  InnerLayerOutputs inner(static_cast<size_t>(c.steps().rows() * c.D * c.S));
  LstmRun run;
  const uint8_t* layer_in = x;
  QParams layer_in_q = x_q;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    uint8_t* const between = inner.of_layer(l, c.num_layers);
    uint8_t* const layer_out = between ? between : out;
    // Like ATen's cat of quantized tensors, a bidirectional layer's output
    // takes the qparams of its forward direction.
    const QParams fw_h_q = c.layers[l * c.D].q.h();
    for (int64_t d = 0; d < c.D; ++d) {
      const size_t idx = static_cast<size_t>(l * c.D + d);
      const PackedLayer& p = c.layers[idx];
      const RequantTable to_fw(p.q.h(), fw_h_q);
      run.finals.push_back(run_direction(k, p, layer_in, layer_in_q, c.steps(),
                                         /*reverse=*/d == 1, initial_state(h0, c0, idx, c),
                                         layer_out, c.D * c.S, d * c.S, to_fw.get(), par));
    }
    layer_in = layer_out;
    layer_in_q = fw_h_q;
  }
  run.output_q = layer_in_q;
  return run;
}

// The accurate mode's run_lstm: float output rows ([steps.rows()][D * H]) and
// float h_n and c_n, each layer-direction's own. A layer's input is the
// previous layer's h quantized with the qparams of its forward direction's hidden.
std::tuple<at::Tensor, at::Tensor, at::Tensor> run_lstm_float_cell(
    const CheckedLstm& c, const uint8_t* x, QParams x_q, const c10::optional<at::Tensor>& h0_arg,
    const c10::optional<at::Tensor>& c0_arg) {
  const c10::optional<at::Tensor> h0 = checked_float_state(h0_arg, "h0", c, /*cell=*/false);
  const c10::optional<at::Tensor> c0 = checked_float_state(c0_arg, "c0", c, /*cell=*/true);
  const KernelSet& k = current_kernels();
  const Parallel par = aten_parallel();
  const int64_t rows = c.steps().rows(), n = c.B * c.H, width = c.D * c.H;
  at::Tensor output = at::empty({rows, width}, at::kFloat);
  at::Tensor h_n = at::empty(state_shape(c, false), at::kFloat);
  at::Tensor c_n = at::empty(state_shape(c, true), at::kFloat);
  InnerLayerOutputs inner(static_cast<size_t>(rows * width));
  const uint8_t* layer_in = x;
  QParams layer_in_q = x_q;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const bool last = l + 1 == c.num_layers;
    uint8_t* const next_in = inner.of_layer(l, c.num_layers);
    const QParams next_q = c.layers[l * c.D].q.hidden;
    for (int64_t d = 0; d < c.D; ++d) {
      const int64_t idx = l * c.D + d;
      const FloatInitialState init{h0 ? h0->const_data_ptr<float>() + idx * n : nullptr,
                                   c0 ? c0->const_data_ptr<float>() + idx * n : nullptr};
      const FloatDirectionResult r = run_direction_float(
          k, c.layers[idx], layer_in, layer_in_q, c.steps(), /*reverse=*/d == 1, init,
          last ? output.data_ptr<float>() : nullptr, next_in, next_q, width, d * c.H, par);
      std::copy(r.h.begin(), r.h.end(), h_n.data_ptr<float>() + idx * n);
      std::copy(r.c.begin(), r.c.end(), c_n.data_ptr<float>() + idx * n);
    }
    if (!last) {
      layer_in = next_in;
      layer_in_q = next_q;
    }
  }
  return {output, h_n, c_n};
}

// The accurate mode's input: float32, which the call quantizes.
void check_float_input(bool floating, const char* name) {
  TORCH_CHECK_TYPE(floating, "qlstm: ", name, " must be a Float tensor for layers packed in mode "
                   "\"accurate\" (they output float32), got Byte");
}

// A [T, B, I] (or [B, T, I]) input as contiguous time-major rows, [T * B, I].
at::Tensor time_major_rows(const at::Tensor& input, bool batch_first) {
  const at::Tensor x = (batch_first ? input.transpose(0, 1) : input).contiguous();
  return x.view({x.size(0) * x.size(1), x.size(2)});
}

// [T * B, D * S] output rows as [T, B, D * S], transposed when batch_first.
at::Tensor sequence_output(const at::Tensor& rows, const CheckedLstm& c, bool batch_first) {
  const at::Tensor time_major = rows.view({c.T, c.B, rows.size(1)});
  return batch_first ? time_major.transpose(0, 1) : time_major;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> quantized_lstm_cpu(
    const at::Tensor& input, double input_scale, int64_t input_zero_point,
    const c10::optional<at::Tensor>& h0_arg, double h0_scale, int64_t h0_zero_point,
    const c10::optional<at::Tensor>& c0_arg, double c0_scale, int64_t c0_zero_point,
    at::TensorList params, int64_t hidden_size, int64_t num_layers, bool bidirectional,
    bool batch_first, int64_t proj_size) {
  check_activation(input, "input", 3);
  const QParams x_q = checked_qparams("input", input_scale, input_zero_point);
  const int64_t T = input.size(batch_first ? 1 : 0), B = input.size(batch_first ? 0 : 1);
  const CheckedLstm c = checked_lstm("this quantized_lstm call", input, input.size(2), T, B, T * B,
                                     params, hidden_size, num_layers, bidirectional, proj_size);
  check_torch_mode(c.accurate, "quantized_lstm");
  const State h0 = uint8_state(h0_arg, "h0", c, /*cell=*/false, h0_scale, h0_zero_point);
  const State c0 = uint8_state(c0_arg, "c0", c, /*cell=*/true, c0_scale, c0_zero_point);
  const at::Tensor x = time_major_rows(input, batch_first);
  at::Tensor y = at::empty({x.size(0), c.D * c.S}, at::kByte);
  const LstmRun run = run_lstm(c, x.const_data_ptr<uint8_t>(), x_q, h0, c0, y.data_ptr<uint8_t>());
  // Like ATen's stack of quantized tensors, h_n and c_n take layer 0's qparams
  // (a bidirectional layer's directions stacked into the forward one's first).
  at::Tensor h_n = at::empty(state_shape(c, false), at::kByte);
  at::Tensor c_n = at::empty(state_shape(c, true), at::kByte);
  const int64_t nh = c.B * c.S, nc = c.B * c.H;
  for (size_t idx = 0; idx < run.finals.size(); ++idx) {
    const DirectionResult& r = run.finals[idx];
    const PackedLayer& fw = c.layers[idx - idx % static_cast<size_t>(c.D)];
    stack_final_state(r.h.data(), r.h_q, c.D == 2 ? fw.q.h() : r.h_q, c.layers[0].q.h(), nh,
                      h_n.data_ptr<uint8_t>() + idx * nh);
    stack_final_state(r.c.data(), r.c_q, c.D == 2 ? fw.q.cell : r.c_q, c.layers[0].q.cell, nc,
                      c_n.data_ptr<uint8_t>() + idx * nc);
  }
  return {sequence_output(y, c, batch_first), h_n, c_n};
}

// The input rows a call reads: a float32 input quantized with q, or a uint8
// one's own bytes (already in q).
Bytes input_bytes(const at::Tensor& rows, bool floating, QParams q) {
  Bytes b;
  if (!floating) {
    b.tensor = rows.contiguous();
    return b;
  }
  const at::Tensor f = rows.contiguous();
  b.owned.resize(static_cast<size_t>(f.numel()));
  run_quantize(current_kernels(), f.const_data_ptr<float>(), f.numel(), q, b.owned.data(),
               aten_parallel());
  return b;
}

// run_lstm on uint8 rows with float states: h_n and c_n dequantized from each
// layer-direction's own qparams. Returns the output rows (uint8, or
// dequantized into float32 with `float_output`), h_n, c_n.
std::tuple<at::Tensor, at::Tensor, at::Tensor> run_float_states(const CheckedLstm& c,
                                                                const uint8_t* x, QParams x_q,
                                                                const State& h0, const State& c0,
                                                                bool float_output) {
  const int64_t rows = c.steps().rows(), width = c.D * c.S;
  LstmRun run;
  at::Tensor y;
  if (float_output) {
    std::vector<uint8_t> bytes(static_cast<size_t>(rows * width));
    run = run_lstm(c, x, x_q, h0, c0, bytes.data());
    y = at::empty({rows, width}, at::kFloat);
    run_dequantize(current_kernels(), bytes.data(), rows * width, run.output_q,
                   y.data_ptr<float>(), aten_parallel());
  } else {
    y = at::empty({rows, width}, at::kByte);
    run = run_lstm(c, x, x_q, h0, c0, y.data_ptr<uint8_t>());
  }
  at::Tensor h_n = at::empty(state_shape(c, false), at::kFloat);
  at::Tensor c_n = at::empty(state_shape(c, true), at::kFloat);
  const int64_t nh = c.B * c.S, nc = c.B * c.H;
  for (size_t idx = 0; idx < run.finals.size(); ++idx) {
    const DirectionResult& r = run.finals[idx];
    run_dequantize(current_kernels(), r.h.data(), nh, r.h_q, h_n.data_ptr<float>() + idx * nh,
                   aten_parallel());
    run_dequantize(current_kernels(), r.c.data(), nc, r.c_q, c_n.data_ptr<float>() + idx * nc,
                   aten_parallel());
  }
  return {y, h_n, c_n};
}

// The LSTM with float32 states in and out: h0 and c0 are quantized, and h_n
// and c_n dequantized, with each layer-direction's own hidden and cell
// qparams, so that a state fed back into the next call is exactly the one the
// layer ended with (streaming a stacked LSTM chunk by chunk equals one call).
// A float32 input is quantized with (input_scale, input_zero_point) and the
// output dequantized; a uint8 input (bytes in those qparams) gives the uint8
// output, in the last layer's forward hidden qparams.
std::tuple<at::Tensor, at::Tensor, at::Tensor> quantized_lstm_float_cpu(
    const at::Tensor& input, double input_scale, int64_t input_zero_point,
    const c10::optional<at::Tensor>& h0_arg, const c10::optional<at::Tensor>& c0_arg,
    at::TensorList params, int64_t hidden_size, int64_t num_layers, bool bidirectional,
    bool batch_first, int64_t proj_size) {
  const QParams x_q = checked_qparams("input", input_scale, input_zero_point);
  check_cpu(input, "input");
  TORCH_CHECK_TYPE(input.scalar_type() == at::kFloat || input.scalar_type() == at::kByte,
                   "qlstm: input must be a Float (or Byte) tensor, got ", input.scalar_type());
  TORCH_CHECK_VALUE(input.dim() == 3, "qlstm: input must have 3 dimensions, got shape ",
                    input.sizes());
  const bool floating = input.scalar_type() == at::kFloat;
  const int64_t T = input.size(batch_first ? 1 : 0), B = input.size(batch_first ? 0 : 1);
  const CheckedLstm c = checked_lstm("this quantized_lstm_float call", input, input.size(2), T, B,
                                     T * B, params, hidden_size, num_layers, bidirectional,
                                     proj_size);
  const at::Tensor rows = time_major_rows(input, batch_first);
  if (c.accurate) {
    check_float_input(floating, "input");
    auto [y, h_n, c_n] =
        run_lstm_float_cell(c, input_bytes(rows, true, x_q).data(), x_q, h0_arg, c0_arg);
    // Contiguous, as the default mode's dequantized output (and the fake kernel's).
    return {sequence_output(y, c, batch_first).contiguous(), h_n, c_n};
  }
  const State h0 = float_state(h0_arg, "h0", c, /*cell=*/false);
  const State c0 = float_state(c0_arg, "c0", c, /*cell=*/true);
  const auto [y_rows, h_n, c_n] =
      run_float_states(c, input_bytes(rows, floating, x_q).data(), x_q, h0, c0, floating);
  at::Tensor y = sequence_output(y_rows, c, batch_first);
  // A float output is contiguous, as the fake kernel's.
  if (floating) y = y.contiguous();
  return {y, h_n, c_n};
}

// quantized_lstm_float on a PackedSequence's data ([rows, I], float32 or
// uint8) and batch_sizes: the sequences sorted by length, longest first, each
// run to its own end (the reverse direction from there), nothing computed for
// padding. States as quantized_lstm_float's, in the sorted order; a missing
// state is zeros (each layer-direction's zero point), so that the sequences
// that start later in the reverse direction wait in the same qparams.
std::tuple<at::Tensor, at::Tensor, at::Tensor> quantized_lstm_packed_cpu(
    const at::Tensor& data, const at::Tensor& batch_sizes, double input_scale,
    int64_t input_zero_point, const c10::optional<at::Tensor>& h0_arg,
    const c10::optional<at::Tensor>& c0_arg, at::TensorList params, int64_t hidden_size,
    int64_t num_layers, bool bidirectional, int64_t proj_size) {
  const QParams x_q = checked_qparams("input", input_scale, input_zero_point);
  check_cpu(data, "data");
  TORCH_CHECK_TYPE(data.scalar_type() == at::kFloat || data.scalar_type() == at::kByte,
                   "qlstm: data must be a Float (or Byte) tensor, got ", data.scalar_type());
  TORCH_CHECK_VALUE(data.dim() == 2, "qlstm: data must have 2 dimensions ([rows, input_size]), "
                    "got shape ", data.sizes());
  check_cpu(batch_sizes, "batch_sizes");
  check_dtype(batch_sizes, "batch_sizes", at::kLong);
  TORCH_CHECK_VALUE(batch_sizes.dim() == 1, "qlstm: batch_sizes must have 1 dimension, got shape ",
                    batch_sizes.sizes());
  const at::Tensor sizes = batch_sizes.contiguous();
  const int64_t T = sizes.numel();
  const int64_t* bs = sizes.const_data_ptr<int64_t>();
  int64_t rows = 0;
  for (int64_t t = 0; t < T; ++t) {
    TORCH_CHECK_VALUE(bs[t] >= 1 && (t == 0 || bs[t] <= bs[t - 1]), "qlstm: batch_sizes must be "
                      ">= 1 and non-increasing (a PackedSequence's), got ", bs[t], " at step ", t,
                      t > 0 ? " after " + std::to_string(bs[t - 1]) : std::string());
    rows += bs[t];  // at most T * bs[0], both below the int64 range of a tensor size
  }
  TORCH_CHECK_VALUE(rows == data.size(0), "qlstm: data must have sum(batch_sizes) = ", rows,
                    " rows, got ", data.size(0));
  const int64_t B = T > 0 ? bs[0] : (h0_arg.has_value() && h0_arg->dim() == 3 ? h0_arg->size(1) : 0);
  CheckedLstm c = checked_lstm("this quantized_lstm_packed call", data, data.size(1), T, B, rows,
                               params, hidden_size, num_layers, bidirectional, proj_size);
  c.batch_sizes.assign(bs, bs + T);
  const bool floating = data.scalar_type() == at::kFloat;
  if (c.accurate) {
    check_float_input(floating, "data");
    return run_lstm_float_cell(c, input_bytes(data, true, x_q).data(), x_q, h0_arg, c0_arg);
  }
  State h0 = float_state(h0_arg, "h0", c, /*cell=*/false);
  State c0 = float_state(c0_arg, "c0", c, /*cell=*/true);
  for (size_t i = 0; i < c.layers.size(); ++i) {
    h0.qparams[i] = c.layers[i].q.h();
    c0.qparams[i] = c.layers[i].q.cell;
  }
  return run_float_states(c, input_bytes(data, floating, x_q).data(), x_q, h0, c0, floating);
}

std::tuple<at::Tensor, at::Tensor> quantized_lstm_cell_cpu(
    const at::Tensor& input, double input_scale, int64_t input_zero_point, const at::Tensor& hx,
    double hx_scale, int64_t hx_zero_point, const at::Tensor& cx, double cx_scale,
    int64_t cx_zero_point, const at::Tensor& params) {
  check_activation(input, "input", 2);
  const QParams x_q = checked_qparams("input", input_scale, input_zero_point);
  at::Tensor blob;
  const PackedLayer p = checked_packed_layer(params, "params", &blob);
  check_torch_mode(p.q.accurate, "quantized_lstm_cell");
  TORCH_CHECK_VALUE(p.proj_size == 0, "qlstm: params must be a layer without a projection "
                    "(quantized_lstm_cell is nn.LSTMCell's step, which has none), got one with "
                    "proj_size ", p.proj_size, "; run such a layer with quantized_lstm_float");
  const int64_t B = input.size(0), H = p.hidden_size;
  TORCH_CHECK_VALUE(input.size(1) == p.input_size, "qlstm: input must have ", p.input_size,
                    " features (the packed layer's input_size), got shape ", input.sizes());
  check_activation(hx, "hx", 2);
  check_shape(hx, "hx", {B, H});
  check_activation(cx, "cx", 2);
  check_shape(cx, "cx", {B, H});
  const QParams h_q = checked_qparams("hx", hx_scale, hx_zero_point);
  const QParams c_q = checked_qparams("cx", cx_scale, cx_zero_point);

  check_memory("this quantized_lstm_cell call", {{input.numel()}, {B, p.rows}, {6, B, H}});
  const at::Tensor x = input.contiguous(), h = hx.contiguous(), c = cx.contiguous();
  const KernelSet& k = current_kernels();
  at::Tensor igates = at::empty({B, p.rows}, at::kByte);
  const Parallel par = aten_parallel();
  run_input_projection(k, p, x_q, x.data_ptr<uint8_t>(), B, igates.data_ptr<uint8_t>(), par);
  at::Tensor h_next = at::empty({B, H}, at::kByte), c_next = at::empty({B, H}, at::kByte);
  const LinearRequantStorage hh(p.hh, h_q, p.q.hgates);
  CellConstants cc;
  prepare_cell_constants(p, &cc);
  run_step(k, p, hh.r, cc, igates.data_ptr<uint8_t>(),
           StepState{h.data_ptr<uint8_t>(), c.data_ptr<uint8_t>(), c_q}, B,
           h_next.data_ptr<uint8_t>(), c_next.data_ptr<uint8_t>(), par);
  return {h_next, c_next};
}

}  // namespace

TORCH_LIBRARY_IMPL(qlstm, CPU, m) {
  m.impl("quantized_lstm", &quantized_lstm_cpu);
  m.impl("quantized_lstm_float", &quantized_lstm_float_cpu);
  m.impl("quantized_lstm_cell", &quantized_lstm_cell_cpu);
  m.impl("quantized_lstm_packed", &quantized_lstm_packed_cpu);
}

}  // namespace qlstm::ops

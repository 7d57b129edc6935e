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

// The kernels' tasks on ATen's intra-op thread pool.
Parallel aten_parallel() {
  return Parallel{at::get_num_threads(),
                  [](int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& task) {
                    at::parallel_for(0, n, grain, task);
                  }};
}

void check_layer_count(at::TensorList params, int64_t num_layers, bool bidirectional) {
  TORCH_CHECK_VALUE(num_layers >= 1, "qlstm: num_layers must be >= 1, got ", num_layers);
  const int64_t D = bidirectional ? 2 : 1;
  // Compared by division: a huge num_layers must not wrap num_layers * D.
  const int64_t n = static_cast<int64_t>(params.size());
  TORCH_CHECK_VALUE(n % D == 0 && n / D == num_layers, "qlstm: params must hold num_layers * ",
                    "num_directions = ", num_layers, " * ", D, " packed layers, got ", n);
}

InitialState initial_state(const c10::optional<at::Tensor>& h0, QParams h0_q,
                           const c10::optional<at::Tensor>& c0, QParams c0_q, int64_t index,
                           int64_t B, int64_t H) {
  // No initial state means zeros quantized with (1.0, 0), as PyTorch does.
  const QParams zeros{1.0f, 0};
  InitialState s{nullptr, zeros, nullptr, zeros};
  if (h0.has_value()) {
    s.h = h0->data_ptr<uint8_t>() + index * B * H;
    s.h_q = h0_q;
  }
  if (c0.has_value()) {
    s.c = c0->data_ptr<uint8_t>() + index * B * H;
    s.c_q = c0_q;
  }
  return s;
}

c10::optional<at::Tensor> checked_state(const c10::optional<at::Tensor>& s, const char* name,
                                        at::IntArrayRef shape) {
  if (!s.has_value()) return s;
  check_activation(*s, name, static_cast<int64_t>(shape.size()));
  check_shape(*s, name, shape);
  return s->contiguous();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> quantized_lstm_cpu(
    const at::Tensor& input, double input_scale, int64_t input_zero_point,
    const c10::optional<at::Tensor>& h0_arg, double h0_scale, int64_t h0_zero_point,
    const c10::optional<at::Tensor>& c0_arg, double c0_scale, int64_t c0_zero_point,
    at::TensorList params, int64_t hidden_size, int64_t num_layers, bool bidirectional,
    bool batch_first) {
  check_activation(input, "input", 3);
  const QParams x_q = checked_qparams("input", input_scale, input_zero_point);
  check_layer_count(params, num_layers, bidirectional);
  const int64_t D = bidirectional ? 2 : 1;

  std::vector<at::Tensor> blobs(params.size());
  std::vector<PackedLayer> layers(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    layers[i] = checked_packed_layer(params[i], "params[" + std::to_string(i) + "]", &blobs[i]);
  }
  const int64_t H = hidden_size;
  const int64_t T = input.size(batch_first ? 1 : 0), B = input.size(batch_first ? 0 : 1);
  for (size_t i = 0; i < layers.size(); ++i) {
    TORCH_CHECK_VALUE(layers[i].hidden_size == H, "qlstm: params[", i, "] has hidden_size ",
                      layers[i].hidden_size, ", expected hidden_size = ", H);
    // H now is a packed layer's, at most kMaxInnerDim: D * H cannot wrap.
    const int64_t expected_in = i < static_cast<size_t>(D) ? input.size(2) : D * H;
    TORCH_CHECK_VALUE(layers[i].input_size == expected_in, "qlstm: params[", i,
                      "] expects input size ", layers[i].input_size, ", got ", expected_in,
                      i < static_cast<size_t>(D) ? " (input.size(-1))" : " (num_directions * hidden_size)");
  }
  // The input's copy, the projections of one direction, two layer outputs and the states.
  check_memory("this quantized_lstm call",
               {{input.numel()}, {T, B, layers[0].rows}, {2, T, B, D, H}, {4, num_layers, D, B, H}});
  const at::Tensor x = (batch_first ? input.transpose(0, 1) : input).contiguous();
  const std::vector<int64_t> state_shape{num_layers * D, B, H};
  const auto h0 = checked_state(h0_arg, "h0", state_shape);
  const auto c0 = checked_state(c0_arg, "c0", state_shape);
  const QParams h0_q = h0 ? checked_qparams("h0", h0_scale, h0_zero_point) : QParams{1.0f, 0};
  const QParams c0_q = c0 ? checked_qparams("c0", c0_scale, c0_zero_point) : QParams{1.0f, 0};

  const KernelSet& k = current_kernels();
  const Parallel par = aten_parallel();
  at::Tensor h_n = at::empty(state_shape, at::kByte);
  at::Tensor c_n = at::empty(state_shape, at::kByte);
  // Like ATen's stack and cat of quantized tensors, h_n, c_n and a bidirectional
  // layer's output take the qparams of their first part.
  const QParams h_n_q = layers[0].q.hidden, c_n_q = layers[0].q.cell;

  at::Tensor layer_in = x;
  QParams layer_in_q = x_q;
  for (int64_t l = 0; l < num_layers; ++l) {
    at::Tensor layer_out = at::empty({T, B, D * H}, at::kByte);
    const QParams fw_h_q = layers[l * D].q.hidden, fw_c_q = layers[l * D].q.cell;
    for (int64_t d = 0; d < D; ++d) {
      const int64_t idx = l * D + d;
      const PackedLayer& p = layers[idx];
      const RequantTable to_fw(p.q.hidden, fw_h_q);
      const DirectionResult r = run_direction(
          k, p, layer_in.data_ptr<uint8_t>(), layer_in_q, T, B, /*reverse=*/d == 1,
          initial_state(h0, h0_q, c0, c0_q, idx, B, H), layer_out.data_ptr<uint8_t>(), D * H,
          d * H, to_fw.get(), par);
      stack_final_state(r.h.data(), r.h_q, D == 2 ? fw_h_q : r.h_q, h_n_q, B * H,
                        h_n.data_ptr<uint8_t>() + idx * B * H);
      stack_final_state(r.c.data(), r.c_q, D == 2 ? fw_c_q : r.c_q, c_n_q, B * H,
                        c_n.data_ptr<uint8_t>() + idx * B * H);
    }
    layer_in = layer_out;
    layer_in_q = fw_h_q;
  }
  at::Tensor output = batch_first ? layer_in.transpose(0, 1) : layer_in;
  return {output, h_n, c_n};
}

at::Tensor quantized_copy(const at::Tensor& t, const char* name, QParams q) {
  check_cpu(t, name);
  check_dtype(t, name, at::kFloat);
  check_memory("quantized_lstm_float's float input and state", {{t.numel(), 4}, {t.numel(), 1}});
  const at::Tensor c = t.contiguous();
  at::Tensor out = at::empty(c.sizes(), at::kByte);
  quantize(c.data_ptr<float>(), c.numel(), q, out.data_ptr<uint8_t>());
  return out;
}

at::Tensor dequantized_copy(const at::Tensor& t, QParams q) {
  const at::Tensor c = t.contiguous();
  at::Tensor out = at::empty(c.sizes(), at::kFloat);
  dequantize(c.data_ptr<uint8_t>(), c.numel(), q, out.data_ptr<float>());
  return out;
}

// quantized_lstm with float tensors in and out, in one call: the input with
// (input_scale, input_zero_point), h0 and c0 with layer 0's hidden and cell
// qparams (those of h_n and c_n); results dequantized with their own qparams.
std::tuple<at::Tensor, at::Tensor, at::Tensor> quantized_lstm_float_cpu(
    const at::Tensor& input, double input_scale, int64_t input_zero_point,
    const c10::optional<at::Tensor>& h0, const c10::optional<at::Tensor>& c0,
    at::TensorList params, int64_t hidden_size, int64_t num_layers, bool bidirectional,
    bool batch_first) {
  const QParams x_q = checked_qparams("input", input_scale, input_zero_point);
  check_layer_count(params, num_layers, bidirectional);
  at::Tensor first_blob, last_blob;
  const PackedLayer first = checked_packed_layer(params[0], "params[0]", &first_blob);
  const PackedLayer last = checked_packed_layer(params[params.size() - (bidirectional ? 2 : 1)],
                                                "params[-1]", &last_blob);
  const at::Tensor x = quantized_copy(input, "input", x_q);
  c10::optional<at::Tensor> h0_q, c0_q;
  if (h0.has_value()) h0_q = quantized_copy(*h0, "h0", first.q.hidden);
  if (c0.has_value()) c0_q = quantized_copy(*c0, "c0", first.q.cell);
  const auto [y, h_n, c_n] = quantized_lstm_cpu(
      x, input_scale, input_zero_point, h0_q, first.q.hidden.scale, first.q.hidden.zero_point, c0_q,
      first.q.cell.scale, first.q.cell.zero_point, params, hidden_size, num_layers, bidirectional,
      batch_first);
  return {dequantized_copy(y, last.q.hidden), dequantized_copy(h_n, first.q.hidden),
          dequantized_copy(c_n, first.q.cell)};
}

std::tuple<at::Tensor, at::Tensor> quantized_lstm_cell_cpu(
    const at::Tensor& input, double input_scale, int64_t input_zero_point, const at::Tensor& hx,
    double hx_scale, int64_t hx_zero_point, const at::Tensor& cx, double cx_scale,
    int64_t cx_zero_point, const at::Tensor& params) {
  check_activation(input, "input", 2);
  const QParams x_q = checked_qparams("input", input_scale, input_zero_point);
  at::Tensor blob;
  const PackedLayer p = checked_packed_layer(params, "params", &blob);
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
  const LinearRequantStorage hh(p, /*ih=*/false, h_q);
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
}

}  // namespace qlstm::ops

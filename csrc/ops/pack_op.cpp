// qlstm::pack_lstm_layer: packs one layer-direction once, at conversion time.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../kernels/quantize.h"
#include "checks.h"
#include "isa.h"

namespace qlstm::ops {
namespace {

// Quantized sigmoid and tanh tables over all 256 inputs, computed with the
// same float ops (exp, reciprocal, tanh) that ATen's quantized kernels use, so
// that a lookup equals their result.
struct Tables {
  uint8_t sigmoid_gates[256];
  uint8_t tanh_gates[256];
  uint8_t tanh_cell[256];
};

void quantize_tensor_into(const at::Tensor& x, QParams q, uint8_t* out) {
  const at::Tensor c = x.contiguous();
  quantize(c.data_ptr<float>(), c.numel(), q, out);
}

at::Tensor dequantized_bytes(QParams q) {
  at::Tensor x = at::empty({256}, at::kFloat);
  make_dequantize_table(q, x.data_ptr<float>());
  return x;
}

Tables make_tables(const CellQParams& q) {
  Tables t;
  const at::Tensor gates = dequantized_bytes(q.gates);
  quantize_tensor_into(at::reciprocal(at::exp(gates.neg()) + 1), kSigmoidQParams, t.sigmoid_gates);
  quantize_tensor_into(at::tanh(gates), kTanhQParams, t.tanh_gates);
  quantize_tensor_into(at::tanh(dequantized_bytes(q.cell)), kTanhQParams, t.tanh_cell);
  return t;
}

// Per-row weight scales as float32 [rows]; a per-tensor scale is repeated.
at::Tensor row_scales(const at::Tensor& scales, int64_t rows, bool per_channel, const char* name) {
  check_cpu(scales, name);
  TORCH_CHECK_TYPE(at::isFloatingType(scales.scalar_type()), "qlstm: ", name,
                   " must be a floating-point tensor, got ", scales.scalar_type());
  check_shape(scales, name, per_channel ? at::IntArrayRef{rows} : at::IntArrayRef{1});
  at::Tensor s = scales.to(at::kFloat).expand({rows}).contiguous();
  TORCH_CHECK_VALUE(at::isfinite(s).all().item<bool>() && (s > 0).all().item<bool>(), "qlstm: ",
                    name, " must be finite and > 0 (as float32), got min ", s.min().item<float>(),
                    " and max ", s.max().item<float>());
  return s;
}

at::Tensor row_zero_points(const at::Tensor& zps, int64_t rows, bool per_channel,
                           const char* name) {
  check_cpu(zps, name);
  TORCH_CHECK_TYPE(!at::isFloatingType(zps.scalar_type()) && zps.scalar_type() != at::kBool,
                   "qlstm: ", name, " must be an integer tensor, got ", zps.scalar_type());
  check_shape(zps, name, per_channel ? at::IntArrayRef{rows} : at::IntArrayRef{1});
  at::Tensor z = zps.to(at::kInt).expand({rows}).contiguous();
  TORCH_CHECK_VALUE((z >= -128).all().item<bool>() && (z <= 127).all().item<bool>(), "qlstm: ",
                    name, " must be in [-128, 127] (int8 weights), got min ",
                    z.min().item<int32_t>(), " and max ", z.max().item<int32_t>());
  return z;
}

// "igates, hgates, ..., hidden": the order pack_lstm_layer takes them in.
std::string cell_qparam_list() {
  std::string s;
  for (const char* name : kCellQParamNames) s += (s.empty() ? "" : ", ") + std::string(name);
  return s;
}

at::Tensor checked_weight(const at::Tensor& w, const char* name, int64_t rows, int64_t cols) {
  check_cpu(w, name);
  check_dtype(w, name, at::kChar);
  check_shape(w, name, {rows, cols});
  return w.contiguous();
}

at::Tensor checked_bias(const c10::optional<at::Tensor>& b, const char* name, int64_t rows) {
  check_cpu(*b, name);
  check_dtype(*b, name, at::kFloat);
  check_shape(*b, name, {rows});
  return b->contiguous();
}

at::Tensor pack_lstm_layer_cpu(const at::Tensor& w_ih, const at::Tensor& w_ih_scales,
                               const at::Tensor& w_ih_zero_points, const at::Tensor& w_hh,
                               const at::Tensor& w_hh_scales, const at::Tensor& w_hh_zero_points,
                               const c10::optional<at::Tensor>& b_ih,
                               const c10::optional<at::Tensor>& b_hh, at::ArrayRef<double> scales,
                               at::IntArrayRef zero_points, bool per_channel) {
  // Sizes are bounded before any product of them is formed.
  TORCH_CHECK_VALUE(w_hh.dim() == 2 && w_hh.size(1) > 0 && w_hh.size(1) <= kMaxInnerDim &&
                        w_hh.size(0) == 4 * w_hh.size(1),
                    "qlstm: w_hh must have shape [4 * hidden_size, hidden_size] with hidden_size in "
                    "[1, ", kMaxInnerDim, "] (int32 accumulation), got ", w_hh.sizes());
  TORCH_CHECK_VALUE(w_ih.dim() == 2 && w_ih.size(1) > 0 && w_ih.size(1) <= kMaxInnerDim,
                    "qlstm: w_ih must have shape [4 * hidden_size, input_size] with input_size in "
                    "[1, ", kMaxInnerDim, "] (int32 accumulation), got ", w_ih.sizes());
  const int64_t H = w_hh.size(1), I = w_ih.size(1), rows = 4 * H;
  const at::Tensor wi = checked_weight(w_ih, "w_ih", rows, I);
  const at::Tensor wh = checked_weight(w_hh, "w_hh", rows, H);
  const at::Tensor si = row_scales(w_ih_scales, rows, per_channel, "w_ih_scales");
  const at::Tensor sh = row_scales(w_hh_scales, rows, per_channel, "w_hh_scales");
  const at::Tensor zi = row_zero_points(w_ih_zero_points, rows, per_channel, "w_ih_zero_points");
  const at::Tensor zh = row_zero_points(w_hh_zero_points, rows, per_channel, "w_hh_zero_points");
  TORCH_CHECK_VALUE(b_ih.has_value() == b_hh.has_value(),
                    "qlstm: b_ih and b_hh must be both given or both None, got ",
                    b_ih.has_value() ? "b_ih only" : "b_hh only");
  at::Tensor bi, bh;
  if (b_ih.has_value()) {
    bi = checked_bias(b_ih, "b_ih", rows);
    bh = checked_bias(b_hh, "b_hh", rows);
  }
  TORCH_CHECK_VALUE(scales.size() == kNumCellQParams && zero_points.size() == kNumCellQParams,
                    "qlstm: scales and zero_points must each hold ", kNumCellQParams,
                    " values (", cell_qparam_list(), "), got ", scales.size(), " and ",
                    zero_points.size());
  CellQParams q;
  for (int i = 0; i < kNumCellQParams; ++i) {
    q.*kCellQParamFields[i] = checked_qparams(kCellQParamNames[i], scales[i], zero_points[i]);
  }

  const LayerWeights lw{
      I, H,
      MatrixWeights{wi.data_ptr<int8_t>(), si.data_ptr<float>(), zi.data_ptr<int32_t>(),
                    bi.defined() ? bi.data_ptr<float>() : nullptr},
      MatrixWeights{wh.data_ptr<int8_t>(), sh.data_ptr<float>(), zh.data_ptr<int32_t>(),
                    bh.defined() ? bh.data_ptr<float>() : nullptr},
      per_channel};
  const Tables t = make_tables(q);
  const LayerTables lt{t.sigmoid_gates, t.tanh_gates, t.tanh_cell};
  at::Tensor out = at::empty({static_cast<int64_t>(packed_layer_size(lw))}, at::kByte);
  pack_layer(lw, q, lt, out.data_ptr<uint8_t>());
  return out;
}

// Every output is a tensor, so that a traced graph carries the blob's values
// instead of constants from its fake kernel: biases come back empty ([0]) when
// the layer has none, and per_channel is whether the scales have one entry per row.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
           at::Tensor, at::Tensor, at::Tensor>
unpack_lstm_layer_cpu(const at::Tensor& params) {
  at::Tensor blob;
  const PackedLayer p = checked_packed_layer(params, "params", &blob);
  const int64_t I = p.input_size, H = p.hidden_size, rows = 4 * H;
  at::Tensor w_ih = at::empty({rows, I}, at::kChar), w_hh = at::empty({rows, H}, at::kChar);
  at::Tensor s_ih = at::empty({rows}, at::kFloat), s_hh = at::empty({rows}, at::kFloat);
  at::Tensor z_ih = at::empty({rows}, at::kInt), z_hh = at::empty({rows}, at::kInt);
  at::Tensor b_ih = at::empty({rows}, at::kFloat), b_hh = at::empty({rows}, at::kFloat);
  unpack_layer_weights(
      p,
      MatrixWeightsOut{w_ih.data_ptr<int8_t>(), s_ih.data_ptr<float>(), z_ih.data_ptr<int32_t>(),
                       b_ih.data_ptr<float>()},
      MatrixWeightsOut{w_hh.data_ptr<int8_t>(), s_hh.data_ptr<float>(), z_hh.data_ptr<int32_t>(),
                       b_hh.data_ptr<float>()});
  // Per-tensor weights come back with their single scale and zero point.
  auto qparam = [&](const at::Tensor& t, at::ScalarType dtype) {
    return (p.per_channel ? t : t.slice(0, 0, 1)).to(dtype);
  };
  at::Tensor scales = at::empty({kNumCellQParams}, at::kDouble);
  at::Tensor zero_points = at::empty({kNumCellQParams}, at::kLong);
  for (int i = 0; i < kNumCellQParams; ++i) {
    scales.data_ptr<double>()[i] = (p.q.*kCellQParamFields[i]).scale;
    zero_points.data_ptr<int64_t>()[i] = (p.q.*kCellQParamFields[i]).zero_point;
  }
  return {w_ih,
          qparam(s_ih, at::kDouble),
          qparam(z_ih, at::kLong),
          w_hh,
          qparam(s_hh, at::kDouble),
          qparam(z_hh, at::kLong),
          p.has_bias ? b_ih : at::empty({0}, at::kFloat),
          p.has_bias ? b_hh : at::empty({0}, at::kFloat),
          scales,
          zero_points};
}

at::Tensor quantize_cpu(const at::Tensor& input, double scale, int64_t zero_point) {
  const QParams q = checked_qparams("input", scale, zero_point);
  check_cpu(input, "input");
  check_dtype(input, "input", at::kFloat);
  check_memory("quantize's input", {{input.numel(), 4}, {input.numel(), 1}});
  const at::Tensor x = input.contiguous();
  at::Tensor out = at::empty(x.sizes(), at::kByte);
  run_quantize(current_kernels(), x.data_ptr<float>(), x.numel(), q, out.data_ptr<uint8_t>(),
               aten_parallel());
  return out;
}

at::Tensor dequantize_cpu(const at::Tensor& input, double scale, int64_t zero_point) {
  const QParams q = checked_qparams("input", scale, zero_point);
  check_cpu(input, "input");
  check_dtype(input, "input", at::kByte);
  check_memory("dequantize's input", {{input.numel(), 1}, {input.numel(), 4}});
  const at::Tensor x = input.contiguous();
  at::Tensor out = at::empty(x.sizes(), at::kFloat);
  run_dequantize(current_kernels(), x.data_ptr<uint8_t>(), x.numel(), q, out.data_ptr<float>(),
                 aten_parallel());
  return out;
}

std::vector<std::string> cell_qparam_names() {
  return std::vector<std::string>(std::begin(kCellQParamNames), std::end(kCellQParamNames));
}

}  // namespace

TORCH_LIBRARY_IMPL(qlstm, CPU, m) {
  m.impl("pack_lstm_layer", &pack_lstm_layer_cpu);
  m.impl("unpack_lstm_layer", &unpack_lstm_layer_cpu);
  m.impl("quantize", &quantize_cpu);
  m.impl("dequantize", &dequantize_cpu);
}

// Takes no tensors: one kernel for every dispatch key.
TORCH_LIBRARY_IMPL(qlstm, CompositeImplicitAutograd, m) {
  m.impl("cell_qparam_names", &cell_qparam_names);
}

}  // namespace qlstm::ops

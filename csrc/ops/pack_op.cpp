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
// that a lookup equals their result: per gate, of that gate's sum.
struct Tables {
  uint8_t gates[kNumGates][256];
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
  for (int g = 0; g < kNumGates; ++g) {
    const at::Tensor gates = dequantized_bytes(q.gates[g]);
    quantize_tensor_into(g == kCellGate ? at::tanh(gates) : at::reciprocal(at::exp(gates.neg()) + 1),
                         g == kCellGate ? kTanhQParams : kSigmoidQParams, t.gates[g]);
  }
  quantize_tensor_into(at::tanh(dequantized_bytes(q.cell)), kTanhQParams, t.tanh_cell);
  return t;
}

// The shapes a matrix's weight qparams may have: [rows] per channel, [1] per
// tensor, and with split gates also [4, 1], one per gate (each gate's Linear
// quantized on its own).
void check_weight_qparam_shape(const at::Tensor& t, const char* name, int64_t rows,
                               bool per_channel, bool split_gates) {
  const bool per_gate = split_gates && t.sizes() == at::IntArrayRef{kNumGates, 1};
  TORCH_CHECK_VALUE(per_channel ? t.sizes() == at::IntArrayRef{rows}
                                : t.sizes() == at::IntArrayRef{1} || per_gate,
                    "qlstm: ", name, " must have shape ",
                    per_channel ? "[" + std::to_string(rows) + "] (per_channel)"
                    : split_gates ? std::string("[1] or [4, 1] (per tensor, or per gate)")
                                  : std::string("[1] (per tensor)"),
                    ", got ", t.sizes());
}

// A weight qparam per row [rows]: per gate or per tensor, repeated.
at::Tensor expand_to_rows(const at::Tensor& t, int64_t rows) {
  return t.reshape({-1, 1}).expand({t.numel(), rows / t.numel()}).reshape({rows}).contiguous();
}

// Per-row weight scales as float32 [rows].
at::Tensor row_scales(const at::Tensor& scales, int64_t rows, bool per_channel, bool split_gates,
                      const char* name) {
  check_cpu(scales, name);
  TORCH_CHECK_TYPE(at::isFloatingType(scales.scalar_type()), "qlstm: ", name,
                   " must be a floating-point tensor, got ", scales.scalar_type());
  check_weight_qparam_shape(scales, name, rows, per_channel, split_gates);
  at::Tensor s = expand_to_rows(scales.to(at::kFloat), rows);
  TORCH_CHECK_VALUE(at::isfinite(s).all().item<bool>() && (s > 0).all().item<bool>(), "qlstm: ",
                    name, " must be finite and > 0 (as float32), got min ", s.min().item<float>(),
                    " and max ", s.max().item<float>());
  return s;
}

at::Tensor row_zero_points(const at::Tensor& zps, int64_t rows, bool per_channel,
                           bool split_gates, const char* name) {
  check_cpu(zps, name);
  TORCH_CHECK_TYPE(!at::isFloatingType(zps.scalar_type()) && zps.scalar_type() != at::kBool,
                   "qlstm: ", name, " must be an integer tensor, got ", zps.scalar_type());
  check_weight_qparam_shape(zps, name, rows, per_channel, split_gates);
  at::Tensor z = expand_to_rows(zps.to(at::kInt), rows);
  TORCH_CHECK_VALUE((z >= -128).all().item<bool>() && (z <= 127).all().item<bool>(), "qlstm: ",
                    name, " must be in [-128, 127] (int8 weights), got min ",
                    z.min().item<int32_t>(), " and max ", z.max().item<int32_t>());
  return z;
}

std::vector<std::string> cell_qparam_names(bool split_gates, bool projection, bool accurate) {
  std::vector<std::string> names;
  for (int i = 0; i < num_cell_qparams(split_gates, projection, accurate); ++i) {
    names.push_back(cell_qparam_name(i, split_gates, projection, accurate));
  }
  return names;
}

// "igates, hgates, ..., hidden": the order pack_lstm_layer takes them in.
std::string cell_qparam_list(bool split_gates, bool projection) {
  std::string s;
  for (const std::string& name : cell_qparam_names(split_gates, projection, false)) {
    s += (s.empty() ? "" : ", ") + name;
  }
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

// The projection's size P and the hidden size H: from w_hr ([P, H], P < H
// as nn.LSTM requires) with a projection, else from w_hh ([4 * H, H]).
std::pair<int64_t, int64_t> proj_and_hidden_size(const at::Tensor& w_hh,
                                                 const c10::optional<at::Tensor>& w_hr) {
  // Sizes are bounded before any product of them is formed.
  if (!w_hr.has_value()) {
    TORCH_CHECK_VALUE(w_hh.dim() == 2 && w_hh.size(1) > 0 && w_hh.size(1) <= kMaxInnerDim &&
                          w_hh.size(0) == 4 * w_hh.size(1),
                      "qlstm: w_hh must have shape [4 * hidden_size, hidden_size] with hidden_size "
                      "in [1, ", kMaxInnerDim, "] (int32 accumulation), got ", w_hh.sizes());
    return {0, w_hh.size(1)};
  }
  TORCH_CHECK_VALUE(w_hr->dim() == 2 && w_hr->size(1) > 1 && w_hr->size(1) <= kMaxInnerDim &&
                        w_hr->size(0) >= 1 && w_hr->size(0) < w_hr->size(1),
                    "qlstm: w_hr must have shape [proj_size, hidden_size] with hidden_size in [2, ",
                    kMaxInnerDim, "] and proj_size in [1, hidden_size) (nn.LSTM's proj_size), got ",
                    w_hr->sizes());
  return {w_hr->size(0), w_hr->size(1)};
}

at::Tensor pack_lstm_layer_cpu(const at::Tensor& w_ih, const at::Tensor& w_ih_scales,
                               const at::Tensor& w_ih_zero_points, const at::Tensor& w_hh,
                               const at::Tensor& w_hh_scales, const at::Tensor& w_hh_zero_points,
                               const c10::optional<at::Tensor>& b_ih,
                               const c10::optional<at::Tensor>& b_hh, at::ArrayRef<double> scales,
                               at::IntArrayRef zero_points, bool per_channel,
                               const c10::optional<at::Tensor>& w_hr,
                               const c10::optional<at::Tensor>& w_hr_scales,
                               const c10::optional<at::Tensor>& w_hr_zero_points,
                               c10::string_view mode) {
  TORCH_CHECK_VALUE(mode == "torch" || mode == "accurate",
                    "qlstm: mode must be \"torch\" or \"accurate\", got \"", mode, "\"");
  const bool accurate = mode == "accurate";
  TORCH_CHECK_VALUE(!accurate || !w_hr.has_value(), "qlstm: the accurate mode does not support a "
                    "projection (proj_size) yet: pack with mode=\"torch\", or pass w_hr=None");
  TORCH_CHECK_VALUE(w_hr.has_value() == w_hr_scales.has_value() &&
                        w_hr.has_value() == w_hr_zero_points.has_value(),
                    "qlstm: w_hr, w_hr_scales and w_hr_zero_points must be all given (a layer with "
                    "a projection) or all None, got ", w_hr.has_value() ? "w_hr" : "no w_hr",
                    w_hr_scales.has_value() ? ", w_hr_scales" : ", no w_hr_scales",
                    w_hr_zero_points.has_value() ? ", w_hr_zero_points" : ", no w_hr_zero_points");
  const bool projection = w_hr.has_value();
  const auto [P, H] = proj_and_hidden_size(w_hh, w_hr);
  TORCH_CHECK_VALUE(w_ih.dim() == 2 && w_ih.size(1) > 0 && w_ih.size(1) <= kMaxInnerDim,
                    "qlstm: w_ih must have shape [4 * hidden_size, input_size] with input_size in "
                    "[1, ", kMaxInnerDim, "] (int32 accumulation), got ", w_ih.sizes());
  const int64_t I = w_ih.size(1), rows = 4 * H, S = projection ? P : H;
  // Seven qparams, or sixteen with split gates (per-gate igates, hgates,
  // gates); one more, projection, with a projection.
  const int extra = projection ? 1 : 0;
  const bool split_gates =
      !accurate && scales.size() == static_cast<size_t>(kNumSplitCellQParams + extra);
  // The accurate mode keeps one: hidden, the qparams its h bytes come in.
  TORCH_CHECK_VALUE(!accurate || (scales.size() == 1 && zero_points.size() == 1),
                    "qlstm: in the accurate mode scales and zero_points must each hold 1 value "
                    "(hidden: the qparams of h as the recurrent product multiplies it), got ",
                    scales.size(), " and ", zero_points.size());
  TORCH_CHECK_VALUE(accurate ||
                        ((scales.size() == static_cast<size_t>(kNumCellQParams + extra) ||
                          split_gates) &&
                         zero_points.size() == scales.size()),
                    "qlstm: scales and zero_points must each hold ", kNumCellQParams + extra,
                    " values (", cell_qparam_list(false, projection), ") or, with split gates, ",
                    kNumSplitCellQParams + extra, " (", cell_qparam_list(true, projection),
                    "), got ", scales.size(), " and ", zero_points.size());
  const at::Tensor wi = checked_weight(w_ih, "w_ih", rows, I);
  const at::Tensor wh = checked_weight(w_hh, "w_hh", rows, S);
  const at::Tensor si = row_scales(w_ih_scales, rows, per_channel, split_gates, "w_ih_scales");
  const at::Tensor sh = row_scales(w_hh_scales, rows, per_channel, split_gates, "w_hh_scales");
  const at::Tensor zi =
      row_zero_points(w_ih_zero_points, rows, per_channel, split_gates, "w_ih_zero_points");
  const at::Tensor zh =
      row_zero_points(w_hh_zero_points, rows, per_channel, split_gates, "w_hh_zero_points");
  TORCH_CHECK_VALUE(b_ih.has_value() == b_hh.has_value(),
                    "qlstm: b_ih and b_hh must be both given or both None, got ",
                    b_ih.has_value() ? "b_ih only" : "b_hh only");
  at::Tensor bi, bh;
  if (b_ih.has_value()) {
    bi = checked_bias(b_ih, "b_ih", rows);
    bh = checked_bias(b_hh, "b_hh", rows);
  }
  // W_hr is one Linear, not four gates: its qparams are per channel or per tensor.
  at::Tensor wr, sr, zr;
  if (projection) {
    wr = checked_weight(*w_hr, "w_hr", P, H);
    sr = row_scales(*w_hr_scales, P, per_channel, /*split_gates=*/false, "w_hr_scales");
    zr = row_zero_points(*w_hr_zero_points, P, per_channel, /*split_gates=*/false,
                         "w_hr_zero_points");
  }
  QParams list[kMaxCellQParams];
  for (size_t i = 0; i < scales.size(); ++i) {
    const int index = static_cast<int>(i);
    list[i] = checked_qparams(
        cell_qparam_name(index, split_gates, projection, accurate).c_str(), scales[i],
        zero_points[i]);
  }
  const CellQParams q = cell_qparams_from_list(list, split_gates, projection, accurate);

  const LayerWeights lw{
      I, H, P,
      MatrixWeights{wi.data_ptr<int8_t>(), si.data_ptr<float>(), zi.data_ptr<int32_t>(),
                    bi.defined() ? bi.data_ptr<float>() : nullptr},
      MatrixWeights{wh.data_ptr<int8_t>(), sh.data_ptr<float>(), zh.data_ptr<int32_t>(),
                    bh.defined() ? bh.data_ptr<float>() : nullptr},
      projection ? MatrixWeights{wr.data_ptr<int8_t>(), sr.data_ptr<float>(),
                                 zr.data_ptr<int32_t>(), nullptr}
                 : MatrixWeights{},
      per_channel};
  const Tables t = make_tables(q);
  const LayerTables lt{{t.gates[0], t.gates[1], t.gates[2], t.gates[3]}, t.tanh_cell};
  at::Tensor out = at::empty({static_cast<int64_t>(packed_layer_size(lw))}, at::kByte);
  pack_layer(lw, q, lt, out.data_ptr<uint8_t>());
  return out;
}

// Every output is a tensor, so that a traced graph carries the blob's values
// instead of constants from its fake kernel: weight scales and zero points
// come back per row (a per-tensor value repeated), biases empty ([0]) when
// the layer has none, per_channel as a bool scalar, W_hr and its qparams
// with no rows ([0, H], [0]) when the layer has no projection.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor,
           at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
unpack_lstm_layer_cpu(const at::Tensor& params) {
  at::Tensor blob;
  const PackedLayer p = checked_packed_layer(params, "params", &blob);
  const int64_t I = p.input_size, H = p.hidden_size, rows = 4 * H, P = p.proj_size;
  at::Tensor w_ih = at::empty({rows, I}, at::kChar), w_hh = at::empty({rows, p.h_size()}, at::kChar);
  at::Tensor s_ih = at::empty({rows}, at::kFloat), s_hh = at::empty({rows}, at::kFloat);
  at::Tensor z_ih = at::empty({rows}, at::kInt), z_hh = at::empty({rows}, at::kInt);
  at::Tensor b_ih = at::empty({rows}, at::kFloat), b_hh = at::empty({rows}, at::kFloat);
  at::Tensor w_hr = at::empty({P, H}, at::kChar), s_hr = at::empty({P}, at::kFloat),
             z_hr = at::empty({P}, at::kInt);
  auto out = [](at::Tensor& w, at::Tensor& s, at::Tensor& z, float* bias) {
    return MatrixWeightsOut{w.data_ptr<int8_t>(), s.data_ptr<float>(), z.data_ptr<int32_t>(), bias};
  };
  unpack_layer_weights(p, out(w_ih, s_ih, z_ih, b_ih.data_ptr<float>()),
                       out(w_hh, s_hh, z_hh, b_hh.data_ptr<float>()),
                       out(w_hr, s_hr, z_hr, nullptr));
  const int n = num_cell_qparams(p.q.split_gates, p.q.has_projection, p.q.accurate);
  QParams list[kMaxCellQParams];
  cell_qparams_to_list(p.q, list);
  at::Tensor scales = at::empty({n}, at::kDouble);
  at::Tensor zero_points = at::empty({n}, at::kLong);
  for (int i = 0; i < n; ++i) {
    scales.data_ptr<double>()[i] = list[i].scale;
    zero_points.data_ptr<int64_t>()[i] = list[i].zero_point;
  }
  return {w_ih,
          s_ih.to(at::kDouble),
          z_ih.to(at::kLong),
          w_hh,
          s_hh.to(at::kDouble),
          z_hh.to(at::kLong),
          p.has_bias ? b_ih : at::empty({0}, at::kFloat),
          p.has_bias ? b_hh : at::empty({0}, at::kFloat),
          scales,
          zero_points,
          at::scalar_tensor(p.per_channel, at::kBool),
          w_hr,
          s_hr.to(at::kDouble),
          z_hr.to(at::kLong)};
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

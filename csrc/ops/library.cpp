// The qlstm op schemas, declared once. Activations are uint8 tensors with a
// float scale and an int zero point; weights are int8; no quantized dtypes.
// The kernels are registered per dispatch key next to their code; the fake
// (meta) kernels live in the Python module named below, which a C++-only load
// points PT2 at.
#include <torch/library.h>

TORCH_LIBRARY(qlstm, m) {
  m.set_python_module("qlstm.ops");
  // The tensor ops have fake kernels that give the real ops' shapes, strides
  // and dtypes, and are checked with torch.library.opcheck.
  const std::vector<at::Tag> pt2 = {at::Tag::pt2_compliant_tag};
  m.def(
      "pack_lstm_layer(Tensor w_ih, Tensor w_ih_scales, Tensor w_ih_zero_points, Tensor w_hh, "
      "Tensor w_hh_scales, Tensor w_hh_zero_points, Tensor? b_ih, Tensor? b_hh, float[] scales, "
      "int[] zero_points, bool per_channel, Tensor? w_hr=None, Tensor? w_hr_scales=None, "
      "Tensor? w_hr_zero_points=None, str mode=\"torch\") -> Tensor",
      pt2);
  m.def(
      "unpack_lstm_layer(Tensor params) -> (Tensor w_ih, Tensor w_ih_scales, "
      "Tensor w_ih_zero_points, Tensor w_hh, Tensor w_hh_scales, Tensor w_hh_zero_points, "
      "Tensor b_ih, Tensor b_hh, Tensor scales, Tensor zero_points, Tensor per_channel, "
      "Tensor w_hr, Tensor w_hr_scales, Tensor w_hr_zero_points)",
      pt2);
  m.def(
      "quantized_lstm(Tensor input, float input_scale, int input_zero_point, Tensor? h0, "
      "float h0_scale, int h0_zero_point, Tensor? c0, float c0_scale, int c0_zero_point, "
      "Tensor[] params, int hidden_size, int num_layers, bool bidirectional, bool batch_first, "
      "int proj_size=0) -> (Tensor output, Tensor h_n, Tensor c_n)",
      pt2);
  m.def(
      "quantized_lstm_float(Tensor input, float input_scale, int input_zero_point, Tensor? h0, "
      "Tensor? c0, Tensor[] params, int hidden_size, int num_layers, bool bidirectional, "
      "bool batch_first, int proj_size=0) -> (Tensor output, Tensor h_n, Tensor c_n)",
      pt2);
  m.def(
      "quantized_lstm_packed(Tensor data, Tensor batch_sizes, float input_scale, "
      "int input_zero_point, Tensor? h0, Tensor? c0, Tensor[] params, int hidden_size, "
      "int num_layers, bool bidirectional, int proj_size=0) "
      "-> (Tensor output, Tensor h_n, Tensor c_n)",
      pt2);
  m.def(
      "quantized_lstm_cell(Tensor input, float input_scale, int input_zero_point, Tensor hx, "
      "float hx_scale, int hx_zero_point, Tensor cx, float cx_scale, int cx_zero_point, "
      "Tensor params) -> (Tensor h_next, Tensor c_next)",
      pt2);
  m.def("quantize(Tensor input, float scale, int zero_point) -> Tensor", pt2);
  // What a backward through the float ops calls: it raises (they are inference-only).
  m.def("no_backward(Tensor grad, Tensor like) -> Tensor", pt2);
  m.def("dequantize(Tensor input, float scale, int zero_point) -> Tensor", pt2);
  // The order of a packed layer's seven intermediate qparams, or sixteen with
  // split gates, and projection after them with a projection (pack_lstm_layer's
  // scales and zero_points, unpack_lstm_layer's outputs); hidden alone in the
  // accurate mode.
  m.def("cell_qparam_names(bool split_gates=False, bool projection=False, bool accurate=False) "
        "-> str[]");
  // The kernel set: which one runs (in this thread), switching it for the
  // process or for this thread, the ones this CPU runs, and the benchmarks'
  // probe of its single-core peak.
  m.def("isa() -> str");
  m.def("set_isa(str name) -> ()");
  m.def("set_thread_isa(str? name) -> ()");
  m.def("thread_isa() -> str?");
  m.def("available_isas() -> str[]");
  m.def("peak_macs_per_second(float seconds) -> float");
}

// The qlstm op schemas, declared once. Activations are uint8 tensors with a
// float scale and an int zero point; weights are int8; no quantized dtypes.
#include <torch/library.h>

TORCH_LIBRARY(qlstm, m) {
  m.def(
      "pack_lstm_layer(Tensor w_ih, Tensor w_ih_scales, Tensor w_ih_zero_points, Tensor w_hh, "
      "Tensor w_hh_scales, Tensor w_hh_zero_points, Tensor? b_ih, Tensor? b_hh, float[] scales, "
      "int[] zero_points, bool per_channel) -> Tensor");
  m.def(
      "unpack_lstm_layer(Tensor params) -> (Tensor w_ih, Tensor w_ih_scales, "
      "Tensor w_ih_zero_points, Tensor w_hh, Tensor w_hh_scales, Tensor w_hh_zero_points, "
      "Tensor b_ih, Tensor b_hh, Tensor scales, Tensor zero_points)");
  m.def(
      "quantized_lstm(Tensor input, float input_scale, int input_zero_point, Tensor? h0, "
      "float h0_scale, int h0_zero_point, Tensor? c0, float c0_scale, int c0_zero_point, "
      "Tensor[] params, int hidden_size, int num_layers, bool bidirectional, bool batch_first) "
      "-> (Tensor output, Tensor h_n, Tensor c_n)");
  m.def(
      "quantized_lstm_float(Tensor input, float input_scale, int input_zero_point, Tensor? h0, "
      "Tensor? c0, Tensor[] params, int hidden_size, int num_layers, bool bidirectional, "
      "bool batch_first) "
      "-> (Tensor output, Tensor h_n, Tensor c_n)");
  m.def(
      "quantized_lstm_cell(Tensor input, float input_scale, int input_zero_point, Tensor hx, "
      "float hx_scale, int hx_zero_point, Tensor cx, float cx_scale, int cx_zero_point, "
      "Tensor params) -> (Tensor h_next, Tensor c_next)");
  m.def("quantize(Tensor input, float scale, int zero_point) -> Tensor");
  m.def("dequantize(Tensor input, float scale, int zero_point) -> Tensor");
}

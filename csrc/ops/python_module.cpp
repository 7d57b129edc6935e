// Importing qlstm._C loads this library, whose static initializers register
// the ops (as in pytorch/extension-cpp). The module itself holds one function:
// the module's streaming call in one step from Python to the op.
//
// A torch.ops call from Python parses its arguments against the schema and
// looks for __torch_function__ overrides on each of them: at one step of a
// small LSTM that is as long as the op's own work. plain_float_lstm converts
// them with pybind11's casters and calls the op through the dispatcher, whose
// dispatch keys (autograd, inference mode, dispatch modes, the profiler) are
// kept. It declines, returning None, whatever could differ from that torch.ops
// call: a tensor subclass or a torch function mode (both __torch_function__),
// a JIT trace, and inputs other than plain float32 sequences.
#include <ATen/PythonTorchFunctionTLS.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/utils/pybind.h>

#include <optional>
#include <tuple>
#include <vector>

namespace qlstm::ops {
namespace {

namespace py = pybind11;
using Triple = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

// A plain float32 tensor of `dims` dimensions (the last of `features`, unless -1), or nothing.
std::optional<at::Tensor> plain_float(PyObject* obj, int64_t dims, int64_t features) {
  if (!THPVariable_CheckExact(obj)) return std::nullopt;
  const at::Tensor& t = THPVariable_Unpack(obj);
  if (t.scalar_type() != at::kFloat || t.dim() != dims) return std::nullopt;
  if (features >= 0 && t.size(dims - 1) != features) return std::nullopt;
  return t;
}

// The module's float32 call, qlstm.nn.LSTM._plain_float_call: (output, (h_n, c_n))
// of quantized_lstm_float, or None when it is not that call. With `one_step`
// (qlstm.nn.LSTMCell) the input and states are [B, *] and it returns (h, c),
// the op's one step of a one-layer sequence.
py::object plain_float_lstm(py::handle input, py::handle hx, double input_scale,
                            int64_t input_zero_point, const std::vector<at::Tensor>& params,
                            int64_t input_size, int64_t hidden_size, int64_t num_layers,
                            bool bidirectional, bool batch_first, int64_t proj_size,
                            bool one_step) {
  HANDLE_TH_ERRORS
  if (at::impl::torch_function_mode_enabled() || torch::jit::tracer::isTracing()) {
    return py::none();
  }
  const int64_t dims = one_step ? 2 : 3;
  std::optional<at::Tensor> x = plain_float(input.ptr(), dims, input_size);
  if (!x) return py::none();
  std::optional<at::Tensor> h0, c0;
  if (!hx.is_none()) {
    if (!PyTuple_CheckExact(hx.ptr()) || PyTuple_GET_SIZE(hx.ptr()) != 2) return py::none();
    h0 = plain_float(PyTuple_GET_ITEM(hx.ptr(), 0), dims, -1);
    c0 = plain_float(PyTuple_GET_ITEM(hx.ptr(), 1), dims, -1);
    if (!h0 || !c0) return py::none();
  }
  if (one_step) {
    x = x->unsqueeze(0);
    if (h0) {
      h0 = h0->unsqueeze(0);
      c0 = c0->unsqueeze(0);
    }
  }
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("qlstm::quantized_lstm_float", "")
          .typed<Triple(const at::Tensor&, double, int64_t, const std::optional<at::Tensor>&,
                        const std::optional<at::Tensor>&, at::TensorList, int64_t, int64_t,
                        bool, bool, int64_t)>();
  Triple out;
  {
    // As a torch.ops call does: other Python threads run while the op does.
    py::gil_scoped_release no_gil;
    out = op.call(*x, input_scale, input_zero_point, h0, c0, params, hidden_size, num_layers,
                  bidirectional, batch_first, proj_size);
  }
  auto& [y, h_n, c_n] = out;
  if (one_step) return py::make_tuple(h_n.squeeze(0), c_n.squeeze(0));
  return py::make_tuple(std::move(y), py::make_tuple(std::move(h_n), std::move(c_n)));
  END_HANDLE_TH_ERRORS_PYBIND
}

}  // namespace
}  // namespace qlstm::ops

PYBIND11_MODULE(_C, m) {
  m.def("plain_float_lstm", &qlstm::ops::plain_float_lstm,
        "quantized_lstm_float on a plain float32 input and states, or None (qlstm.nn.LSTM, "
        "and with one_step qlstm.nn.LSTMCell)");
}

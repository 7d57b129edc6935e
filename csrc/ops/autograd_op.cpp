// The ops are inference-only, but their forward must run with grad mode on
// (inference code often calls a model whose other layers have parameters).
// The Autograd kernels of the ops with float inputs and outputs run the op
// below autograd and, when an input requires grad, give the outputs a backward
// that raises: through qlstm::no_backward, so that a compiled program, whose
// backward is traced ahead of time, raises when it runs, not when it compiles.
#include <torch/autograd.h>
#include <torch/library.h>

#include <algorithm>
#include <functional>

namespace qlstm::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Triple = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

at::Tensor no_backward(const at::Tensor& grad, const at::Tensor& like) {
  (void)grad;
  (void)like;
  TORCH_CHECK(false,
              "qlstm: the qlstm ops are inference-only and have no backward: quantize a trained "
              "model, run it under torch.no_grad() or torch.inference_mode(), or train the float "
              "nn.LSTM instead");
}

at::Tensor no_backward_op(const at::Tensor& grad, const at::Tensor& like) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("qlstm::no_backward", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
  return op.call(grad, like);
}

struct RaisingBackward : torch::autograd::Function<RaisingBackward> {
  // `inputs` as a TensorList: what Function::apply tracks as inputs.
  static variable_list forward(AutogradContext* ctx, const std::function<Triple()>& run,
                               at::TensorList inputs) {
    ctx->save_for_backward(inputs.vec());
    at::AutoDispatchBelowADInplaceOrView below;
    const auto [a, b, c] = run();
    return {a, b, c};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list inputs = ctx->get_saved_variables();
    variable_list out = {at::Tensor()};  // for `run`
    at::Tensor grad;
    for (const at::Tensor& g : grads) {
      if (g.defined()) grad = g;
    }
    for (const at::Tensor& input : inputs) out.push_back(no_backward_op(grad, input));
    return out;
  }
};

// `run` below autograd; through RaisingBackward when an input requires grad.
Triple inference_only(const variable_list& inputs, const std::function<Triple()>& run) {
  const bool grads = at::GradMode::is_enabled() &&
                     std::any_of(inputs.begin(), inputs.end(), [](const at::Tensor& t) {
                       return t.defined() && t.requires_grad();
                     });
  if (!grads) {
    at::AutoDispatchBelowADInplaceOrView below;
    return run();
  }
  const variable_list out = RaisingBackward::apply(run, at::TensorList(inputs));
  return {out[0], out[1], out[2]};
}

variable_list defined(std::initializer_list<c10::optional<at::Tensor>> tensors) {
  variable_list out;
  for (const auto& t : tensors) {
    if (t.has_value() && t->defined()) out.push_back(*t);
  }
  return out;
}

Triple quantized_lstm_float_autograd(const at::Tensor& input, double input_scale,
                                     int64_t input_zero_point, const c10::optional<at::Tensor>& h0,
                                     const c10::optional<at::Tensor>& c0, at::TensorList params,
                                     int64_t hidden_size, int64_t num_layers, bool bidirectional,
                                     bool batch_first, int64_t proj_size) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("qlstm::quantized_lstm_float", "")
                             .typed<decltype(quantized_lstm_float_autograd)>();
  return inference_only(defined({input, h0, c0}), [&] {
    return op.call(input, input_scale, input_zero_point, h0, c0, params, hidden_size, num_layers,
                   bidirectional, batch_first, proj_size);
  });
}

Triple quantized_lstm_packed_autograd(const at::Tensor& data, const at::Tensor& batch_sizes,
                                      double input_scale, int64_t input_zero_point,
                                      const c10::optional<at::Tensor>& h0,
                                      const c10::optional<at::Tensor>& c0, at::TensorList params,
                                      int64_t hidden_size, int64_t num_layers, bool bidirectional,
                                      int64_t proj_size) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("qlstm::quantized_lstm_packed", "")
                             .typed<decltype(quantized_lstm_packed_autograd)>();
  return inference_only(defined({data, h0, c0}), [&] {
    return op.call(data, batch_sizes, input_scale, input_zero_point, h0, c0, params, hidden_size,
                   num_layers, bidirectional, proj_size);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(qlstm, CPU, m) { m.impl("no_backward", &no_backward); }

TORCH_LIBRARY_IMPL(qlstm, Autograd, m) {
  m.impl("quantized_lstm_float", &quantized_lstm_float_autograd);
  m.impl("quantized_lstm_packed", &quantized_lstm_packed_autograd);
}

}  // namespace qlstm::ops

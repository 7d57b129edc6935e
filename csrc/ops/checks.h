// Argument checks shared by the qlstm ops. Every message starts with "qlstm:",
// names the argument, and says what was expected and what came.
#pragma once

#include <ATen/ATen.h>

#include <initializer_list>

#include "../kernels/packed_format.h"

namespace qlstm::ops {

// A scale must stay finite and positive once narrowed to the float the kernels use.
inline QParams checked_qparams(const char* name, double scale, int64_t zero_point) {
  const float s = static_cast<float>(scale);
  TORCH_CHECK_VALUE(std::isfinite(s) && s > 0.0f, "qlstm: ", name,
                    "_scale must be a finite number > 0 (as a float32), got ", scale);
  TORCH_CHECK_VALUE(zero_point >= 0 && zero_point <= 255, "qlstm: ", name,
                    "_zero_point must be in [0, 255], got ", zero_point);
  return QParams{s, static_cast<int32_t>(zero_point)};
}

inline void check_dtype(const at::Tensor& t, const char* name, at::ScalarType dtype) {
  TORCH_CHECK_TYPE(t.scalar_type() == dtype, "qlstm: ", name, " must be a ", dtype,
                   " tensor, got ", t.scalar_type());
}

inline void check_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), "qlstm: ", name, " must be on the CPU, got ",
                    t.device());
}

inline void check_shape(const at::Tensor& t, const char* name, at::IntArrayRef expected) {
  TORCH_CHECK_VALUE(t.sizes() == expected, "qlstm: ", name, " must have shape ", expected,
                    ", got ", t.sizes());
}

// A uint8 CPU tensor of rank `dim`.
inline void check_activation(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK_TYPE(t.defined(), "qlstm: ", name, " must be a tensor, got None");
  check_cpu(t, name);
  check_dtype(t, name, at::kByte);
  TORCH_CHECK_VALUE(t.dim() == dim, "qlstm: ", name, " must have ", dim,
                    " dimensions, got shape ", t.sizes());
}

// Bytes that `what` needs: the sum over parts of the product of each part's
// factors. Fails with a qlstm: error, before anything is allocated, when the
// sum does not fit an int64 or exceeds this machine's physical memory.
void check_memory(const char* what, std::initializer_list<std::initializer_list<int64_t>> parts);

// Validates one packed layer blob and returns its view. `keep_alive` receives
// the tensor the view points into (an aligned contiguous copy when needed).
PackedLayer checked_packed_layer(const at::Tensor& params, const std::string& name,
                                 at::Tensor* keep_alive);

}  // namespace qlstm::ops

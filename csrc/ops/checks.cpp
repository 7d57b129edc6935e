#include "checks.h"

namespace qlstm::ops {

PackedLayer checked_packed_layer(const at::Tensor& params, const std::string& name,
                                 at::Tensor* keep_alive) {
  check_cpu(params, name.c_str());
  check_dtype(params, name.c_str(), at::kByte);
  TORCH_CHECK_VALUE(params.dim() == 1, "qlstm: ", name,
                    " must be a 1-d packed layer from qlstm.ops.pack_lstm_layer, got shape ",
                    params.sizes());
  at::Tensor blob = params.contiguous();
  if (reinterpret_cast<uintptr_t>(blob.data_ptr()) % 64 != 0) blob = blob.clone();
  PackedLayer view{};
  const char* error = unpack_layer_view(blob.data_ptr<uint8_t>(),
                                        static_cast<size_t>(blob.numel()), &view);
  TORCH_CHECK_VALUE(error == nullptr, "qlstm: ", name,
                    " must be a packed layer from qlstm.ops.pack_lstm_layer, but it ", error);
  *keep_alive = blob;
  return view;
}

}  // namespace qlstm::ops

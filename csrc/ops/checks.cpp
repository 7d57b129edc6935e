#include "checks.h"

#include <c10/util/intrusive_ptr.h>
#include <unistd.h>

#include <limits>
#include <mutex>
#include <unordered_map>

namespace qlstm::ops {
namespace {

int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page
                               : std::numeric_limits<int64_t>::max();
}

// Blobs whose checksum has been verified, by tensor, with the version counter
// and the data they had then: a blob is hashed on its first use (after loading
// a file, say), after an in-place change through torch, and when the tensor
// holds other memory (`P.data = other`, `P.set_(...)`), not on every call.
// Writes that bypass the version counter (through `.data`, `untyped_storage()`,
// numpy, an inference tensor, another process's mmap) are not seen. The weak
// references keep a dead tensor's address from being reused while listed.
class VerifiedBlobs {
 public:
  bool contains(const at::Tensor& t) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = entries_.find(t.unsafeGetTensorImpl());
    return it != entries_.end() && !it->second.tensor.expired() &&
           it->second.version == version(t) && it->second.data == t.const_data_ptr() &&
           it->second.bytes == t.nbytes();
  }
  void add(const at::Tensor& t) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (entries_.size() >= 2 * live_after_purge_ + 64) purge();
    entries_.insert_or_assign(t.unsafeGetTensorImpl(),
                              Entry{c10::weak_intrusive_ptr<c10::TensorImpl>(t.getIntrusivePtr()),
                                    version(t), t.const_data_ptr(), t.nbytes()});
  }

 private:
  struct Entry {
    c10::weak_intrusive_ptr<c10::TensorImpl> tensor;
    uint32_t version;
    const void* data;
    size_t bytes;
  };
  // Inference tensors have no version counter (torch cannot change them in
  // place outside inference mode).
  static uint32_t version(const at::Tensor& t) { return t.is_inference() ? 0 : t._version(); }
  void purge() {
    for (auto it = entries_.begin(); it != entries_.end();) {
      it = it->second.tensor.expired() ? entries_.erase(it) : std::next(it);
    }
    live_after_purge_ = entries_.size();
  }
  std::mutex mutex_;
  std::unordered_map<const c10::TensorImpl*, Entry> entries_;
  size_t live_after_purge_ = 0;
};

VerifiedBlobs& verified_blobs() {
  static VerifiedBlobs* blobs = new VerifiedBlobs();  // never destroyed: used until exit
  return *blobs;
}

}  // namespace

void check_memory(const char* what, std::initializer_list<std::initializer_list<int64_t>> parts) {
  int64_t total = 0;
  bool wraps = false;
  for (const auto& factors : parts) {
    int64_t bytes = 1;
    for (int64_t f : factors) wraps |= __builtin_mul_overflow(bytes, f, &bytes);
    wraps |= __builtin_add_overflow(total, bytes, &total);
  }
  TORCH_CHECK_VALUE(!wraps, "qlstm: ", what, " would need more than 2^63 bytes");
  static const int64_t memory = physical_memory_bytes();
  TORCH_CHECK_VALUE(total <= memory, "qlstm: ", what, " would need ", total,
                    " bytes, more than this machine's ", memory, " bytes of memory");
}

PackedLayer checked_packed_layer(const at::Tensor& params, const std::string& name,
                                 at::Tensor* keep_alive) {
  check_cpu(params, name.c_str());
  check_dtype(params, name.c_str(), at::kByte);
  TORCH_CHECK_VALUE(params.dim() == 1, "qlstm: ", name,
                    " must be a 1-d packed layer from qlstm.ops.pack_lstm_layer, got shape ",
                    params.sizes());
  // The header alone says how long the blob must be: a wrong tensor, an
  // expanded one say, fails before it is copied whole. A contiguous blob (the
  // usual case) is read in place; another has at most its header copied.
  const int64_t n = params.numel();
  const int64_t head_bytes = std::min<int64_t>(n, static_cast<int64_t>(kPackedHeaderBytes));
  const at::Tensor head =
      params.is_contiguous() ? params : params.narrow(0, 0, head_bytes).contiguous();
  size_t total = 0;
  const char* header_error = packed_size_from_header(head.const_data_ptr<uint8_t>(),
                                                     static_cast<size_t>(head_bytes), &total);
  TORCH_CHECK_VALUE(header_error == nullptr, "qlstm: ", name,
                    " must be a packed layer from qlstm.ops.pack_lstm_layer, but it ", header_error);
  TORCH_CHECK_VALUE(static_cast<size_t>(n) == total, "qlstm: ", name,
                    " must be a packed layer from qlstm.ops.pack_lstm_layer, but it has ", n,
                    " bytes where its header says ", total);
  at::Tensor blob = params.contiguous();
  if (reinterpret_cast<uintptr_t>(blob.data_ptr()) % 64 != 0) blob = blob.clone();
  PackedLayer view{};
  const char* error = unpack_layer_view(blob.data_ptr<uint8_t>(),
                                        static_cast<size_t>(blob.numel()), &view);
  TORCH_CHECK_VALUE(error == nullptr, "qlstm: ", name,
                    " must be a packed layer from qlstm.ops.pack_lstm_layer, but it ", error);
  if (!verified_blobs().contains(blob)) {
    TORCH_CHECK_VALUE(verify_checksum(blob.data_ptr<uint8_t>(), static_cast<size_t>(blob.numel())),
                      "qlstm: ", name, " must be a packed layer from qlstm.ops.pack_lstm_layer, "
                      "but its bytes do not match its checksum (altered or corrupted)");
    verified_blobs().add(blob);
  }
  *keep_alive = blob;
  return view;
}

}  // namespace qlstm::ops

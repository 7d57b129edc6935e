#include "quantize.h"

#include <cstring>

namespace qlstm {

void quantize(const float* x, int64_t n, QParams q, uint8_t* out) {
  const float inv = 1.0f / q.scale;
  for (int64_t i = 0; i < n; ++i) out[i] = quantize_per_tensor_value(x[i], inv, q.zero_point);
}

void dequantize(const uint8_t* x, int64_t n, QParams q, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    out[i] = static_cast<float>(static_cast<int32_t>(x[i]) - q.zero_point) * q.scale;
  }
}

void make_dequantize_table(QParams q, float* out) {
  // std::fma rounds once, as the vector fused multiply-add does, on any CPU.
  const DequantConstants d = dequant_constants(q);
  for (int v = 0; v < 256; ++v) out[v] = std::fma(static_cast<float>(v), d.scale, d.offset);
}

void make_requantize_table(QParams from, QParams to, uint8_t* table) {
  float deq[256];
  make_dequantize_table(from, deq);
  const float inv = 1.0f / to.scale;
  for (int v = 0; v < 256; ++v) table[v] = quantize_value(deq[v], inv, to.zero_point);
}

void map_bytes(const uint8_t* table, const uint8_t* src, int64_t n, uint8_t* dst) {
  // An empty batch's buffers may be null, which memmove must not get even for 0 bytes.
  if (n == 0) return;
  if (table == nullptr) {
    std::memmove(dst, src, static_cast<size_t>(n));
    return;
  }
  for (int64_t i = 0; i < n; ++i) dst[i] = table[src[i]];
}

}  // namespace qlstm

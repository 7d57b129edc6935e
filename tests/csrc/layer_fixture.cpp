#include "layer_fixture.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace qlstm::testing {
namespace {

// Random weights in [lo, hi] with more of both ends than chance gives, so
// that every panel meets the extremes ([-128, 127], or [-s.weight_bound,
// s.weight_bound]); or all equal to s.all_weights.
std::vector<int8_t> random_weights(size_t n, std::mt19937& rng, const LayerSpec& s) {
  const int lo = s.weight_bound ? -*s.weight_bound : -128;
  const int hi = s.weight_bound ? *s.weight_bound : 127;
  std::uniform_int_distribution<int> byte(lo, hi), pick(0, 15);
  std::vector<int8_t> w(n);
  for (size_t i = 0; i < n; ++i) {
    const int r = pick(rng);
    w[i] = s.all_weights ? *s.all_weights
                         : static_cast<int8_t>(r == 0 ? lo : r == 1 ? hi : byte(rng));
  }
  return w;
}

QParams random_qparams(std::mt19937& rng, bool power_of_two) {
  std::uniform_real_distribution<float> log_scale(-9.0f, 1.0f);
  std::uniform_int_distribution<int> zp(0, 255);
  const float e = log_scale(rng);
  return QParams{std::exp2(power_of_two ? std::round(e) : e), zp(rng)};
}

}  // namespace

RandomLayer::RandomLayer(const LayerSpec& s) {
  std::mt19937 rng(s.seed);
  const int64_t I = s.input_size, H = s.hidden_size, P = s.proj_size, rows = 4 * H;
  const int64_t h_size = P > 0 ? P : H;
  w_ih_ = random_weights(static_cast<size_t>(rows * I), rng, s);
  w_hh_ = random_weights(static_cast<size_t>(rows * h_size), rng, s);
  std::uniform_real_distribution<float> scale(0.001f, 0.05f), bias(-2.0f, 2.0f);
  std::uniform_int_distribution<int> zp(-128, 127);
  float ih_scale[kNumGates], hh_scale[kNumGates];
  for (int g = 0; g < kNumGates; ++g) {
    ih_scale[g] = g == 0 || s.split_gates ? scale(rng) : ih_scale[0];
    hh_scale[g] = g == 0 || s.split_gates ? scale(rng) : hh_scale[0];
  }
  for (int64_t r = 0; r < rows; ++r) {
    w_ih_scale_.push_back(s.per_channel ? scale(rng) : ih_scale[r / H]);
    w_hh_scale_.push_back(s.per_channel ? scale(rng) : hh_scale[r / H]);
    w_ih_zp_.push_back(s.zero_points ? zp(rng) : 0);
    w_hh_zp_.push_back(s.zero_points ? zp(rng) : 0);
    b_ih_.push_back(bias(rng));
    b_hh_.push_back(bias(rng));
  }
  w_hr_ = random_weights(static_cast<size_t>(P * H), rng, s);
  const float hr_scale = scale(rng);
  for (int64_t r = 0; r < P; ++r) {
    w_hr_scale_.push_back(s.per_channel ? scale(rng) : hr_scale);
    w_hr_zp_.push_back(s.zero_points ? zp(rng) : 0);
  }
  const LayerWeights w{
      I,
      H,
      P,
      MatrixWeights{w_ih_.data(), w_ih_scale_.data(), w_ih_zp_.data(), s.bias ? b_ih_.data() : nullptr},
      MatrixWeights{w_hh_.data(), w_hh_scale_.data(), w_hh_zp_.data(), s.bias ? b_hh_.data() : nullptr},
      MatrixWeights{w_hr_.data(), w_hr_scale_.data(), w_hr_zp_.data(), nullptr},
      s.per_channel};
  QParams list[kMaxCellQParams];
  for (QParams& qp : list) qp = random_qparams(rng, s.power_of_two_scales);
  q_ = cell_qparams_from_list(list, s.split_gates, P > 0, s.accurate);
  // The activation tables are data to the kernels: random ones test every lookup.
  const std::vector<uint8_t> tables = random_bytes(5 * 256, s.seed + 7);
  const LayerTables t{{tables.data(), tables.data() + 256, tables.data() + 512, tables.data() + 768},
                      tables.data() + 1024};
  size_ = packed_layer_size(w);
  blob_ = std::make_unique<AlignedBlob>(size_);
  pack_layer(w, q_, t, blob_->data());
  if (const char* err = unpack_layer_view(blob_->data(), size_, &view_)) {
    throw std::runtime_error(std::string("packed layer ") + err);
  }
}

AlignedBlob::AlignedBlob(size_t size) : storage_(size + 64) {
  data_ = storage_.data() + (64 - reinterpret_cast<uintptr_t>(storage_.data()) % 64) % 64;
}

AlignedBlob::AlignedBlob(const uint8_t* data, size_t size) : AlignedBlob(size) {
  std::memcpy(data_, data, size);
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed, bool extremes) {
  static const uint8_t kExtremes[] = {0, 1, 127, 128, 255};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255), pick(0, 4);
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = static_cast<uint8_t>(extremes ? kExtremes[pick(rng)] : byte(rng));
  return v;
}

Parallel thread_parallel(int threads) {
  return Parallel{threads, [threads](int64_t n, int64_t grain,
                                     const std::function<void(int64_t, int64_t)>& task) {
                    const int64_t parts =
                        std::max<int64_t>(1, std::min<int64_t>(threads, n / std::max<int64_t>(1, grain)));
                    std::vector<std::thread> workers;
                    for (int64_t i = 1; i < parts; ++i) {
                      workers.emplace_back([&, i] { task(n * i / parts, n * (i + 1) / parts); });
                    }
                    task(0, n / parts);
                    for (std::thread& t : workers) t.join();
                  }};
}

RunResult run_layer(const KernelSet& k, const PackedLayer& p, const std::vector<uint8_t>& x,
                    QParams x_q, int64_t T, int64_t B, bool reverse, const InitialState& init,
                    const Parallel& par) {
  RunResult r;
  r.out.assign(static_cast<size_t>(T * B * p.h_size()), 0);
  r.final_state = run_direction(k, p, x.data(), x_q, Steps{T, B, nullptr}, reverse, init,
                                r.out.data(), p.h_size(), 0, nullptr, par);
  return r;
}

FloatRunResult run_layer_float(const KernelSet& k, const PackedLayer& p,
                               const std::vector<uint8_t>& x, QParams x_q, int64_t T, int64_t B,
                               bool reverse, const FloatInitialState& init, QParams out_q,
                               const Parallel& par) {
  FloatRunResult r;
  const size_t n = static_cast<size_t>(T * B * p.hidden_size);
  r.out.assign(n, 0.0f);
  r.out_bytes.assign(n, 0);
  r.final_state = run_direction_float(k, p, x.data(), x_q, Steps{T, B, nullptr}, reverse, init,
                                      r.out.data(), r.out_bytes.data(), out_q, p.hidden_size, 0,
                                      par);
  return r;
}

std::optional<Isa> forced_isa() {
  const char* forced = std::getenv("QLSTM_ISA");
  if (forced == nullptr || *forced == '\0') return std::nullopt;
  Isa isa;
  if (!parse_isa(forced, &isa)) throw std::runtime_error(std::string("unknown QLSTM_ISA ") + forced);
  return isa;
}

std::vector<Isa> isas_under_test() {
  const std::optional<Isa> forced = forced_isa();
  std::vector<Isa> isas;
  for (Isa isa : kAllIsas) {
    if (isa != Isa::kScalar && (!forced || isa == *forced) && kernels_for(isa) != nullptr &&
        cpu_supports(isa)) {
      isas.push_back(isa);
    }
  }
  return isas;
}

}  // namespace qlstm::testing

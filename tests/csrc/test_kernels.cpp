// Every kernel set this build can run against the scalar reference, bit for
// bit: whole layer-directions through the layer driver, sizes around the
// vector widths, random qparams, weight zero points, several thread counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <type_traits>

#include "float_cell.h"
#include "layer_fixture.h"
#include "peak.h"

namespace qlstm::testing {
namespace {

struct Case {
  LayerSpec spec;
  int64_t T, B;
  bool reverse;
};

// Runs `c` with the reference and with every set under test; all outputs and
// final states must agree.
void expect_matches_reference(const Case& c, int threads, bool extremes) {
  const RandomLayer layer(c.spec);
  const PackedLayer& p = layer.view();
  const int64_t h_state = c.B * p.h_size(), c_state = c.B * p.hidden_size;
  const uint32_t seed = c.spec.seed * 31;
  const std::vector<uint8_t> x = random_bytes(static_cast<size_t>(c.T * c.B * p.input_size), seed, extremes);
  const std::vector<uint8_t> h0 = random_bytes(static_cast<size_t>(h_state), seed + 1, extremes);
  const std::vector<uint8_t> c0 = random_bytes(static_cast<size_t>(c_state), seed + 2, extremes);
  // Initial qparams unlike the layer's: step 0 has its own constants.
  const bool pow2 = c.spec.power_of_two_scales;
  const InitialState init{h0.data(), QParams{pow2 ? 0.015625f : 0.02f, 3}, c0.data(),
                          QParams{pow2 ? 0.0625f : 0.05f, 200}};
  const QParams x_q{pow2 ? 0.03125f : 0.03f, 17};
  const RunResult want =
      run_layer(scalar_kernels(), p, x, x_q, c.T, c.B, c.reverse, init, serial_parallel());
  for (Isa isa : isas_under_test()) {
    SCOPED_TRACE(isa_name(isa));
    const KernelSet* k = kernels_for(isa);
    ASSERT_NE(k, nullptr);
    const RunResult got = run_layer(*k, p, x, x_q, c.T, c.B, c.reverse, init, thread_parallel(threads));
    EXPECT_EQ(got.out, want.out);
    EXPECT_EQ(got.final_state.h, want.final_state.h);
    EXPECT_EQ(got.final_state.c, want.final_state.c);
  }
}

std::string describe(const Case& c) {
  return "I=" + std::to_string(c.spec.input_size) + " H=" + std::to_string(c.spec.hidden_size) +
         " B=" + std::to_string(c.B) + " T=" + std::to_string(c.T) +
         (c.spec.per_channel ? " per-channel" : " per-tensor") +
         (c.spec.zero_points ? " zero-points" : "") + (c.spec.bias ? "" : " no-bias") +
         (c.spec.split_gates ? " split-gates" : "") +
         (c.spec.proj_size ? " proj_size=" + std::to_string(c.spec.proj_size) : "") +
         (c.reverse ? " reverse" : "") + " seed=" + std::to_string(c.spec.seed);
}

TEST(KernelSets, UnderTestRunHere) {
  if (const std::optional<Isa> forced = forced_isa()) {
    EXPECT_NE(kernels_for(*forced), nullptr) << "this build has no " << isa_name(*forced) << " kernels";
    EXPECT_TRUE(cpu_supports(*forced)) << "this CPU cannot run " << isa_name(*forced);
  }
  const std::vector<Isa> isas = isas_under_test();
  std::string names;
  for (Isa isa : isas) names += std::string(" ") + isa_name(isa);
  std::printf("kernel sets under test:%s\n", names.empty() ? " (scalar only)" : names.c_str());
}

TEST(KernelSets, BestIsExpected) {
  const char* expected = std::getenv("QLSTM_EXPECT_BEST_ISA");
  if (expected == nullptr) GTEST_SKIP() << "QLSTM_EXPECT_BEST_ISA is not set";
  EXPECT_STREQ(isa_name(best_isa()), expected);
}

TEST(KernelSets, PeakProbesRun) {
  EXPECT_GT(peak_macs_per_second(Isa::kScalar, 0.01), 0.0);
  for (Isa isa : isas_under_test()) {
    EXPECT_GT(peak_macs_per_second(isa, 0.01), 0.0) << isa_name(isa);
  }
}

TEST(KernelSets, NamesRoundTrip) {
  for (Isa isa : kAllIsas) {
    Isa parsed;
    ASSERT_TRUE(parse_isa(isa_name(isa), &parsed));
    EXPECT_EQ(parsed, isa);
  }
  Isa parsed;
  EXPECT_FALSE(parse_isa("sse2", &parsed));
  EXPECT_TRUE(cpu_supports(Isa::kScalar));
}

TEST(Layer, SizesAroundVectorWidths) {
  const int64_t sizes[][2] = {{1, 1}, {3, 5}, {4, 8}, {7, 15}, {16, 16}, {17, 33}, {64, 48}, {130, 129}};
  const int64_t batches[] = {1, 2, 3, 5, 9};
  uint32_t seed = 1;
  for (const auto& s : sizes) {
    for (int64_t B : batches) {
      Case c{LayerSpec{s[0], s[1], seed % 2 == 0, seed % 3 == 0, seed % 5 != 0, seed}, 3, B,
             seed % 4 == 1};
      c.spec.split_gates = seed % 7 < 3;
      // A projection in every third case: sizes 1 to H - 1.
      if (s[1] > 1 && seed % 3 == 2) c.spec.proj_size = 1 + static_cast<int64_t>(seed) % (s[1] - 1);
      SCOPED_TRACE(describe(c));
      expect_matches_reference(c, 1, /*extremes=*/false);
      ++seed;
    }
  }
}

TEST(Layer, ExtremeOperands) {
  // Activations of only 0, 1, 127, 128 and 255 against many -128 and 127
  // weights, with power-of-two scales (ties in every rounding).
  for (uint32_t seed = 100; seed < 106; ++seed) {
    Case c{LayerSpec{37, 21, seed % 3 != 0, seed % 2 == 0, true, seed, true}, 4, 4, false};
    c.spec.split_gates = seed % 2 == 1;
    c.spec.proj_size = seed % 3 == 0 ? 17 : 0;
    SCOPED_TRACE(describe(c));
    expect_matches_reference(c, 1, /*extremes=*/true);
  }
}

TEST(Layer, ThreadCounts) {
  // Large enough that the driver splits both the input projection and each
  // step (and, with proj_size 150, the layer's projection).
  for (int variant = 0; variant < 3; ++variant) {
    Case c{LayerSpec{96, 200, true, true, true, 7}, 4, 5, false};
    c.spec.split_gates = variant == 1;
    c.spec.proj_size = variant == 2 ? 150 : 0;
    for (int threads : {1, 2, 3, 4}) {
      SCOPED_TRACE("threads=" + std::to_string(threads) + " " + describe(c));
      expect_matches_reference(c, threads, /*extremes=*/false);
    }
  }
}

TEST(Layer, BatchPartsWithAWhhPastHalfAnL2) {
  // W_hh of 4 x 384 x 384 bytes (576 KB) is split by sequences only when each
  // part gets 4 sequences or more: batch 9 on 2 threads (4 + 5), and on 3
  // threads (3 each), where each step is split instead.
  Case c{LayerSpec{50, 384, true, true, true, 41}, 3, 9, true};
  for (int threads : {2, 3}) {
    SCOPED_TRACE("threads=" + std::to_string(threads) + " " + describe(c));
    expect_matches_reference(c, threads, /*extremes=*/false);
  }
}

TEST(Layer, SequencePartsAtTheirBoundaries) {
  // W_hh of 4 x 384 x 384 bytes (576 KB, past 512 KB, within 2 MB) is split
  // by sequences when each part gets 4 or more: batch 8 on 2 threads, not 7;
  // 4 x 256 x 256 (256 KB) at any batch of 2 or more; 4 x 720 x 720 (within
  // 2 MB) as 384, 4 x 736 x 736 (the next whole unit block, past it) never;
  // nor on 1 thread or at batch 1.
  struct Expect {
    int64_t hidden, B, threads, parts;
  };
  const Expect cases[] = {{384, 8, 2, 2}, {384, 7, 2, 1}, {384, 12, 3, 3}, {384, 11, 3, 1},
                          {256, 2, 2, 2}, {256, 3, 3, 3}, {720, 8, 2, 2},  {736, 64, 2, 1},
                          {256, 8, 1, 1}, {256, 1, 2, 1}};
  for (const Expect& e : cases) {
    SCOPED_TRACE("H=" + std::to_string(e.hidden) + " B=" + std::to_string(e.B) +
                 " threads=" + std::to_string(e.threads));
    const RandomLayer layer(LayerSpec{50, e.hidden, true, false, true, 3});
    const Steps steps{3, e.B, nullptr};
    EXPECT_EQ(sequence_parts(layer.view(), steps, thread_parallel(static_cast<int>(e.threads))),
              e.parts);
  }
}

TEST(Layer, BatchOneStepsComputeTheNextInputProjection) {
  // At batch 1, a set with rider_rows projects each chunk of that many steps
  // during the steps of the chunk before: T around multiples of the chunk
  // (the first chunk alone, a last partial one), both directions, inputs
  // narrower and wider than H (the riding pass ends with either tile's k;
  // I = 3 has only the K tail), odd numbers of unit blocks (H = 40, 200),
  // -128 weights, weight zero points, a projection, and 2 and 3 threads:
  // they project the first chunk and, at H = 384, split each step, which
  // then projects nothing of the next.
  const int64_t sizes[][2] = {{37, 21}, {3, 40}, {200, 64}, {96, 200}, {100, 384}};
  uint32_t seed = 300;
  for (const auto& s : sizes) {
    for (int64_t T : {15, 16, 17, 24, 41}) {
      Case c{LayerSpec{s[0], s[1], seed % 2 == 0, seed % 3 == 0, true, seed, seed % 4 == 0},
             T, 1, seed % 2 == 1};
      c.spec.split_gates = seed % 5 == 0;
      c.spec.proj_size = seed % 3 == 1 ? s[1] / 2 : 0;
      for (int threads : {1, 2, 3}) {
        SCOPED_TRACE("threads=" + std::to_string(threads) + " " + describe(c));
        expect_matches_reference(c, threads, /*extremes=*/seed % 2 == 0);
      }
      ++seed;
    }
  }
}

// KernelSet::linear of `rows` rows of x against p's W_ih on every set under
// test: the reference's bytes. With Out = float, KernelSet::linear_float (the
// accurate mode's, for an output scale of 1): its outputs keep every unit of
// a sum, which a requantized byte may round away.
template <class Out = uint8_t>
void expect_input_projection_matches_reference(const PackedLayer& p, const std::vector<uint8_t>& x,
                                               int64_t rows) {
  constexpr bool kFloat = std::is_same_v<Out, float>;
  const QParams unit[kNumGates] = {{1.0f, 0}, {1.0f, 0}, {1.0f, 0}, {1.0f, 0}};
  const LinearRequantStorage ih(p.ih, QParams{0.01f, 3}, kFloat ? unit : p.q.igates);
  auto linear = [&](const KernelSet& k, Out* out) {
    if constexpr (kFloat) {
      k.linear_float(p.ih, ih.r, x.data(), 0, rows, 0, p.ih.panels(), out);
    } else {
      k.linear(p.ih, ih.r, x.data(), 0, rows, 0, p.ih.panels(), out);
    }
  };
  std::vector<Out> want(static_cast<size_t>(rows * p.rows));
  linear(scalar_kernels(), want.data());
  for (Isa isa : isas_under_test()) {
    SCOPED_TRACE(isa_name(isa));
    std::vector<Out> got(want.size());
    linear(*kernels_for(isa), got.data());
    EXPECT_EQ(got, want);
  }
}

// A whole layer of 2 steps and B sequences whose input and initial h bytes
// all equal v: the input projection and each step's h rows of one value.
void expect_layer_of_one_byte_matches_reference(const PackedLayer& p, uint8_t v, int64_t B) {
  const std::vector<uint8_t> xs(static_cast<size_t>(2 * B * p.input_size), v);
  const std::vector<uint8_t> h0(static_cast<size_t>(B * p.h_size()), v);
  const std::vector<uint8_t> c0 = random_bytes(static_cast<size_t>(B * p.hidden_size), 4);
  const InitialState init{h0.data(), QParams{0.02f, 3}, c0.data(), QParams{0.05f, 200}};
  const RunResult want = run_layer(scalar_kernels(), p, xs, QParams{0.03f, 17}, 2, B, false, init,
                                   serial_parallel());
  for (Isa isa : isas_under_test()) {
    SCOPED_TRACE(isa_name(isa));
    const RunResult got = run_layer(*kernels_for(isa), p, xs, QParams{0.03f, 17}, 2, B, false,
                                    init, thread_parallel(2));
    EXPECT_EQ(got.out, want.out);
    EXPECT_EQ(got.final_state.h, want.final_state.h);
  }
}

TEST(Layer, NarrowActivationsAtTheInt16Boundary) {
  // A set's plain form (avx2: vpmaddubsw on the raw bytes, for rows whose
  // bytes are all <= 128) meets the int16 minimum with 128 against two -128
  // weights, 2 * 128 * -128, and passes it with 129: whichever form a set
  // picks, it must give the reference's results. Rows of one byte value, and
  // rows of bytes <= 128 with one 129 (beside a 128) at the start, in the
  // middle and in the K tail (K = 38: the last 4-byte group has 2), last.
  for (int w : {-128, 127}) {
    LayerSpec spec{38, 20, true, false, true, 5};
    spec.all_weights = static_cast<int8_t>(w);
    const RandomLayer layer(spec);
    const PackedLayer& p = layer.view();
    for (int v : {127, 128, 129, 255}) {
      for (int64_t at : {-1, 0, 17, 36, 37}) {
        SCOPED_TRACE("w=" + std::to_string(w) + " v=" + std::to_string(v) + " at=" + std::to_string(at));
        const int64_t rows = 5, K = p.ih.K;
        std::vector<uint8_t> x(static_cast<size_t>(rows * K), static_cast<uint8_t>(v));
        if (at >= 0) {
          x = random_bytes(x.size(), 9);
          for (uint8_t& b : x) b = static_cast<uint8_t>(b % 129);
          for (int64_t r = 0; r < rows; ++r) {
            x[r * K + at] = 129;
            x[r * K + (at ^ 1)] = 128;
          }
        }
        expect_input_projection_matches_reference(p, x, rows);
      }
      expect_layer_of_one_byte_matches_reference(p, static_cast<uint8_t>(v), 3);
    }
  }
}

TEST(Layer, ExactFormAtTheInt16Boundary) {
  // avx2's exact form multiplies |x - 128| by w, or by ~w = -w - 1 where
  // x < 128, and adds back sum over x < 128 of 128 - x per row. Its pair sums
  // reach the int16 minimum with two 0s against two 127 weights,
  // 2 * 128 * -128, and 2 * 128 * 127 with two 0s against two -128 weights.
  // Rows of one byte value with a 255 (which keeps them off the plain form)
  // at the start, in the middle or last; K = 38 and 39, tails of 2 and 3
  // bytes past the vector part of the row correction. Byte and float outputs.
  for (int w : {-128, 127}) {
    for (int64_t K : {38, 39}) {
      LayerSpec spec{K, 20, true, false, true, 13};
      spec.all_weights = static_cast<int8_t>(w);
      const RandomLayer layer(spec);
      const PackedLayer& p = layer.view();
      for (int v : {0, 1, 127, 255}) {
        for (int64_t at : {int64_t{0}, int64_t{17}, K - 1}) {
          SCOPED_TRACE("w=" + std::to_string(w) + " K=" + std::to_string(K) +
                       " v=" + std::to_string(v) + " at=" + std::to_string(at));
          const int64_t rows = 4;
          std::vector<uint8_t> x(static_cast<size_t>(rows * K), static_cast<uint8_t>(v));
          for (int64_t r = 0; r < rows; ++r) x[r * K + at] = 255;
          expect_input_projection_matches_reference(p, x, rows);
          expect_input_projection_matches_reference<float>(p, x, rows);
        }
      }
    }
  }
}

TEST(Layer, NarrowWeightsAtTheInt16Boundary) {
  // A matrix whose weights all lie in [-64, 64] is packed as narrow, and a
  // set's plain form (avx2) then takes every row against it: 2 * 255 * 64
  // fits int16, 2 * 255 * 65 does not. Weights bounded by 64 and by 65, many
  // at the bounds, against rows of 255 (every pair of equal-signed bounds
  // past int16 at 65), of 0 and of random bytes; single rows and a batch,
  // with and without a projection (W_hr bounded too).
  for (int bound : {64, 65}) {
    for (int64_t proj_size : {0, 7}) {
      SCOPED_TRACE("bound=" + std::to_string(bound) + " proj_size=" + std::to_string(proj_size));
      LayerSpec spec{38, 20, true, false, true, 11};
      spec.weight_bound = bound;
      spec.proj_size = proj_size;
      const RandomLayer layer(spec);
      const PackedLayer& p = layer.view();
      const bool narrow = bound <= kNarrowWeightMax;
      EXPECT_EQ(p.ih.narrow_weights, narrow);
      EXPECT_EQ(p.hh.narrow_weights, narrow);
      EXPECT_EQ(p.hr.narrow_weights, narrow && proj_size > 0);
      const int64_t rows = 5;
      const size_t x_bytes = static_cast<size_t>(rows * p.ih.K);
      expect_input_projection_matches_reference(p, std::vector<uint8_t>(x_bytes, 255), rows);
      expect_input_projection_matches_reference(p, random_bytes(x_bytes, 3), rows);
      for (int64_t B : {1, 3}) {
        for (uint8_t v : {uint8_t{0}, uint8_t{255}}) {
          expect_layer_of_one_byte_matches_reference(p, v, B);
        }
        expect_matches_reference(Case{spec, 6, B, false}, 2, /*extremes=*/true);
      }
    }
  }
}

TEST(Layer, PairSumsAtTheInt16Boundary) {
  // Against a narrow matrix, a set's pair sums (avx2: vpaddw of two groups'
  // vpmaddubsw pair sums, for rows whose bytes are all <= 127) meet int16 at
  // 4 * 127 * 64 = 32512 and pass it with 128: 4 * 128 * 64 = 32768. Weights
  // all 64 (and -64, the negative side, and 65, not narrow) against rows of
  // one byte, and tiles of rows <= 127 with one row of 128s; K of 1 group,
  // odd and even group counts, with and without a tail.
  for (int64_t K : {4, 12, 38, 40}) {
    for (int w : {64, -64, 65}) {
      LayerSpec spec{K, 24, true, false, true, 21};
      spec.all_weights = static_cast<int8_t>(w);
      const RandomLayer layer(spec);
      const PackedLayer& p = layer.view();
      ASSERT_EQ(p.ih.narrow_weights, w != 65);
      for (int v : {127, 128}) {
        SCOPED_TRACE("K=" + std::to_string(K) + " w=" + std::to_string(w) + " v=" +
                     std::to_string(v));
        const int64_t rows = 5;
        expect_input_projection_matches_reference(
            p, std::vector<uint8_t>(static_cast<size_t>(rows * K), static_cast<uint8_t>(v)), rows);
        for (int64_t B : {1, 3}) {
          expect_layer_of_one_byte_matches_reference(p, static_cast<uint8_t>(v), B);
        }
      }
      std::vector<uint8_t> x = random_bytes(static_cast<size_t>(5 * K), 8);
      for (uint8_t& b : x) b = static_cast<uint8_t>(b % 128);
      std::fill(x.begin() + K, x.begin() + 2 * K, uint8_t{128});
      SCOPED_TRACE("K=" + std::to_string(K) + " w=" + std::to_string(w) + " one row of 128");
      expect_input_projection_matches_reference(p, x, 5);
    }
  }
}

// The accurate mode: floats compared bit for bit (== would equate -0 and 0).
std::vector<uint32_t> bits(const std::vector<float>& v) {
  std::vector<uint32_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& f : v) f = u(rng);
  return v;
}

// x_byte: every input byte that value, instead of random ones.
void expect_float_cell_matches_reference(const Case& c, int threads, bool extremes,
                                         QParams x_q = QParams{0.03f, 17},
                                         std::optional<uint8_t> x_byte = std::nullopt) {
  LayerSpec spec = c.spec;
  spec.accurate = true;
  const RandomLayer layer(spec);
  const PackedLayer& p = layer.view();
  ASSERT_TRUE(p.q.accurate);
  const size_t state = static_cast<size_t>(c.B * p.hidden_size);
  const uint32_t seed = spec.seed * 31;
  const size_t x_size = static_cast<size_t>(c.T * c.B * p.input_size);
  const std::vector<uint8_t> x =
      x_byte ? std::vector<uint8_t>(x_size, *x_byte) : random_bytes(x_size, seed, extremes);
  const std::vector<float> h0 = random_floats(state, seed + 1, 1.0f);
  const std::vector<float> c0 = random_floats(state, seed + 2, extremes ? 30.0f : 3.0f);
  const FloatInitialState init{h0.data(), c0.data()};
  const QParams out_q{0.0078125f, 128};
  const FloatRunResult want = run_layer_float(scalar_kernels(), p, x, x_q, c.T, c.B, c.reverse,
                                              init, out_q, serial_parallel());
  for (Isa isa : isas_under_test()) {
    SCOPED_TRACE(isa_name(isa));
    const KernelSet* k = kernels_for(isa);
    ASSERT_NE(k, nullptr);
    const FloatRunResult got = run_layer_float(*k, p, x, x_q, c.T, c.B, c.reverse, init, out_q,
                                               thread_parallel(threads));
    EXPECT_EQ(bits(got.out), bits(want.out));
    EXPECT_EQ(got.out_bytes, want.out_bytes);
    EXPECT_EQ(bits(got.final_state.h), bits(want.final_state.h));
    EXPECT_EQ(bits(got.final_state.c), bits(want.final_state.c));
  }
}

TEST(FloatCell, SizesAroundVectorWidths) {
  const int64_t sizes[][2] = {{1, 1}, {3, 5}, {4, 8}, {7, 15}, {16, 16}, {17, 33}, {64, 48}, {130, 129}};
  const int64_t batches[] = {1, 2, 3, 5, 9};
  uint32_t seed = 1;
  for (const auto& s : sizes) {
    for (int64_t B : batches) {
      const Case c{LayerSpec{s[0], s[1], seed % 2 == 0, seed % 3 == 0, seed % 5 != 0, seed}, 3, B,
                   seed % 4 == 1};
      SCOPED_TRACE(describe(c));
      expect_float_cell_matches_reference(c, 1, /*extremes=*/false);
      ++seed;
    }
  }
}

TEST(FloatCell, ExtremeOperandsAndThreads) {
  // Activations of only 0, 1, 127, 128 and 255, many -128 and 127 weights and
  // large cell states: gate sums far past the activations' clamps.
  for (uint32_t seed = 100; seed < 104; ++seed) {
    const Case c{LayerSpec{37, 21, seed % 3 != 0, seed % 2 == 0, true, seed}, 4, 4, false};
    SCOPED_TRACE(describe(c));
    expect_float_cell_matches_reference(c, 1, /*extremes=*/true);
  }
  const Case big{LayerSpec{96, 200, true, true, true, 7}, 4, 5, false};
  for (int threads : {2, 3}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    expect_float_cell_matches_reference(big, threads, /*extremes=*/false);
  }
}

TEST(FloatCell, NarrowWeightsAtTheInt16Boundary) {
  // The accurate mode's linears and steps pick the plain form against narrow
  // matrices as the default mode's do (Layer.NarrowWeightsAtTheInt16Boundary).
  for (int bound : {64, 65}) {
    for (int64_t B : {1, 3}) {
      LayerSpec spec{38, 20, true, false, true, 11};
      spec.weight_bound = bound;
      const Case c{spec, 5, B, false};
      SCOPED_TRACE("bound=" + std::to_string(bound) + " " + describe(c));
      expect_float_cell_matches_reference(c, 2, /*extremes=*/true);
    }
  }
}

TEST(FloatCell, PairSumsAtTheInt16Boundary) {
  // The accurate mode's input projection takes the pair sums as the default
  // mode's does (Layer.PairSumsAtTheInt16Boundary): inputs of 127 and of 128
  // against weights all 64, K of an odd group count with a tail; B = 1 and 5.
  for (int v : {127, 128}) {
    for (int64_t B : {1, 5}) {
      LayerSpec spec{38, 24, true, false, true, 13};
      spec.all_weights = int8_t{64};
      const Case c{spec, 4, B, false};
      SCOPED_TRACE("v=" + std::to_string(v) + " " + describe(c));
      expect_float_cell_matches_reference(c, 1, /*extremes=*/false, QParams{0.03f, 17},
                                          static_cast<uint8_t>(v));
    }
  }
}

TEST(FloatCell, NaNGateSumsAreAlikeOnEverySet) {
  // An input scale so small that x_scale * w_scale underflows: infinite bias
  // terms, NaN products, which every set's clamp must take to the same end.
  const Case c{LayerSpec{5, 19, true, false, true, 3}, 3, 2, false};
  expect_float_cell_matches_reference(c, 1, /*extremes=*/false, QParams{1.4e-45f, 0});
}

TEST(FloatCell, ActivationsAreWithinTheirBound) {
  // float_cell.h's approximations against libm, over and past the clamp.
  double worst_tanh = 0, worst_sigmoid = 0;
  for (int i = -200000; i <= 200000; ++i) {
    const float x = static_cast<float>(i) * 1e-4f;
    worst_tanh = std::max(worst_tanh, std::abs(tanh_approx(x, clamp_float) - std::tanh(double{x})));
    worst_sigmoid = std::max(worst_sigmoid, std::abs(sigmoid_approx(x, clamp_float) -
                                                     1.0 / (1.0 + std::exp(-double{x}))));
  }
  EXPECT_LT(worst_tanh, 5e-7);
  EXPECT_LT(worst_sigmoid, 5e-7);
  EXPECT_EQ(tanh_approx(50.0f, clamp_float), 1.0f);
  EXPECT_EQ(tanh_approx(-50.0f, clamp_float), -1.0f);
  EXPECT_EQ(tanh_approx(0.0f, clamp_float), 0.0f);
}

TEST(Layer, EmptyBatchAndSequence) {
  const RandomLayer layer(LayerSpec{5, 7, true, false, true, 12});
  for (Isa isa : isas_under_test()) {
    SCOPED_TRACE(isa_name(isa));
    const InitialState zeros{nullptr, QParams{1.0f, 0}, nullptr, QParams{1.0f, 0}};
    const RunResult no_batch = run_layer(*kernels_for(isa), layer.view(), {}, QParams{0.1f, 0}, 3,
                                         0, false, zeros, thread_parallel(2));
    EXPECT_TRUE(no_batch.out.empty() && no_batch.final_state.h.empty());
    const RunResult no_steps = run_layer(*kernels_for(isa), layer.view(), {}, QParams{0.1f, 0}, 0,
                                         2, false, zeros, thread_parallel(2));
    EXPECT_EQ(no_steps.final_state.h, std::vector<uint8_t>(2 * 7, 0));
  }
  // Empty buffers can be null: nothing is read or written.
  map_bytes(nullptr, nullptr, 0, nullptr);
}

TEST(Layer, PackedStepsEqualEachSequenceAlone) {
  // Sequences of lengths 7, 5, 5, 2, 1 in PackedSequence's layout, forward and
  // reverse, against each sequence run alone; every set, 1 and 3 threads;
  // without and with a projection (h of 9 bytes, c of 21).
  for (int64_t proj_size : {0, 9}) {
    LayerSpec spec{13, 21, true, true, true, 17};
    spec.proj_size = proj_size;
    const RandomLayer layer(spec);
    const PackedLayer& p = layer.view();
    const int64_t I = p.input_size, H = p.hidden_size, S = p.h_size();
    const std::vector<int64_t> lengths = {7, 5, 5, 2, 1}, batch_sizes = {5, 4, 3, 3, 3, 1, 1};
    const int64_t B = 5, T = 7, rows = 20;
    const std::vector<uint8_t> x = random_bytes(static_cast<size_t>(rows * I), 5);
    const std::vector<uint8_t> h0 = random_bytes(static_cast<size_t>(B * S), 6);
    const std::vector<uint8_t> c0 = random_bytes(static_cast<size_t>(B * H), 7);
    const QParams x_q{0.03f, 17};
    const InitialState init{h0.data(), p.q.h(), c0.data(), p.q.cell};
    std::vector<Isa> sets = isas_under_test();
    sets.insert(sets.begin(), Isa::kScalar);
    for (bool reverse : {false, true}) {
      SCOPED_TRACE(std::string(reverse ? "reverse" : "forward") + " proj_size=" +
                   std::to_string(proj_size));
      for (Isa isa : sets) {
        for (int threads : {1, 3}) {
          SCOPED_TRACE(std::string(isa_name(isa)) + " threads=" + std::to_string(threads));
          const KernelSet& k = *kernels_for(isa);
          std::vector<uint8_t> out(static_cast<size_t>(rows * S), 0);
          const DirectionResult packed =
              run_direction(k, p, x.data(), x_q, Steps{T, B, batch_sizes.data()}, reverse, init,
                            out.data(), S, 0, nullptr, thread_parallel(threads));
          for (int64_t b = 0; b < B; ++b) {
            // Sequence b alone: its rows of x, in time order.
            std::vector<uint8_t> xb;
            std::vector<int64_t> row_of;
            for (int64_t t = 0, first = 0; t < lengths[b]; first += batch_sizes[t], ++t) {
              row_of.push_back(first + b);
              xb.insert(xb.end(), x.begin() + (first + b) * I, x.begin() + (first + b + 1) * I);
            }
            const InitialState alone{h0.data() + b * S, p.q.h(), c0.data() + b * H, p.q.cell};
            const RunResult want = run_layer(scalar_kernels(), p, xb, x_q, lengths[b], 1, reverse,
                                             alone, serial_parallel());
            for (int64_t t = 0; t < lengths[b]; ++t) {
              EXPECT_TRUE(std::equal(want.out.begin() + t * S, want.out.begin() + (t + 1) * S,
                                     out.begin() + row_of[t] * S)) << "b=" << b << " t=" << t;
            }
            EXPECT_TRUE(std::equal(want.final_state.h.begin(), want.final_state.h.end(),
                                   packed.h.begin() + b * S)) << "b=" << b;
            EXPECT_TRUE(std::equal(want.final_state.c.begin(), want.final_state.c.end(),
                                   packed.c.begin() + b * H)) << "b=" << b;
          }
        }
      }
    }
  }
}

TEST(Conversions, EveryKernelSetMatchesScalar) {
  // Ties of every rounding, extremes, NaN and infinities, then random values,
  // over lengths around the vector widths.
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 1e30f, -1e30f, inf, -inf,
                          std::numeric_limits<float>::quiet_NaN(), 0.0f, -0.0f};
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 200.0f);
  while (x.size() < 300) x.push_back(normal(rng));
  const std::vector<uint8_t> bytes = random_bytes(300, 4);
  for (QParams q : {QParams{1.0f, 128}, QParams{0.03f, 3}, QParams{1e-30f, 255}}) {
    std::vector<uint8_t> want_q(x.size());
    std::vector<float> want_d(bytes.size());
    quantize(x.data(), static_cast<int64_t>(x.size()), q, want_q.data());
    dequantize(bytes.data(), static_cast<int64_t>(bytes.size()), q, want_d.data());
    for (Isa isa : isas_under_test()) {
      SCOPED_TRACE(isa_name(isa));
      for (int64_t n : {0, 1, 7, 8, 15, 16, 17, 33, 300}) {
        std::vector<uint8_t> got_q(static_cast<size_t>(n));
        std::vector<float> got_d(static_cast<size_t>(n));
        kernels_for(isa)->quantize(x.data(), n, q, got_q.data());
        kernels_for(isa)->dequantize(bytes.data(), n, q, got_d.data());
        EXPECT_TRUE(std::equal(got_q.begin(), got_q.end(), want_q.begin())) << "n=" << n;
        EXPECT_TRUE(std::equal(got_d.begin(), got_d.end(), want_d.begin())) << "n=" << n;
      }
    }
  }
}

TEST(Linear, AnySplitOfRowsAndPanels) {
  // W_ih (gate rows) and W_hr (a projection of 33 rows: 3 panels, the last
  // one short) of one layer.
  LayerSpec spec{45, 40, true, true, true, 11};
  spec.proj_size = 33;
  const RandomLayer layer(spec);
  const PackedLayer& p = layer.view();
  for (const PackedMatrix* m : {&p.ih, &p.hr}) {
    SCOPED_TRACE(m == &p.ih ? "W_ih" : "W_hr");
    const int64_t rows = 13, panels = m->panels();
    const std::vector<uint8_t> x = random_bytes(static_cast<size_t>(rows * m->K), 5);
    const LinearRequantStorage r(*m, QParams{0.01f, 128}, p.q.igates);
    std::vector<uint8_t> want(static_cast<size_t>(rows * m->rows));
    scalar_kernels().linear(*m, r.r, x.data(), 0, rows, 0, panels, want.data());
    for (Isa isa : isas_under_test()) {
      SCOPED_TRACE(isa_name(isa));
      std::vector<uint8_t> got(want.size(), 0);
      const int64_t row_cut[] = {0, 1, 6, rows}, panel_cut[] = {0, 1, panels};
      for (int i = 0; i < 3; ++i) {
        for (int q = 0; q < 2; ++q) {
          kernels_for(isa)->linear(*m, r.r, x.data(), row_cut[i], row_cut[i + 1], panel_cut[q],
                                   panel_cut[q + 1], got.data());
        }
      }
      EXPECT_EQ(got, want);
    }
  }
}

TEST(Pack, UnpackGivesBackTheWeights) {
  for (int64_t proj_size : {0, 7}) {
    LayerSpec spec{19, 23, true, true, true, 3};
    spec.proj_size = proj_size;
    const RandomLayer layer(spec);
    const PackedLayer& p = layer.view();
    EXPECT_EQ(p.proj_size, proj_size);
    const int64_t rows = 4 * p.hidden_size;
    std::vector<int8_t> w_ih(layer.w_ih().size()), w_hh(layer.w_hh().size()),
        w_hr(layer.w_hr().size());
    std::vector<float> s_ih(rows), s_hh(rows), b_ih(rows), b_hh(rows), s_hr(proj_size);
    std::vector<int32_t> z_ih(rows), z_hh(rows), z_hr(proj_size);
    unpack_layer_weights(p, MatrixWeightsOut{w_ih.data(), s_ih.data(), z_ih.data(), b_ih.data()},
                         MatrixWeightsOut{w_hh.data(), s_hh.data(), z_hh.data(), b_hh.data()},
                         MatrixWeightsOut{w_hr.data(), s_hr.data(), z_hr.data(), nullptr});
    EXPECT_EQ(w_ih, layer.w_ih());
    EXPECT_EQ(w_hh, layer.w_hh());
    EXPECT_EQ(w_hr, layer.w_hr());
    EXPECT_EQ(s_hr, layer.w_hr_scale());
    EXPECT_EQ(s_ih, layer.w_ih_scale());
    EXPECT_EQ(z_ih, layer.w_ih_zp());
    EXPECT_EQ(b_ih, layer.b_ih());
  }
}

TEST(Pack, ViewGivesBackTheCellQParams) {
  for (int variant = 0; variant < 4; ++variant) {
    const bool split_gates = variant % 2 == 1, projection = variant >= 2;
    LayerSpec spec{9, 18, false, false, true, 21};
    spec.split_gates = split_gates;
    spec.proj_size = projection ? 5 : 0;
    const RandomLayer layer(spec);
    const CellQParams& want = layer.qparams();
    const CellQParams& got = layer.view().q;
    EXPECT_EQ(got.split_gates, split_gates);
    EXPECT_EQ(got.has_projection, projection);
    EXPECT_TRUE(got.h() == (projection ? want.projection : want.hidden));
    QParams want_list[kMaxCellQParams], got_list[kMaxCellQParams];
    cell_qparams_to_list(want, want_list);
    cell_qparams_to_list(got, got_list);
    for (int i = 0; i < num_cell_qparams(split_gates, projection); ++i) {
      EXPECT_TRUE(got_list[i] == want_list[i]) << cell_qparam_name(i, split_gates, projection);
    }
    for (int g = 1; g < kNumGates; ++g) {
      // Unsplit, the four gates share one qparams; split, each has its own.
      EXPECT_EQ(got.gates[g] == got.gates[0], !split_gates);
    }
  }
  EXPECT_EQ(cell_qparam_name(0, false), "igates");
  EXPECT_EQ(cell_qparam_name(5, true), "hgates_forget");
  EXPECT_EQ(cell_qparam_name(15, true), "hidden");
  EXPECT_EQ(cell_qparam_name(7, false, true), "projection");
  EXPECT_EQ(cell_qparam_name(16, true, true), "projection");
}

TEST(Pack, RejectsDamagedBlobs) {
  const RandomLayer layer(LayerSpec{8, 8, true, false, true, 4});
  PackedLayer view;
  EXPECT_NE(unpack_layer_view(layer.blob(), layer.blob_size() - 1, &view), nullptr);
  EXPECT_NE(unpack_layer_view(layer.blob(), 16, &view), nullptr);
  AlignedBlob copy(layer.blob(), layer.blob_size());
  uint8_t* aligned = copy.data();
  aligned[0] ^= 1;  // magic
  EXPECT_NE(unpack_layer_view(aligned, layer.blob_size(), &view), nullptr);
}

TEST(Pack, ChecksumCatchesEveryAlteredByte) {
  const RandomLayer layer(LayerSpec{6, 5, true, true, true, 9});
  ASSERT_TRUE(verify_checksum(layer.blob(), layer.blob_size()));
  AlignedBlob copy(layer.blob(), layer.blob_size());
  uint8_t* aligned = copy.data();
  for (size_t at = 0; at < layer.blob_size(); at += 7) {
    std::memcpy(aligned, layer.blob(), layer.blob_size());
    aligned[at] ^= 0x10;
    EXPECT_FALSE(verify_checksum(aligned, layer.blob_size())) << "byte " << at;
  }
}

}  // namespace
}  // namespace qlstm::testing

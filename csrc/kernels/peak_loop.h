// The peak loop behind peak.h, generic over a Dot policy (lstm_tiled.h): the
// policy's multiply on kChains independent accumulators, the inner loop of a
// register tile. Each ISA file instantiates it between its target pragmas.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <utility>

#include "dot_traits.h"
#include "packed_format.h"

namespace qlstm {
namespace {

// The sum of a panel's 16 sums, which have long wrapped around: unsigned.
template <class Dot>
uint32_t lane_sum(const typename Dot::Acc& acc) {
  typename Dot::Sums s;
  Dot::finish(acc, &s);
  uint32_t lanes[kPanelRows];
  static_assert(sizeof(s) == sizeof(lanes), "a panel's sums are 16 int32");
  std::memcpy(lanes, &s, sizeof(lanes));
  uint32_t sum = 0;
  for (uint32_t lane : lanes) sum += lane;
  return sum;
}

// Every array below is indexed by constants only (index_sequence folds), so
// that the compiler keeps each accumulator and weight panel in registers.
template <class Dot, size_t... J, size_t... K>
double peak_chains(double seconds, std::index_sequence<J...>, std::index_sequence<K...>) {
  constexpr int kChains = sizeof...(J), kWeights = sizeof...(K);
  alignas(64) int8_t panels[kWeights][kPanelRows * kKGroup];
  for (int j = 0; j < kWeights; ++j) {
    for (int i = 0; i < kPanelRows * kKGroup; ++i) {
      panels[j][i] = static_cast<int8_t>(7 * i + 13 * j + 1);
    }
  }
  // The compiler must not see the panels' values: folded into constants, the
  // weights would become memory operands of the multiply.
  __asm__ volatile("" : : "r"(panels) : "memory");
  const typename Dot::W w[kWeights] = {Dot::load(panels[K])...};
  // Chains that start equal and meet the same operands stay equal, and the
  // compiler would compute them once: each starts from its own product.
  typename Dot::Acc acc[kChains] = {((void)J, Dot::zero())...};
  (Dot::madd(acc[J], Dot::act(static_cast<uint32_t>(J + 1)), w[J % kWeights]), ...);
  uint32_t bytes = 0x01020304u;
  // A policy that sums groups in pairs multiplies two groups per chain and
  // iteration, chain j against panels j and j + 1.
  constexpr int kGroups = SumsPairs<Dot>::value ? 2 : 1;
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  double elapsed = 0;
  int64_t iterations = 0;
  do {
    for (int i = 0; i < 4096; ++i) {
      const typename Dot::Act a = Dot::act(bytes);
      if constexpr (kGroups == 2) {
        const typename Dot::Act b = Dot::act(bytes ^ 0x3f3f3f3fu);
        (Dot::madd_pair(acc[J], a, w[J % kWeights], b, w[(J + 1) % kWeights]), ...);
      } else {
        (Dot::madd(acc[J], a, w[J % kWeights]), ...);
      }
      bytes += 0x01010101u;
    }
    iterations += 4096;
    elapsed = std::chrono::duration<double>(clock::now() - start).count();
  } while (elapsed < seconds);
  // Every lane of every accumulator reaches a volatile store, so none is dead.
  volatile uint32_t keep = (lane_sum<Dot>(acc[J]) + ...);
  (void)keep;
  return static_cast<double>(iterations) * kChains * kGroups * kPanelRows * kKGroup / elapsed;
}

// kWeights distinct weight panels, chain j using panel j % kWeights: a
// multiply whose accumulator is not an operand (vpmaddubsw, vmull) gives
// the same product for two chains that share both operands, which the
// compiler would compute once; such policies need kWeights == kChains. The
// activation bytes change every iteration, so nothing leaves the loop.
// Both counts must leave every accumulator in a register (the disassembly
// of the loop has no stores; weights may be L1 memory operands, as in the
// kernels, where registers run out).
template <class Dot, int kChains, int kWeights>
double peak_loop(double seconds) {
  static_assert(kWeights >= 1 && kWeights <= kChains, "weights are shared by chains");
  return peak_chains<Dot>(seconds, std::make_index_sequence<kChains>(),
                          std::make_index_sequence<kWeights>());
}

}  // namespace
}  // namespace qlstm

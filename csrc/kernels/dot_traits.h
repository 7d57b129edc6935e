// What a Dot policy (lstm_tiled.h) offers beyond the required members, for
// the code generic over it: the tiled kernels and the peak loop.
#pragma once

#include <type_traits>

namespace qlstm {

// Whether a Dot policy sums groups of k in pairs (madd_pair).
template <class Dot, class = void>
struct SumsPairs : std::false_type {};
template <class Dot>
struct SumsPairs<Dot, std::void_t<decltype(&Dot::madd_pair)>> : std::true_type {};

}  // namespace qlstm

// The accurate mode's cell: gates, activations and the cell state in float32,
// written once as templates over the lane type (float for the scalar
// reference, GCC vector types for x86 and NEON) so that every kernel set runs
// the same operations in the same order. Only IEEE-rounded +, *, / and
// min/max appear, and the build forbids contracting them into FMAs
// (-ffp-contract=off): the results are the same bits on every CPU. Internal
// linkage, as lstm_tiled.h: each ISA file compiles its own copy for its target.
#pragma once

namespace qlstm {
namespace {

// tanh as Eigen's rational minimax approximation on [-c, c]:
// x * P(x^2) / Q(x^2), degrees 13 / 6, within 4e-7 of tanh everywhere, and
// exactly +-1 beyond the clamp. Horner's rule, a multiply then an add per term.
inline constexpr float kTanhClamp = 7.90531110763549805f;
inline constexpr float kTanhNumerator[7] = {
    4.89352455891786e-03f,  6.37261928875436e-04f, 1.48572235717979e-05f, 5.12229709037114e-08f,
    -8.60467152213735e-11f, 2.00018790482477e-13f, -2.76076847742355e-16f};
inline constexpr float kTanhDenominator[4] = {4.89352518554385e-03f, 2.26843463243900e-03f,
                                              1.18534705686654e-04f, 1.19825839466702e-06f};

// Clamp(v, lo, hi) is clamp_float on every lane: (v > lo ? v : lo), then
// (that < hi ? that : hi), so that a NaN becomes lo on every kernel set. Gate
// sums are finite but for absurd qparams (an x_scale * w_scale that
// underflows to 0 makes the bias term infinite and its product NaN).
template <class V, class Clamp>
inline V tanh_approx(V x, const Clamp& clamp) {
  const V v = clamp(x, -kTanhClamp, kTanhClamp);
  const V v2 = v * v;
  V p = v2 * kTanhNumerator[6] + kTanhNumerator[5];
  for (int i = 4; i >= 0; --i) p = p * v2 + kTanhNumerator[i];
  V q = v2 * kTanhDenominator[3] + kTanhDenominator[2];
  for (int i = 1; i >= 0; --i) q = q * v2 + kTanhDenominator[i];
  return (v * p) / q;
}

// sigmoid(x) = (1 + tanh(x / 2)) / 2; the halvings are exact.
template <class V, class Clamp>
inline V sigmoid_approx(V x, const Clamp& clamp) {
  return 0.5f + 0.5f * tanh_approx(0.5f * x, clamp);
}

// One LSTM cell update from the four gates' pre-activations (igates + hgates,
// float): c' = f * c + i * g, h = o * tanh(c').
template <class V, class Clamp>
inline void float_cell_update(const V pre[4], V c, const Clamp& clamp, V* c_next, V* h) {
  const V i = sigmoid_approx(pre[0], clamp), f = sigmoid_approx(pre[1], clamp);
  const V g = tanh_approx(pre[2], clamp), o = sigmoid_approx(pre[3], clamp);
  const V c_new = f * c + i * g;
  *c_next = c_new;
  *h = o * tanh_approx(c_new, clamp);
}

// The scalar lanes' clamp.
inline float clamp_float(float v, float lo, float hi) {
  const float a = v > lo ? v : lo;
  return a < hi ? a : hi;
}

}  // namespace
}  // namespace qlstm

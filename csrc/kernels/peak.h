// Throughput probes for the benchmarks: how many int8 multiply-accumulates
// per second each instruction set's inner-loop instructions reach on one
// core with their operands in registers. Not part of the kernels' API.
#pragma once

#include "kernel_set.h"

namespace qlstm {

// Runs `isa`'s probe for about `seconds`; `isa` must be one that kernels_for
// has and cpu_supports accepts.
double peak_macs_per_second(Isa isa, double seconds);

}  // namespace qlstm

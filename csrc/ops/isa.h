// The kernel set the ops run: the best this CPU supports, or the one named by
// the QLSTM_ISA environment variable, qlstm::set_isa or (for the calling
// thread) qlstm::set_thread_isa; and the threads they run on.
#pragma once

#include "../kernels/kernel_set.h"
#include "../kernels/lstm_layer.h"

namespace qlstm::ops {

const KernelSet& current_kernels();

// The kernels' tasks on ATen's intra-op thread pool.
Parallel aten_parallel();

}  // namespace qlstm::ops

// The kernel set the ops run: the best this CPU supports, or the one named by
// the QLSTM_ISA environment variable or qlstm::set_isa.
#pragma once

#include "../kernels/kernel_set.h"

namespace qlstm::ops {

const KernelSet& current_kernels();

}  // namespace qlstm::ops

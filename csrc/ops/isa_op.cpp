// Run-time choice of the kernel set (qlstm::isa, qlstm::set_isa, per thread
// qlstm::set_thread_isa and qlstm::thread_isa, qlstm::available_isas) and the benchmarks' probe of its peak
// (qlstm::peak_macs_per_second).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "../kernels/peak.h"
#include "isa.h"

namespace qlstm::ops {
namespace {

std::atomic<const KernelSet*> g_kernels{nullptr};
std::mutex g_choose;
// A calling thread's own choice (qlstm.use_isa), over the process-wide one.
// Each op picks its kernel set in the calling thread, before any worker runs.
thread_local const KernelSet* t_kernels = nullptr;

std::vector<std::string> available() {
  std::vector<std::string> names;
  for (Isa isa : kAllIsas) {
    if (kernels_for(isa) != nullptr && cpu_supports(isa)) names.emplace_back(isa_name(isa));
  }
  return names;
}

std::vector<std::string> known() {
  std::vector<std::string> names;
  for (Isa isa : kAllIsas) names.emplace_back(isa_name(isa));
  return names;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

const KernelSet& checked_kernels(const std::string& name, const char* source) {
  Isa isa;
  TORCH_CHECK_VALUE(parse_isa(name.c_str(), &isa), "qlstm: ", source,
                    " must name an instruction set (", joined(known()), "), got '", name, "'");
  const KernelSet* k = kernels_for(isa);
  TORCH_CHECK_VALUE(k != nullptr && cpu_supports(isa), "qlstm: ", source, " is '", name,
                    "', which this ", k == nullptr ? "build" : "CPU",
                    " cannot run; available here: ", joined(available()));
  return *k;
}

void set_isa(const std::string& name) {
  const KernelSet& k = checked_kernels(name, "set_isa's name");
  std::lock_guard<std::mutex> lock(g_choose);
  g_kernels.store(&k);
}

// Names the set this thread uses instead of the process-wide one; None (or
// an empty name) returns the thread to the process-wide set.
void set_thread_isa(const c10::optional<std::string>& name) {
  t_kernels = name.has_value() && !name->empty() ? &checked_kernels(*name, "use_isa's name")
                                                 : nullptr;
}

c10::optional<std::string> thread_isa() {
  if (t_kernels == nullptr) return c10::nullopt;
  return std::string(t_kernels->name);
}

std::string isa() { return current_kernels().name; }

double peak_macs_per_second(double seconds) {
  TORCH_CHECK_VALUE(seconds > 0 && seconds <= 60, "qlstm: seconds must be in (0, 60], got ",
                    seconds);
  Isa isa;
  const bool known = parse_isa(current_kernels().name, &isa);
  TORCH_INTERNAL_ASSERT(known, "the current kernel set has no Isa: ", current_kernels().name);
  return qlstm::peak_macs_per_second(isa, seconds);
}

}  // namespace

const KernelSet& current_kernels() {
  if (t_kernels != nullptr) return *t_kernels;
  if (const KernelSet* k = g_kernels.load()) return *k;
  std::lock_guard<std::mutex> lock(g_choose);
  if (const KernelSet* k = g_kernels.load()) return *k;
  const char* forced = std::getenv("QLSTM_ISA");
  const KernelSet& k = (forced != nullptr && *forced != '\0')
                           ? checked_kernels(forced, "the QLSTM_ISA environment variable")
                           : *kernels_for(best_isa());
  g_kernels.store(&k);
  return k;
}

// They take no tensors: one kernel for every dispatch key.
Parallel aten_parallel() {
  return Parallel{at::get_num_threads(),
                  [](int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& task) {
                    at::parallel_for(0, n, grain, task);
                  }};
}

TORCH_LIBRARY_IMPL(qlstm, CompositeImplicitAutograd, m) {
  m.impl("isa", &isa);
  m.impl("set_isa", &set_isa);
  m.impl("set_thread_isa", &set_thread_isa);
  m.impl("thread_isa", &thread_isa);
  m.impl("available_isas", &available);
  m.impl("peak_macs_per_second", &peak_macs_per_second);
}

}  // namespace qlstm::ops

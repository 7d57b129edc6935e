// Run-time choice of the kernel set: qlstm::isa, qlstm::set_isa,
// qlstm::available_isas and qlstm::peak_macs_per_second.
#include <torch/library.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "isa.h"

namespace qlstm::ops {
namespace {

std::atomic<const KernelSet*> g_kernels{nullptr};
std::mutex g_choose;

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

std::string isa() { return current_kernels().name; }

double peak_macs_per_second(double seconds) {
  TORCH_CHECK_VALUE(seconds > 0 && seconds <= 60, "qlstm: seconds must be in (0, 60], got ",
                    seconds);
  return current_kernels().peak_macs_per_second(seconds);
}

}  // namespace

const KernelSet& current_kernels() {
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

TORCH_LIBRARY_FRAGMENT(qlstm, m) {
  m.def("isa() -> str", &isa);
  m.def("set_isa(str name) -> ()", &set_isa);
  m.def("available_isas() -> str[]", &available);
  m.def("peak_macs_per_second(float seconds) -> float", &peak_macs_per_second);
}

}  // namespace qlstm::ops

// Runs a TorchScript model that contains qlstm layers, with no Python:
//
//   qlstm_run MODEL INPUTS OUTPUTS [--threads N]
//
// MODEL is a torch.jit.save'd module (scripted or traced); INPUTS holds its
// forward arguments, a tensor or a tuple of them saved with torch.save in
// Python; OUTPUTS receives what forward returns, readable with torch.load.
// Linking libqlstm.so registers the torch.ops.qlstm ops the model calls.
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/script.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/Parallel.h>

namespace {

std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// forward's arguments: a saved tuple is spread, anything else is the one argument.
std::vector<torch::jit::IValue> forward_arguments(const torch::jit::IValue& saved) {
  if (saved.isTuple()) {
    const auto& elements = saved.toTupleRef().elements();
    return std::vector<torch::jit::IValue>(elements.begin(), elements.end());
  }
  return {saved};
}

int usage(const char* program) {
  std::cerr << "usage: " << program << " MODEL INPUTS OUTPUTS [--threads N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 6) return usage(argv[0]);
  if (argc == 6) {
    if (std::string(argv[4]) != "--threads") return usage(argv[0]);
    at::set_num_threads(std::atoi(argv[5]));
  }
  try {
    torch::jit::script::Module model = torch::jit::load(argv[1]);
    model.eval();
    const torch::jit::IValue inputs = torch::jit::pickle_load(read_file(argv[2]));
    torch::NoGradGuard no_grad;
    const torch::jit::IValue outputs = model.forward(forward_arguments(inputs));
    write_file(argv[3], torch::jit::pickle_save(outputs));
  } catch (const std::exception& e) {
    std::cerr << "qlstm_run: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

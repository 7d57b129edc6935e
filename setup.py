"""Builds qlstm's C++ op library against the installed torch (torch==2.13.0).

Install with `pip install --no-build-isolation -e .`: an isolated build
environment would fetch a different torch than the one the ops link against.
"""
import glob
import os

from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

HERE = os.path.dirname(os.path.abspath(__file__))

# Portable flags only: the binary must run on any x86-64 (or aarch64) CPU.
# -ffp-contract=off keeps the compiler from fusing the float requantization
# steps into FMAs, which would change rounding against PyTorch's kernels.
# -fopenmp: at::parallel_for is inline OpenMP code in ATen's headers, serial
# unless the extension itself is compiled with OpenMP; at run time it binds to
# the libgomp.so.1 that torch has already loaded.
CXX_FLAGS = ["-O3", "-std=c++17", "-ffp-contract=off", "-fopenmp", "-Wall", "-Wextra"]
LINK_FLAGS = ["-fopenmp"]
# QLSTM_SANITIZE=address (or address,undefined): a sanitizer build for testing,
# run with the sanitizer's runtime preloaded (scripts/test-sanitizers.sh).
if os.environ.get("QLSTM_SANITIZE"):
    sanitize = ["-fsanitize=" + os.environ["QLSTM_SANITIZE"], "-fno-omit-frame-pointer"]
    CXX_FLAGS = [f for f in CXX_FLAGS if f != "-O3"] + ["-O1", "-g"] + sanitize
    LINK_FLAGS += sanitize

sources = sorted(glob.glob(os.path.join("csrc", "kernels", "*.cpp"))) + sorted(
    glob.glob(os.path.join("csrc", "ops", "*.cpp"))
)

setup(
    name="qlstm",
    version="0.1.0",
    description="A fused int8 LSTM for PyTorch on CPUs, exact against torch's static quantized LSTM",
    packages=find_packages(include=["qlstm", "qlstm.*"]),
    python_requires=">=3.10",
    install_requires=["torch==2.13.0"],
    ext_modules=[CppExtension("qlstm._C", sources, extra_compile_args={"cxx": CXX_FLAGS},
                              extra_link_args=LINK_FLAGS)],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)

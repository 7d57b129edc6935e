#!/usr/bin/env bash
# The op-level Python tests against an AddressSanitizer + UndefinedBehavior-
# Sanitizer build of the extension: builds qlstm with
# QLSTM_SANITIZE=address,undefined into build/asan (beside the normal in-place
# build, which it does not touch) and runs pytest on that copy with GCC's ASan
# runtime preloaded into Python; any report stops the run. Leak checking is
# off: CPython and torch keep their allocations until exit. Run inside the
# project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf build/asan
mkdir -p build
QLSTM_SANITIZE=address,undefined MAX_JOBS=${MAX_JOBS:-2} python setup.py -q build --build-base build/asan \
  >build/asan.log 2>&1 || { tail -50 build/asan.log; exit 1; }
lib=$(echo build/asan/lib.*)
# libstdc++ preloaded right after ASan: its __cxa_throw interceptor binds the
# real one when it starts, and Python itself does not load libstdc++.
preload="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so.6)"
# Run from the built copy, so that `import qlstm` finds the sanitized extension.
cp -r tests "$lib/"
cd "$lib"
LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  QLSTM_FUZZ_EXAMPLES=${QLSTM_FUZZ_EXAMPLES:-150} \
  python -m pytest tests/test_ops_reference.py tests/test_errors.py tests/test_isa.py tests/test_accurate.py \
  tests/test_fuzz.py tests/test_tampered.py tests/test_concurrency.py tests/test_hardening.py \
  -p no:cacheprovider -q "$@"

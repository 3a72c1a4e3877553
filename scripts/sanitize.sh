#!/usr/bin/env bash
# `npm run check:sanitize`: builds the native addon with AddressSanitizer and UndefinedBehaviorSanitizer into
# build-asan/ (the regular build/ is left alone) and runs the tests that exercise the addon against that build.
# Any ASan report (out-of-bounds access, use after free, ...) or UBSan report (signed overflow, misaligned or
# null access, invalid shift, ...) aborts the test process, so the check fails. Leak detection is off: node
# itself keeps allocations alive until exit.
#
#   npm run check:sanitize                      # build, then the native test files (below)
#   npm run check:sanitize -- test/x.test.ts    # build, then only these files
#   SANITIZE_SKIP_BUILD=1 npm run check:sanitize  # reuse build-asan/
#
# Needs gcc's libasan and libubsan (Debian: libgcc-12-dev, installed with g++). Slower than a normal run: ~2-3x.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/build-asan"
pkg="$out/pkg"
cd "$root"

if [ "${SANITIZE_SKIP_BUILD:-}" != 1 ]; then
  rm -rf "$pkg"
  mkdir -p "$pkg"
  cp -r binding.gyp native "$pkg/"
  # gyp's make generator appends these to its own flags; -O1 keeps stacks readable, -g gives file:line.
  flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
  CFLAGS="$flags" CXXFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" \
    npx node-gyp rebuild --directory "$pkg" -j "${SANITIZE_JOBS:-2}" >"$out/build.log" 2>&1 \
    || { tail -40 "$out/build.log"; echo "sanitize: the build failed (log: $out/build.log)" >&2; exit 1; }
fi
addon="$pkg/build/Release/sat_native.node"
[ -f "$addon" ] || { echo "sanitize: $addon is missing: run without SANITIZE_SKIP_BUILD" >&2; exit 1; }

if [ $# -gt 0 ]; then
  files=("$@")
else
  # Every test file that runs the addon's kernels or argument checks.
  files=(test/bf16-reference.test.ts test/capabilities.test.ts test/native-binding-safety.test.ts
    test/model-native.test.ts test/model-gradcheck.test.ts test/model-backends.test.ts test/model-precision.test.ts
    test/model-gru-state.test.ts test/model-production-shapes.test.ts test/decode-native.test.ts
    test/train-native.test.ts test/train-resume-native.test.ts)
fi

# The sanitizer runtimes must come first in the process (node is not built with them).
preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export SAT_NATIVE_ADDON="$addon"
export LD_PRELOAD="$preload"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allow_user_segv_handler=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
echo "sanitize: ${#files[@]} test files against $addon (ASan + UBSan)"
node --import tsx --test --test-concurrency=1 "${files[@]}"

#!/usr/bin/env bash
# npm run check:format (part of npm test): prettier on the TypeScript and JavaScript (.prettierrc.json), clang-format
# on the native addon (.clang-format). npm run format rewrites both. Prettier remembers the files it found formatted
# in .cache/prettier (by content, prettier's version and options), so a second check reads only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
write=0
cache=(--cache --cache-strategy content --cache-location .cache/prettier)
prettier=node_modules/.bin/prettier # not npx, whose own start costs more than a cached check
[ "${1:-}" = "--write" ] && write=1
globs=("src/**/*.{ts,mjs,cjs,js}" "test/**/*.{ts,mjs,js}" "bench/**/*.ts" "checks/**/*.ts" "scripts/**/*.{ts,mjs}"
  "fuzz/**/*.{ts,mjs}" ".dependency-cruiser.cjs")
if ! command -v clang-format >/dev/null; then
  echo "check:format: clang-format is not installed; native/ needs it (Debian: apt-get install clang-format)." >&2
  exit 1
fi
if [ $write = 1 ]; then
  "$prettier" --write "${cache[@]}" --log-level warn "${globs[@]}"
  clang-format -i native/*.cc native/*.h
else
  "$prettier" --check "${cache[@]}" --log-level warn "${globs[@]}" || {
    echo "check:format: run npm run format to format the files above." >&2
    exit 1
  }
  clang-format --dry-run -Werror native/*.cc native/*.h || {
    echo "check:format: run npm run format to format native/." >&2
    exit 1
  }
fi

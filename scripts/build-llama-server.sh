#!/usr/bin/env bash
# Builds llama.cpp's HTTP server (`llama-server`) from the exact llama.cpp source node-llama-cpp was
# built from — the git bundle it ships — so the tests run the `openai:` engines against the real
# server with the same numerics as the in-process engine. Offline: needs only cmake, a C++ compiler
# and git. Idempotent: does nothing when the binary is already in the cache.
#
#   scripts/build-llama-server.sh            # builds into ${ROUTELMT_CACHE:-~/.cache/routelmt}/llama-server/<tag>/
#   scripts/build-llama-server.sh --print    # only prints where the binary goes
#
# The build takes 15–25 minutes on two cores; the binary is about 15 MB.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
llama_dir="$root/node_modules/node-llama-cpp/llama"
info="$llama_dir/llama.cpp.info.json"
bundle="$llama_dir/gitRelease.bundle"
if [ ! -f "$info" ] || [ ! -f "$bundle" ]; then
  echo "build-llama-server: $llama_dir has no llama.cpp.info.json or gitRelease.bundle: run npm ci first" >&2
  exit 2
fi
tag="$(node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).tag)' "$info")"
cache="${ROUTELMT_CACHE:-$HOME/.cache/routelmt}"
target="$cache/llama-server/$tag/llama-server"
if [ "${1:-}" = "--print" ]; then
  echo "$target"
  exit 0
fi
if [ -x "$target" ]; then
  echo "build-llama-server: llama-server $tag is already built: $target"
  exit 0
fi
for tool in cmake git c++; do
  command -v "$tool" >/dev/null 2>&1 || { echo "build-llama-server: $tool is missing (Debian: apt-get install cmake g++ git)" >&2; exit 2; }
done

started=$SECONDS
step() { printf 'build-llama-server [%dm%02ds]: %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }
work="$(mktemp -d "${TMPDIR:-/tmp}/llama-server-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

step "cloning llama.cpp $tag from $bundle"
git -c advice.detachedHead=false clone --quiet "$bundle" "$work/llama.cpp"
cd "$work/llama.cpp"
# GGML_NATIVE: the binary is cached on the machine that built it, so it may use every instruction set
# this CPU has. No OpenSSL: the tests talk plain HTTP on loopback; nothing is downloaded.
step "configuring"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF >"$work/configure.log" 2>&1 \
  || { tail -40 "$work/configure.log" >&2; exit 1; }
jobs="$(nproc 2>/dev/null || echo 2)"
step "compiling llama-server with $jobs jobs (about 15–25 minutes on two cores)"
# cmake prints one line per object file with the percentage done: that is the progress shown.
status=0
cmake --build build --target llama-server -j"$jobs" >"$work/build.log" 2>&1 &
builder=$!
shown=0
while kill -0 "$builder" 2>/dev/null; do
  sleep 20
  percent="$(grep -oE '^\[ *[0-9]+%\]' "$work/build.log" | tail -1 | tr -dc '0-9')"
  if [ -n "$percent" ] && [ "$percent" != "$shown" ]; then
    step "compiled ${percent}%"
    shown="$percent"
  fi
done
wait "$builder" || status=$?
if [ "$status" -ne 0 ]; then
  tail -40 "$work/build.log" >&2
  echo "build-llama-server: the build failed (exit $status)" >&2
  exit 1
fi
[ -x build/bin/llama-server ] || { echo "build-llama-server: the build produced no build/bin/llama-server" >&2; exit 1; }
build/bin/llama-server --version >/dev/null 2>&1 || { echo "build-llama-server: the built llama-server does not run" >&2; exit 1; }
mkdir -p "$(dirname "$target")"
# Copied under a temporary name and renamed: a killed build never leaves a half-written binary behind.
cp build/bin/llama-server "$target.partial.$$"
chmod 755 "$target.partial.$$"
mv -f "$target.partial.$$" "$target"
step "done: $target"

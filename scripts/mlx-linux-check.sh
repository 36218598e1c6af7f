#!/usr/bin/env bash
# Builds the mlx backend (src-tauri/inference/src/mlx.rs) on Linux against MLX's CPU build and runs
# its oracle tests. A local check, not CI: mlx.rs otherwise compiles only on macOS.
#
# Needs: cmake, g++, clang + libclang-dev (bindgen), and a Python with the pip `mlx` CPU wheel, which
# ships libmlx.so, its headers and its CMake package (MLX_PYTHON, default /var/tmp/hearth-venv).
# Stock mlx-sys does not build on Linux (it fetches MLX from GitHub, links Apple frameworks), so this
# unpacks mlx-sys from cargo's cache into a scratch dir, patches it there, and points the build at it
# with `--config patch.crates-io…` — nothing in the repository changes (Cargo.lock is restored).
set -euo pipefail

repo=${HEARTH_REPO:-$(cd "$(dirname "$0")/.." && pwd)}
py=${MLX_PYTHON:-/var/tmp/hearth-venv/bin/python}
work=${MLX_CHECK_DIR:-/var/tmp/hearth-mlx-check}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/hearth-target-mlx}

for tool in cmake g++ clang; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y cmake g++ clang libclang-dev)" >&2; exit 1; }
done
mlx=$("$py" -c 'import mlx; print(list(mlx.__path__)[0])') || {
    echo "no pip mlx in $py (set MLX_PYTHON)" >&2
    exit 1
}
export MLX_DIR=$mlx/share/cmake/MLX
[ -f "$MLX_DIR/MLXConfig.cmake" ] && [ -f "$mlx/lib/libmlx.so" ] || { echo "no libmlx/CMake package under $mlx" >&2; exit 1; }

cd "$repo"
version=$(awk '/^name = "mlx-sys"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
[ "$version" = 0.7.0 ] || echo "warning: the patch below was written for mlx-sys 0.7.0, Cargo.lock has $version" >&2

# Unpack and patch once per mlx-sys version and script revision; a warm run reuses the build.
stamp="$version $(sha256sum "$0" | cut -c1-16) $mlx"
src=$work/mlx-sys-$version
if [ "$(cat "$work/stamp" 2>/dev/null)" != "$stamp" ]; then
    cargo fetch --locked -q
    crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"mlx-sys-$version.crate" | head -1)
    rm -rf "$work" && mkdir -p "$work"
    tar xzf "$crate" -C "$work"
    b=$src/build.rs
    # Build mlx-c against the wheel's MLX (no FetchContent from GitHub), without its examples.
    sed -i 's|^    config.define("MLX_BUILD_ACCELERATE", "OFF");|&\
    config.define("MLX_C_USE_SYSTEM_MLX", "ON");\
    config.define("MLX_C_BUILD_EXAMPLES", "OFF");\
    config.define("MLX_DIR", env::var("MLX_DIR").unwrap());|' "$b"
    # Link mlx-c statically, libmlx.so dynamically, libstdc++; no objc/Foundation.
    printf 'mlxc\n' >"$src/native-libraries.txt"
    sed -i 's|^    println!("cargo:rustc-link-lib=c++");|    let mlx_lib = Path::new(\&env::var("MLX_DIR").unwrap()).join("../../../lib");\
    println!("cargo:rustc-link-search=native={}", mlx_lib.display());\
    println!("cargo:rustc-link-lib=dylib=mlx");\
    println!("cargo:rustc-link-lib=stdc++");|' "$b"
    sed -i '/cargo:rustc-link-lib=dylib=objc/d; /cargo:rustc-link-lib=framework=Foundation/d' "$b"
    c=$src/src/mlx-c/mlx/c
    # gcc 12's libstdc++ has no std::format (used only in io.h's error messages): a "{}" stand-in.
    cat >"$c/private/format_shim.h" <<'EOF'
#pragma once
#include <sstream>
#include <string>
namespace mlxc_shim {
inline void put(std::ostringstream& o, const char* f) { o << f; }
template <class T, class... R>
void put(std::ostringstream& o, const char* f, const T& v, const R&... r) {
  for (; *f; ++f) {
    if (f[0] == '{' && f[1] == '}') { o << v; put(o, f + 2, r...); return; }
    o << *f;
  }
}
template <class... A> std::string format(const char* f, const A&... a) {
  std::ostringstream o;
  put(o, f, a...);
  return o.str();
}
}
EOF
    sed -i 's|#include <streambuf>|&\n#include "mlx/c/private/format_shim.h"|; s|std::format(|mlxc_shim::format(|g' "$c/private/io.h"
    # MLX 0.32.4 (the wheel) added gather_qmm's `global_scale` before `sorted_indices`.
    if grep -q 'const std::optional<array>& global_scale = std::nullopt,' "$mlx/include/mlx/ops.h"; then
        sed -i '/mlx::core::gather_qmm(/,/sorted_indices,/ s|^\( *\)sorted_indices,|\1std::nullopt,\n\1sorted_indices,|' "$c/ops.cpp"
    fi
    # mlx-rs calls the f16/bf16 accessors that mlx-c declares only on arm64: declare them over
    # 16-bit storage on x86-64 (clang/bindgen's __fp16 gives the same Rust type as on arm64).
    cat >"$work/half.txt" <<'EOF'
#if !defined(HAS_FLOAT16) && defined(__x86_64__)
#include <stdint.h>
#define HAS_FLOAT16
#define HAS_BFLOAT16
#ifdef __clang__
typedef __fp16 float16_t;
#else
typedef uint16_t float16_t;
#endif
typedef uint16_t bfloat16_t;
#endif
EOF
    sed -i '/^typedef __bf16 bfloat16_t;$/{n;r '"$work/half.txt"'
}' "$c/half.h"
    grep -q MLX_C_USE_SYSTEM_MLX "$b" && grep -q 'dylib=mlx' "$b" && ! grep -q Foundation "$b" &&
        grep -q mlxc_shim "$c/private/io.h" && grep -q 'uint16_t bfloat16_t' "$c/half.h" ||
        { echo "patching mlx-sys $version failed" >&2; exit 1; }
    echo "$stamp" >"$work/stamp"
fi

cp Cargo.lock "$work/Cargo.lock.orig"
trap 'cp "$work/Cargo.lock.orig" "$repo/Cargo.lock"' EXIT
LD_LIBRARY_PATH=$mlx/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    cargo test -p hearth-inference --features mlx --config "patch.crates-io.mlx-sys.path=\"$src\"" \
    --lib --test oracle --test families -- mlx --nocapture "$@"

#!/usr/bin/env bash
# Copies the .proto files mini-envoy's descriptor pool needs out of the
# envoy-types crate (which ships Envoy's data-plane-api, cncf/xds, googleapis
# and protoc-gen-validate sources) into this folder: the roots below plus every
# file they import, transitively. google/protobuf/*.proto come with protox.
#
# Usage: week4-xds/proto/vendor.sh [path/to/envoy-types-X.Y.Z]
# (default: the envoy-types version in Cargo.lock, from cargo's registry).
# Then rebuild week4-xds: build.rs compiles these files with protox.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="${1:-}"
if [[ -z "$src" ]]; then
  version="$(grep -A1 '^name = "envoy-types"$' "$root/Cargo.lock" | sed -n 's/^version = "\(.*\)"$/\1/p')"
  src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/envoy-types-"$version" | head -n1)"
fi
[[ -d "$src/proto" ]] || { echo "no proto/ in $src (cargo fetch first)" >&2; exit 1; }
# Include roots inside the crate, searched in this order (as protoc -I would).
includes=(data-plane-api xds googleapis protoc-gen-validate cel-spec opentelemetry-proto client_model ratelimit)

mapfile -t roots < <(grep -v '^#' "$here/roots.txt" | grep .)


find_file() {
  for inc in "${includes[@]}"; do
    if [[ -f "$src/proto/$inc/$1" ]]; then echo "$inc"; return; fi
  done
}

# Remove what a previous run vendored (everything but our own files).
find "$here" -mindepth 1 -maxdepth 1 -type d ! -name mini_envoy -exec rm -rf {} +
declare -A seen=()
queue=("${roots[@]}")
while ((${#queue[@]})); do
  f="${queue[0]}"; queue=("${queue[@]:1}")
  [[ -n "${seen[$f]:-}" ]] && continue
  seen[$f]=1
  [[ "$f" == google/protobuf/* || "$f" == mini_envoy/* ]] && continue
  inc="$(find_file "$f")"
  [[ -n "$inc" ]] || { echo "not found: $f" >&2; exit 1; }
  mkdir -p "$here/$(dirname "$f")"
  cp "$src/proto/$inc/$f" "$here/$f"
  while read -r imp; do queue+=("$imp"); done < <(sed -n 's/^import \(public \)\{0,1\}"\([^"]*\)";.*/\2/p' "$src/proto/$inc/$f")
done
cp "$src/LICENSE" "$here/LICENSE"
echo "vendored $(find "$here" -name '*.proto' ! -path '*/mini_envoy/*' | wc -l) files from $src"

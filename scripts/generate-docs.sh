#!/usr/bin/env bash
# Regenerates docs-partials/ from the doc comments of the plugin's configuration structs, with
# `go tool packer-sdc struct-markdown` (a tool dependency in go.mod).
#
# struct-markdown finds the project root by walking up from the Go file to a directory whose name
# starts with `packer-plugin-`, and its loop never ends when there is none (packer-plugin-sdk
# v0.6.10, cmd/packer-sdc/internal/struct-markdown/struct_markdown.go): in a checkout named anything
# else it hangs. So this script runs it in a temporary directory named packer-plugin-uml that holds
# go.mod, go.sum and the configuration files, each call under a timeout, and only when every file
# succeeded does it replace the checkout's docs-partials/ with the result. (A symlink named
# packer-plugin-uml to the checkout works too, but makes the tool write straight into the checkout,
# half-done if it fails.) It leaves no temporary files behind.
#
# Usage: scripts/generate-docs.sh        (no arguments; PACKER_SDC_TIMEOUT=seconds, default 60)
set -euo pipefail

die() {
  echo "generate-docs: $*" >&2
  exit 1
}

[ $# -eq 0 ] || die "takes no arguments"
repo=$(cd "$(dirname "$0")/.." && pwd)
limit=${PACKER_SDC_TIMEOUT:-60}
command -v go >/dev/null || die "go is not on PATH"
command -v timeout >/dev/null || die "timeout (coreutils) is not on PATH"
cd "$repo"
[ -f go.mod ] && [ -f go.sum ] || die "no go.mod and go.sum in $repo"

# The configuration files: Go files of the plugin's components that hold mapstructure tags, less
# generated (*.hcl2spec.go, whose Flat structs are not documentation) and test files.
dirs=()
for d in builder provisioner post-processor datasource modules; do
  [ -d "$d" ] && dirs+=("$d")
done
[ ${#dirs[@]} -gt 0 ] || die "no component directories (builder/, provisioner/, ...) in $repo"
mapfile -t files < <(find "${dirs[@]}" -name '*.go' ! -name '*_test.go' ! -name '*.hcl2spec.go' \
  -exec grep -l 'mapstructure:"' {} + | LC_ALL=C sort)
[ ${#files[@]} -gt 0 ] || die "found no Go files with mapstructure tags under ${dirs[*]}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/generate-docs.XXXXXX")
new="$repo/.docs-partials.new.$$"
cleanup() { rm -rf "$tmp" "$new"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

root="$tmp/packer-plugin-uml"
mkdir "$root"
cp go.mod go.sum "$root/"
for f in "${files[@]}"; do
  mkdir -p "$root/$(dirname "$f")"
  cp "$f" "$root/$f"
done

for f in "${files[@]}"; do
  echo "generate-docs: struct-markdown $f"
  rc=0
  # timeout runs the command in a process group of its own and signals the whole group, so the
  # packer-sdc binary that `go tool` starts dies with it. GOWORK=off: a go.work above the temporary
  # directory must not change the module.
  (cd "$root" && GOWORK=off timeout --kill-after=5 "$limit" \
    go tool packer-sdc struct-markdown "$root/$f") || rc=$?
  case $rc in
    0) ;;
    124 | 137) die "packer-sdc struct-markdown $f did not finish within ${limit}s (does a parent of $root start with packer-plugin-?)" ;;
    *) die "packer-sdc struct-markdown $f failed with exit status $rc" ;;
  esac
  out="$root/docs-partials/$(dirname "$f")"
  compgen -G "$out/*.mdx" >/dev/null || die "packer-sdc struct-markdown $f wrote nothing in docs-partials/$(dirname "$f")"
done

# Replace, so that partials of structs or fields that are gone do not linger.
cp -R "$root/docs-partials" "$new"
rm -rf "$repo/docs-partials"
mv "$new" "$repo/docs-partials"
echo "generate-docs: wrote"
(cd "$repo" && find docs-partials -type f | LC_ALL=C sort | sed 's/^/  /')

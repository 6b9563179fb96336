#!/usr/bin/env bash
# Regenerates the plugin's generated documentation, in two steps:
#
# 1. docs-partials/ from the doc comments of the plugin's configuration structs, with
#    `go tool packer-sdc struct-markdown` (a tool dependency in go.mod).
# 2. .web-docs/, the pages of the Packer integrations portal, from docs/ and those partials: the
#    HashiCorp layout of packer-plugin-scaffolding's `make generate`. `packer-sdc renderdocs`
#    replaces the @include lines, then this script does what the scaffolding's
#    .web-docs/scripts/compile-to-webdocs.sh does (so the repository carries no copy of it):
#    docs/README.md becomes .web-docs/README.md, and each component page docs/<type>s/<slug>.mdx
#    becomes .web-docs/components/<type>/<slug>/README.md, without its front matter and its
#    "# Title" line (the portal prints the component's name from .web-docs/metadata.hcl).
#    .web-docs/metadata.hcl is hand-written and kept. The script fails when a component page and
#    metadata.hcl's component blocks disagree, or when a portal page has a link the portal cannot
#    follow: a relative link such as modules/README.md. Portal pages link to each other as
#    /packer/integrations/packer-uml/uml/latest/components/<type>/<slug> and to everything else in
#    the repository with a full https://github.com/... address.
#
# About step 1:
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

# Step 2, .web-docs/, built in the temporary directory from the new partials, so that a failure
# leaves the checkout as it was.
web="$repo/.web-docs"
[ -f "$web/metadata.hcl" ] || die "no .web-docs/metadata.hcl (the hand-written integration metadata)"
[ -f docs/README.md ] || die "no docs/README.md (the portal's main page)"
rendered="$tmp/rendered"
echo "generate-docs: renderdocs docs"
rc=0
(cd "$root" && GOWORK=off timeout --kill-after=5 "$limit" \
  go tool packer-sdc renderdocs -src "$repo/docs" -partials "$root/docs-partials" -dst "$rendered") \
  >"$tmp/renderdocs.log" 2>&1 || rc=$?
[ $rc = 0 ] || { cat "$tmp/renderdocs.log" >&2; die "packer-sdc renderdocs failed with exit status $rc"; }

out="$tmp/web-docs"
mkdir -p "$out/components"
cp "$rendered/README.md" "$out/README.md"
# A component page without the front matter (--- ... --- on the first lines) and the "# Title" line.
strip_page() {
  awk '
    NR == 1 && /^---[ \t]*$/ { front = 1; next }
    front { if (/^---[ \t]*$/) front = 0; next }
    !body && /^[ \t]*$/ { next }
    !body && !title && /^# / { title = 1; next }
    { body = 1; print }
    END { if (front) exit 1 }
  ' "$1"
}
for dir in builders provisioners post-processors datasources; do
  [ -d "$rendered/$dir" ] || continue
  case $dir in
    builders) type=builder ;;
    provisioners) type=provisioner ;;
    post-processors) type=post-processor ;;
    datasources) type=data-source ;;
  esac
  for f in "$rendered/$dir"/*; do
    [ -e "$f" ] || continue
    name=$(basename "$f")
    case $name in
      index.mdx) continue ;; # the portal has no index pages
      *.mdx) ;;
      *) die "docs/$dir/$name: the portal takes only component pages, docs/$dir/<slug>.mdx" ;;
    esac
    slug=${name%.mdx}
    mkdir -p "$out/components/$type/$slug"
    strip_page "$f" >"$out/components/$type/$slug/README.md" || die "docs/$dir/$name: front matter not closed"
  done
done

# The pages must be those that metadata.hcl lists, as type/slug pairs.
listed=$(awk '
  /^[ \t]*component[ \t]*\{/ { in_c = 1; t = ""; s = ""; next }
  in_c && /^[ \t]*type[ \t]*=/ { t = $0; sub(/^[^"]*"/, "", t); sub(/".*/, "", t) }
  in_c && /^[ \t]*slug[ \t]*=/ { s = $0; sub(/^[^"]*"/, "", s); sub(/".*/, "", s) }
  in_c && /^[ \t]*\}/ { print t "/" s; in_c = 0 }
' "$web/metadata.hcl" | LC_ALL=C sort)
made=$(cd "$out/components" && find . -mindepth 2 -maxdepth 2 -type d | sed 's|^\./||' | LC_ALL=C sort)
if [ "$listed" != "$made" ]; then
  echo "generate-docs: .web-docs/metadata.hcl lists the components:" >&2
  echo "${listed:-  (none)}" | sed 's/^/  /' >&2
  echo "generate-docs: docs/ has pages for:" >&2
  echo "${made:-  (none)}" | sed 's/^/  /' >&2
  die "each component block in .web-docs/metadata.hcl needs a page docs/<type>s/<slug>.mdx, and the other way round"
fi

# Every link must work on the portal: full addresses, anchors, or the portal's own /packer/ paths;
# a link to one of this plugin's component pages must name one that exists. Fenced code is skipped.
portal=/packer/integrations/packer-uml/uml/latest/components/
bad=""
while IFS=$'\t' read -r file target; do
  case $target in
    http://* | https://* | mailto:* | \#*) ;;
    "$portal"*)
      page=${target#"$portal"}
      page=${page%%#*}
      [ -f "$out/components/$page/README.md" ] || bad+="  $file: $target (no such component page)"$'\n' ;;
    /packer/*) ;;
    *) bad+="  $file: $target"$'\n' ;;
  esac
done < <(cd "$out" && find . -name '*.md' | LC_ALL=C sort | while read -r f; do
  awk -v file="${f#./}" '
    /^[ \t]*(```|~~~)/ { fence = !fence; next }
    fence { next }
    {
      line = $0
      # Reference definitions: [label]: target
      if (match(line, /^[ \t]*\[[^]]+\]:[ \t]*[^ \t]+/)) {
        def = substr(line, RSTART, RLENGTH); sub(/^[ \t]*\[[^]]+\]:[ \t]*/, "", def)
        print file "\t" def
      }
      # Inline links and images: ](target) or ](target "title")
      while (match(line, /\]\([^) \t]+/)) {
        print file "\t" substr(line, RSTART + 2, RLENGTH - 2)
        line = substr(line, RSTART + RLENGTH)
      }
    }
  ' "$f"
done)
[ -z "$bad" ] || die "links that do not work on the integrations portal (use a https://github.com/packer-uml/packer-plugin-uml/blob/main/... address or a $portal<type>/<slug> path):"$'\n'"${bad%$'\n'}"

# Replace, so that partials of structs or fields that are gone, and pages of components that are
# gone, do not linger. .web-docs/metadata.hcl (and anything else hand-written there) stays.
cp -R "$root/docs-partials" "$new"
rm -rf "$repo/docs-partials"
mv "$new" "$repo/docs-partials"
rm -rf "$web/components" "$web/README.md"
cp -R "$out/components" "$web/components"
cp "$out/README.md" "$web/README.md"
echo "generate-docs: wrote"
(cd "$repo" && find docs-partials .web-docs -type f ! -name metadata.hcl | LC_ALL=C sort | sed 's/^/  /')

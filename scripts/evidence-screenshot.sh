#!/usr/bin/env bash
# Renders an evidence export's HTML summary in a real headless browser
# (Debian's chromium) and writes the screenshot docs/evidence-summary.png.
#
# Usage: scripts/evidence-screenshot.sh [EXPORT-DIR] [OUT.png]
#
# EXPORT-DIR is a `kluis evidence export` directory. Without it the script
# runs the demo (`kluis demo --dir D`) and exports its evidence; when the
# demo wrote no restore-test reports it falls back to the sample export of
# the evidence package's tests (KLUIS_EVIDENCE_EXPORT=DIR go test ./evidence
# -run TestWriteSampleExport). Chromium is installed with apt-get when
# absent. Nothing leaves the machine: the page loads no external resource
# and chromium runs with networking features off.
set -euo pipefail
cd "$(dirname "$0")/.."

export_dir=${1:-}
out=${2:-docs/evidence-summary.png}
log() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to install packages: $*" >&2; return 1; fi
}

if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "$export_dir" ]; then
  log "running the demo in $work/demo"
  if go run ./cmd/kluis demo --dir "$work/demo" >"$work/demo.log" 2>&1 &&
    ls "$work/demo/state/evidence/"*.json >/dev/null 2>&1; then
    log "exporting the demo's evidence"
    go run ./cmd/kluis --config "$work/demo/kluis.yaml" evidence export --out "$work/export" >&2
  else
    log "the demo wrote no restore-test reports; using the sample export of the evidence tests"
    KLUIS_EVIDENCE_EXPORT="$work/export" go test -count=1 ./evidence -run '^TestWriteSampleExport$' >&2
  fi
  export_dir="$work/export"
fi

if [ ! -f "$export_dir/index.html" ]; then
  echo "$export_dir/index.html does not exist: not an evidence export" >&2
  exit 2
fi

log "rendering $export_dir/index.html"
mkdir -p "$(dirname "$out")"
abs_out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
abs_index=$(cd "$export_dir" && pwd)/index.html
HOME="$work" timeout 120 /usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
  --user-data-dir="$work/profile" --window-size=1280,1600 --screenshot="$abs_out" "file://$abs_index" \
  2>"$work/chromium.log" || { cat "$work/chromium.log" >&2; exit 1; }
log "wrote $out"

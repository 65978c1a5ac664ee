#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
#
# It installs what the integration tests need when it is absent —
# PostgreSQL and MariaDB server binaries and the chromium browser from Debian
# packages — and makes a missing server or browser a failure rather than a
# skip (KLUIS_TEST_REQUIRE_SERVERS=1, KLUIS_TEST_REQUIRE_CHROMIUM=1).
# Each test package starts its own throwaway servers on free loopback ports
# in temporary directories; nothing shared is touched.
#
# Usage: scripts/test.sh [--quick]   (--quick: -short tests, no fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
[ "${1:-}" = "--quick" ] && quick=true

log() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to install packages: $*" >&2; return 1; fi
}

# --- servers the integration tests start their own instances of ----------
have_pg() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; }
have_maria() { command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; }
missing=()
have_pg || missing+=(postgresql postgresql-client)
have_maria || missing+=(mariadb-server mariadb-client)
# The browser tests (internal/browsertest, evidence) drive Debian's chromium.
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  # policy-rc.d keeps the packages from starting system services: the tests
  # start their own throwaway instances.
  as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  as_root rm -f /usr/sbin/policy-rc.d
fi

# --- S3 servers: versitygw, built once into the tool cache (internal/s3test)
vgw_dir="${XDG_CACHE_HOME:-$HOME/.cache}/kluis"
if [ -z "${KLUIS_VERSITYGW:-}" ] && [ ! -x "$vgw_dir/versitygw" ]; then
  log "building versitygw v1.8.0 into $vgw_dir (once)"
  mkdir -p "$vgw_dir"
  (cd /tmp && GOBIN="$vgw_dir" GOFLAGS=-mod=mod GOWORK=off go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)
fi

export KLUIS_TEST_REQUIRE_SERVERS=1
export KLUIS_TEST_REQUIRE_CHROMIUM=1

log "go version: $(go version)"

log "no build outputs or binaries tracked"
# A committed test binary (source/sqlite/sqlite.test, 12 MB) once slipped in:
# fail on any tracked file that is an executable object or matches the
# ignored build outputs.
tracked_bad=$(git ls-files -z | while IFS= read -r -d '' f; do
  [ -f "$f" ] && [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] && echo "$f"
done; true)
tracked_bad+=$(git ls-files -ci --exclude-standard | sed "s/^/ignored: /")

if [ -n "$tracked_bad" ]; then echo "build outputs or binaries are tracked:"; echo "$tracked_bad"; exit 1; fi
log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

log "go vet"
go vet ./...

log "go test -race"
if $quick; then
  go test -race -short -timeout 20m ./...
else
  go test -race -timeout 40m ./...
fi

$quick && exit 0

log "fuzzing every target briefly"
fuzztime=${KLUIS_FUZZTIME:-4s}
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "--- $pkg $target ($fuzztime)"
    fuzzlog=$(mktemp)
    for attempt in 1 2 3; do
      if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 2s "$pkg" >"$fuzzlog" 2>&1; then
        break
      fi
      # Go's fuzz coordinator can time out waiting for a worker on a loaded
      # machine ("context deadline exceeded") without any failing input;
      # retry that (twice at most). A real failure writes "Failing input".
      if [ $attempt -lt 3 ] && grep -q 'context deadline exceeded' "$fuzzlog" && ! grep -q 'Failing input' "$fuzzlog"; then
        echo "    (fuzz coordinator timed out without a failing input; retrying)"
        continue
      fi
      cat "$fuzzlog"; exit 1
    done
    rm -f "$fuzzlog"
  done
done
log "all tests passed"

#!/usr/bin/env bash
# Fresh-clone `make run` to a healthy server: clone REF of this repository into a
# temporary folder, run `make run` there with empty installer caches (as on a new
# machine), poll /healthz and print the seconds from `make run` to the first 200.
#
#   bench/install_time.sh            # HEAD
#   bench/install_time.sh 69daffd    # any commit, e.g. the one before the lock file
#   WARM=1 bench/install_time.sh     # keep the installers' caches of this machine
#
# It stops the server it started and removes the clone. The only traffic is loopback
# plus whatever the installer downloads from the package index.
set -euo pipefail

ref=${1:-HEAD}
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
tmp=$(mktemp -d /tmp/imagegate-install-XXXXXX)
server_pid=

cleanup() {
    if [[ -n $server_pid ]]; then
        # make and the server it started share a process group (setsid below).
        kill -TERM -- "-$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 -- "-$server_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

git clone --quiet --no-checkout "$repo" "$tmp/clone"
git -C "$tmp/clone" checkout --quiet "$ref"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

if [[ -z ${WARM:-} ]]; then
    # pip and uv both keep their caches under XDG_CACHE_HOME: an empty one is a new machine.
    export XDG_CACHE_HOME=$tmp/cache PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1
fi
export IMAGEGATE_PORT=$port IMAGEGATE_LOG_LEVEL=WARNING

start=$(date +%s.%N)
(cd "$tmp/clone" && exec setsid make run >"$tmp/make.log" 2>&1) &
server_pid=$!

# An install that takes longer than 30 minutes is a failure, not a figure.
deadline=$(( $(date +%s) + 1800 ))
until curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "make run exited before /healthz answered:" >&2; tail -30 "$tmp/make.log" >&2; exit 1
    fi
    if (( $(date +%s) > deadline )); then echo "no /healthz within 30 min" >&2; exit 1; fi
    sleep 0.2
done
end=$(date +%s.%N)
venv_mb=$(du -sm "$tmp/clone/.venv" | cut -f1)
printf 'ref %s: make run -> /healthz 200 in %.1f s (venv %s MB, %s caches)\n' \
    "$(git -C "$tmp/clone" rev-parse --short HEAD)" "$(echo "$end - $start" | bc)" "$venv_mb" \
    "$([[ -z ${WARM:-} ]] && echo cold || echo warm)"

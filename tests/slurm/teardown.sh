#!/usr/bin/env bash
# Stop the single-node SLURM started by tests/slurm/setup.sh: by pid (pid files in the state
# directory), never by process name, then remove the state directory and the /etc/slurm links
# that point into it.
#
# Usage: tests/slurm/teardown.sh [--keep-state]
# Env:   ALCHEMIST_SLURM_DIR  state directory (default /tmp/alchemist-slurm)
set -uo pipefail

STATE=${ALCHEMIST_SLURM_DIR:-/tmp/alchemist-slurm}
KEEP=0
[[ "${1:-}" == "--keep-state" ]] && KEEP=1
log() { echo "[slurm-teardown] $*" >&2; }

[[ -d "$STATE" ]] || { log "nothing to do ($STATE does not exist)"; exit 0; }
export SLURM_CONF=$STATE/etc/slurm.conf

# cancel what is still queued or running, so slurmd's job steps do not outlive it
if [[ -f "$STATE/run/slurmctld.pid" ]] && kill -0 "$(cat "$STATE/run/slurmctld.pid")" 2>/dev/null; then
    timeout 10 scancel --full --quiet --user="$(id -un)" >/dev/null 2>&1 || true
fi

stop_pid() {  # name pidfile
    local name=$1 pidfile=$2 pid
    [[ -s "$pidfile" ]] || return 0
    pid=$(cat "$pidfile")
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile"
}

# slurmd first (it kills its job steps), then the controller, then munge
stop_pid slurmd "$STATE/run/slurmd.pid"
stop_pid slurmctld "$STATE/run/slurmctld.pid"
stop_pid munged "$STATE/run/munged.pid"

if [[ $KEEP == 0 ]]; then
    for f in slurm.conf gres.conf cgroup.conf; do
        if [[ -L /etc/slurm/$f && "$(readlink "/etc/slurm/$f")" == "$STATE/etc/$f" ]]; then
            rm -f "/etc/slurm/$f"
        fi
    done
    rm -rf "$STATE"
    log "removed $STATE"
fi
exit 0

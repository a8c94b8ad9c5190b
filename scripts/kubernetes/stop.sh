#!/bin/bash
# Stop exactly what ensure.sh started (by the pids in its pidfiles, checked against the
# binary each runs). Idempotent: stopping a stopped cluster does nothing.
#   stop.sh           stop; keep certificates, kubeconfig and etcd data (the next ensure.sh
#                     starts the same cluster again)
#   stop.sh --purge   stop and forget all state (run folder); the built binaries stay
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
purge=false
[ "${1:-}" = --purge ] && purge=true

if [ "${NODEPOOL_K8S_LOCKED:-}" != 1 ]; then  # ensure.sh calls us while it holds the lock
  mkdir -p "$(dirname "$LOCK")"
  exec 9>"$LOCK"
  flock 9
fi

reverse=""
for c in $COMPONENTS; do reverse="$c $reverse"; done
for c in $reverse; do
  if pid=$(pid_of "$c"); then
    log "stopping $c (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      pid_of "$c" >/dev/null || break  # gone (or a zombie about to be reaped)
      sleep 0.2
    done
    if pid_of "$c" >/dev/null; then
      log "$c (pid $pid) ignored SIGTERM for 20 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$PIDS/$c.pid"
done
if $purge; then
  log "removing $NPK_RUN"
  rm -rf "$NPK_RUN"
fi

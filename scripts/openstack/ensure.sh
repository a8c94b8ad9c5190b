#!/bin/bash
# Make sure the local test OpenStack is installed, configured and answering; start it when
# it is not. Safe to run from many test processes at once: everything happens under one
# flock, and a cloud that already answers is left alone. Prints nothing on success but the
# time it took (stderr).
#   ensure.sh          install (apt, first time only), configure, start, wait
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"
LOCK=${OSCI_LOCK:-/var/lock/nodepool-osci.lock}
mkdir -p "$(dirname "$LOCK")"
exec 9>"$LOCK"
flock 9
T0=$(ts)
answers() {  # keystone issues a token and nova lists flavors
  local token
  token=$(curl -s -m 30 -D - -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"auth\":{\"identity\":{\"methods\":[\"password\"],\"password\":{\"user\":{\"name\":\"admin\",\"domain\":{\"id\":\"default\"},\"password\":\"$OSCI_PW\"}}},\"scope\":{\"project\":{\"name\":\"admin\",\"domain\":{\"id\":\"default\"}}}}}" \
    $KS/v3/auth/tokens 2>/dev/null | tr -d '\r' | awk -F': ' 'tolower($1)=="x-subject-token"{print $2}')
  [ -n "$token" ] || return 1
  [ "$(curl -s -m 30 -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $token" http://127.0.0.1:8774/v2.1/flavors)" = 200 ]
}
all_running() {  # every service start.sh launched is still alive
  [ -s $OSCI_PIDS ] || return 1
  local name pg
  while read -r name pg; do kill -0 -- "-$pg" 2>/dev/null || return 1; done < $OSCI_PIDS
}
if [ -f $OSCI_DIR/bootstrapped ] && all_running; then
  # Running: a slow answer (a loaded machine) is no reason to restart it under other tests.
  for i in $(seq 60); do
    answers && exit 0
    sleep 2
  done
  log "the local OpenStack runs but does not answer after 2 min: restarting it"
fi
if ! dpkg -s nova-api neutron-server keystone qemu-utils >/dev/null 2>&1 || [ ! -f /etc/nova/nova-db.conf ]; then
  log "installing the local OpenStack (apt + configs)"
  bash "$HERE/setup.sh" 9>&-
fi
# Some of our services may still run (a half-started cloud): stop exactly those first.
if [ -f $OSCI_PIDS ]; then
  bash "$HERE/stop.sh" 9>&-
fi
# 9>&-: the services must not inherit the lock, or they would hold it for their lifetime.
bash "$HERE/start.sh" 9>&-
log "local OpenStack ready after $(el $T0 $(ts)) s"

# shellcheck shell=bash disable=SC2034  # sourced: the variables are used by the scripts
# Shared settings of the local test Kubernetes (sourced by ensure.sh, stop.sh, smoke.sh).
# Versions: every k8s.io staging module is pinned to the v0.x.y that matches K8S_VERSION.
# Each of these releases has a go.mod `go` line of 1.26.0, so the machine's Go 1.26 builds
# them with GOTOOLCHAIN=local (no other toolchain is fetched).
K8S_VERSION=v1.37.2
K8S_STAGING_VERSION=v0.${K8S_VERSION#v1.}
ETCD_VERSION=v3.7.3
KWOK_VERSION=v0.8.0

NPK_ROOT=${NODEPOOL_K8S_ROOT:-/var/tmp/nodepool-kubernetes}
NPK_SRC=$NPK_ROOT/src        # generated Go build workspaces (go.mod, go.sum), one per version
NPK_BIN=$NPK_ROOT/bin        # built binaries, one folder per version
NPK_RUN=$NPK_ROOT/run        # pki, kubeconfigs, etcd data, logs, pidfiles
K8S_BIN=$NPK_BIN/kubernetes-$K8S_VERSION
ETCD_BIN=$NPK_BIN/etcd-$ETCD_VERSION
KWOK_BIN=$NPK_BIN/kwok-$KWOK_VERSION
KUBECTL=$K8S_BIN/kubectl
PKI=$NPK_RUN/pki
LOGS=$NPK_RUN/logs
PIDS=$NPK_RUN/pids
KUBECONFIG_PATH=$NPK_RUN/kubeconfig   # admin (O=system:masters), context below
CONTEXT=nodepool-test
NODE_NAME=nodepool-kwok-0
LOCK=${NODEPOOL_K8S_LOCK:-/var/lock/nodepool-kubernetes.lock}

# Loopback ports (below the ephemeral range, away from the usual 2379/6443/1025x).
ETCD_PORT=${NODEPOOL_K8S_ETCD_PORT:-22379}
ETCD_PEER_PORT=${NODEPOOL_K8S_ETCD_PEER_PORT:-22380}
API_PORT=${NODEPOOL_K8S_API_PORT:-16443}
KCM_PORT=${NODEPOOL_K8S_KCM_PORT:-20257}
SCHED_PORT=${NODEPOOL_K8S_SCHED_PORT:-20259}
API_URL=https://127.0.0.1:$API_PORT

# Start order; stop.sh goes backwards.
COMPONENTS="etcd kube-apiserver kube-controller-manager kube-scheduler kwok"

export GOTOOLCHAIN=local

log() { echo "[kubernetes $(date +%T)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s; }

bin_of() {  # the binary a component runs
  case $1 in
    etcd) echo "$ETCD_BIN/etcd" ;;
    kwok) echo "$KWOK_BIN/kwok" ;;
    *) echo "$K8S_BIN/$1" ;;
  esac
}

pid_of() {  # prints the pid of a running component started by ensure.sh, else fails
  local f=$PIDS/$1.pid pid exe
  [ -s "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  # A rebuilt binary shows as "PATH (deleted)": still ours.
  [ "${exe% (deleted)}" = "$(bin_of "$1")" ] || return 1
  echo "$pid"
}

kc() {  # kubectl as the admin user (its discovery cache kept in the run folder, not in ~/.kube)
  "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" --cache-dir "$NPK_RUN/kubectl-cache" "$@"
}

admin_curl() {  # curl the API server as the admin user
  curl -sS --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"
}

#!/bin/bash
# Make sure the local test Kubernetes runs, and print the absolute path of its admin
# kubeconfig (context "nodepool-test") on stdout; everything else goes to stderr.
#
# Idempotent and safe to run from many test processes at once (one flock). It builds what is
# missing from Go modules (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# etcd, kwok) into /var/tmp/nodepool-kubernetes/bin/<name>-<version>, makes a throwaway CA
# and certificates with openssl, and starts on 127.0.0.1 only, with TLS: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kwok (which plays the kubelet
# of one Node, so scheduled pods reach Running without a container runtime). Components that
# already run are left alone; a healthy cluster answers in well under a second.
#
# Environment: NODEPOOL_K8S_ROOT (default /var/tmp/nodepool-kubernetes), NODEPOOL_K8S_BUILD_JOBS
# (go build -p, default 2), NODEPOOL_K8S_*_PORT (see common.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"

mkdir -p "$(dirname "$LOCK")"
exec 9>"$LOCK"
flock 9
T0=$(now)

# ---------------------------------------------------------------------------------------
# Health

all_alive() {
  local c
  for c in $COMPONENTS; do pid_of "$c" >/dev/null || return 1; done
}
api_ready() { [ "$(admin_curl -o /dev/null -w '%{http_code}' "$API_URL/readyz" 2>/dev/null)" = 200 ]; }
node_ready() {
  [ "$(kc get node "$NODE_NAME" \
      -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# What the running cluster was started with: these scripts and the ports. A cluster started
# by other scripts (an older checkout) is restarted with this one's settings.
STAMP=$({ cat "$HERE/ensure.sh" "$HERE/common.sh"; echo "$ETCD_PORT $ETCD_PEER_PORT $API_PORT $KCM_PORT $SCHED_PORT"; } |
  sha256sum | cut -c1-32)
same_stamp() { [ "$(cat "$NPK_RUN/stamp" 2>/dev/null)" = "$STAMP" ]; }

if same_stamp && [ -x "$KUBECTL" ] && [ -s "$KUBECONFIG_PATH" ] && all_alive && api_ready && node_ready; then
  echo "$KUBECONFIG_PATH"
  exit 0
fi

# ---------------------------------------------------------------------------------------
# Tools

need_pkgs=()
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v curl >/dev/null || need_pkgs+=(curl ca-certificates)
command -v setsid >/dev/null && command -v flock >/dev/null || need_pkgs+=(util-linux)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >&2
fi
need_go() {  # only when something has to be built
  command -v go >/dev/null || die "Go (1.26 or newer) is needed to build the control plane"
  local gover
  gover=$(go env GOVERSION)  # go1.26.8
  case $gover in
    go1.2[6-9]* | go1.[3-9][0-9]* | go[2-9]*) ;;
    *) die "Go $gover is too old: the pinned releases need Go 1.26 (their go.mod says go 1.26.0)" ;;
  esac
}

# ---------------------------------------------------------------------------------------
# Build (only what is missing; each version in its own folder, moved into place when done)

JOBS=${NODEPOOL_K8S_BUILD_JOBS:-2}
# A build cache of our own (about 4.5 GB after these builds), removed once all is built: the
# binaries are what we keep, and a new version rebuilds nearly everything anyway.
BUILD_CACHE=$NPK_ROOT/go-build-cache

# prepare_ws DIR TEMPLATE: write the generated go.mod and `go mod tidy` it, unless the
# workspace was already made from the same template.
prepare_ws() {
  local ws=$1 template=$2
  need_go
  mkdir -p "$ws"
  if [ -s "$ws/go.sum" ] && [ -f "$ws/go.mod.in" ] && [ "$(cat "$ws/go.mod.in")" = "$template" ]; then
    return 0
  fi
  log "preparing Go workspace $ws (go mod tidy)"
  rm -f "$ws/go.sum" "$ws/go.mod.in"
  printf '%s\n' "$template" >"$ws/go.mod"
  (cd "$ws" && go mod tidy) >&2
  printf '%s\n' "$template" >"$ws/go.mod.in"
}

# go_build WS OUTDIR LDFLAGS PKG...: build into OUTDIR.partial, then rename it to OUTDIR.
go_build() {
  local ws=$1 out=$2 ldflags=$3 t
  shift 3
  rm -rf "$out.partial"
  mkdir -p "$out.partial"
  t=$(now)
  log "building $(basename "$out"): $* (go build -p $JOBS; this takes a while the first time)"
  (cd "$ws" && CGO_ENABLED=0 GOCACHE="$BUILD_CACHE" GOFLAGS="-p=$JOBS -buildvcs=false" nice -n 10 \
    go build -trimpath -ldflags "-s -w $ldflags" -o "$out.partial/" "$@") >&2
  echo "$(date -u +%FT%TZ) $(basename "$out") built in $(($(now) - t)) s (go build -p $JOBS, $(nproc) cores)" \
    >>"$NPK_BIN/build-times.log"
  log "built $(basename "$out") in $(($(now) - t)) s"
}

finish_build() {  # OUTDIR.partial -> OUTDIR (replacing any incomplete OUTDIR)
  rm -rf "$1"
  mv "$1.partial" "$1"
}

build_kubernetes() {
  local out=$K8S_BIN
  if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ] && [ -x "$out/kube-scheduler" ] &&
    [ -x "$out/kubectl" ]; then
    return 0
  fi
  # k8s.io/kubernetes replaces every staging module with ./staging/src/...; those replace
  # directives do not apply to a dependency, so we pin each one to the published v0.x.y.
  local gomod replaces template ws=$NPK_SRC/kubernetes-$K8S_VERSION
  need_go
  gomod=$(cd "$NPK_SRC" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  [ -s "$gomod" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
  replaces=$(sed -n '/^replace (/,/^)/p' "$gomod" | sed -n 's#^\s*\(k8s.io/[A-Za-z0-9._-]*\) => \./staging/.*#\t\1 => \1 '"$K8S_STAGING_VERSION"'#p')
  [ -n "$replaces" ] || die "no staging replace directives found in $gomod"
  template="module nodepool.local/kubernetes-build

go 1.26.0

require k8s.io/kubernetes $K8S_VERSION

tool (
	k8s.io/kubernetes/cmd/kube-apiserver
	k8s.io/kubernetes/cmd/kube-controller-manager
	k8s.io/kubernetes/cmd/kube-scheduler
	k8s.io/kubernetes/cmd/kubectl
)

replace (
$replaces
)"
  prepare_ws "$ws" "$template"
  local minor=${K8S_VERSION#v1.}
  minor=${minor%%.*}
  local ld="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  go_build "$ws" "$out" "$ld" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  finish_build "$out"
}

build_etcd() {
  local out=$ETCD_BIN ws=$NPK_SRC/etcd-$ETCD_VERSION
  [ -x "$out/etcd" ] && return 0
  # go install ...@version refuses etcd's server module (its go.mod has replace directives),
  # so build it from a small main module that requires it.
  prepare_ws "$ws" "module nodepool.local/etcd-build

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

tool go.etcd.io/etcd/server/v3"
  go_build "$ws" "$out" "" go.etcd.io/etcd/server/v3
  # the binary is named after the import path ("server", or "v3" with older Go): rename it
  local f
  for f in "$out.partial"/*; do [ "$f" = "$out.partial/etcd" ] || mv "$f" "$out.partial/etcd"; done
  finish_build "$out"
}

build_kwok() {
  local out=$KWOK_BIN ws=$NPK_SRC/kwok-$KWOK_VERSION dir
  [ -x "$out/kwok" ] && [ -s "$out/stages.yaml" ] && return 0
  prepare_ws "$ws" "module nodepool.local/kwok-build

go 1.26.0

require sigs.k8s.io/kwok $KWOK_VERSION

tool sigs.k8s.io/kwok/cmd/kwok"
  go_build "$ws" "$out" "" sigs.k8s.io/kwok/cmd/kwok
  # The Stages that kwokctl gives kwok by default: node initialise + heartbeat (with a
  # Lease), pod ready / complete (Job pods) / delete. Taken from the module's own files.
  dir=$(cd "$ws" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  local f
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ -s "$dir/kustomize/stage/$f" ] || die "kwok stage file $f missing in $dir"
    echo "---"
    cat "$dir/kustomize/stage/$f"
  done >"$out.partial/stages.yaml"
  finish_build "$out"
}

mkdir -p "$NPK_SRC" "$NPK_BIN"
build_kubernetes
build_etcd
build_kwok
rm -rf "$BUILD_CACHE"
ln -sfn "kubernetes-$K8S_VERSION/kubectl" "$NPK_BIN/kubectl"  # a stable path for humans

# ---------------------------------------------------------------------------------------
# PKI: a throwaway CA and certificates, kept across restarts (so kubeconfigs stay valid)

PKI_FILES="ca.crt ca.key sa.key sa.pub apiserver.crt apiserver.key etcd.crt etcd.key
  apiserver-etcd-client.crt apiserver-etcd-client.key admin.crt admin.key
  controller-manager.crt controller-manager.key scheduler.crt scheduler.key
  front-proxy-ca.crt front-proxy-ca.key front-proxy-client.crt front-proxy-client.key"

pki_complete() {
  local f
  for f in $PKI_FILES; do [ -s "$PKI/$f" ] || return 1; done
  # still valid for at least a day
  openssl x509 -checkend 86400 -noout -in "$PKI/ca.crt" >/dev/null &&
    openssl x509 -checkend 86400 -noout -in "$PKI/apiserver.crt" >/dev/null
}

# ca NAME CN: a self-signed CA
ca() {
  openssl genrsa -out "$PKI/$1.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$PKI/$1.key" -subj "/CN=$2" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/$1.crt"
}

# cert NAME SUBJECT USAGE [SANS] [CA]: key + certificate signed by the CA (default "ca")
cert() {
  local name=$1 subj=$2 usage=$3 sans=${4:-} ca=${5:-ca}
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    echo "subjectKeyIdentifier=hash"
    echo "authorityKeyIdentifier=keyid,issuer"  # X509_STRICT (Python 3.13's default) wants it
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

make_pki() {
  log "making a new CA and certificates in $PKI"
  rm -rf "$PKI.new"
  mkdir -p "$PKI.new"
  chmod 700 "$PKI.new"
  local PKI=$PKI.new
  ca ca nodepool-test-kubernetes-ca
  ca front-proxy-ca nodepool-test-front-proxy-ca  # request-header (aggregation) client CA
  # service-account token signing key pair
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  local local_sans="DNS:localhost,IP:127.0.0.1,IP:::1"
  cert apiserver "/CN=kube-apiserver" serverAuth \
    "$local_sans,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1"
  cert etcd "/CN=etcd" serverAuth,clientAuth "$local_sans"
  cert apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth
  cert admin "/O=system:masters/CN=nodepool-admin" clientAuth
  cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  cert scheduler "/CN=system:kube-scheduler" clientAuth
  cert front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca
  rm -f "$PKI"/*.srl
  rm -rf "${PKI%.new}"
  mv "$PKI" "${PKI%.new}"
}

# write_kubeconfig FILE USER CERTNAME: certificates embedded, one context named $CONTEXT
write_kubeconfig() {
  local file=$1 user=$2 name=$3
  cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CONTEXT
  cluster:
    server: $API_URL
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$name.crt")
    client-key-data: $(base64 -w0 <"$PKI/$name.key")
contexts:
- name: $CONTEXT
  context:
    cluster: $CONTEXT
    user: $user
current-context: $CONTEXT
EOF
  chmod 600 "$file.tmp"
  mv "$file.tmp" "$file"
}

mkdir -p "$NPK_RUN" "$LOGS" "$PIDS"
if ! same_stamp; then
  # Started with other settings (or by nobody): stop what runs, start afresh below.
  NODEPOOL_K8S_LOCKED=1 bash "$HERE/stop.sh" 9>&- >&2
  rm -f "$NPK_RUN/stamp"
fi
if ! pki_complete; then
  # Running components would still trust the old CA: stop them first.
  NODEPOOL_K8S_LOCKED=1 bash "$HERE/stop.sh" 9>&- >&2
  make_pki
fi
write_kubeconfig "$KUBECONFIG_PATH" nodepool-admin admin
write_kubeconfig "$NPK_RUN/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
write_kubeconfig "$NPK_RUN/scheduler.kubeconfig" system:kube-scheduler scheduler

# ---------------------------------------------------------------------------------------
# Start what is not running

# start NAME ARGS...: run the component's binary detached (own session, no lock fd),
# log to $LOGS/NAME.log (the previous log is kept as NAME.log.1), record its pid.
start() {
  local name=$1 bin pid
  shift
  bin=$(bin_of "$name")
  [ -f "$LOGS/$name.log" ] && mv -f "$LOGS/$name.log" "$LOGS/$name.log.1"
  log "starting $name"
  setsid nohup "$bin" "$@" </dev/null >"$LOGS/$name.log" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$PIDS/$name.pid"
}

# wait_for NAME SECONDS CHECK...: poll CHECK until it succeeds; fail if NAME dies or time is up.
wait_for() {
  local name=$1 secs=$2 t
  shift 2
  t=$(now)
  until "$@"; do
    if ! pid_of "$name" >/dev/null; then
      tail -n 30 "$LOGS/$name.log" >&2 || true
      die "$name exited (log: $LOGS/$name.log)"
    fi
    if [ $(($(now) - t)) -ge "$secs" ]; then
      tail -n 30 "$LOGS/$name.log" >&2 || true
      die "$name not ready after $secs s (log: $LOGS/$name.log)"
    fi
    sleep 0.5
  done
}

etcd_healthy() {
  curl -sS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/apiserver-etcd-client.crt" \
    --key "$PKI/apiserver-etcd-client.key" "https://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'
}
component_healthy() {  # kube-controller-manager / kube-scheduler /healthz on their own port
  [ "$(curl -sk --max-time 5 "https://127.0.0.1:$1/healthz" 2>/dev/null)" = ok ]
}

start_etcd() {
  start etcd --name=nodepool --data-dir="$NPK_RUN/etcd" \
    --listen-client-urls="https://127.0.0.1:$ETCD_PORT" --advertise-client-urls="https://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="https://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="https://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="nodepool=https://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
    --cert-file="$PKI/etcd.crt" --key-file="$PKI/etcd.key" --trusted-ca-file="$PKI/ca.crt" --client-cert-auth \
    --peer-cert-file="$PKI/etcd.crt" --peer-key-file="$PKI/etcd.key" --peer-trusted-ca-file="$PKI/ca.crt" \
    --peer-client-cert-auth --auto-compaction-retention=1 --snapshot-count=10000 \
    --unsafe-no-fsync=true --log-level=warn --log-outputs=stderr
}

if ! pid_of etcd >/dev/null; then
  start_etcd
  if ! (wait_for etcd 60 etcd_healthy); then
    # A test store only: after a crash (no fsync) the data may be unusable. Start afresh.
    log "etcd did not come up on its data; moving it aside and starting with an empty one"
    pid=$(pid_of etcd) && kill "$pid" 2>/dev/null && sleep 2
    rm -rf "$NPK_RUN/etcd.broken"
    [ -d "$NPK_RUN/etcd" ] && mv "$NPK_RUN/etcd" "$NPK_RUN/etcd.broken"
    start_etcd
    wait_for etcd 60 etcd_healthy
  fi
fi
wait_for etcd 60 etcd_healthy

if ! pid_of kube-apiserver >/dev/null; then
  start kube-apiserver --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
    --etcd-servers="https://127.0.0.1:$ETCD_PORT" --etcd-cafile="$PKI/ca.crt" \
    --etcd-certfile="$PKI/apiserver-etcd-client.crt" --etcd-keyfile="$PKI/apiserver-etcd-client.key" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" --authorization-mode=Node,RBAC --allow-privileged=true \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --endpoint-reconciler-type=none \
    --kubelet-preferred-address-types=InternalIP --cert-dir="$NPK_RUN/apiserver-certs" \
    --profiling=false --v=1
fi
wait_for kube-apiserver 180 api_ready

if ! pid_of kube-controller-manager >/dev/null; then
  start kube-controller-manager --kubeconfig="$NPK_RUN/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$NPK_RUN/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$NPK_RUN/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$NPK_RUN/controller-manager-certs" \
    --leader-elect=false --use-service-account-credentials=true \
    --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range=10.96.0.0/16 --kube-api-qps=100 --kube-api-burst=200 \
    --flex-volume-plugin-dir="$NPK_RUN/flexvolume" \
    --profiling=false --v=1
fi
if ! pid_of kube-scheduler >/dev/null; then
  start kube-scheduler --kubeconfig="$NPK_RUN/scheduler.kubeconfig" \
    --authentication-kubeconfig="$NPK_RUN/scheduler.kubeconfig" \
    --authorization-kubeconfig="$NPK_RUN/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --cert-dir="$NPK_RUN/scheduler-certs" \
    --leader-elect=false --kube-api-qps=100 --kube-api-burst=200 --profiling=false --v=1
fi
if ! pid_of kwok >/dev/null; then
  # kwok only plays the nodes whose Lease it holds, under a new random identity at each
  # start: the Lease of the kwok that died would keep pods Pending until it expires (40 s).
  kc -n kube-node-lease delete lease "$NODE_NAME" --ignore-not-found >&2
  # Pod IPs come from --cidr and are data only: nothing listens on them. The Node's
  # InternalIP is 127.0.0.1, so anything the API server would send to a "kubelet" stays local.
  start kwok --kubeconfig="$KUBECONFIG_PATH" --config="$KWOK_BIN/stages.yaml" --manage-all-nodes=true \
    --cidr=10.244.0.1/16 --node-ip=127.0.0.1 --node-lease-duration-seconds=40
fi
wait_for kube-controller-manager 90 component_healthy "$KCM_PORT"
wait_for kube-scheduler 90 component_healthy "$SCHED_PORT"

# The one Node kwok plays (created once; etcd keeps it across restarts).
if ! kc get node "$NODE_NAME" >/dev/null 2>&1; then
  log "creating Node $NODE_NAME"
  kc create -f - >&2 <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: $NODE_NAME
    node-role.kubernetes.io/agent: ""
spec:
  podCIDR: 10.244.0.0/16
  podCIDRs: [10.244.0.0/16]
status:
  addresses:
  - {type: InternalIP, address: 127.0.0.1}
  - {type: Hostname, address: $NODE_NAME}
  allocatable: {cpu: "32", memory: 64Gi, pods: "110", ephemeral-storage: 500Gi}
  capacity: {cpu: "32", memory: 64Gi, pods: "110", ephemeral-storage: 500Gi}
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
EOF
fi
wait_for kwok 90 node_ready

# The service-account controller works (it makes "default" in every namespace).
sa_ready() { kc -n default get serviceaccount default >/dev/null 2>&1; }
wait_for kube-controller-manager 90 sa_ready

echo "$STAMP" >"$NPK_RUN/stamp"
log "local Kubernetes $K8S_VERSION ready at $API_URL after $(($(now) - T0)) s"
echo "$KUBECONFIG_PATH"

#!/bin/bash
# Smoke check of the local test Kubernetes, doing what Nodepool's kubernetes driver does:
# a namespace, a ServiceAccount with a Role and RoleBinding, a service-account-token Secret
# that the token controller fills (token + ca.crt), the token used (allowed inside the
# namespace, refused outside it), a pod that reaches Running with an IP, and the namespace
# deleted and waited for. Starts the cluster first (ensure.sh). Exits non-zero on failure.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"

KCFG=$(bash "$HERE/ensure.sh")
k() { "$KUBECTL" --kubeconfig "$KCFG" --context "$CONTEXT" --cache-dir "$NPK_RUN/kubectl-cache" "$@"; }
NS=nodepool-smoke-$$-$RANDOM
T0=$(now)
step() { echo "smoke: [$(($(now) - T0)) s] $*"; }
fail() {
  echo "smoke: FAILED: $*" >&2
  k -n "$NS" get all,serviceaccounts,secrets -o wide >&2 || true
  k -n "$NS" get events --sort-by=.lastTimestamp >&2 || true
  exit 1
}
cleanup() { [ -z "${NS_CREATED:-}" ] || k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

# poll SECONDS WHAT COMMAND...: until COMMAND succeeds
poll() {
  local secs=$1 what=$2 t
  shift 2
  t=$(now)
  until "$@"; do
    [ $(($(now) - t)) -lt "$secs" ] || fail "$what (waited $secs s)"
    sleep 0.5
  done
}

step "kubeconfig $KCFG, server $(k version -o json | sed -n 's/.*"gitVersion": "\(v1[^"]*\)".*/\1/p' | tail -n1)"
k get nodes -o wide
k create namespace "$NS" >/dev/null
NS_CREATED=1
step "namespace $NS created"

k -n "$NS" create serviceaccount "$NS" >/dev/null
k -n "$NS" create role "$NS" --verb='*' --resource='*.*' >/dev/null
k -n "$NS" create rolebinding "$NS" --role="$NS" --serviceaccount="$NS:$NS" >/dev/null
k -n "$NS" create -f - >/dev/null <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: $NS-token
  annotations:
    kubernetes.io/service-account.name: $NS
type: kubernetes.io/service-account-token
EOF
secret_filled() {
  [ -n "$(k -n "$NS" get secret "$NS-token" -o 'jsonpath={.data.token}' 2>/dev/null)" ] &&
    [ -n "$(k -n "$NS" get secret "$NS-token" -o 'jsonpath={.data.ca\.crt}' 2>/dev/null)" ]
}
poll 60 "the token controller did not fill the service-account-token secret" secret_filled
TOKEN=$(k -n "$NS" get secret "$NS-token" -o 'jsonpath={.data.token}' | base64 -d)
k -n "$NS" get secret "$NS-token" -o 'jsonpath={.data.ca\.crt}' | base64 -d >"/tmp/$NS-ca.crt"
step "service-account token secret filled (token ${#TOKEN} bytes, ca.crt $(wc -c <"/tmp/$NS-ca.crt") bytes)"

# The token, with the CA from the secret, as Zuul would use them.
kt() { "$KUBECTL" --kubeconfig /dev/null --cache-dir "$NPK_RUN/kubectl-cache" --server "$API_URL" --certificate-authority "/tmp/$NS-ca.crt" --token "$TOKEN" "$@"; }
who=$(kt auth whoami -o 'jsonpath={.status.userInfo.username}')
[ "$who" = "system:serviceaccount:$NS:$NS" ] || fail "token authenticates as '$who'"
[ "$(kt auth can-i create pods -n "$NS")" = yes ] || fail "the token may not create pods in its namespace"
[ "$(kt auth can-i create pods -n default 2>/dev/null || true)" = no ] || fail "the token may create pods outside its namespace"
rm -f "/tmp/$NS-ca.crt"
step "token works as $who: allowed in $NS, refused in default"

default_sa() { k -n "$NS" get serviceaccount default >/dev/null 2>&1; }
poll 60 "the serviceaccount controller did not create the default ServiceAccount" default_sa
k -n "$NS" create -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: smoke
  labels: {app: smoke}
spec:
  containers:
  - name: smoke
    image: example.invalid/nodepool/smoke:latest
    command: ["sleep", "infinity"]
    resources:
      requests: {cpu: 100m, memory: 64Mi}
EOF
pod_running() {  # phase Running and an IP
  case $(k -n "$NS" get pod smoke -o 'jsonpath={.status.phase} {.status.podIP}' 2>/dev/null) in
    "Running "?*) return 0 ;;
    *) return 1 ;;
  esac
}
poll 90 "the pod did not reach Running with an IP" pod_running
step "pod Running: $(k -n "$NS" get pod smoke -o 'jsonpath=node={.spec.nodeName} podIP={.status.podIP} hostIP={.status.hostIP}')"

k delete namespace "$NS" --wait=false >/dev/null
ns_gone() { ! k get namespace "$NS" >/dev/null 2>&1; }
poll 180 "the namespace was not deleted" ns_gone
NS_CREATED=
step "namespace deleted and gone"
echo "smoke: OK in $(($(now) - T0)) s"

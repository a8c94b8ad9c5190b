#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian 12 machine. Idempotent: every
# step checks first, so repeated runs cost a few milliseconds.
#
#   setup.sh            everything (what scripts/test.sh and CI need)
#   setup.sh --run      only what running nodepool needs (scripts/quickstart): no test
#                       services (ZooKeeper, the local OpenStack, moto, Python Nodepool)
set -euo pipefail
tests=yes
[ "${1:-}" = --run ] && tests=no

command -v cargo >/dev/null || { echo "setup: cargo is required (rustup)" >&2; exit 1; }

# Debian packages: a real ZooKeeper for the ZooKeeper backend's tests (with Java), openssl
# for its test certificates; sshd, ssh-keygen/ssh-keyscan and iproute2 for nodescan and the
# static driver (tests run their own sshd in a network namespace, never the system one);
# chromium to load the webapp's dashboard headless.
need_apt=()
if [ "$tests" = yes ]; then
  [ -f /usr/share/java/zookeeper.jar ] || need_apt+=(zookeeper)
  command -v java >/dev/null || need_apt+=(default-jre-headless)
  command -v openssl >/dev/null || need_apt+=(openssl)
  command -v chromium >/dev/null || need_apt+=(chromium)
fi
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh-keyscan >/dev/null || need_apt+=(openssh-client)
command -v ip >/dev/null || need_apt+=(iproute2)
# The container driver runs nodes with runc and both local drivers guard nodes with nftables.
command -v runc >/dev/null || need_apt+=(runc)
command -v nft >/dev/null || need_apt+=(nftables)
# The native image builder (debootstrap, GRUB's BIOS images, mke2fs/debugfs) and the qemu
# driver.
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
[ -f /usr/lib/grub/i386-pc/boot.img ] || need_apt+=(grub-pc-bin)
command -v mke2fs >/dev/null || need_apt+=(e2fsprogs)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing packages: ${need_apt[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "setup: installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# qemu-system-x86 must come with a qemu-utils of its own version: some machines have a newer
# backported qemu-utils that it cannot be installed beside, so ask for the release's one.
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-img >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing qemu-system-x86/qemu-utils (run as root to install them)" >&2
    exit 1
  fi
  echo "setup: installing qemu-system-x86 and qemu-utils"
  apt-get update -qq
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-x86 qemu-utils >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --allow-downgrades \
      qemu-system-x86 "qemu-utils/$codename" >/dev/null
fi

[ "$tests" = yes ] || exit 0

# A Python venv with kazoo (the client Nodepool and Zuul use) and Python Nodepool 11's own
# ZooKeeper code and launcher (with the fake driver) for the interoperability tests.
venv="${NODEPOOL_TEST_VENV:-/var/tmp/nodepool-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import kazoo, nodepool.zk.zookeeper, nodepool.launcher, openstack' 2>/dev/null; then
  echo "setup: creating $venv with kazoo and nodepool 11.0.0 (with its dependencies, to run its launcher)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'kazoo==2.9.0' pyyaml paramiko cachetools
  "$venv/bin/pip" install -q 'nodepool==11.0.0' 'kazoo==2.9.0' cachetools
fi
# moto's server: a local AWS API (EC2, EBS direct, S3, service quotas) for the aws driver tests.
if ! "$venv/bin/python" -c 'import moto.server, flask' 2>/dev/null; then
  echo "setup: installing moto[server] into $venv"
  "$venv/bin/pip" install -q 'moto[server]'
fi
# A real, loopback-only OpenStack (Keystone, Glance, Placement, Nova with the fake virt
# driver, Neutron; Debian's Zed packages) for the openstack driver tests; the tests start it
# (scripts/openstack/ensure.sh). Installs only when its packages or configs are missing.
if ! dpkg -s nova-api neutron-server keystone glance-api placement-api qemu-utils >/dev/null 2>&1 \
   || [ ! -f /etc/nova/nova-db.conf ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: the local OpenStack is not installed (run as root to install it)" >&2
    exit 1
  fi
  echo "setup: installing the local OpenStack (scripts/openstack/setup.sh)"
  bash "$(dirname "$0")/openstack/setup.sh"
fi
# A real Kubernetes control plane (kube-apiserver, controller-manager, scheduler, etcd, kwok)
# built from Go modules for the kubernetes driver's tests (scripts/kubernetes/README.md): the
# first run builds it (about 12 minutes on 2 cores; cached in /var/tmp/nodepool-kubernetes),
# later runs find it built and running in well under a second.
if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  echo "setup: Go 1.26 is needed to build the test Kubernetes (scripts/kubernetes)" >&2
  exit 1
fi
PATH="$PATH:/usr/local/go/bin" bash "$(dirname "$0")/kubernetes/ensure.sh" >/dev/null

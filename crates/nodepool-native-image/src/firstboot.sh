#!/bin/sh
# Nodepool node set-up, run at every boot before sshd (idempotent).
#
# The launcher hands a node its identity in one of two ways:
#  * qemu: a small extra disk whose serial is `nodepool-config`, holding lines
#    `hostname=<name>` and `authorized_key=<public key>` (NUL padded);
#  * container: the driver writes /etc/nodepool/authorized_keys into the node's root.
# Host keys are never part of the image: each node makes its own on first boot.
set -eu

conf=/etc/nodepool
user=$(cat "$conf/image-user" 2>/dev/null || true)

config_disk() {
    for serial in /sys/block/*/serial; do
        [ -r "$serial" ] || continue
        if [ "$(cat "$serial")" = nodepool-config ]; then
            dev=${serial%/serial}
            echo "/dev/${dev##*/}"
            return 0
        fi
    done
    return 1
}

if dev=$(config_disk); then
    tr -d '\000' < "$dev" > /run/nodepool-config
    sed -n 's/^authorized_key=//p' /run/nodepool-config > "$conf/authorized_keys.new"
    mv "$conf/authorized_keys.new" "$conf/authorized_keys"
    name=$(sed -n 's/^hostname=//p' /run/nodepool-config | head -n 1)
    if [ -n "$name" ]; then
        echo "$name" > /etc/hostname
        hostname "$name"
        if ! grep -q "[[:space:]]$name\$" /etc/hosts; then
            echo "127.0.1.1 $name" >> /etc/hosts
        fi
    fi
fi

install_keys() {
    home=$1 owner=$2
    [ -s "$conf/authorized_keys" ] || return 0
    mkdir -p "$home/.ssh"
    cp "$conf/authorized_keys" "$home/.ssh/authorized_keys"
    chmod 700 "$home/.ssh"
    chmod 600 "$home/.ssh/authorized_keys"
    chown -R "$owner" "$home/.ssh"
}

install_keys /root root:root
if [ -n "$user" ] && home=$(getent passwd "$user" | cut -d: -f6) && [ -n "$home" ]; then
    install_keys "$home" "$user:$(id -gn "$user")"
fi

ssh-keygen -A
mkdir -p /run/sshd

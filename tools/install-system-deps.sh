#!/bin/bash
# System packages the functional tests start as real services: PostgreSQL
# (the ledger's production database), and libvirt's headers for the
# libvirt-python binding (the ledger reads live domains through it; its
# tests use libvirt's built-in test driver, no daemon). QEMU and the guest
# kernel are not installed here: the kernel harness unpacks them into its
# own cache. Runs as root on CI; elsewhere it only says what is missing.
set -euo pipefail
missing=()
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
pkg-config --exists libvirt 2>/dev/null || missing+=(libvirt-dev pkg-config)
install_binding() {
    # Built here, after apt: tox installs deps before the headers exist.
    python -c 'import libvirt' 2>/dev/null && return 0
    python -m pip install --quiet 'libvirt-python==9.0.0'
}
if [ ${#missing[@]} -eq 0 ]; then
    install_binding
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-system-deps: as root, apt-get install ${missing[*]}" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's maintainer scripts may start a cluster on 5432: the tests start
# their own on free loopback ports, so stop it.
if command -v pg_ctlcluster >/dev/null; then
    for c in $(pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}'); do
        pg_ctlcluster ${c%/*} ${c#*/} stop 2>/dev/null || true
    done
fi
install_binding

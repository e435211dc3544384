#!/usr/bin/env bash
# Builds the control-plane binaries that integration tests and the demo run (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) from Debian bookworm's own packages, into the folder given as $1.
# Only Debian's archive is reachable from the machines this project is developed on, so the upstream release
# tarballs envtest would normally download are out of reach; the Debian source package is not.
set -euo pipefail

dest=${1:?usage: build-k8s-assets.sh DEST_DIR}
k8s_version=1.20.5+really1.20.2
log() { printf '[control-plane build] %s\n' "$*" >&2; }

if [ "$(id -u)" -eq 0 ]; then as_root=(); elif command -v sudo >/dev/null; then as_root=(sudo -n); else
  log "need root (or passwordless sudo) to apt-get install the build dependencies; alternatively set"
  log "KUBEBUILDER_ASSETS to a folder holding etcd and kube-apiserver (and kube-controller-manager, kube-scheduler)"
  exit 1
fi
if ! command -v apt-get >/dev/null; then
  log "apt-get not found: this build needs Debian bookworm's packages. Set KUBEBUILDER_ASSETS to a folder holding"
  log "etcd, kube-apiserver, kube-controller-manager and kube-scheduler instead."
  exit 1
fi

src_list=/etc/apt/sources.list.d/nextgen-operator-deb-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src ' /etc/apt/sources.list; then
  log "adding a deb-src entry for bookworm main ($src_list)"
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    | "${as_root[@]}" tee "$src_list" >/dev/null
fi
log "apt-get update"
"${as_root[@]}" apt-get update -qq
log "installing build dependencies (golang-go, rsync, dpkg-dev, golang-github-modern-go-reflect2-dev)"
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends \
  golang-go rsync dpkg-dev make golang-github-modern-go-reflect2-dev >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/nextgen-k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# etcd: take the binary out of the package rather than installing it, so no system service is started.
log "fetching etcd-server"
apt-get download -qq -o APT::Sandbox::User=root etcd-server
dpkg-deb -x etcd-server_*.deb etcd-root

log "fetching the kubernetes $k8s_version source package"
src_version=$(apt-cache showsrc kubernetes | awk '/^Version:/ {print $2}' | grep -F -m 1 "$k8s_version-" || true)
if [ -z "$src_version" ]; then log "Debian's archive has no kubernetes source package $k8s_version (apt-cache showsrc kubernetes)"; exit 1; fi
apt-get source --download-only -qq -o APT::Sandbox::User=root "kubernetes=$src_version" >/dev/null
dpkg-source --no-check -x kubernetes_*.dsc k8s-src >/dev/null

# The vendored reflect2 v1.0.1 breaks under Go >= 1.18 (SIGSEGV in map iteration on the first real request).
log "replacing vendor/github.com/modern-go/reflect2 with Debian's 1.0.2"
rm -rf k8s-src/vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 k8s-src/vendor/github.com/modern-go/reflect2

mkdir -p .go/src/k8s.io
ln -s "$work/k8s-src" .go/src/k8s.io/kubernetes
cd .go/src/k8s.io/kubernetes
log "building kube-apiserver, kube-controller-manager, kube-scheduler (several minutes on 2 cores)"
GOPATH="$work/.go" GO111MODULE=off GOFLAGS=-mod=vendor CGO_ENABLED=0 KUBE_BUILD_PLATFORMS=linux/$(dpkg --print-architecture) \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" 2>&1 | sed 's/^/[control-plane build]   /' >&2

mkdir -p "$dest.partial"
for bin in kube-apiserver kube-controller-manager kube-scheduler; do
  cp "$(find _output -type f -name "$bin" -perm -u+x | head -n 1)" "$dest.partial/$bin"
done
cp "$work/etcd-root/usr/bin/etcd" "$dest.partial/etcd"
rm -rf "$dest"
mv "$dest.partial" "$dest"
log "done: $dest"

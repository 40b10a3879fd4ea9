#!/usr/bin/env bash
# Installs what building the guest image, booting machines and the tests need on a
# Debian/Ubuntu host. Safe to run again: it installs only what is missing.
set -euo pipefail

pkgs=(
  qemu-system-x86 qemu-system-arm qemu-utils   # the QEMU driver (amd64 and arm64 guests)
  mmdebstrap squashfs-tools debian-archive-keyring kmod # guest root filesystem, modules.dep
  qemu-user-static binfmt-support arch-test    # build the arm64 root on an amd64 host (mmdebstrap needs arch-test)
  busybox-static cpio e2fsprogs zstd xz-utils  # initramfs tools and test images
  curl ca-certificates make
  docker-registry                              # e2e: a real OCI registry (Distribution) on 127.0.0.1
)
command -v docker >/dev/null || pkgs+=(docker.io) # the host docker CLI (the daemon is not used)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The host docker CLI's plugins the workflow tests use, as every desktop Docker install has them:
# Compose v2 and buildx (BuildKit). Debian bookworm has neither at a usable version; trixie's
# static binaries run here. mmdebstrap's extract variant fetches just those packages (with its
# defaults), and the plugins go where the docker CLI looks for system-wide plugins.
plugin_dir=/usr/local/lib/docker/cli-plugins
need=()
docker compose version >/dev/null 2>&1 || need+=(docker-compose)
docker buildx version >/dev/null 2>&1 || need+=(docker-buildx)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing docker CLI plugins from Debian trixie: ${need[*]}"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  $sudo mmdebstrap --quiet --variant=extract --include="$(IFS=,; echo "${need[*]}")" trixie "$tmp/root.tar"
  $sudo mkdir -p "$plugin_dir"
  for p in "${need[@]}"; do
    $sudo tar -xOf "$tmp/root.tar" "./usr/libexec/docker/cli-plugins/$p" >"$tmp/$p"
    $sudo install -m 0755 "$tmp/$p" "$plugin_dir/$p"
  done
  docker compose version && docker buildx version
fi

if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  echo "Go is needed (1.26 or newer): install it from your distribution or the Go project" >&2
  exit 1
fi

# Foreign-architecture binaries (arm64 root build) run through binfmt_misc.
if [ -d /proc/sys/fs/binfmt_misc ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64 2>/dev/null || true
fi

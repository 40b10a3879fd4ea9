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

# virtiofsd, which the QEMU driver serves shares with when it finds one (much faster than QEMU's
# 9p for the metadata work bind mounts do). Install the distribution's package where it has one.
# Debian bookworm has none and trixie's needs trixie's glibc: it goes, with the libraries it
# links, into a folder of its own, run through that folder's loader by a wrapper in
# /usr/local/libexec, one of the places the driver looks.
vfs_dir=/usr/local/lib/machine-virtiofsd
# The Rust virtiofsd (1.x) only: QEMU 7.2's package still ships the old C one, which the driver
# does not drive.
have_virtiofsd() {
  for p in $(command -v virtiofsd) /usr/libexec/virtiofsd /usr/local/libexec/virtiofsd /usr/lib/qemu/virtiofsd /usr/lib/virtiofsd; do
    [ -x "$p" ] && "$p" --version 2>/dev/null | grep -q '^virtiofsd [0-9]' && return 0
  done
  return 1
}
if ! have_virtiofsd; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if apt-cache show virtiofsd >/dev/null 2>&1; then
    echo "installing: virtiofsd"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends virtiofsd >/dev/null
  else
    echo "installing virtiofsd from Debian trixie into $vfs_dir"
    vtmp=$(mktemp -d)
    $sudo mmdebstrap --quiet --variant=extract --include=virtiofsd trixie "$vtmp/root.tar"
    $sudo mkdir -p "$vtmp/root"
    $sudo tar -C "$vtmp/root" -xf "$vtmp/root.tar" ./usr/libexec/virtiofsd ./usr/lib/x86_64-linux-gnu ./usr/lib/aarch64-linux-gnu ./usr/lib64 2>/dev/null || true
    multiarch=$(ls "$vtmp/root/usr/lib" | grep -- '-linux-gnu$' | head -1)
    loader=$(cd "$vtmp/root" && ls usr/lib64/ld-linux-*.so.* usr/lib/"$multiarch"/ld-linux-*.so.* 2>/dev/null | head -1)
    if [ -z "$multiarch" ] || [ -z "$loader" ] || [ ! -x "$vtmp/root/usr/libexec/virtiofsd" ]; then
      echo "virtiofsd from trixie: unexpected package layout (multiarch '$multiarch', loader '$loader'); shares will use 9p" >&2
    else
      $sudo rm -rf "$vfs_dir.new"
      $sudo mkdir -p "$vfs_dir.new"
      $sudo cp -a "$vtmp/root/usr/lib/$multiarch/." "$vfs_dir.new/"
      $sudo install -m 0755 "$vtmp/root/usr/libexec/virtiofsd" "$vfs_dir.new/virtiofsd"
      $sudo cp -L "$vtmp/root/$loader" "$vfs_dir.new/ld.so"
      $sudo rm -rf "$vfs_dir" && $sudo mv "$vfs_dir.new" "$vfs_dir"
      $sudo mkdir -p /usr/local/libexec
      printf '#!/bin/sh\n# virtiofsd from Debian trixie with its own libraries (scripts/install-deps.sh)\nexec %s/ld.so --library-path %s %s/virtiofsd "$@"\n' \
        "$vfs_dir" "$vfs_dir" "$vfs_dir" | $sudo tee /usr/local/libexec/virtiofsd.new >/dev/null
      $sudo chmod 0755 /usr/local/libexec/virtiofsd.new
      $sudo mv /usr/local/libexec/virtiofsd.new /usr/local/libexec/virtiofsd
      /usr/local/libexec/virtiofsd --version
    fi
    $sudo rm -rf "$vtmp"
  fi
fi

if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  echo "Go is needed (1.26 or newer): install it from your distribution or the Go project" >&2
  exit 1
fi

# Foreign-architecture binaries (arm64 root build) run through binfmt_misc.
if [ -d /proc/sys/fs/binfmt_misc ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  update-binfmts --enable qemu-aarch64 2>/dev/null || true
fi

#!/usr/bin/env bash
# Builds machine and the guest image, boots the default machine and runs a container in it
# with the host's docker CLI. No registry is needed: the container image is made from
# Debian's static busybox.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

scripts/install-deps.sh
arch=$(go env GOARCH)
make all
# Building the image needs root (mmdebstrap keeps real file ownership); the image itself is
# then the user's, in the user's cache.
cache="${MACHINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/machine}"
if [ "$(id -u)" -eq 0 ]; then
  bin/machine image build --arch "$arch" --agent "bin/machine-guestagent-$arch"
else
  sudo env MACHINE_CACHE="$cache" bin/machine image build --arch "$arch" --agent "bin/machine-guestagent-$arch"
  sudo chown -R "$(id -u):$(id -g)" "$cache"
fi
bin/machine start

ctx=machine
if ! docker --context "$ctx" image inspect busybox:local >/dev/null 2>&1; then
  root=$(mktemp -d)
  mkdir -p "$root/bin"
  cp /bin/busybox "$root/bin/busybox"
  for a in sh echo cat ls uname; do ln -s busybox "$root/bin/$a"; done
  tar -C "$root" -c . | docker --context "$ctx" import --change 'CMD ["/bin/sh"]' - busybox:local >/dev/null
  rm -rf "$root"
fi
docker --context "$ctx" run --rm busybox:local echo "hello from a container in machine \"default\""
echo "Done. Try: docker --context $ctx run --rm -it busybox:local sh"

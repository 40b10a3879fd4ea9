#!/bin/sh
# release.sh cross-builds every machine binary this host can build into dist/ (or $DIST):
# the CLI for linux and windows (amd64, arm64), the CLI for darwin without cgo (for
# inspection: it has no vz driver), and the guest agents. On a Mac it also builds the darwin
# CLI with cgo and signs it. It ends by saying plainly what was built and what must be built
# on a Mac. IMAGE_REF, when set, is the image new machines pull (main.defaultImageRef).
set -eu

GO=${GO:-go}
DIST=${DIST:-dist}
IMAGE_REF=${IMAGE_REF:-}
CODESIGN_IDENTITY=${CODESIGN_IDENTITY:--}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

rm -rf "$DIST"
mkdir -p "$DIST"
built=""

# build GOOS GOARCH CGO PACKAGE NAME [LDFLAGS]
build() {
	echo "build $5 (GOOS=$1 GOARCH=$2 CGO_ENABLED=$3)"
	if ! CGO_ENABLED=$3 GOOS=$1 GOARCH=$2 "$GO" build -trimpath -ldflags "-s -w ${6:-}" -o "$DIST/$5" "$4"; then
		echo "release: building $5 failed (see go's output above)" >&2
		exit 1
	fi
	built="$built $5"
}

cli_flags="-X main.defaultImageRef=$IMAGE_REF"
for arch in amd64 arm64; do
	build linux "$arch" 0 ./cmd/machine "machine-linux-$arch" "$cli_flags"
	build windows "$arch" 0 ./cmd/machine "machine-windows-$arch.exe" "$cli_flags"
	build darwin "$arch" 0 ./cmd/machine "machine-darwin-$arch-nocgo" "$cli_flags"
	build linux "$arch" 0 ./cmd/machine-guestagent "machine-guestagent-linux-$arch"
done

mac_built=""
if [ "$(uname -s)" = Darwin ]; then
	for arch in arm64 amd64; do
		clang_arch=$arch
		[ "$arch" = amd64 ] && clang_arch=x86_64
		CC="clang -arch $clang_arch" build darwin "$arch" 1 ./cmd/machine "machine-darwin-$arch" "$cli_flags"
		if ! codesign --force --sign "$CODESIGN_IDENTITY" --entitlements hostagent/driver/vz/entitlements.plist "$DIST/machine-darwin-$arch"; then
			echo "release: codesign of machine-darwin-$arch failed (see its output above)" >&2
			exit 1
		fi
		mac_built="$mac_built machine-darwin-$arch"
	done
fi

(cd "$DIST" && if command -v sha256sum >/dev/null; then sha256sum $built; else shasum -a 256 $built; fi) > "$DIST/SHA256SUMS"

echo
echo "Built in $DIST/ (checksums in SHA256SUMS):"
for f in $built; do echo "  $f"; done
if [ -n "$mac_built" ]; then
	echo "Built with cgo and signed (identity \"$CODESIGN_IDENTITY\") on this Mac:$mac_built"
else
	echo
	echo "Must be built on a Mac (not built here):"
	echo "  machine-darwin-arm64, machine-darwin-amd64: the CLI with cgo (the vz driver, Apple's"
	echo "  Virtualization.framework) signed with hostagent/driver/vz/entitlements.plist."
	echo "  Run scripts/release.sh (or make release) on a Mac with the Xcode command line tools."
	echo "  The *-nocgo darwin binaries above have no vz driver: they run machines with QEMU only."
fi

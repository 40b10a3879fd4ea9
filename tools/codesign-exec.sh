#!/bin/sh
# codesign-exec.sh signs a binary with the Virtualization.framework entitlement, then runs it.
# Use it as the go test runner so test binaries that boot VMs may do so:
#
#   go test -exec "$PWD/tools/codesign-exec.sh" ./hostagent/driver/vz/...
#
# CODESIGN_IDENTITY picks the signing identity; the default "-" signs ad hoc, which is
# enough to run locally. On other systems the binary is run unsigned.
set -eu

if [ "$#" -lt 1 ]; then
	echo "usage: $0 binary [args...]" >&2
	exit 2
fi

if [ "$(uname -s)" = Darwin ]; then
	here=$(cd "$(dirname "$0")" && pwd)
	entitlements="$here/../hostagent/driver/vz/entitlements.plist"
	codesign --force --sign "${CODESIGN_IDENTITY:--}" --entitlements "$entitlements" "$1" >&2
fi
exec "$@"

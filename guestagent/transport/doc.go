// Package transport gives the guest agent one net.Listener per service, whatever carries the
// host's streams: the virtio-serial port multiplexed with guestagent/api/mux, or vsock (one
// port per service, accepting only the host's CID). The listeners outlive the carrier: when
// the host side of the serial port goes away and comes back, a new session is served behind
// the same listeners.
//
// The package is Linux-only; on other systems it holds only this comment.
package transport

// Package hostsvc is the host end of the services the guest opens streams to: connections to
// the host's loopback for host.docker.internal (api.ServiceHostConnect), DNS answered by the
// host's own resolver (api.ServiceHostDNS), so VPN and split-DNS names resolve in
// containers, and file events for the shared folders containers bind-mount
// (api.ServiceHostWatch, with fsnotify). It is handed each stream by the channel
// (mux.HostHandler) and knows nothing of drivers.
package hostsvc

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// Server answers guest-initiated streams. The zero value serves DNS with net.DefaultResolver
// and refuses host connections.
type Server struct {
	// HostAccess lets the guest connect to the host's loopback (host.docker.internal);
	// off for machines created with --host-access=false.
	HostAccess bool
	// Resolver answers DNS; nil means net.DefaultResolver (the OS's own on macOS, which
	// follows /etc/resolver and VPNs).
	Resolver Resolver
	// Dial connects to the host's loopback; nil means a net.Dialer. Tests replace it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	Log  *slog.Logger
	// Shares are the machine's shared folders: file events are watched only under them.
	Shares []Share
	// MaxWatchedDirs and Coalesce tune file events; zero means DefaultMaxWatchedDirs and
	// DefaultCoalesce.
	MaxWatchedDirs int
	Coalesce       time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Handler routes a guest stream by service number; it is a mux.HostHandler.
func (s *Server) Handler(service uint32) func(net.Conn) {
	s.init()
	var serve func(context.Context, net.Conn)
	switch service {
	case api.ServiceHostConnect:
		serve = s.serveConnect
	case api.ServiceHostDNS:
		serve = s.serveDNS
	case api.ServiceHostWatch:
		serve = s.serveWatch
	default:
		return nil
	}
	return func(c net.Conn) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		stop := context.AfterFunc(s.ctx, func() { c.Close() })
		defer stop()
		serve(s.ctx, c)
	}
}

// Close ends every stream being served and waits for them.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Server) init() {
	s.once.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
		if s.Resolver == nil {
			s.Resolver = net.DefaultResolver
		}
		if s.Dial == nil {
			d := &net.Dialer{}
			s.Dial = d.DialContext
		}
	})
}

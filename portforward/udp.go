package portforward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

// maxUDPFlows bounds the client flows of one UDP port; datagrams from further clients are
// dropped until a flow ends.
const maxUDPFlows = 4096

// flowQueue is how many datagrams a flow holds while its guest stream opens or stalls;
// beyond it datagrams are dropped, as a full socket buffer would.
const flowQueue = 64

// udpRelay forwards datagrams arriving on one host UDP socket: each client address gets its
// own guest stream (a flow), so replies find their way back and the guest service sees one
// peer per client.
type udpRelay struct {
	pc   net.PacketConn
	dial func(context.Context) (net.Conn, error)
	idle time.Duration
	log  *slog.Logger

	mu    sync.Mutex
	flows map[string]*udpFlow
	wg    sync.WaitGroup
}

// serveUDP relays datagrams on pc until ctx ends (pc is then closed with every flow) or pc
// fails, and returns once every flow has ended.
func serveUDP(ctx context.Context, pc net.PacketConn, dial func(context.Context) (net.Conn, error), idle time.Duration, log *slog.Logger) error {
	r := &udpRelay{pc: pc, dial: dial, idle: idle, log: log, flows: map[string]*udpFlow{}}
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer r.wg.Wait()
	defer r.closeFlows()

	buf := make([]byte, api.MaxDatagram)
	var delay time.Duration
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("read from %s: %w", pc.LocalAddr(), err)
			}
			// Anything else passes: an ICMP error a client caused (Windows reports them on
			// unconnected sockets), a lack of buffers.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
			continue
		}
		delay = 0
		r.deliver(ctx, from, append([]byte(nil), buf[:n]...))
	}
}

// deliver queues p on the flow of client from, starting the flow if there is none.
func (r *udpRelay) deliver(ctx context.Context, from net.Addr, p []byte) {
	key := from.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.flows[key]
	if f == nil {
		if len(r.flows) >= maxUDPFlows {
			return
		}
		f = newFlow(ctx, r, key, from)
		r.flows[key] = f
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			f.run()
		}()
	}
	select {
	case f.in <- p:
	default: // queue full: drop, as UDP may
	}
}

func (r *udpRelay) closeFlows() {
	r.mu.Lock()
	flows := make([]*udpFlow, 0, len(r.flows))
	for _, f := range r.flows {
		flows = append(flows, f)
	}
	r.mu.Unlock()
	for _, f := range flows {
		f.close()
	}
}

// udpFlow is one client's datagrams and the guest stream that carries them.
type udpFlow struct {
	r      *udpRelay
	key    string
	client net.Addr
	in     chan []byte
	ctx    context.Context // ends when the flow closes; cancels a pending dial
	cancel context.CancelFunc
	last   atomic.Int64 // UnixNano of the latest datagram either way

	once   sync.Once
	mu     sync.Mutex
	stream net.Conn
	closed bool
}

func newFlow(ctx context.Context, r *udpRelay, key string, client net.Addr) *udpFlow {
	f := &udpFlow{r: r, key: key, client: client, in: make(chan []byte, flowQueue)}
	f.ctx, f.cancel = context.WithCancel(ctx)
	f.touch()
	return f
}

func (f *udpFlow) touch() { f.last.Store(time.Now().UnixNano()) }

// close ends the flow: later datagrams from the client start a new one.
func (f *udpFlow) close() {
	f.once.Do(func() {
		f.r.mu.Lock()
		if f.r.flows[f.key] == f {
			delete(f.r.flows, f.key)
		}
		f.r.mu.Unlock()
		f.cancel()
		f.mu.Lock()
		f.closed = true
		if f.stream != nil {
			f.stream.Close()
		}
		f.mu.Unlock()
	})
}

// run opens the guest stream, then sends queued datagrams until the flow is idle for r.idle,
// the stream fails, or the flow is closed.
func (f *udpFlow) run() {
	defer f.close()
	stream, err := f.r.dial(f.ctx)
	if err != nil {
		if f.ctx.Err() == nil {
			f.r.log.Warn("port forward: dial guest", "client", f.key, "err", err)
		}
		return
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		stream.Close()
		return
	}
	f.stream = stream
	f.mu.Unlock()

	replies := make(chan struct{})
	go func() {
		defer close(replies)
		f.relayReplies(stream)
	}()
	defer func() { <-replies }()
	defer f.close() // before waiting: closing the stream ends relayReplies

	timer := time.NewTimer(f.r.idle)
	defer timer.Stop()
	for {
		select {
		case p := <-f.in:
			if api.WriteDatagram(stream, p) != nil {
				return
			}
			f.touch()
		case <-timer.C:
			idle := time.Since(time.Unix(0, f.last.Load()))
			if idle >= f.r.idle {
				return
			}
			timer.Reset(f.r.idle - idle)
		case <-f.ctx.Done():
			return
		}
	}
}

// relayReplies sends each datagram the guest frames back to the client.
func (f *udpFlow) relayReplies(stream net.Conn) {
	defer f.close()
	buf := make([]byte, api.MaxDatagram)
	for {
		n, err := api.ReadDatagram(stream, buf)
		if err != nil {
			return
		}
		f.touch()
		if _, err := f.r.pc.WriteTo(buf[:n], f.client); err != nil {
			return
		}
	}
}

package qemu

import (
	"bufio"
	"context"
	"github.com/machine-run/machine/guestagent/api/mux"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAgentChardev(t *testing.T) {
	const tok = "00112233445566778899aabbccddeeff"
	tests := []struct {
		name    string
		host    Host
		chardev string // exact -chardev value for the agent; "" means Args must fail
		token   bool   // the kernel command line says the token is in fw_cfg
	}{
		{"linux unix socket", Host{OS: "linux", Accel: AccelTCG, AgentSocket: "/m/dev/agent.sock", QMPSocket: "/q"},
			"socket,id=agent,server=on,wait=off,path=/m/dev/agent.sock", false},
		{"linux unix socket with a token", Host{OS: "linux", Accel: AccelTCG, AgentSocket: "/m/a,b.sock", Token: tok, TokenFile: "/m/t", QMPSocket: "/q"},
			"socket,id=agent,server=on,wait=off,path=/m/a,,b.sock", true},
		{"windows amd64 loopback tcp", Host{OS: "windows", Accel: AccelWHPX, AgentPort: 50123, Token: tok, TokenFile: `C:\m\t`, QMPSocket: `C:\m\q.sock`},
			"socket,id=agent,host=127.0.0.1,port=50123,server=on,wait=off,nodelay=on", true},
		{"windows tcp without token", Host{OS: "windows", Accel: AccelWHPX, AgentPort: 50123, QMPSocket: `C:\m\q.sock`}, "", false},
		{"windows no port", Host{OS: "windows", Accel: AccelWHPX, Token: tok, TokenFile: `C:\m\t`, QMPSocket: `C:\m\q.sock`}, "", false},
		{"windows port out of range", Host{OS: "windows", Accel: AccelWHPX, AgentPort: 70000, Token: tok, TokenFile: `C:\m\t`, QMPSocket: `C:\m\q.sock`}, "", false},
	}
	for _, arch := range []string{"amd64", "arm64"} {
		for _, tt := range tests {
			args, err := Args(testConfig(arch), tt.host)
			if tt.chardev == "" {
				if err == nil {
					t.Errorf("%s/%s: Args accepted an unusable channel", arch, tt.name)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s/%s: %v", arch, tt.name, err)
			}
			var agent []string
			for _, c := range argValues(args, "-chardev") {
				if strings.HasPrefix(c, "socket,id=agent,") {
					agent = append(agent, c)
				}
			}
			if len(agent) != 1 || agent[0] != tt.chardev {
				t.Errorf("%s/%s: agent chardev %q, want %q", arch, tt.name, agent, tt.chardev)
			}
			app := argValues(args, "-append")[0]
			if got := strings.Contains(" "+app+" ", " machine.token=fw_cfg:opt/run.machine/token "); got != tt.token {
				t.Errorf("%s/%s: token on the command line = %v, want %v (%q)", arch, tt.name, got, tt.token, app)
			}
		}
	}
}

func TestAgentSocketPath(t *testing.T) {
	if p := agentSocketPath("windows", `C:\m\dev`); p != "" {
		t.Errorf("windows uses a unix socket %q; want the TCP channel", p)
	}
	if p := agentSocketPath("darwin", "/m/dev"); p != filepath.Join("/m/dev", "agent.sock") {
		t.Errorf("darwin socket %q", p)
	}
}

func TestPrepareChannel(t *testing.T) {
	h := Host{OS: "windows", Accel: AccelWHPX, QMPSocket: "/q"}
	if err := h.prepareChannel(); err != nil {
		t.Fatal(err)
	}
	if h.AgentPort == 0 || len(h.Token) != 32 || strings.Trim(h.Token, "0123456789abcdef") != "" {
		t.Fatalf("port %d token %q: want a port and 32 hex digits", h.AgentPort, h.Token)
	}
	h2 := Host{OS: "windows"}
	h2.prepareChannel()
	if h2.Token == h.Token {
		t.Fatal("two channels got the same token")
	}
	// A unix channel gets a token too, written where QEMU reads it for fw_cfg, private.
	u := Host{OS: "linux", AgentSocket: "/a.sock", TokenFile: filepath.Join(t.TempDir(), "channel.token")}
	if err := u.prepareChannel(); err != nil || u.AgentPort != 0 || len(u.Token) != 32 {
		t.Fatalf("unix channel got port %d token %q (%v): want no port and a token", u.AgentPort, u.Token, err)
	}
	b, err := os.ReadFile(u.TokenFile)
	if err != nil || string(b) != u.Token {
		t.Fatalf("token file holds %q (%v), want %q", b, err, u.Token)
	}
	if fi, _ := os.Stat(u.TokenFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	v := Host{OS: "linux", VsockCID: 3}
	if v.prepareChannel(); v.Token != "" {
		t.Errorf("vsock got token %q; it needs none (the guest accepts only the host's CID)", v.Token)
	}
}

// TestDialAgentTCP: the host retries until QEMU's port listens, then writes the token line
// before anything else.
func TestDialAgentTCP(t *testing.T) {
	h := Host{OS: "windows"}
	if err := h.prepareChannel(); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		time.Sleep(100 * time.Millisecond) // QEMU is still starting
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.AgentPort)))
		if err != nil {
			got <- "listen: " + err.Error()
			return
		}
		defer l.Close()
		c, err := l.Accept()
		if err != nil {
			got <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		pre, _ := br.ReadString('\n')
		line, _ := br.ReadString('\n')
		got <- pre + line
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialAgent(ctx, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if line := <-got; line != mux.Preamble+h.Token+"\n" {
		t.Fatalf("QEMU's end read %q first, want the preamble and the token line", line)
	}
}

func TestDialAgentGivesUpWhenQEMUExits(t *testing.T) {
	h := Host{OS: "linux", AgentSocket: filepath.Join(t.TempDir(), "agent.sock")}
	exited := make(chan struct{})
	time.AfterFunc(50*time.Millisecond, func() { close(exited) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := dialAgent(ctx, h, exited); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("err = %v, want QEMU exited", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("dialAgent kept retrying after QEMU exited")
	}
}

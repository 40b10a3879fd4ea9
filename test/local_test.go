//go:build e2e

package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestLocal boots one machine and checks what makes it feel local: the Docker API
// interceptor (published ports ready when `docker run -d -p` returns, unshared bind mounts
// refused, streams still working through it), `machine set`, and `machine socket`.
func TestLocal(t *testing.T) {
	const name = "local"
	const ctxName = "machine-local"
	defer dumpLogs(t, name)
	shared := filepath.Join(env.shared, "local")
	os.MkdirAll(shared, 0o755)
	machine(t, "create", name, "--cpus", "2", "--memory", "2GiB", "--disk", "4GiB", "--image", latestImage(t, "amd64"), "--share", shared)
	machine(t, "start", name)
	defer run(t, time.Minute, "", env.bin, "stop", "--force", name)
	docker(t, ctxName, string(busyboxRootfs(t)), "import", "--change", `CMD ["/bin/sh"]`, "-", "busybox:local")

	t.Run("port ready when run returns", func(t *testing.T) {
		for i := range 20 {
			port := 18000 + i
			// No --name: a retry after a guest crash must not collide with the first try.
			c := strings.TrimSpace(docker(t, ctxName, "", "run", "-d", "-p", fmt.Sprintf("%d:80", port), "busybox:local", "httpd", "-f", "-p", "80", "-h", "/www"))
			conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatalf("attempt %d: connecting right after docker run returned: %v", i+1, err)
			}
			fmt.Fprintf(conn, "GET /index.html HTTP/1.0\r\n\r\n")
			b, err := io.ReadAll(conn)
			conn.Close()
			if !strings.Contains(string(b), "hello from the container") {
				t.Fatalf("attempt %d: the first connection got %q, %v", i+1, b, err)
			}
			docker(t, ctxName, "", "rm", "-f", c)
		}
		log, _ := os.ReadFile(filepath.Join(env.home, name, "hostagent.log"))
		waits := regexp.MustCompile(`start waited for published ports.* wait=(\S+)`).FindAllStringSubmatch(string(log), -1)
		var ws []string
		for _, w := range waits {
			ws = append(ws, w[1])
		}
		t.Logf("20 of 20 first connections succeeded; the start answers waited %s for the host's listeners", strings.Join(ws, " "))
	})

	t.Run("bind mounts", func(t *testing.T) {
		os.WriteFile(filepath.Join(shared, "hello.txt"), []byte("shared\n"), 0o644)
		if out := docker(t, ctxName, "", "run", "--rm", "-v", shared+":/s:ro", "busybox:local", "cat", "/s/hello.txt"); out != "shared\n" {
			t.Errorf("shared bind: %q", out)
		}
		unshared := t.TempDir() // under /tmp: not shared
		r := run(t, 5*time.Minute, "", "docker", "--context", ctxName, "run", "--rm", "-v", unshared+":/x", "busybox:local", "ls", "/x")
		if r.code == 0 || !strings.Contains(r.stderr, unshared) || !strings.Contains(r.stderr, "machine set local --share") {
			t.Errorf("unshared bind: exit %d, stderr %q; want refused, naming the path and `machine set`", r.code, r.stderr)
		}
		t.Logf("unshared bind refused: %s", strings.TrimSpace(r.stderr))
		r = run(t, 5*time.Minute, "", "docker", "--context", ctxName, "run", "--rm", "--mount", "type=bind,src="+unshared+",dst=/x", "busybox:local", "ls", "/x")
		if r.code == 0 || !strings.Contains(r.stderr, "is not shared") {
			t.Errorf("unshared --mount: exit %d, stderr %q; want refused", r.code, r.stderr)
		}
		if out := docker(t, ctxName, "", "run", "--rm", "-v", "/var/run/docker.sock:/var/run/docker.sock", "busybox:local", "sh", "-c", "test -S /var/run/docker.sock && echo socket"); out != "socket\n" {
			t.Errorf("/var/run/docker.sock bind: %q", out)
		}
	})

	t.Run("streams through the interceptor", func(t *testing.T) {
		if out := docker(t, ctxName, "line one\nline two\n", "run", "-i", "--rm", "busybox:local", "cat"); out != "line one\nline two\n" {
			t.Errorf("docker run -i: %q", out)
		}
		docker(t, ctxName, "", "run", "-d", "-i", "--name", "att", "busybox:local", "sh", "-c", "read line; echo got $line")
		// stdin stays open until the output is back: the engine ends an attach's output when
		// its stdin closes (the container was not started with StdinOnce).
		attach := exec.Command("docker", "--context", ctxName, "attach", "att")
		attach.Env = cmdEnv()
		stdin, _ := attach.StdinPipe()
		stdout, _ := attach.StdoutPipe()
		if err := attach.Start(); err != nil {
			t.Fatal(err)
		}
		io.WriteString(stdin, "hello\n")
		line, err := bufio.NewReader(stdout).ReadString('\n')
		stdin.Close()
		attach.Wait()
		if line != "got hello\n" {
			t.Errorf("docker attach: %q, %v", line, err)
		}
		if out := docker(t, ctxName, "exec in\n", "run", "--rm", "-i", "busybox:local", "sh", "-c", "cat; echo done"); out != "exec in\ndone\n" {
			t.Errorf("stdin end reached the container: %q", out)
		}
		docker(t, ctxName, "", "rm", "-f", "att")
	})

	t.Run("socket link", func(t *testing.T) {
		dir := t.TempDir() // root-owned, as /var/run is
		target := filepath.Join(dir, "docker.sock")
		out := machine(t, "socket", "link", name, "--target", target)
		if !strings.Contains(out, "create the symlink "+target) || !strings.Contains(out, "write access") {
			t.Errorf("socket link said %q; want what it changes and the privilege it needs", out)
		}
		if r := run(t, time.Minute, "", "docker", "-H", "unix://"+target, "version", "--format", "{{.Server.Version}}"); r.code != 0 || strings.TrimSpace(r.stdout) == "" {
			t.Errorf("docker through the link: exit %d, %s%s", r.code, r.stdout, r.stderr)
		}
		other := filepath.Join(dir, "other.sock")
		ln, err := net.Listen("unix", other)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if r := run(t, time.Minute, "", env.bin, "socket", "link", name, "--target", other); r.code == 0 || !strings.Contains(r.stderr, "another engine serves it") {
			t.Errorf("link over a live socket: exit %d, %s", r.code, r.stderr)
		}
		if r := run(t, time.Minute, "", env.bin, "socket", "unlink", name, "--target", other); r.code == 0 || !strings.Contains(r.stderr, "not this machine's link") {
			t.Errorf("unlink of a socket that is not ours: exit %d, %s", r.code, r.stderr)
		}
		machine(t, "socket", "unlink", name, "--target", target)
		if _, err := os.Lstat(target); !os.IsNotExist(err) {
			t.Errorf("%s after unlink: %v", target, err)
		}
	})

	t.Run("set grows the disk", func(t *testing.T) {
		docker(t, ctxName, "", "run", "--rm", "-v", "keep:/data", "busybox:local", "sh", "-c", "echo kept > /data/f && sync")
		before := dfBytes(t, name)
		r := run(t, time.Minute, "", env.bin, "set", name, "--disk", "8GiB")
		if r.code == 0 || !strings.Contains(r.stderr, "is running") {
			t.Errorf("set on a running machine: exit %d, %s", r.code, r.stderr)
		}
		machine(t, "stop", name)
		if r := run(t, time.Minute, "", env.bin, "set", name, "--disk", "2GiB"); r.code == 0 || !strings.Contains(r.stderr, "only grow") {
			t.Errorf("shrinking: exit %d, %s", r.code, r.stderr)
		}
		t.Log(machine(t, "set", name, "--disk", "8GiB"))
		out := machine(t, "start", name)
		if !strings.Contains(out, "filesystem grown") {
			t.Errorf("start after set --disk did not report growing the filesystem:\n%s", out)
		}
		after := dfBytes(t, name)
		t.Logf("data filesystem %d MiB before, %d MiB after set --disk 8GiB", before>>20, after>>20)
		if after < 7<<30 || after <= before {
			t.Errorf("filesystem is %d bytes after growing to 8 GiB (was %d)", after, before)
		}
		if out := docker(t, ctxName, "", "run", "--rm", "-v", "keep:/data", "busybox:local", "cat", "/data/f"); out != "kept\n" {
			t.Errorf("volume data after growing: %q", out)
		}
	})
}

// dfBytes is the size of the machine's data filesystem.
func dfBytes(t *testing.T, name string) int64 {
	t.Helper()
	out := machine(t, "shell", name, "--", "df", "-B1", "--output=size", "/var/lib/docker")
	f := strings.Fields(out)
	var n int64
	if len(f) < 2 {
		t.Fatalf("df printed %q", out)
	}
	fmt.Sscan(f[len(f)-1], &n)
	return n
}

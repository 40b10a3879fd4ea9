//go:build e2e

package test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWorkflows is the user's Docker notes (shared/seed) run end to end: every workflow they
// describe, driven from the host's docker CLI (and its compose and buildx plugins) against one
// machine, as against a local daemon on Linux. Each subtest is one workflow, named after what
// a user does.
//
// No public registry is reachable here, so the images come from Debian packages: busybox:1.24
// is Debian's static busybox (images_test.go), debian:wf a small trixie root made with
// mmdebstrap (python3, useradd, docker-registry; see debianBase). The registry the push and
// pull go through is Debian's docker-registry running as a container on the machine itself,
// published on port 5000: the engine pushes to localhost:5000, which it treats as insecure
// (plain HTTP) by default, and the host reaches the same registry on 127.0.0.1:5000.
func TestWorkflows(t *testing.T) {
	const name = "workflows"
	const ctx = "machine-workflows"
	defer dumpLogs(t, name)
	machine(t, "create", name, "--cpus", "2", "--memory", "2GiB", "--disk", "16GiB", "--image", latestImage(t, "amd64"), "--share", env.shared)
	machine(t, "start", name)
	t.Cleanup(func() { run(t, 5*time.Minute, "", env.bin, "stop", "--force", name) })
	d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }

	docker(t, ctx, string(busyboxRootfs(t)), "import", "--change", `CMD ["/bin/sh"]`, "-", "busybox:1.24")
	d("import", "--change", `CMD ["/bin/bash"]`, debianBase(t), "debian:wf")
	dir := t.TempDir()

	t.Run("run hello world attached and detached, each run a new container, ps and ps -a", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		if out := d("run", "busybox:1.24", "echo", "hello world"); out != "hello world\n" {
			t.Errorf("attached run printed %q", out)
		}
		d("run", "busybox:1.24", "echo", "hello world")
		all := strings.Fields(d("ps", "-a", "-q", "--filter", "ancestor=busybox:1.24"))
		if len(all) != 2 || all[0] == all[1] {
			t.Errorf("two runs left containers %q, want two different ones", all)
		}
		id := strings.TrimSpace(d("run", "-d", "busybox:1.24", "sleep", "600"))
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
			t.Fatalf("detached run printed %q, want the container ID", id)
		}
		running := d("ps", "-q", "--no-trunc")
		if !strings.Contains(running, id) || strings.Contains(running, all[0]) {
			t.Errorf("ps lists %q: want the detached container and not the exited ones", running)
		}
		if every := d("ps", "-a", "-q", "--no-trunc"); !strings.Contains(every, id) || !strings.Contains(every, all[0]) {
			t.Errorf("ps -a lists %q: want the running and the exited containers", every)
		}
		d("rm", "-f", id, all[0], all[1])
	})

	t.Run("inspect a container and an image", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		d("run", "-d", "--name", "wf-inspect", "--label", "notes=yes", "busybox:1.24", "sleep", "600")
		defer d("rm", "-f", "wf-inspect")
		var cs []struct {
			Name   string
			State  struct{ Running bool }
			Config struct {
				Image  string
				Cmd    []string
				Labels map[string]string
			}
			NetworkSettings struct{ IPAddress string }
		}
		if err := json.Unmarshal([]byte(d("inspect", "wf-inspect")), &cs); err != nil || len(cs) != 1 {
			t.Fatalf("docker inspect: %v (%d objects)", err, len(cs))
		}
		c := cs[0]
		if c.Name != "/wf-inspect" || !c.State.Running || c.Config.Image != "busybox:1.24" || strings.Join(c.Config.Cmd, " ") != "sleep 600" || c.Config.Labels["notes"] != "yes" || c.NetworkSettings.IPAddress == "" {
			t.Errorf("container inspect = %+v", c)
		}
		if got := d("image", "inspect", "--format", "{{.RepoTags}} {{.Config.Cmd}} {{.Os}}", "busybox:1.24"); got != "[busybox:1.24] [/bin/sh] linux\n" {
			t.Errorf("image inspect printed %q", got)
		}
	})

	t.Run("logs and logs -f", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		d("run", "-d", "--name", "wf-logs", "busybox:1.24", "sh", "-c", "for i in 1 2 3 4 5; do echo tick $i; sleep 1; done; echo oops >&2")
		defer d("rm", "-f", "wf-logs")
		// -f follows the running container and returns when it exits.
		if out := d("logs", "-f", "wf-logs"); !strings.HasPrefix(out, "tick 1\n") || !strings.HasSuffix(out, "tick 5\n") {
			t.Errorf("logs -f printed %q", out)
		}
		r := run(t, time.Minute, "", "docker", "--context", ctx, "logs", "wf-logs")
		if r.code != 0 || r.stdout != "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n" || r.stderr != "oops\n" {
			t.Errorf("logs: exit %d, stdout %q, stderr %q; want the ticks on stdout and oops on stderr", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("publish 8888:8080 and reach the container's web server from the host", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		d("run", "-d", "--name", "wf-web", "-p", "8888:8080", "busybox:1.24", "httpd", "-f", "-p", "8080", "-h", "/www")
		defer d("rm", "-f", "wf-web")
		if got := httpGet(t, "http://127.0.0.1:8888/"); got != "hello from the container\n" {
			t.Errorf("the host got %q from 127.0.0.1:8888", got)
		}
		if out := d("port", "wf-web", "8080"); !strings.Contains(out, ":8888") {
			t.Errorf("docker port printed %q", out)
		}
	})

	t.Run("run -it --rm with a terminal", func(t *testing.T) {
		// script(1) gives the docker CLI a terminal, as a user's shell does.
		r := run(t, 2*time.Minute, "tty\necho $((6*7))\nexit 5\n", "script", "-qec", "docker --context "+ctx+" run -it --rm --name wf-tty busybox:1.24 sh", "/dev/null")
		if r.code != 5 || !strings.Contains(r.stdout, "/dev/pts/0") || !strings.Contains(r.stdout, "42") {
			t.Errorf("interactive run: exit %d, output %q; want a /dev/pts terminal, 42 and exit 5", r.code, r.stdout)
		}
		if left := docker(t, ctx, "", "ps", "-a", "-q", "--filter", "name=wf-tty"); left != "" {
			t.Errorf("--rm left container %q", left)
		}
	})

	t.Run("commit a container's changes and run the new image", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		d("run", "--name", "wf-commit", "busybox:1.24", "sh", "-c", "echo committed > /greeting")
		id := strings.TrimSpace(d("commit", "wf-commit", "wf/committed:1"))
		d("rm", "wf-commit")
		if !strings.HasPrefix(id, "sha256:") {
			t.Errorf("commit printed %q, want the image ID", id)
		}
		if out := d("run", "--rm", "wf/committed:1", "cat", "/greeting"); out != "committed\n" {
			t.Errorf("the committed image has /greeting = %q", out)
		}
		if n := layers(t, ctx, "wf/committed:1"); n != layers(t, ctx, "busybox:1.24")+1 {
			t.Errorf("committed image has %d layers, want one more than its base", n)
		}
	})

	bctx, dockerfile := writeBuildContext(t, dir)
	t.Run("build a Dockerfile: FROM, chained RUN, useradd and USER, WORKDIR, COPY, ADD of a tar, CMD; -f outside the context; the cache", func(t *testing.T) {
		// The notes' builder: the classic one, with "Step N/M" and "Using cache".
		t.Setenv("DOCKER_BUILDKIT", "0")
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		out := d("build", "-t", "wf/app:1", "-f", dockerfile, bctx)
		for _, want := range []string{"Sending build context to Docker daemon", "Step 1/", "Successfully tagged wf/app:1"} {
			if !strings.Contains(out, want) {
				t.Errorf("build output lacks %q:\n%s", want, out)
			}
		}
		// CMD in exec form, run from WORKDIR as the user USER names.
		if got := d("run", "--rm", "wf/app:1"); got != "hello from app.py as admin in /app\n" {
			t.Errorf("the image's CMD printed %q", got)
		}
		if got := d("run", "--rm", "wf/app:1", "sh", "-c", `cat /one /two /opt/bundle/inside.txt /home/admin/built; echo "$HOME"; getent passwd admin | cut -d: -f6,7`); got != "one\ntwo\nunpacked from the tar\nbuilt as admin in /app\n/home/admin\n/home/admin:/bin/bash\n" {
			t.Errorf("the image's files and user: %q", got)
		}
		if got := d("image", "inspect", "--format", "{{.Config.User}} {{.Config.WorkingDir}} {{.Config.Cmd}}", "wf/app:1"); got != "admin /app [python3 app.py]\n" {
			t.Errorf("image config %q", got)
		}
		// CMD in shell form runs through /bin/sh -c, so the shell expands it.
		os.WriteFile(filepath.Join(dir, "Dockerfile.shell"), []byte("FROM wf/app:1\nCMD echo \"shell form as $(whoami)\"\n"), 0o644)
		d("build", "-t", "wf/app:shell", "-f", filepath.Join(dir, "Dockerfile.shell"), bctx)
		if got := d("run", "--rm", "wf/app:shell"); got != "shell form as admin\n" {
			t.Errorf("shell-form CMD printed %q", got)
		}
		if got := d("image", "inspect", "--format", "{{json .Config.Cmd}}", "wf/app:shell"); !strings.HasPrefix(got, `["/bin/sh","-c",`) {
			t.Errorf("shell-form CMD is stored as %s", got)
		}

		first := imageID(t, ctx, "wf/app:1")
		steps := buildSteps(d("build", "-t", "wf/app:1", "-f", dockerfile, bctx))
		for i, s := range steps[1:] {
			if !s.cached {
				t.Errorf("second build: step %d (%s) was not taken from the cache", i+2, s.instruction)
			}
		}
		if again := imageID(t, ctx, "wf/app:1"); again != first {
			t.Errorf("an unchanged build made image %s, want %s", again, first)
		}

		// Changing one instruction rebuilds from there on; the steps before it stay cached.
		b, _ := os.ReadFile(dockerfile)
		changed := strings.Replace(string(b), `RUN echo "built as`, `RUN echo "rebuilt" && echo "built as`, 1)
		os.WriteFile(dockerfile, []byte(changed), 0o644)
		defer os.WriteFile(dockerfile, b, 0o644)
		steps = buildSteps(d("build", "-t", "wf/app:2", "-f", dockerfile, bctx))
		seen := false
		for i, s := range steps[1:] {
			if strings.Contains(s.instruction, "rebuilt") {
				seen = true
			}
			if s.cached == seen {
				t.Errorf("build after a change: step %d (%s) cached=%v, want %v", i+2, s.instruction, s.cached, !seen)
			}
		}
		if !seen {
			t.Errorf("the changed step is not in the build output: %+v", steps)
		}
	})

	t.Run("image layers: history, two containers share one image, a container's writes vanish with it", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		hist := d("history", "--no-trunc", "--format", "{{.CreatedBy}}", "wf/app:1")
		for _, want := range []string{"useradd -ms /bin/bash admin", "COPY dir:", "ADD file:", "WORKDIR /app", "USER admin"} {
			if !strings.Contains(hist, want) {
				t.Errorf("history lacks %q:\n%s", want, hist)
			}
		}
		if n := layers(t, ctx, "wf/app:1"); n < layers(t, ctx, "debian:wf")+4 {
			t.Errorf("wf/app:1 has %d layers: want its base's plus one per RUN, COPY and ADD", n)
		}
		img := imageID(t, ctx, "wf/app:1")
		a := strings.TrimSpace(d("run", "-d", "wf/app:1", "sleep", "600"))
		b := strings.TrimSpace(d("run", "-d", "wf/app:1", "sleep", "600"))
		defer d("rm", "-f", b)
		for _, c := range []string{a, b} {
			if got := strings.TrimSpace(d("inspect", "--format", "{{.Image}}", c)); got != img {
				t.Errorf("container %.12s runs image %s, want %s", c, got, img)
			}
		}
		d("exec", "-u", "root", a, "sh", "-c", "echo mine > /tmp/only-a && rm /one")
		if diff := d("diff", a); !strings.Contains(diff, "A /tmp/only-a") || !strings.Contains(diff, "D /one") {
			t.Errorf("docker diff of the writer: %q", diff)
		}
		if r := run(t, time.Minute, "", "docker", "--context", ctx, "exec", b, "cat", "/tmp/only-a"); r.code == 0 {
			t.Error("the other container sees the first one's write")
		}
		d("rm", "-f", a)
		if got := d("run", "--rm", "wf/app:1", "sh", "-c", "ls /tmp; cat /one"); got != "one\n" {
			t.Errorf("a new container after the writer was removed sees %q, want the image unchanged", got)
		}
		if imageID(t, ctx, "wf/app:1") != img {
			t.Error("the image changed")
		}
	})

	t.Run("exec into a running container", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		d("run", "-d", "--name", "wf-exec", "wf/app:1", "sleep", "600")
		defer d("rm", "-f", "wf-exec")
		if got := d("exec", "wf-exec", "sh", "-c", "whoami; pwd"); got != "admin\n/app\n" {
			t.Errorf("exec printed %q", got)
		}
		if got := docker(t, ctx, "through stdin\n", "exec", "-i", "wf-exec", "cat"); got != "through stdin\n" {
			t.Errorf("exec -i printed %q", got)
		}
		if r := run(t, time.Minute, "", "docker", "--context", ctx, "exec", "wf-exec", "sh", "-c", "exit 4"); r.code != 4 {
			t.Errorf("exec exit code %d, want 4", r.code)
		}
		r := run(t, time.Minute, "tty\nexit\n", "script", "-qec", "docker --context "+ctx+" exec -it -u root wf-exec sh", "/dev/null")
		if r.code != 0 || !strings.Contains(r.stdout, "/dev/pts/") {
			t.Errorf("exec -it: exit %d, output %q", r.code, r.stdout)
		}
	})

	t.Run("tag, push to a registry, remove the local copy and pull it back; no tag means latest", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		d("run", "-d", "--name", "wf-registry", "-p", "5000:5000", "debian:wf", "sh", "-c",
			`printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\nhttp:\n  addr: :5000\n' > /tmp/config.yml && exec docker-registry serve /tmp/config.yml`)
		defer d("rm", "-f", "wf-registry")
		httpGet(t, "http://127.0.0.1:5000/v2/")
		d("tag", "wf/committed:1", "localhost:5000/wf/app")
		d("tag", "wf/committed:1", "localhost:5000/wf/app:1")
		if tags := d("images", "--format", "{{.Tag}}", "localhost:5000/wf/app"); !strings.Contains(tags, "latest\n") {
			t.Errorf("a tag without a version is %q, want latest", tags)
		}
		if out := d("push", "localhost:5000/wf/app"); !strings.Contains(out, "latest: digest: sha256:") {
			t.Errorf("push without a tag printed %q, want latest pushed", out)
		}
		d("push", "localhost:5000/wf/app:1")
		var list struct{ Tags []string }
		json.Unmarshal([]byte(httpGet(t, "http://127.0.0.1:5000/v2/wf/app/tags/list")), &list)
		// The distribution API does not promise an order (this registry answered both).
		slices.Sort(list.Tags)
		if strings.Join(list.Tags, ",") != "1,latest" {
			t.Errorf("the registry holds tags %v, want 1 and latest", list.Tags)
		}
		// Remove every local name of the image, so its committed layer is gone and the pull
		// must fetch it (the busybox layer below it is still there, as on any host).
		d("rmi", "localhost:5000/wf/app", "localhost:5000/wf/app:1", "wf/committed:1")
		if r := run(t, time.Minute, "", "docker", "--context", ctx, "image", "inspect", "localhost:5000/wf/app"); r.code == 0 {
			t.Fatal("the local copy is still there")
		}
		out := d("pull", "localhost:5000/wf/app")
		if !strings.Contains(out, "Using default tag: latest") || !strings.Contains(out, "Pull complete") {
			t.Errorf("pull without a tag printed %q, want the latest tag pulled", out)
		}
		d("pull", "localhost:5000/wf/app:1")
		if got := d("run", "--rm", "localhost:5000/wf/app", "cat", "/greeting"); got != "committed\n" {
			t.Errorf("the pulled image has /greeting = %q", got)
		}
	})

	t.Run("link a key-value service as redis and reach it by name", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		d("run", "-d", "--name", "wf-redis", "--expose", "6379", "debian:wf", "python3", "-c", kvServer)
		defer d("rm", "-f", "wf-redis")
		ip := strings.TrimSpace(d("inspect", "--format", "{{.NetworkSettings.IPAddress}}", "wf-redis"))
		out := d("run", "--rm", "--link", "wf-redis:redis", "debian:wf", "sh", "-c",
			`getent hosts redis | cut -d' ' -f1; echo "$REDIS_PORT"; python3 -c "$0"`, kvClient+`
print(kv("redis", "SET visits 1")); print(kv("redis", "INCR visits")); print(kv("redis", "GET visits"))`)
		if want := ip + "\ntcp://" + ip + ":6379\nOK\n2\n2\n"; out != want {
			t.Errorf("the linked container printed %q, want %q", out, want)
		}
	})

	t.Run("compose: a built service and an image service, up -d --build, names, published port, ps, logs, exec, down", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		proj := writeComposeProject(t, dir)
		c := func(args ...string) string {
			t.Helper()
			return d(append([]string{"compose", "-f", filepath.Join(proj, "compose.yaml"), "-p", "wf"}, args...)...)
		}
		c("up", "-d", "--build")
		downed := false
		defer func() {
			if !downed {
				c("down")
			}
		}()
		// The web service counts visits in the kv service, which it reaches by its name.
		for i := 1; i <= 2; i++ {
			if got, want := httpGet(t, "http://127.0.0.1:8000/"), fmt.Sprintf("hello from web; visits: %d\n", i); got != want {
				t.Errorf("request %d: %q, want %q", i, got, want)
			}
		}
		if ps := c("ps", "--format", "{{.Service}} {{.State}}"); !strings.Contains(ps, "web running") || !strings.Contains(ps, "kv running") {
			t.Errorf("compose ps printed %q", ps)
		}
		if logs := c("logs", "web"); !strings.Contains(logs, `"GET / HTTP/1.1" 200`) {
			t.Errorf("compose logs web printed %q", logs)
		}
		if got := c("exec", "-T", "web", "python3", "-c", kvClient+"\nprint(kv('kv', 'GET visits'))"); got != "2\n" {
			t.Errorf("compose exec web printed %q", got)
		}
		c("down")
		downed = true
		if left := d("ps", "-a", "-q", "--filter", "label=com.docker.compose.project=wf"); left != "" {
			t.Errorf("down left containers %q", left)
		}
		if nets := d("network", "ls", "-q", "--filter", "name=wf_default"); nets != "" {
			t.Errorf("down left the network %q", nets)
		}
	})

	t.Run("buildx build --load with BuildKit, and a second build from the cache", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		build := func() string {
			t.Helper()
			r := run(t, 10*time.Minute, "", "docker", "--context", ctx, "buildx", "build", "--load", "--progress", "plain", "-t", "wf/app:buildx", "-f", dockerfile, bctx)
			if r.code != 0 {
				t.Fatalf("buildx build: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			return r.stderr // BuildKit's progress goes to stderr
		}
		build()
		if got := d("run", "--rm", "wf/app:buildx"); got != "hello from app.py as admin in /app\n" {
			t.Errorf("the BuildKit image printed %q", got)
		}
		out := build()
		for _, step := range []string{"RUN useradd -ms /bin/bash admin", "COPY app /app", "ADD bundle.tar /opt/bundle/"} {
			if !regexp.MustCompile(`(?m)^#(\d+) \[[^\]]+\] ` + regexp.QuoteMeta(step) + `\n#\d+ CACHED$`).MatchString(out) {
				t.Errorf("second BuildKit build: %q is not reported CACHED:\n%s", step, out)
			}
		}
	})

	t.Run("docker top lists a container's processes", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		d("run", "-d", "--name", "wf-top", "busybox:1.24", "sleep", "600")
		defer d("rm", "-f", "wf-top")
		out := d("top", "wf-top")
		if !strings.Contains(out, "PID") || !strings.Contains(out, "sleep 600") {
			t.Errorf("docker top printed %q", out)
		}
		if out := d("top", "wf-top", "-o", "pid,comm"); !strings.Contains(out, "COMMAND") || !strings.Contains(out, "sleep") {
			t.Errorf("docker top -o pid,comm printed %q", out)
		}
	})

	t.Run("bind mount a shared folder with rslave propagation", func(t *testing.T) {
		d := func(args ...string) string { t.Helper(); return docker(t, ctx, "", args...) }
		src := filepath.Join(env.shared, "rslave")
		os.MkdirAll(filepath.Join(src, "sub"), 0o755)
		os.WriteFile(filepath.Join(src, "file"), []byte("through rslave\n"), 0o644)
		d("run", "-d", "--name", "wf-rslave", "-v", src+":/x:rslave", "busybox:1.24", "sleep", "600")
		defer d("rm", "-f", "wf-rslave")
		if got := d("exec", "wf-rslave", "cat", "/x/file"); got != "through rslave\n" {
			t.Errorf("the container read %q", got)
		}
		if got := d("inspect", "--format", "{{range .Mounts}}{{.Propagation}}{{end}}", "wf-rslave"); got != "rslave\n" {
			t.Errorf("mount propagation %q", got)
		}
		// rslave's point: a mount made on the machine under the folder after the container
		// started reaches the container.
		machine(t, "shell", name, "--", "sh", "-c", "mount -t tmpfs wf "+filepath.Join(src, "sub")+" && echo mounted later > "+filepath.Join(src, "sub", "f"))
		defer machine(t, "shell", name, "--", "umount", filepath.Join(src, "sub"))
		if got := d("exec", "wf-rslave", "cat", "/x/sub/f"); got != "mounted later\n" {
			t.Errorf("a mount made after the container started: the container read %q", got)
		}
	})
}

// layers is the number of filesystem layers of an image.
func layers(t *testing.T, ctx, image string) int {
	t.Helper()
	var n int
	fmt.Sscan(docker(t, ctx, "", "image", "inspect", "--format", "{{len .RootFS.Layers}}", image), &n)
	return n
}

func imageID(t *testing.T, ctx, image string) string {
	t.Helper()
	return strings.TrimSpace(docker(t, ctx, "", "image", "inspect", "--format", "{{.ID}}", image))
}

type buildStep struct {
	instruction string
	cached      bool
}

// buildSteps parses the classic builder's output: "Step N/M : INSTRUCTION" then " ---> Using
// cache" when the step's layer came from the cache.
func buildSteps(out string) []buildStep {
	var steps []buildStep
	for _, part := range strings.Split(out, "\nStep ")[1:] {
		line, rest, _ := strings.Cut(part, "\n")
		_, instr, _ := strings.Cut(line, " : ")
		steps = append(steps, buildStep{instr, strings.HasPrefix(rest, " ---> Using cache\n")})
	}
	return steps
}

// httpGet waits until url answers 200 (a published port appears on the host a moment after
// the container starts) and returns the body.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	var last string
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		resp, err := client.Get(url)
		if err != nil {
			last = err.Error()
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			return string(b)
		}
		last = fmt.Sprintf("%s: %s", resp.Status, b)
	}
	t.Fatalf("GET %s: %s", url, last)
	return ""
}

// kvServer stands in for redis: SET, GET and INCR over a line protocol on port 6379.
const kvServer = `
import socketserver
data = {}
class H(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            cmd, key, *val = line.decode().split()
            if cmd == "SET":
                data[key] = val[0]; reply = "OK"
            elif cmd == "INCR":
                data[key] = str(int(data.get(key, "0")) + 1); reply = data[key]
            else:
                reply = data.get(key, "")
            self.wfile.write((reply + "\n").encode())
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("", 6379), H).serve_forever()
`

// kvClient defines kv(host, command), which retries while the server starts.
const kvClient = `
import socket, time
def kv(host, command):
    for _ in range(100):
        try:
            with socket.create_connection((host, 6379), timeout=5) as s:
                s.sendall((command + "\n").encode())
                return s.makefile().readline().strip()
        except OSError:
            time.sleep(0.2)
    raise SystemExit("no answer from " + host)
`

// writeBuildContext writes the notes' hello-world app as a build context, and its Dockerfile
// outside the context (built with -f).
func writeBuildContext(t *testing.T, dir string) (context, dockerfile string) {
	t.Helper()
	context = filepath.Join(dir, "context")
	os.MkdirAll(filepath.Join(context, "app"), 0o755)
	os.WriteFile(filepath.Join(context, "app", "app.py"), []byte(
		"import os, pwd\nprint('hello from app.py as', pwd.getpwuid(os.getuid()).pw_name, 'in', os.getcwd())\n"), 0o644)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	addFile(tw, "inside.txt", []byte("unpacked from the tar\n"), 0o644)
	tw.Close()
	os.WriteFile(filepath.Join(context, "bundle.tar"), tb.Bytes(), 0o644)
	dockerfile = filepath.Join(dir, "Dockerfile")
	os.WriteFile(dockerfile, []byte(`FROM debian:wf
RUN echo one > /one && \
    echo two > /two
RUN useradd -ms /bin/bash admin
COPY app /app
ADD bundle.tar /opt/bundle/
WORKDIR /app
USER admin
RUN echo "built as $(whoami) in $(pwd)" > /home/admin/built
CMD ["python3", "app.py"]
`), 0o644)
	return context, dockerfile
}

// writeComposeProject writes a two-service app: web is built from a Dockerfile and counts
// visits in kv, which runs from the debian:wf image. JSON is YAML, so the file is written as
// JSON and the Python programs need no YAML quoting.
func writeComposeProject(t *testing.T, dir string) string {
	t.Helper()
	proj := filepath.Join(dir, "compose")
	os.MkdirAll(proj, 0o755)
	web := kvClient + `
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from web; visits: %s\n" % kv("kv", "INCR visits")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
HTTPServer(("", 8080), H).serve_forever()
`
	os.WriteFile(filepath.Join(proj, "web.py"), []byte(web), 0o644)
	os.WriteFile(filepath.Join(proj, "Dockerfile"), []byte("FROM debian:wf\nCOPY web.py /web.py\nCMD [\"python3\", \"-u\", \"/web.py\"]\n"), 0o644)
	compose, _ := json.MarshalIndent(map[string]any{
		"services": map[string]any{
			"web": map[string]any{"build": ".", "ports": []string{"8000:8080"}, "depends_on": []string{"kv"}},
			"kv":  map[string]any{"image": "debian:wf", "command": []string{"python3", "-c", kvServer}},
		},
	}, "", "  ")
	os.WriteFile(filepath.Join(proj, "compose.yaml"), compose, 0o644)
	return proj
}

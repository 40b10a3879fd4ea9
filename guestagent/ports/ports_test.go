package ports

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/machine-run/machine/guestagent/api"
)

const web = `[{"Id":"c1","Ports":[
	{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
	{"IP":"::","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
	{"PrivatePort":443,"Type":"tcp"}]}]`

var webPorts = []api.Port{
	{Proto: "tcp", HostIP: "0.0.0.0", HostPort: 8080, Container: "c1"},
	{Proto: "tcp", HostIP: "::", HostPort: 8080, Container: "c1"},
}

func TestInitialSyncSubscribesFirst(t *testing.T) {
	f := newFakeDocker(t)
	f.setContainers(web)
	rec := newRecorder()
	runWatcher(t, f, rec)
	if got := rec.next(t); !reflect.DeepEqual(got, webPorts) {
		t.Fatalf("initial set %+v, want %+v", got, webPorts)
	}
	if log := f.requestLog(); len(log) < 2 || log[0] != "events" || log[1] != "list" {
		t.Fatalf("requests %v: want the event stream opened before the first listing", log)
	}
	f.mu.Lock()
	q := f.queries[0]
	f.mu.Unlock()
	var filters map[string][]string
	if err := json.Unmarshal([]byte(q.Get("filters")), &filters); err != nil {
		t.Fatalf("filters %q: %v", q.Get("filters"), err)
	}
	if !reflect.DeepEqual(filters["type"], []string{"container"}) || len(filters["event"]) != len(actions) {
		t.Fatalf("filters %v", filters)
	}
	if q.Get("since") == "" {
		t.Fatal("no since: an event between the response headers and the subscription would be lost")
	}
}

func TestInitialEmptySetIsReported(t *testing.T) {
	f := newFakeDocker(t)
	rec := newRecorder()
	runWatcher(t, f, rec)
	if got := rec.next(t); got == nil || len(got) != 0 {
		t.Fatalf("initial set %#v, want an empty non-nil set", got)
	}
}

func TestStartAddsDieRemoves(t *testing.T) {
	f := newFakeDocker(t)
	rec := newRecorder()
	runWatcher(t, f, rec)
	if got := rec.next(t); len(got) != 0 {
		t.Fatalf("initial %+v", got)
	}
	f.setContainers(web)
	f.emit("start")
	if got := rec.next(t); !reflect.DeepEqual(got, webPorts) {
		t.Fatalf("after start %+v, want %+v", got, webPorts)
	}
	f.setContainers(`[]`)
	f.emit("die")
	if got := rec.next(t); len(got) != 0 {
		t.Fatalf("after die %+v, want none", got)
	}
	f.setContainers(web)
	f.emit("restart")
	rec.next(t)
	f.setContainers(`[]`)
	f.emit("destroy")
	if got := rec.next(t); len(got) != 0 {
		t.Fatalf("after destroy %+v, want none", got)
	}
}

func TestNoReportWhenNothingChanged(t *testing.T) {
	f := newFakeDocker(t)
	f.setContainers(web)
	rec := newRecorder()
	runWatcher(t, f, rec)
	rec.next(t)
	wait(t, f.listed, "initial listing")
	// The same set listed in another order with a duplicate entry is still the same set.
	f.setContainers(`[{"Id":"c1","Ports":[
		{"IP":"::","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
		{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
		{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}]}]`)
	for _, a := range []string{"pause", "unpause", "kill", "stop"} {
		f.emit(a)
		wait(t, f.listed, "listing after "+a)
	}
	rec.none(t)
	// The next report must be the change, not a late duplicate.
	f.setContainers(`[]`)
	f.emit("die")
	if got := rec.next(t); len(got) != 0 {
		t.Fatalf("after die %+v, want none", got)
	}
}

func TestReconnectAfterStreamDrop(t *testing.T) {
	f := newFakeDocker(t)
	f.setContainers(web)
	rec := newRecorder()
	runWatcher(t, f, rec)
	rec.next(t)
	wait(t, f.subscribed, "first subscription")

	// The stream ends while a container stops: the resync after reconnecting must see it.
	f.setContainers(`[]`)
	f.dropStreams()
	wait(t, f.subscribed, "second subscription")
	if got := rec.next(t); len(got) != 0 {
		t.Fatalf("after reconnect %+v, want none", got)
	}
	log := f.requestLog()
	if n := len(log); n < 2 || log[n-2] != "events" || log[n-1] != "list" {
		t.Fatalf("requests %v: want a resubscription followed by a listing", log)
	}
	f.setContainers(web)
	f.emit("start")
	if got := rec.next(t); !reflect.DeepEqual(got, webPorts) {
		t.Fatalf("start after reconnect %+v", got)
	}
}

func TestReconnectAfterDaemonRestart(t *testing.T) {
	f := newFakeDocker(t)
	rec := newRecorder()
	runWatcher(t, f, rec)
	rec.next(t)
	wait(t, f.subscribed, "first subscription")

	f.stop() // dockerd is down: connections are refused for a while
	f.setContainers(web)
	f.start()
	wait(t, f.subscribed, "subscription to the restarted daemon")
	if got := rec.next(t); !reflect.DeepEqual(got, webPorts) {
		t.Fatalf("after restart %+v, want %+v", got, webPorts)
	}
}

func TestBrokenListingReconnects(t *testing.T) {
	f := newFakeDocker(t)
	f.setContainers(`{"not":"a list"}`)
	rec := newRecorder()
	runWatcher(t, f, rec)
	wait(t, f.subscribed, "first subscription")
	wait(t, f.subscribed, "resubscription after the bad listing")
	rec.none(t)
	f.setContainers(web)
	if got := rec.next(t); !reflect.DeepEqual(got, webPorts) {
		t.Fatalf("after repair %+v", got)
	}
}

func TestCollectValidatesAndDedups(t *testing.T) {
	cs := []Container{
		{ID: "c2", Ports: []ContainerPort{
			{IP: "127.0.0.1", PublicPort: 53, Type: "udp"},
			{IP: "::1", PublicPort: 53, Type: "udp"},
			{IP: "", PublicPort: 9000, Type: "tcp"},        // empty address is the IPv4 wildcard
			{IP: "0.0.0.0", PublicPort: 9000, Type: "tcp"}, // ... so this is a duplicate
			{IP: "0.0.0.0", PublicPort: 0, Type: "tcp"},    // not published
			{IP: "0.0.0.0", PublicPort: 70000, Type: "tcp"},
			{IP: "0.0.0.0", PublicPort: -1, Type: "tcp"},
			{IP: "0.0.0.0", PublicPort: 132, Type: "sctp"},
			{IP: "not-an-ip", PublicPort: 81, Type: "tcp"},
		}},
		{ID: "", Ports: []ContainerPort{{IP: "0.0.0.0", PublicPort: 82, Type: "tcp"}}},
		{ID: "c1", Ports: []ContainerPort{{IP: "0.0.0.0", PublicPort: 65535, Type: "tcp"}, {IP: "0.0.0.0", PublicPort: 1, Type: "tcp"}}},
	}
	want := []api.Port{
		{Proto: "tcp", HostIP: "0.0.0.0", HostPort: 1, Container: "c1"},
		{Proto: "tcp", HostIP: "0.0.0.0", HostPort: 9000, Container: "c2"},
		{Proto: "tcp", HostIP: "0.0.0.0", HostPort: 65535, Container: "c1"},
		{Proto: "udp", HostIP: "127.0.0.1", HostPort: 53, Container: "c2"},
		{Proto: "udp", HostIP: "::1", HostPort: 53, Container: "c2"},
	}
	if got := Collect(cs); !reflect.DeepEqual(got, want) {
		t.Fatalf("Collect:\n got %+v\nwant %+v", got, want)
	}
	if got := Collect(nil); got == nil || len(got) != 0 {
		t.Fatalf("Collect(nil) = %#v, want empty non-nil", got)
	}
}

func TestReadEventsPicksRelevantActions(t *testing.T) {
	var stream strings.Builder
	for _, a := range []string{"create", "start", "exec_start: sh -c true", "health_status: healthy", "die", "attach", "destroy"} {
		fmt.Fprintf(&stream, `{"Type":"container","Action":%q}`+"\n", a)
	}
	stream.WriteString(`{"Type":"network","Action":"start"}` + "\n")
	stream.WriteString(`{"status":"kill","id":"old"}` + "\n") // pre-1.22 daemons
	n := 0
	err := readEvents(strings.NewReader(stream.String()), func() { n++ })
	if n != 4 {
		t.Fatalf("%d relevant events, want 4 (start, die, destroy, kill)", n)
	}
	if err == nil {
		t.Fatal("end of stream must be an error: dockerd never ends it")
	}
	if err := readEvents(strings.NewReader(`{"Type":`), func() {}); err == nil {
		t.Fatal("truncated event: want error")
	}
}

func TestBurstIsCoalesced(t *testing.T) {
	f := newFakeDocker(t)
	rec := newRecorder()
	runWatcher(t, f, rec)
	rec.next(t)
	gate := make(chan struct{}, 10)
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	for range len(f.listing) {
		<-f.listing
	}

	f.emit("start") // a lone event: its listing starts at once and is held at the gate
	wait(t, f.listing, "listing after the first event")
	f.setContainers(web)
	for range 50 {
		f.emit("start")
	}
	// Let the burst reach the watcher while the first listing is held, so that every event
	// falls into the one pending recompute.
	time.Sleep(100 * time.Millisecond)
	gate <- struct{}{}
	wait(t, f.listing, "one listing for the 50 events that came during the first")
	gate <- struct{}{}
	if got := rec.next(t); !reflect.DeepEqual(got, webPorts) {
		t.Fatalf("after burst %+v", got)
	}
	// A third listing would be under way at once; give it ample time to show.
	time.Sleep(200 * time.Millisecond)
	if n := len(f.listing); n != 0 {
		t.Fatalf("%d more listings after the burst, want 0", n)
	}
	f.mu.Lock()
	f.gate = nil
	f.mu.Unlock()
}

// BenchmarkEventToReport measures a start event written by dockerd to the changed set
// reaching the Reporter: the guest's share of "docker run -p returns" to "host listens".
func BenchmarkEventToReport(b *testing.B) {
	f := newFakeDocker(b)
	rec := newRecorder()
	runWatcher(b, f, rec)
	rec.next(b)
	sets := []string{web, `[]`}
	b.ResetTimer()
	for i := range b.N {
		f.setContainers(sets[i%2])
		f.emit("start")
		rec.next(b)
	}
}

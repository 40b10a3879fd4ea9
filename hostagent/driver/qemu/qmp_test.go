package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
)

// fakeQMP greets, answers each command, sends an event first to be skipped, and records
// what it was asked.
func fakeQMP(t *testing.T, fail string) (addr string, got chan []string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got = make(chan []string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte(`{"QMP": {"version": {}, "capabilities": []}}` + "\n"))
		var cmds []string
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			var m struct{ Execute string }
			json.Unmarshal(sc.Bytes(), &m)
			cmds = append(cmds, m.Execute)
			c.Write([]byte(`{"event": "SOMETHING"}` + "\n"))
			if m.Execute == fail {
				c.Write([]byte(`{"error": {"class": "GenericError", "desc": "no"}}` + "\n"))
				break
			}
			c.Write([]byte(`{"return": {}}` + "\n"))
			if m.Execute != "qmp_capabilities" {
				break
			}
		}
		got <- cmds
	}()
	return l.Addr().String(), got
}

func TestQMPCommand(t *testing.T) {
	addr, got := fakeQMP(t, "")
	if err := qmpCommand(context.Background(), "tcp", addr, "system_powerdown"); err != nil {
		t.Fatal(err)
	}
	if cmds := <-got; strings.Join(cmds, ",") != "qmp_capabilities,system_powerdown" {
		t.Errorf("QEMU was asked %v", cmds)
	}
	addr, _ = fakeQMP(t, "system_powerdown")
	if err := qmpCommand(context.Background(), "tcp", addr, "system_powerdown"); err == nil || !strings.Contains(err.Error(), "GenericError") {
		t.Errorf("a QMP error was not reported: %v", err)
	}
}

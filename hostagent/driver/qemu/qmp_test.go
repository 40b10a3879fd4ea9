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
// what it was asked (a human-monitor command with its command line). The last command fails
// when it is fail, else it returns ret (JSON; "" for {}).
func fakeQMP(t *testing.T, fail, ret string) (addr string, got chan []string) {
	if ret == "" {
		ret = "{}"
	}
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
			var m struct {
				Execute   string
				Arguments map[string]string
			}
			json.Unmarshal(sc.Bytes(), &m)
			cmd := m.Execute
			if line, ok := m.Arguments["command-line"]; ok {
				cmd += " " + line
			}
			cmds = append(cmds, cmd)
			c.Write([]byte(`{"event": "SOMETHING"}` + "\n"))
			if m.Execute == fail {
				c.Write([]byte(`{"error": {"class": "GenericError", "desc": "no"}}` + "\n"))
				break
			}
			if m.Execute == "qmp_capabilities" {
				c.Write([]byte(`{"return": {}}` + "\n"))
				continue
			}
			c.Write([]byte(`{"return": ` + ret + "}\n"))
			break
		}
		got <- cmds
	}()
	return l.Addr().String(), got
}

func TestQMPCommand(t *testing.T) {
	addr, got := fakeQMP(t, "", "")
	if err := qmpCommand(context.Background(), "tcp", addr, "system_powerdown"); err != nil {
		t.Fatal(err)
	}
	if cmds := <-got; strings.Join(cmds, ",") != "qmp_capabilities,system_powerdown" {
		t.Errorf("QEMU was asked %v", cmds)
	}
	addr, _ = fakeQMP(t, "system_powerdown", "")
	if err := qmpCommand(context.Background(), "tcp", addr, "system_powerdown"); err == nil || !strings.Contains(err.Error(), "GenericError") {
		t.Errorf("a QMP error was not reported: %v", err)
	}
}

func TestHostfwdMonitorLines(t *testing.T) {
	if got := hostfwdAddLine(45289, 9000); got != "hostfwd_add net0 tcp:127.0.0.1:45289-:9000" {
		t.Errorf("add line %q", got)
	}
	if got, err := hostfwdRemoveLine("127.0.0.1:45289"); err != nil || got != "hostfwd_remove net0 tcp:127.0.0.1:45289" {
		t.Errorf("remove line %q, %v", got, err)
	}
	if _, err := hostfwdRemoveLine("45289"); err == nil {
		t.Error("a remove line for an address without a host was made")
	}
	// What QEMU 7.2's monitor prints (read off a running machine).
	for _, tc := range []struct {
		out     string
		add, rm bool // success
	}{
		{"", true, false},
		{"Could not set up host forwarding rule 'tcp:127.0.0.1:19500-:9000'\r\n", false, false},
		{"host forwarding rule for tcp:127.0.0.1:19500 removed\r\n", false, true},
		{"host forwarding rule for tcp:127.0.0.1:19500 not found\r\n", false, false},
	} {
		if err := hostfwdAddResult(tc.out); (err == nil) != tc.add {
			t.Errorf("add result for %q: %v", tc.out, err)
		}
		if err := hostfwdRemoveResult(tc.out); (err == nil) != tc.rm {
			t.Errorf("remove result for %q: %v", tc.out, err)
		}
	}
}

// TestHMPCommand checks the command line reaches QEMU as human-monitor-command's argument
// and what the monitor printed comes back.
func TestHMPCommand(t *testing.T) {
	addr, got := fakeQMP(t, "", `"Could not set up host forwarding rule 'tcp:127.0.0.1:1-:2'\r\n"`)
	out, err := hmpCommand(context.Background(), "tcp", addr, hostfwdAddLine(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(<-got, ","); g != "qmp_capabilities,human-monitor-command hostfwd_add net0 tcp:127.0.0.1:1-:2" {
		t.Errorf("QEMU was asked %q", g)
	}
	if err := hostfwdAddResult(out); err == nil || !strings.Contains(err.Error(), "Could not set up host forwarding rule") {
		t.Errorf("the monitor's refusal was not reported: %q -> %v", out, err)
	}
}

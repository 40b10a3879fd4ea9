package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmpCommand runs one QEMU Machine Protocol command without arguments: read the greeting,
// negotiate capabilities, execute, and check the reply.
func qmpCommand(ctx context.Context, network, addr, command string) error {
	_, err := qmpExecute(ctx, network, addr, command, nil)
	return err
}

// hmpCommand runs one human-monitor command line through QMP and returns what the monitor
// printed: commands QMP has no equivalent for (hostfwd_add) report failure only there.
func hmpCommand(ctx context.Context, network, addr, line string) (string, error) {
	ret, err := qmpExecute(ctx, network, addr, "human-monitor-command", map[string]string{"command-line": line})
	if err != nil {
		return "", err
	}
	var out string
	if err := json.Unmarshal(ret, &out); err != nil {
		return "", fmt.Errorf("qmp human-monitor-command %q: bad return %s: %w", line, ret, err)
	}
	return out, nil
}

// MonitorCommand runs one human-monitor command line on the QEMU whose QMP socket is
// qmpSocket (a machine's qmp.sock) and returns what the monitor printed.
func MonitorCommand(ctx context.Context, qmpSocket, line string) (string, error) {
	return hmpCommand(ctx, "unix", qmpSocket, line)
}

// qmpExecute runs command with arguments (nil for none) and returns its "return" value.
func qmpExecute(ctx context.Context, network, addr, command string, arguments any) (json.RawMessage, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	r := bufio.NewReader(conn)
	if _, err := readQMP(r); err != nil { // greeting
		return nil, fmt.Errorf("qmp greeting: %w", err)
	}
	type request struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
	}
	var m *qmpMessage
	for _, req := range []request{{Execute: "qmp_capabilities"}, {Execute: command, Arguments: arguments}} {
		if err := json.NewEncoder(conn).Encode(req); err != nil {
			return nil, fmt.Errorf("qmp %s: %w", req.Execute, err)
		}
		if m, err = readQMP(r); err != nil {
			return nil, fmt.Errorf("qmp %s: %w", req.Execute, err)
		}
	}
	return m.Return, nil
}

type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
}

// readQMP returns the next greeting, return or error, skipping asynchronous events.
func readQMP(r *bufio.Reader) (*qmpMessage, error) {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		var m qmpMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("bad reply %q: %w", line, err)
		}
		if m.Event != "" {
			continue
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s", m.Error.Class, m.Error.Desc)
		}
		return &m, nil
	}
}

package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmpCommand runs one QEMU Machine Protocol command: read the greeting, negotiate
// capabilities, execute, and check the reply.
func qmpCommand(ctx context.Context, network, addr, command string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("qmp: %w", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	r := bufio.NewReader(conn)
	if _, err := readQMP(r); err != nil { // greeting
		return fmt.Errorf("qmp greeting: %w", err)
	}
	for _, cmd := range []string{"qmp_capabilities", command} {
		if err := json.NewEncoder(conn).Encode(map[string]string{"execute": cmd}); err != nil {
			return fmt.Errorf("qmp %s: %w", cmd, err)
		}
		if _, err := readQMP(r); err != nil {
			return fmt.Errorf("qmp %s: %w", cmd, err)
		}
	}
	return nil
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

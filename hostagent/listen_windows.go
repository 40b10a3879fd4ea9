package hostagent

import (
	"fmt"
	"net"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"

	"github.com/machine-run/machine/hostagent/store"
)

// listenDocker serves the machine's Docker API on the named pipe DockerPipe(m.Name), open to
// the current user only. Message mode, as dockerd's own pipe uses, because only there does
// winio carry a half-close (a zero-length message), which `docker run -i` and attach need.
func listenDocker(m *store.Machine) (net.Listener, error) {
	sid, err := currentUserSID()
	if err != nil {
		return nil, err
	}
	sddl, err := pipeSDDL(sid)
	if err != nil {
		return nil, err
	}
	path := DockerPipe(m.Name)
	ln, err := winio.ListenPipe(path, &winio.PipeConfig{
		SecurityDescriptor: sddl,
		MessageMode:        true,
		InputBufferSize:    64 << 10,
		OutputBufferSize:   64 << 10,
	})
	if err != nil {
		return nil, fmt.Errorf("named pipe %s: %w (is another program serving it?)", path, err)
	}
	return ln, nil
}

// currentUserSID is the SID of the user this process runs as.
func currentUserSID() (string, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("current user's SID: %w", err)
	}
	return u.User.Sid.String(), nil
}

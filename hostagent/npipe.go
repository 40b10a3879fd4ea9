package hostagent

import (
	"fmt"
	"regexp"
)

// DockerPipe is the named pipe that serves a machine's Docker API on Windows hosts.
func DockerPipe(name string) string { return `\\.\pipe\machine-` + name }

var sidRE = regexp.MustCompile(`^S-1-[0-9]+(-[0-9]+)+$`)

// pipeSDDL is the security descriptor of the Docker API pipe: a protected DACL (nothing
// inherited) that grants full access to the user's SID and to no one else, as a unix socket
// at mode 0600 would. The SID is checked so a malformed one cannot add entries.
func pipeSDDL(sid string) (string, error) {
	if !sidRE.MatchString(sid) {
		return "", fmt.Errorf("named pipe security: %q is not a SID (S-1-...)", sid)
	}
	return "D:P(A;;GA;;;" + sid + ")", nil
}

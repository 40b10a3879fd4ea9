package hostagent

import "testing"

func TestPipeSDDL(t *testing.T) {
	tests := []struct {
		sid, want string
	}{
		{"S-1-5-21-3623811015-3361044348-30300820-1013", "D:P(A;;GA;;;S-1-5-21-3623811015-3361044348-30300820-1013)"},
		{"S-1-12-1-1234567890-1234567890-1234567890-1234567890", "D:P(A;;GA;;;S-1-12-1-1234567890-1234567890-1234567890-1234567890)"},
		{"S-1-5-18", "D:P(A;;GA;;;S-1-5-18)"},
		{"", ""},
		{"WD", ""},                     // an SDDL alias (Everyone), not a SID
		{"S-1-5-21-1)(A;;GA;;;WD", ""}, // would append "everyone: full access"
		{"S-1-5-21-1\n", ""},
		{"S-1", ""},
		{"s-1-5-18", ""},
	}
	for _, tt := range tests {
		got, err := pipeSDDL(tt.sid)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("pipeSDDL(%q) = %q, %v; want %q", tt.sid, got, err, tt.want)
		}
	}
}

func TestDockerPipe(t *testing.T) {
	if p := DockerPipe("dev"); p != `\\.\pipe\machine-dev` {
		t.Errorf("DockerPipe = %q", p)
	}
}

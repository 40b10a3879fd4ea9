package store

import (
	"fmt"
	"regexp"
)

var sidRE = regexp.MustCompile(`^S-1-[0-9]+(-[0-9]+)+$`)

// privateDirSDDL is the Windows security descriptor that makes $MACHINE_HOME private: a
// protected DACL (nothing inherited from %LOCALAPPDATA%) with one entry, full control for
// the user, inherited by every file and folder beneath (OICI), like mode 0700 on unix.
func privateDirSDDL(sid string) (string, error) {
	if !sidRE.MatchString(sid) {
		return "", fmt.Errorf("folder security: %q is not a SID (S-1-...)", sid)
	}
	return "D:P(A;OICI;FA;;;" + sid + ")", nil
}

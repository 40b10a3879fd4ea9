package boot

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestRaiseFileLimit(t *testing.T) {
	var before unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &before)
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &before)
	n, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var got unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &got)
	// With CAP_SYS_RESOURCE both limits reach nr_open (capped); without it, the soft limit
	// reaches the hard one.
	if got.Cur != n || got.Max < n || n < before.Cur {
		t.Fatalf("limit %d/%d after RaiseFileLimit() = %d (before %d/%d)", got.Cur, got.Max, n, before.Cur, before.Max)
	}
}

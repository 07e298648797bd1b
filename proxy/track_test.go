package proxy

import (
	"net"
	"testing"
)

// TestTrackerReleasesWhenIdle: the release runs at a check when no
// connection is open and one opened since the last release; never while a
// connection is open, never twice for the same traffic, never with no
// traffic at all, and a connection that comes and goes between checks (a
// liveness probe) cannot postpone it.
func TestTrackerReleasesWhenIdle(t *testing.T) {
	released := 0
	tr := newTracker(func() { released++ })
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	check := func(step string, want bool) {
		t.Helper()
		before := released
		if got := tr.releaseIfIdle(); got != want || released-before != map[bool]int{true: 1}[want] {
			t.Fatalf("%s: releaseIfIdle = %v (release ran %d times); want %v", step, got, released-before, want)
		}
	}

	check("no traffic yet", false)
	tr.add(a)
	tr.add(b)
	check("two connections open", false)
	tr.remove(a)
	check("one connection still open", false)
	tr.remove(b)
	check("idle after traffic", true)
	check("idle, nothing new since the release", false)

	// A probe that connects and closes before every check still lets the
	// release run (once per check at most), instead of postponing it.
	for i := range 3 {
		tr.add(a)
		tr.remove(a)
		check("probe "+string(rune('1'+i)), true)
	}

	// A connection opened and closed while another stays open: nothing
	// until that one closes too.
	tr.add(b)
	tr.add(a)
	tr.remove(a)
	check("long connection open", false)
	tr.remove(b)
	check("long connection closed", true)

	// Without a release function there is nothing to do.
	none := newTracker(nil)
	none.add(a)
	none.remove(a)
	if none.releaseIfIdle() {
		t.Fatal("releaseIfIdle reported a release with no release function")
	}
}

package proxy

import (
	"net"
	"testing"
	"time"
)

// TestTrackerReleasesWhenIdle: onIdle runs once idleAfter after the last
// connection closes, not while one is open, and not for a gap shorter
// than idleAfter.
func TestTrackerReleasesWhenIdle(t *testing.T) {
	idle := make(chan struct{}, 10)
	// Long enough that remove and add below, back to back, never straddle it.
	const after = 400 * time.Millisecond
	tr := newTracker(after, func() { idle <- struct{}{} })
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()

	tr.add(a)
	tr.add(b)
	tr.remove(a)
	select {
	case <-idle:
		t.Fatal("onIdle ran with a connection still open")
	case <-time.After(2 * after):
	}

	// A connection that opens within idleAfter of the last close cancels
	// the release.
	tr.remove(b)
	tr.add(a)
	select {
	case <-idle:
		t.Fatal("onIdle ran although a connection opened before idleAfter")
	case <-time.After(2 * after):
	}

	tr.remove(a)
	select {
	case <-idle:
	case <-time.After(5 * time.Second):
		t.Fatal("onIdle did not run after the last connection closed")
	}
	select {
	case <-idle:
		t.Fatal("onIdle ran twice for one idle period")
	case <-time.After(2 * after):
	}
}

package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// fakeVault fails while down is true, then stores.
type fakeVault struct {
	mu      sync.Mutex
	down    bool
	fails   int
	got     []vaultapi.AuditEvent
	block   chan struct{} // when set, SendAudit waits for it
	entered chan int      // when set, SendAudit sends its batch's size first
}

func (f *fakeVault) SendAudit(ctx context.Context, evs []vaultapi.AuditEvent) error {
	if f.entered != nil {
		f.entered <- len(evs)
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		f.fails++
		return errors.New("connection refused")
	}
	f.got = append(f.got, evs...)
	return nil
}

func (f *fakeVault) set(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }

func (f *fakeVault) events() []vaultapi.AuditEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]vaultapi.AuditEvent(nil), f.got...)
}

func ev(i int) vaultapi.AuditEvent {
	return vaultapi.AuditEvent{Host: "dev.azure.com", Repo: fmt.Sprint(i), Operation: "fetch", Status: 200}
}

// TestDeliveredAfterOutage: events recorded while the vault is down are
// delivered, in order, once it is back; Record never waited.
func TestDeliveredAfterOutage(t *testing.T) {
	fv := &fakeVault{down: true}
	sh, err := New(fv, Options{Interval: 10 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 250 {
		sh.Record(ev(i))
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("Record took %v with the vault down", d)
	}
	time.Sleep(100 * time.Millisecond)
	if len(fv.events()) != 0 || fv.fails == 0 {
		t.Fatalf("delivered %d, fails %d while down", len(fv.events()), fv.fails)
	}
	fv.set(false)
	deadline := time.Now().Add(5 * time.Second)
	for len(fv.events()) < 250 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := fv.events()
	if len(got) != 250 {
		t.Fatalf("delivered %d events; want 250", len(got))
	}
	for i, e := range got {
		if e.Repo != fmt.Sprint(i) {
			t.Fatalf("event %d = %+v; want repo %d (order kept)", i, e, i)
		}
	}
	if err := sh.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestBoundedQueue drops the oldest events, never blocks.
func TestBoundedQueue(t *testing.T) {
	fv := &fakeVault{down: true}
	sh, _ := New(fv, Options{QueueSize: 10, Interval: time.Hour})
	for i := range 25 {
		sh.Record(ev(i))
	}
	if n := sh.Len(); n != 10 {
		t.Fatalf("queue = %d; want 10", n)
	}
	fv.set(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sh.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := fv.events()
	if len(got) != 10 || got[0].Repo != "15" || got[9].Repo != "24" {
		t.Fatalf("delivered %+v; want the newest 10", got)
	}
}

// TestCloseFlushes: Close sends what is queued before returning, and gives
// up when its context ends.
func TestCloseFlushes(t *testing.T) {
	fv := &fakeVault{}
	sh, _ := New(fv, Options{Interval: time.Hour})
	sh.Record(ev(1))
	if err := sh.Close(context.Background()); err != nil || len(fv.events()) != 1 {
		t.Fatalf("Close = %v, delivered %d; want nil, 1", err, len(fv.events()))
	}

	down := &fakeVault{down: true}
	sh, _ = New(down, Options{Interval: time.Hour, MinBackoff: 5 * time.Millisecond})
	sh.Record(ev(1))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := sh.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with the vault down = %v; want the deadline", err)
	}
}

// TestRefusedBatchDropped: a batch the vault refuses for good is not
// resent forever.
func TestRefusedBatchDropped(t *testing.T) {
	var calls int
	var mu sync.Mutex
	s := senderFunc(func(context.Context, []vaultapi.AuditEvent) error {
		mu.Lock()
		calls++
		mu.Unlock()
		return fmt.Errorf("%w: HTTP 400", ErrDrop)
	})
	sh, _ := New(s, Options{Interval: time.Hour})
	sh.Record(ev(1))
	if err := sh.Close(context.Background()); err != nil || calls != 1 || sh.Len() != 0 {
		t.Fatalf("Close = %v, calls %d, queued %d; want nil, 1, 0", err, calls, sh.Len())
	}
}

type senderFunc func(context.Context, []vaultapi.AuditEvent) error

func (f senderFunc) SendAudit(ctx context.Context, evs []vaultapi.AuditEvent) error {
	return f(ctx, evs)
}

// TestDropWhileSending: when the queue is full and Record drops the oldest
// events while a batch holding them is on its way to the vault, the
// batch's success removes only what is left of it: the newer events stay
// queued and are delivered, none is lost.
func TestDropWhileSending(t *testing.T) {
	fv := &fakeVault{block: make(chan struct{}), entered: make(chan int, 10)}
	sh, err := New(fv, Options{QueueSize: 3, BatchSize: 2, Interval: 10 * time.Millisecond, MinBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		sh.Record(ev(i))
	}
	select {
	case n := <-fv.entered:
		if n != 2 {
			t.Fatalf("first batch has %d events; want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no batch was sent")
	}
	// The batch [1 2] is on its way; the full queue drops 1 and 2 for 4 and 5.
	sh.Record(ev(4))
	sh.Record(ev(5))
	close(fv.block)
	go func() {
		for range fv.entered {
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := sh.Close(ctx); err != nil {
		t.Fatalf("Close: %v (%d events left)", err, sh.Len())
	}
	var got []string
	for _, e := range fv.events() {
		got = append(got, e.Repo)
	}
	if want := "[1 2 3 4 5]"; fmt.Sprint(got) != want {
		t.Errorf("delivered %v; want %s", got, want)
	}
}

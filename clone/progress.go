package clone

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progress writes the server's progress messages and, once a second while
// a transfer runs, the bytes received and the rate, to one writer (stderr),
// a line at a time so that the two never interleave mid-line.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	received *atomic.Int64
	now      func() time.Time
	interval time.Duration
}

func newProgress(w io.Writer, received *atomic.Int64, now func() time.Time) *progress {
	if w == nil {
		w = io.Discard
	}
	return &progress{w: w, received: received, now: now, interval: time.Second}
}

// Write implements io.Writer for go-git's sideband progress.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.w.Write(b)
}

// Printf writes one message line.
func (p *progress) Printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// transfer reports bytes and rate every interval until the returned stop
// function is called; stop prints the total and waits for the reporting
// goroutine to end.
func (p *progress) transfer(what string) (stop func()) {
	start, base := p.now(), p.received.Load()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n := p.received.Load() - base
				p.Printf("%s: %s received, %s/s", what, humanBytes(n), humanBytes(rate(n, p.now().Sub(start))))
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		n, d := p.received.Load()-base, p.now().Sub(start)
		p.Printf("%s: %s received in %s (%s/s)", what, humanBytes(n), d.Round(10*time.Millisecond), humanBytes(rate(n, d)))
	}
}

func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// humanBytes formats n bytes in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

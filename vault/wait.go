package vault

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// Connect waits: an environment at start (azdo-sidecar clone
// --wait-connect) long-polls POST /v1/connect/wait until its user has
// connected, wherever the Connect flow finished. The flows record their
// outcome in the store (store.ConnectEvent); each vault replica runs one
// poller that reads new events once per PollInterval while anyone waits on
// it, and hands them to the waiting requests in memory. A thousand waiting
// environments therefore cost one small query per replica and second, plus
// one request per environment and long-poll (MaxWait).

// Defaults of the connect wait.
const (
	// DefaultPollInterval is how often a replica reads new connect events
	// while environments wait: the wait ends at most this long (plus the
	// query) after the flow finished on any replica.
	DefaultPollInterval = time.Second
	// MaxConnectWait caps one long-poll (wait_seconds); the client asks
	// again.
	MaxConnectWait = 120 * time.Second
	// recentEvents is how long a replica remembers the events it read, so
	// that a client's next long-poll (which carries the cursor of its last
	// answer) misses none that came in between.
	recentEvents = 10 * time.Minute
	// pollOverlap re-reads this many IDs below the highest seen: PostgreSQL
	// may commit two concurrent inserts out of ID order.
	pollOverlap = 32
)

// waitKey is what a waiter waits for: its owner's credential for a host.
type waitKey struct{ owner, host string }

type waiter struct {
	after int64
	ch    chan store.ConnectEvent
}

// waitHub is a replica's one poller of connect events and the waiters it
// serves. It is safe for concurrent use.
type waitHub struct {
	st       store.Store
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger
	polls    func() // counts a query (metric)

	mu      sync.Mutex
	waiters map[waitKey]map[*waiter]struct{}
	running bool
	stopped bool
	done    chan struct{} // closed by stop: waits end at once
	// polled is the highest event ID read; the events in (covered,
	// polled] are in recent. The first wait sets both (started).
	polled, covered int64
	started         bool
	recent          []store.ConnectEvent
	seen            map[int64]struct{}
	wg              sync.WaitGroup
}

func newWaitHub(st store.Store, interval time.Duration, now func() time.Time, log *slog.Logger, polls func()) *waitHub {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	return &waitHub{st: st, interval: interval, now: now, log: log, polls: polls,
		waiters: map[waitKey]map[*waiter]struct{}{}, seen: map[int64]struct{}{}, done: make(chan struct{})}
}

// errStopped ends a wait when the vault shuts down.
var errStopped = errors.New("vault: shutting down")

// wait returns the first event for key with an ID above after, or ctx's
// error, or errStopped.
func (h *waitHub) wait(ctx context.Context, key waitKey, after int64) (store.ConnectEvent, error) {
	w := &waiter{after: after, ch: make(chan store.ConnectEvent, 16)}
	h.mu.Lock()
	if h.stopped {
		h.mu.Unlock()
		return store.ConnectEvent{}, errStopped
	}
	if h.waiters[key] == nil {
		h.waiters[key] = map[*waiter]struct{}{}
	}
	h.waiters[key][w] = struct{}{}
	if !h.started {
		// The first waiter's cursor is where this replica starts reading.
		h.started, h.polled, h.covered = true, after, after
	}
	covered := after >= h.covered
	var hit *store.ConnectEvent
	if covered {
		for i := range h.recent {
			if e := h.recent[i]; e.ID > after && e.Owner == key.owner && e.Host == key.host {
				hit = &e
				break
			}
		}
	}
	if !h.running {
		h.running = true
		h.wg.Add(1)
		go h.run()
	}
	h.mu.Unlock()
	defer h.remove(key, w)
	if hit != nil {
		return *hit, nil
	}
	if !covered {
		// The client's cursor is older than what this replica remembers
		// (it restarted, or the client came from another replica): read
		// the store once for what came in between.
		if e, ok, err := h.catchUp(ctx, key, after, false); err != nil || ok {
			return e, err
		}
	}
	select {
	case e := <-w.ch:
		return e, nil
	case <-ctx.Done():
		return store.ConnectEvent{}, ctx.Err()
	case <-h.done:
		return store.ConnectEvent{}, errStopped
	}
}

// catchUp reads the store for the first event of key after after (the
// last successful one when okOnly).
func (h *waitHub) catchUp(ctx context.Context, key waitKey, after int64, okOnly bool) (store.ConnectEvent, bool, error) {
	var found store.ConnectEvent
	var ok bool
	for range 20 {
		h.polls()
		evs, err := h.st.ConnectEvents(ctx, after)
		if err != nil {
			return store.ConnectEvent{}, false, err
		}
		for _, e := range evs {
			if e.Owner != key.owner || e.Host != key.host {
				continue
			}
			if !okOnly {
				return e, true, nil
			}
			if e.OK {
				found, ok = e, true
			}
		}
		if len(evs) < store.MaxConnectEvents {
			break
		}
		after = evs[len(evs)-1].ID
	}
	return found, ok, nil
}

func (h *waitHub) remove(key waitKey, w *waiter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.waiters[key], w)
	if len(h.waiters[key]) == 0 {
		delete(h.waiters, key)
	}
}

// run polls while anyone waits, then returns (the next wait starts it
// again).
func (h *waitHub) run() {
	defer h.wg.Done()
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.poll()
		select {
		case <-t.C:
		case <-h.done:
			return
		}
		h.mu.Lock()
		if len(h.waiters) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
}

// poll reads the events added since the last poll and hands each to the
// waiters of its owner and host.
func (h *waitHub) poll() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.mu.Lock()
	from := max(h.polled-pollOverlap, h.covered)
	h.mu.Unlock()
	for range 20 {
		h.polls()
		evs, err := h.st.ConnectEvents(ctx, from)
		if err != nil {
			h.log.Warn("connect wait: reading the store failed", "err", err)
			return
		}
		h.deliver(evs)
		if len(evs) < store.MaxConnectEvents {
			return
		}
		from = evs[len(evs)-1].ID
	}
}

func (h *waitHub) deliver(evs []store.ConnectEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range evs {
		if _, dup := h.seen[e.ID]; dup || e.ID <= h.covered {
			continue
		}
		h.seen[e.ID] = struct{}{}
		h.recent = append(h.recent, e)
		h.polled = max(h.polled, e.ID)
		for w := range h.waiters[waitKey{e.Owner, e.Host}] {
			if e.ID > w.after {
				select {
				case w.ch <- e:
				default: // the waiter has its answer already
				}
			}
		}
	}
	// Forget what is old; the range this replica answers from memory
	// starts after the newest forgotten event.
	cut := h.now().Add(-recentEvents)
	n := 0
	for n < len(h.recent) && h.recent[n].At.Before(cut) {
		h.covered = max(h.covered, h.recent[n].ID)
		delete(h.seen, h.recent[n].ID)
		n++
	}
	h.recent = h.recent[n:]
}

// stop ends every wait and the poller.
func (h *waitHub) stop() {
	h.mu.Lock()
	if !h.stopped {
		h.stopped = true
		close(h.done)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

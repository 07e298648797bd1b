// Package audit delivers the proxy's audit events to the vault: a bounded
// queue in front of batched POST /v1/audit requests, at least once, with
// retry and backoff. Recording never blocks (a vault outage never slows
// git); when the queue is full the oldest events are dropped and counted.
package audit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// Sender delivers one batch. An error wrapping ErrDrop means the batch can
// never be delivered (the vault refused it as malformed): it is dropped.
// Any other error is retried.
type Sender interface {
	SendAudit(ctx context.Context, events []vaultapi.AuditEvent) error
}

// ErrDrop marks a batch that retrying cannot deliver.
var ErrDrop = errors.New("audit: batch refused for good")

// Options configure a Shipper.
type Options struct {
	QueueSize  int           // events kept while the vault is away; 0: 10000
	BatchSize  int           // events per request; 0: 100 (at most vaultapi.MaxAuditEvents)
	Interval   time.Duration // how long events wait to be batched; 0: 1 s
	MinBackoff time.Duration // first retry delay; 0: 1 s
	MaxBackoff time.Duration // longest retry delay; 0: 1 min
	Timeout    time.Duration // one request; 0: 15 s
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Shipper queues events and sends them in batches. Create it with New;
// Close flushes it.
type Shipper struct {
	send Sender
	o    Options
	log  *slog.Logger

	mu    sync.Mutex
	queue []vaultapi.AuditEvent
	// removed counts events ever taken off the front of queue (sent,
	// refused or dropped because it was full), so that the sending loop
	// removes only what is left of its batch when Record dropped some of
	// it while the batch was on its way.
	removed uint64
	closing bool
	wake    chan struct{}
	stopped chan struct{}
	cancel  context.CancelFunc
	ctx     context.Context

	counts *prometheus.CounterVec // result: sent, dropped_full, dropped_refused
	queued prometheus.GaugeFunc
}

// New starts a Shipper sending through s.
func New(s Sender, o Options) (*Shipper, error) {
	if o.QueueSize <= 0 {
		o.QueueSize = 10000
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	o.BatchSize = min(o.BatchSize, vaultapi.MaxAuditEvents)
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sh := &Shipper{send: s, o: o, log: o.Logger, wake: make(chan struct{}, 1), stopped: make(chan struct{}), ctx: ctx, cancel: cancel}
	sh.counts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "azdo_sidecar", Name: "audit_events_total",
		Help: "Audit events by what became of them (sent, dropped_full: the queue was full while the vault was away, dropped_refused: the vault refused the batch).",
	}, []string{"result"})
	for _, r := range []string{"sent", "dropped_full", "dropped_refused"} {
		sh.counts.WithLabelValues(r)
	}
	sh.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "azdo_sidecar", Name: "audit_queue_events",
		Help: "Audit events waiting to be sent to the vault.",
	}, func() float64 { sh.mu.Lock(); defer sh.mu.Unlock(); return float64(len(sh.queue)) })
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{sh.counts, sh.queued} {
			if err := o.Registerer.Register(c); err != nil {
				cancel()
				return nil, err
			}
		}
	}
	go sh.run()
	return sh, nil
}

// Record queues ev; it never blocks.
func (s *Shipper) Record(ev vaultapi.AuditEvent) {
	s.mu.Lock()
	if len(s.queue) >= s.o.QueueSize {
		drop := len(s.queue) - s.o.QueueSize + 1
		s.queue = s.queue[drop:]
		s.removed += uint64(drop)
		s.counts.WithLabelValues("dropped_full").Add(float64(drop))
		s.log.Warn("audit: queue full while the vault is unreachable; dropped the oldest event", "queue", s.o.QueueSize)
	}
	s.queue = append(s.queue, ev)
	full := len(s.queue) >= s.o.BatchSize
	s.mu.Unlock()
	if full {
		s.poke()
	}
}

func (s *Shipper) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Len returns the number of events waiting.
func (s *Shipper) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Close sends what is queued, retrying until ctx is done, then stops. It
// returns ctx's error when events were left undelivered.
func (s *Shipper) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.poke()
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		s.cancel()
		<-s.stopped
		if n := s.Len(); n > 0 {
			s.log.Warn("audit: stopping with events not delivered to the vault", "events", n)
			return ctx.Err()
		}
		return nil
	}
}

// run is the sending loop.
func (s *Shipper) run() {
	defer close(s.stopped)
	backoff := time.Duration(0)
	timer := time.NewTimer(s.o.Interval)
	defer timer.Stop()
	for {
		var delay time.Duration
		if backoff > 0 {
			delay = backoff
		} else {
			delay = s.o.Interval
		}
		timer.Reset(delay)
		select {
		case <-timer.C:
		case <-s.wake:
			if backoff > 0 {
				// A retry waits for its backoff even when poked, unless
				// closing, which wants every attempt it can get.
				s.mu.Lock()
				closing := s.closing
				s.mu.Unlock()
				if !closing {
					select {
					case <-timer.C:
					case <-s.ctx.Done():
						return
					}
				}
			}
		case <-s.ctx.Done():
			return
		}
		for {
			s.mu.Lock()
			n := min(len(s.queue), s.o.BatchSize)
			batch := append([]vaultapi.AuditEvent(nil), s.queue[:n]...)
			start := s.removed
			closing := s.closing
			s.mu.Unlock()
			if n == 0 {
				if closing {
					return
				}
				break
			}
			ctx, cancel := context.WithTimeout(s.ctx, s.o.Timeout)
			err := s.send.SendAudit(ctx, batch)
			cancel()
			if err != nil && !errors.Is(err, ErrDrop) {
				if s.ctx.Err() != nil {
					return
				}
				backoff = min(max(backoff*2, s.o.MinBackoff), s.o.MaxBackoff)
				s.log.Info("audit: cannot deliver events to the vault; will retry", "events", s.Len(), "retry_in", backoff.String(), "err", err)
				break
			}
			backoff = 0
			s.mu.Lock()
			// Events of the batch that Record dropped meanwhile are gone
			// from the front already; remove only the rest of it.
			rest := max(0, n-int(s.removed-start))
			s.queue = s.queue[rest:]
			s.removed += uint64(rest)
			s.mu.Unlock()
			if err != nil {
				s.counts.WithLabelValues("dropped_refused").Add(float64(n))
				s.log.Warn("audit: the vault refused a batch of events; dropped", "events", n, "err", err)
			} else {
				s.counts.WithLabelValues("sent").Add(float64(n))
			}
		}
	}
}

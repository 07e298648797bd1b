package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// Audit defaults and limits.
const (
	// DefaultAuditRetention is how long audit events are kept (90 days).
	DefaultAuditRetention = 90 * 24 * time.Hour
	// DefaultAuditSweep is how often a replica deletes expired events.
	DefaultAuditSweep = time.Hour

	maxAuditName    = 256  // host, org, project, repo
	maxAuditRefused = 512  // a refusal's reason and message
	maxAuditRefs    = 1000 // ref updates of one push
	maxAuditRefName = 1024
	// maxAuditSkew is how far in the future an event's time may be before
	// the vault stamps it with its own clock instead: a sidecar cannot
	// keep an event past retention by dating it ahead.
	maxAuditSkew = 5 * time.Minute
	// DefaultAuditRate is how many events one environment may send to one
	// replica per minute: far above what git does, low enough that a
	// compromised environment cannot fill the store.
	DefaultAuditRate = 3000
)

// auditLimiter counts each environment's events per minute on this
// replica. It is safe for concurrent use.
type auditLimiter struct {
	mu   sync.Mutex
	rate int
	m    map[string]*auditWindow
}

type auditWindow struct {
	start time.Time
	n     int
}

// allow takes n events of env at now, or says how long to wait.
func (l *auditLimiter) allow(env string, n int, now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil || len(l.m) > 10000 {
		l.m = map[string]*auditWindow{} // forget old windows wholesale
	}
	w := l.m[env]
	if w == nil || now.Sub(w.start) >= time.Minute || now.Before(w.start) {
		w = &auditWindow{start: now}
		l.m[env] = w
	}
	if w.n+n > l.rate {
		return w.start.Add(time.Minute).Sub(now), false
	}
	w.n += n
	return 0, true
}

// auditOps are the operations an event may name.
var auditOps = map[string]bool{"fetch": true, "push": true, "ls-remote": true, "rest": true}

// objectID is a git object ID: SHA-1 or SHA-256, lower-case hex.
var objectID = regexp.MustCompile(`^(?:[0-9a-f]{40}|[0-9a-f]{64})$`)

// secretShapes are what no event field may contain: an environment token,
// a JWT (an Entra ID access token), an Authorization scheme. The sidecar
// never puts one there; this refuses an event that would store one anyway.
var secretShapes = regexp.MustCompile(`(?i)` + EnvTokenPrefix + `|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.|\b(?:bearer|basic)\s+[A-Za-z0-9+/=_.-]{16,}`)

// auditMetrics counts what POST /v1/audit accepted and refused.
func newAuditMetrics(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "azdo_vault_audit_events_total",
		Help: "Audit events received on POST /v1/audit by result (stored, rejected) and events deleted by retention (expired).",
	}, []string{"result"})
	reg.MustRegister(c)
	return c
}

// serveAudit is POST /v1/audit: a batch of events from an environment's
// sidecar, authenticated with its environment token like /v1/token. The
// environment and owner of every event are the token's, whatever the body
// says. Events that break a limit are dropped (counted in the answer and
// logged) so that one bad event does not make the sidecar resend its
// batch forever; the rest are stored in one transaction.
func (v *Vault) serveAudit(w http.ResponseWriter, r *http.Request) {
	code, err := v.handleAudit(w, r)
	if err != nil {
		code = v.writeAuditError(w, r, err)
	}
	if code >= 400 {
		v.log.Info("audit request refused", "status", code)
	}
}

// tooLargeError is a body past vaultapi.MaxAuditBody or a batch past
// vaultapi.MaxAuditEvents (413).
type tooLargeError struct{ msg string }

func (e *tooLargeError) Error() string { return e.msg }

// rateLimitedError is an environment over its audit rate (429).
type rateLimitedError struct{ after time.Duration }

func (e *rateLimitedError) Error() string { return "audit rate limit; retry after " + e.after.String() }

func (v *Vault) handleAudit(w http.ResponseWriter, r *http.Request) (int, error) {
	ctx := r.Context()
	env, reason, err := authenticate(ctx, v.st, v.binding, v.now(), bearer(r))
	if err != nil {
		if errors.Is(err, token.ErrUnauthorized) {
			v.log.Info("environment token refused", "env", env.ID, "reason", reason, "path", vaultapi.AuditPath)
		}
		return 0, err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, vaultapi.MaxAuditBody+1))
	if err != nil {
		return 0, &badRequestError{"cannot read the body"}
	}
	if len(body) > vaultapi.MaxAuditBody {
		return 0, &tooLargeError{fmt.Sprintf("body larger than %d bytes; send smaller batches", vaultapi.MaxAuditBody)}
	}
	var req vaultapi.AuditRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return 0, &badRequestError{"body is not a JSON audit request"}
	}
	if len(req.Events) > vaultapi.MaxAuditEvents {
		return 0, &tooLargeError{fmt.Sprintf("more than %d events in one batch; send smaller batches", vaultapi.MaxAuditEvents)}
	}
	now := v.now()
	if wait, ok := v.auditLimit.allow(env.ID, len(req.Events), now); !ok {
		v.log.Warn("audit events over the rate limit", "env", env.ID, "owner", env.Owner, "events", len(req.Events), "per_minute", v.auditLimit.rate)
		return 0, &rateLimitedError{after: max(wait, time.Second)}
	}
	events := make([]store.AuditEvent, 0, len(req.Events))
	rejected := 0
	var firstWhy string
	for _, e := range req.Events {
		se, why := auditEvent(e, env, now)
		if why != "" {
			rejected++
			if firstWhy == "" {
				firstWhy = why
			}
			continue
		}
		events = append(events, se)
	}
	if err := v.st.AddAuditEvents(ctx, events); err != nil {
		return 0, fmt.Errorf("vault: store audit events: %w", err)
	}
	v.auditM.WithLabelValues("stored").Add(float64(len(events)))
	if rejected > 0 {
		v.auditM.WithLabelValues("rejected").Add(float64(rejected))
		// why names the field and the limit, never the value.
		v.log.Warn("audit events rejected", "env", env.ID, "owner", env.Owner, "rejected", rejected, "first_reason", firstWhy)
	}
	v.log.Debug("audit events stored", "env", env.ID, "stored", len(events), "rejected", rejected)
	return writeJSON(w, http.StatusOK, vaultapi.AuditResponse{Stored: len(events), Rejected: rejected}), nil
}

func (v *Vault) writeAuditError(w http.ResponseWriter, r *http.Request, err error) int {
	var big *tooLargeError
	var limited *rateLimitedError
	switch {
	case errors.As(err, &big):
		return writeJSON(w, http.StatusRequestEntityTooLarge, vaultapi.ErrorResponse{Error: vaultapi.ErrBadRequest, Message: big.msg})
	case errors.As(err, &limited):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(limited.after.Seconds()))))
		return writeJSON(w, http.StatusTooManyRequests, vaultapi.ErrorResponse{Error: vaultapi.ErrUnavailable, Message: "too many audit events from this environment; try again later"})
	}
	return v.writeError(w, r, store.Environment{}, token.Key{}, err)
}

// auditEvent checks e and returns it as the store keeps it, with env's ID
// and owner; why says which rule it broke ("" when none), without the
// offending value.
func auditEvent(e vaultapi.AuditEvent, env store.Environment, now time.Time) (store.AuditEvent, string) {
	t := e.Time.UTC()
	if t.IsZero() || t.After(now.Add(maxAuditSkew)) {
		t = now.UTC()
	}
	// Nor earlier than the environment can have acted: an event backdated
	// before its creation would sort among other environments' history
	// (and fall to the retention sweep at once).
	if earliest := env.CreatedAt.Add(-maxAuditSkew).UTC(); !env.CreatedAt.IsZero() && t.Before(earliest) {
		t = earliest
	}
	if !auditOps[e.Operation] {
		return store.AuditEvent{}, "operation is not fetch, push, ls-remote or rest"
	}
	if e.Host == "" {
		return store.AuditEvent{}, "no host"
	}
	for _, f := range []struct{ name, v string }{{"host", e.Host}, {"org", e.Org}, {"project", e.Project}, {"repo", e.Repo}} {
		if why := checkAuditText(f.name, f.v, maxAuditName); why != "" {
			return store.AuditEvent{}, why
		}
	}
	if why := checkAuditText("refused", e.Refused, maxAuditRefused); why != "" {
		return store.AuditEvent{}, why
	}
	if len(e.Refs) > maxAuditRefs {
		return store.AuditEvent{}, fmt.Sprintf("more than %d refs", maxAuditRefs)
	}
	var refs []store.AuditRef
	for _, ref := range e.Refs {
		if why := checkAuditText("ref name", ref.Name, maxAuditRefName); why != "" || ref.Name == "" {
			return store.AuditEvent{}, "bad ref name"
		}
		if !objectID.MatchString(ref.Old) || !objectID.MatchString(ref.New) {
			return store.AuditEvent{}, "ref old/new is not a git object ID"
		}
		refs = append(refs, store.AuditRef{Name: ref.Name, Old: ref.Old, New: ref.New})
	}
	if e.Status < 0 || e.Status > 999 || e.BytesIn < 0 || e.BytesOut < 0 || e.DurationMS < 0 {
		return store.AuditEvent{}, "negative or out-of-range number"
	}
	return store.AuditEvent{
		Time: t, Env: env.ID, Owner: env.Owner,
		Host: e.Host, Org: e.Org, Project: e.Project, Repo: e.Repo,
		Operation: e.Operation, Refs: refs, Status: e.Status, Refused: e.Refused,
		BytesIn: e.BytesIn, BytesOut: e.BytesOut, DurationMS: e.DurationMS,
	}, ""
}

// checkAuditText refuses a field that is too long, not UTF-8, holds a
// control character (it would forge lines in a table or a log), or looks
// like a secret.
func checkAuditText(name, s string, limit int) string {
	switch {
	case len(s) > limit:
		return fmt.Sprintf("%s longer than %d bytes", name, limit)
	case !utf8.ValidString(s):
		return name + " is not UTF-8"
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }):
		return name + " holds a control character"
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.Is(unicode.Cf, r) }):
		// Bidirectional overrides (U+202E), zero-width characters: text
		// that shows other than it reads.
		return name + " holds a Unicode format character"
	case secretShapes.MatchString(s):
		return name + " looks like a token"
	}
	return ""
}

// SweepAudit deletes the audit events older than the retention and
// returns how many it deleted. Every replica sweeps; deleting twice is
// harmless.
func (v *Vault) SweepAudit(ctx context.Context) (int64, error) {
	if v.auditRetention <= 0 {
		return 0, nil
	}
	n, err := v.st.DeleteAuditEvents(ctx, v.now().Add(-v.auditRetention))
	if err != nil {
		return 0, err
	}
	v.auditM.WithLabelValues("expired").Add(float64(n))
	if n > 0 {
		v.log.Info("audit events past retention deleted", "deleted", n, "retention", v.auditRetention.String())
	}
	return n, nil
}

// sweepAuditLoop runs SweepAudit at start and every interval until Close.
func (v *Vault) sweepAuditLoop(interval time.Duration) {
	defer v.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(v.base, time.Minute)
		if _, err := v.SweepAudit(ctx); err != nil && v.base.Err() == nil {
			v.log.Warn("audit retention sweep failed", "err", err)
		}
		cancel()
		select {
		case <-v.base.Done():
			return
		case <-t.C:
		}
	}
}

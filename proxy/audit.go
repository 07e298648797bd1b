package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/azdo-sidecar/azdo-sidecar/policy"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// AuditSink receives one event per git operation the proxy handled (a
// clone or fetch is its info/refs and upload-pack requests, a push its
// receive-pack requests) and one per other intercepted request. Record
// must not block: the git request that produced the event is done.
type AuditSink interface {
	Record(vaultapi.AuditEvent)
}

// DefaultAuditIdle is how long a tunnel stays quiet before its pending git
// operation is recorded: one git command is several requests in a row on
// one connection (info/refs, then one or more POSTs, the first of a big
// push a probe), milliseconds apart.
const DefaultAuditIdle = 2 * time.Second

// tunnelAudit gathers the requests of one intercepted tunnel into git
// operations.
type tunnelAudit struct {
	p *Proxy

	mu      sync.Mutex
	cur     *vaultapi.AuditEvent // the operation in progress, nil when none
	curKey  string               // repository and service of cur
	curFrom time.Time
	timer   *time.Timer
}

// auditOp is one request's share of an event.
type auditOp struct {
	t       *tunnelAudit
	start   time.Time
	m       policy.Request
	refs    []vaultapi.AuditRef
	status  int
	refusal string
	in, out atomic.Int64
}

// beginAudit starts the record of one request on tunnel t (nil: no audit).
func (p *Proxy) beginAudit(t *tunnelAudit) *auditOp {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
	}
	t.mu.Unlock()
	return &auditOp{t: t, start: p.now()}
}

func (op *auditOp) mapped(m policy.Request) {
	if op != nil {
		op.m = m
	}
}

func (op *auditOp) push(cmds []policy.Command) {
	if op == nil {
		return
	}
	op.refs = op.refs[:0]
	for _, c := range cmds {
		op.refs = append(op.refs, vaultapi.AuditRef{Name: c.Ref, Old: c.Old, New: c.New})
	}
}

func (op *auditOp) refused(status int, why string) {
	if op != nil {
		op.status, op.refusal = status, why
	}
}

// countIn wraps a request body to count the bytes the client sends.
func (op *auditOp) countIn(req *http.Request) {
	if op == nil || req.Body == nil || req.Body == http.NoBody {
		return
	}
	req.Body = &opCounter{ReadCloser: req.Body, n: &op.in}
}

// countOut wraps a response body to count the bytes sent to the client.
func (op *auditOp) countOut(resp *http.Response) {
	if op == nil || resp.Body == nil {
		return
	}
	if op.status == 0 {
		op.status = resp.StatusCode
	}
	resp.Body = &opCounter{ReadCloser: resp.Body, n: &op.out}
}

type opCounter struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *opCounter) Read(b []byte) (int, error) {
	n, err := c.ReadCloser.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// finish adds the request, its response sent, to its tunnel's operation:
// git requests of the same repository and service join the operation in
// progress, a refusal or any other request is recorded at once, and the
// operation is recorded when the tunnel has been idle for the audit delay.
func (op *auditOp) finish() {
	if op == nil {
		return
	}
	t, p := op.t, op.t.p
	now := p.now()
	ev := vaultapi.AuditEvent{
		Time: op.start, Host: op.m.Repo.Host, Org: op.m.Repo.Org, Project: op.m.Repo.Project, Repo: op.m.Repo.Name,
		Operation: string(op.m.Op), Refs: op.refs, Status: op.status, Refused: op.refusal,
		BytesIn: op.in.Load(), BytesOut: op.out.Load(), DurationMS: now.Sub(op.start).Milliseconds(),
	}
	if ev.Host == "" {
		ev.Host = "?"
	}
	if ev.Project == "" {
		ev.Project = ev.Repo
	}
	switch op.m.Kind {
	case policy.InfoRefs, policy.UploadPack, policy.ReceivePack:
	default:
		if ev.Operation == "" {
			ev.Operation = string(policy.OpREST)
		}
		p.record(ev)
		// beginAudit stopped the tunnel's timer: a git operation still
		// pending must be recorded all the same.
		t.mu.Lock()
		if t.cur != nil && t.timer != nil {
			t.timer.Reset(p.auditIdle)
		}
		t.mu.Unlock()
		return
	}
	key := strings.ToLower(op.m.Repo.String() + "|" + op.m.Service)

	t.mu.Lock()
	var flush []vaultapi.AuditEvent
	if t.cur != nil && (t.curKey != key || op.m.Kind == policy.InfoRefs) {
		flush = append(flush, *t.cur)
		t.cur = nil
	}
	if t.cur == nil {
		t.cur, t.curKey, t.curFrom = &ev, key, op.start
	} else {
		c := t.cur
		if op.m.Kind == policy.UploadPack {
			c.Operation = string(policy.OpFetch)
		}
		c.Refs = append(c.Refs, ev.Refs...)
		c.BytesIn += ev.BytesIn
		c.BytesOut += ev.BytesOut
		if c.Refused == "" {
			c.Status, c.Refused = ev.Status, ev.Refused
		}
		c.DurationMS = now.Sub(t.curFrom).Milliseconds()
	}
	if t.cur.Refused != "" {
		flush = append(flush, *t.cur)
		t.cur = nil
		p.auditPending.Delete(t)
	} else {
		p.auditPending.Store(t, struct{}{})
		if t.timer == nil {
			t.timer = time.AfterFunc(p.auditIdle, t.flush)
		} else {
			t.timer.Reset(p.auditIdle)
		}
	}
	t.mu.Unlock()
	for _, e := range flush {
		p.record(e)
	}
}

// flush records the pending operation, if any.
func (t *tunnelAudit) flush() {
	t.mu.Lock()
	cur := t.cur
	t.cur = nil
	if t.timer != nil {
		t.timer.Stop()
	}
	t.mu.Unlock()
	t.p.auditPending.Delete(t)
	if cur != nil {
		t.p.record(*cur)
	}
}

// flushAudit records every pending operation (Shutdown).
func (p *Proxy) flushAudit() {
	p.auditPending.Range(func(k, _ any) bool {
		k.(*tunnelAudit).flush()
		return true
	})
}

// record hands ev to the sink and the log. Events carry names, object IDs,
// counts and the refusal sentence: never a header, a query or a secret.
func (p *Proxy) record(ev vaultapi.AuditEvent) {
	ev = clampEvent(ev)
	p.log.Info("audit", "host", ev.Host, "org", ev.Org, "project", ev.Project, "repo", ev.Repo,
		"operation", ev.Operation, "refs", ev.Refs, "status", ev.Status, "refused", ev.Refused,
		"bytes_in", ev.BytesIn, "bytes_out", ev.BytesOut, "duration_ms", ev.DurationMS)
	if p.audit != nil {
		p.audit.Record(ev)
	}
}

// Limits of the vault's POST /v1/audit, which drops an event that breaks
// one: clamp instead, so that the event is kept.
const (
	maxEventName    = 256
	maxEventRefused = 512
	maxEventRefs    = 1000
)

// clampEvent cuts names, the refusal and the ref list to the vault's
// limits, keeping UTF-8 whole and control characters out.
func clampEvent(ev vaultapi.AuditEvent) vaultapi.AuditEvent {
	ev.Host, ev.Org, ev.Project, ev.Repo = clampText(ev.Host, maxEventName), clampText(ev.Org, maxEventName),
		clampText(ev.Project, maxEventName), clampText(ev.Repo, maxEventName)
	ev.Refused = clampText(ev.Refused, maxEventRefused)
	if len(ev.Refs) > maxEventRefs {
		ev.Refs = ev.Refs[:maxEventRefs]
	}
	return ev
}

func clampText(s string, limit int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

package connect

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
)

// Link errors. Their messages are safe to show.
var (
	// ErrLinkInvalid means a link (or session cookie) is malformed, was
	// altered, or was signed by another runner's key.
	ErrLinkInvalid = errors.New("connect: link is not valid")
	// ErrLinkExpired means the link is older than its lifetime.
	ErrLinkExpired = errors.New("connect: link has expired")
	// ErrLinkUsed means the link was already used once.
	ErrLinkUsed = errors.New("connect: link was already used")
	// ErrBusy means too many links or flows are pending at once.
	ErrBusy = errors.New("connect: too many pending connections; try again in a few minutes")
)

// linkVersion is the version of the signed payload.
const linkVersion = 1

// Claims is what a signed link (or a page session cookie, signed under a
// purpose of its own: see SignSession) says: whose
// credential the user is about to connect, for which host and org, until
// when, and the nonce that makes it single-use. Nothing in it is secret;
// the signature makes it unforgeable.
type Claims struct {
	V         int    `json:"v"`
	Owner     string `json:"o"`
	Env       string `json:"e,omitempty"`
	Host      string `json:"h"`
	Org       string `json:"g,omitempty"`
	Exp       int64  `json:"x"`
	Nonce     string `json:"n"`
	Reconnect bool   `json:"r,omitempty"`
	// Waiting: an environment waits for this connection, so the result
	// page tells the user to close the window.
	Waiting bool `json:"w,omitempty"`
}

// Expires returns the expiry of c.
func (c Claims) Expires() time.Time { return time.Unix(c.Exp, 0) }

// Signer signs and verifies Claims with an HMAC-SHA256 key derived from the
// runner's private key, so every replica holding the key accepts the links
// of the others and a key rotation retires every outstanding link.
type Signer struct {
	key []byte
}

// NewSigner derives the link key from the runner's private key with HKDF
// (SHA-256, a purpose label), so the private key itself is never used as an
// HMAC key.
func NewSigner(kp sealbox.KeyPair) (*Signer, error) {
	if kp.Private.IsZero() {
		return nil, errors.New("connect: no runner private key")
	}
	key, err := hkdf.Key(sha256.New, kp.Private.Bytes(), nil, "azdo-vault connect link v1", 32)
	if err != nil {
		return nil, fmt.Errorf("connect: derive link key: %w", err)
	}
	return &Signer{key: key}, nil
}

// Format implements fmt.Formatter: a Signer prints without its key, with
// every verb (the key forges links).
func (s *Signer) Format(f fmt.State, _ rune) { fmt.Fprint(f, "connect.Signer([REDACTED])") }

// Purposes of signed Claims (the first field of their MAC): a value
// signed for one never verifies for the other, so a session cookie is
// never a link and a link is never a session.
const (
	purposeLink    = "link"
	purposeSession = "session"
)

// Sign returns a signed connect link value, "<payload>.<mac>", both
// unpadded base64url.
func (s *Signer) Sign(c Claims) (string, error) { return s.sign(purposeLink, c) }

// Verify checks the signature and the expiry of a signed link at now. It
// does not check single use (see Nonces). A session value does not verify.
func (s *Signer) Verify(v string, now time.Time) (Claims, error) {
	return s.verify(purposeLink, v, now)
}

// SignSession signs the Claims of a page session (the Connect
// confirmation's and the PAT page's cookies), under a purpose of its own.
func (s *Signer) SignSession(c Claims) (string, error) { return s.sign(purposeSession, c) }

// VerifySession is Verify for SignSession's values; a link does not
// verify.
func (s *Signer) VerifySession(v string, now time.Time) (Claims, error) {
	return s.verify(purposeSession, v, now)
}

func (s *Signer) sign(purpose string, c Claims) (string, error) {
	c.V = linkVersion
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("connect: sign: %w", err)
	}
	p := base64.RawURLEncoding.EncodeToString(b)
	return p + "." + base64.RawURLEncoding.EncodeToString(s.mac(purpose, p)), nil
}

func (s *Signer) verify(purpose, v string, now time.Time) (Claims, error) {
	p, m, ok := strings.Cut(v, ".")
	if !ok || len(v) > maxLinkLen {
		return Claims{}, ErrLinkInvalid
	}
	mac, err := strictB64.DecodeString(m)
	if err != nil || !hmac.Equal(mac, s.mac(purpose, p)) {
		return Claims{}, ErrLinkInvalid
	}
	b, err := strictB64.DecodeString(p)
	if err != nil {
		return Claims{}, ErrLinkInvalid
	}
	var c Claims
	if err := json.Unmarshal(b, &c); err != nil || c.V != linkVersion || c.Owner == "" || c.Host == "" || c.Nonce == "" {
		return Claims{}, ErrLinkInvalid
	}
	if !now.Before(c.Expires()) {
		return c, ErrLinkExpired
	}
	return c, nil
}

// Token returns a MAC of v for purpose, base64url: the CSRF token of a PAT
// session, the browser binding of an OAuth state.
func (s *Signer) Token(purpose, v string) string {
	return base64.RawURLEncoding.EncodeToString(s.mac(purpose, v))
}

// CheckToken reports whether tok is Token(purpose, v), in constant time.
func (s *Signer) CheckToken(purpose, v, tok string) bool {
	return tok != "" && hmac.Equal([]byte(tok), []byte(s.Token(purpose, v)))
}

func (s *Signer) mac(purpose, v string) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write([]byte(v))
	return h.Sum(nil)
}

// strictB64 decodes signed values: strict, so that no two encodings of the
// same bytes are both accepted (a link has exactly one valid spelling).
var strictB64 = base64.RawURLEncoding.Strict()

// maxLinkLen bounds a signed value before any work is done on it.
const maxLinkLen = 4096

// randomString returns n random bytes as unpadded base64url.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// linkURL returns base+path with the signed value as the "link" parameter.
func linkURL(base, path, signed string) string {
	return strings.TrimRight(base, "/") + path + "?" + url.Values{"link": {signed}}.Encode()
}

// Nonces records single-use values until they expire. The memory
// implementation serves one vault process; replicas behind a load balancer
// need one shared by the store (see the package comment).
type Nonces interface {
	// Use records nonce as used until expires; it returns ErrLinkUsed if it
	// already was.
	Use(ctx context.Context, nonce string, expires time.Time) error
	// Used reports whether nonce was used already (and its record has not
	// expired), without using it: the confirmation page tells a spent link
	// at once instead of after Continue.
	Used(ctx context.Context, nonce string) (bool, error)
}

// MemoryNonces is a bounded in-memory Nonces. The zero value is not
// usable; call NewMemoryNonces.
type MemoryNonces struct {
	now func() time.Time
	max int

	mu   sync.Mutex
	used map[string]time.Time
}

// NewMemoryNonces returns Nonces kept in memory, at most max at once (0:
// 100000), forgotten once expired.
func NewMemoryNonces(now func() time.Time, max int) *MemoryNonces {
	if now == nil {
		now = time.Now
	}
	if max <= 0 {
		max = 100000
	}
	return &MemoryNonces{now: now, max: max, used: map[string]time.Time{}}
}

// Use implements Nonces.
// Used implements Nonces.
func (m *MemoryNonces) Used(_ context.Context, nonce string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	exp, ok := m.used[nonce]
	return ok && m.now().Before(exp), nil
}

// Use implements Nonces.
func (m *MemoryNonces) Use(_ context.Context, nonce string, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if exp, ok := m.used[nonce]; ok && now.Before(exp) {
		return ErrLinkUsed
	}
	if len(m.used) >= m.max {
		for n, exp := range m.used {
			if !now.Before(exp) {
				delete(m.used, n)
			}
		}
		if len(m.used) >= m.max {
			return ErrBusy
		}
	}
	m.used[nonce] = expires
	return nil
}

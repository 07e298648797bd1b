package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/sealbox"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// maxTokenRequest bounds the body of POST /v1/token.
const maxTokenRequest = 64 << 10

// maxMinValid caps min_valid_seconds: no access token lives longer.
const maxMinValid = 24 * time.Hour

// badRequestError is a request the client must fix; its message is safe to
// show.
type badRequestError struct{ msg string }

func (e *badRequestError) Error() string { return e.msg }

// serveToken is POST /v1/token.
func (v *Vault) serveToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	env, key, code, err := v.handleToken(w, r)
	if err != nil {
		code = v.writeError(w, r, env, key, err)
	}
	d := time.Since(start)
	c := strconv.Itoa(code)
	v.m.requests.WithLabelValues(c).Inc()
	v.m.latency.WithLabelValues(c).Observe(d.Seconds())
	level := slog.LevelInfo
	if code >= 500 {
		level = slog.LevelWarn
	}
	v.log.Log(r.Context(), level, "token request", "env", env.ID, "owner", env.Owner, "policy_version", env.PolicyVersion, "host", key.Host, "org", key.Org, "status", code, "duration", d)
}

func (v *Vault) handleToken(w http.ResponseWriter, r *http.Request) (store.Environment, token.Key, int, error) {
	ctx := r.Context()
	env, reason, err := authenticate(ctx, v.st, v.binding, v.now(), bearer(r))
	if err != nil {
		if errors.Is(err, token.ErrUnauthorized) {
			v.log.Info("environment token refused", "env", env.ID, "reason", reason)
		}
		return store.Environment{}, token.Key{}, 0, err
	}
	var req vaultapi.TokenRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxTokenRequest))
	if err := dec.Decode(&req); err != nil {
		return env, token.Key{}, 0, &badRequestError{"body is not a JSON token request"}
	}
	key := token.Key{Host: NormalizeHost(req.Host), Org: normalizeOrg(req.Org)}
	if key.Host == "" {
		return env, key, 0, &badRequestError{"host is required"}
	}
	if req.MinValidSeconds < 0 {
		return env, key, 0, &badRequestError{"min_valid_seconds must not be negative"}
	}
	minValid := min(time.Duration(req.MinValidSeconds)*time.Second, maxMinValid)
	var sealTo *sealbox.PublicKey
	if req.SealTo != "" {
		pub, err := sealbox.ParsePublicKey(req.SealTo)
		if err != nil {
			return env, key, 0, &badRequestError{"seal_to is not a standard base64 X25519 public key"}
		}
		sealTo = &pub
	}
	if !allowsOrg(env.Policy, v.canonicalKey(key)) {
		return env, key, 0, forbidden(env, key)
	}
	if env.Policy.ProxyOnly && sealTo == nil {
		// A proxy-only environment's token goes only to a sidecar, which
		// always asks for it sealed to its own key: a bare answer would
		// hand the token to whoever holds the environment token.
		return env, key, 0, errSealRequired
	}
	// Every answer carries the policy, "none" included, so that a sidecar
	// also learns that a policy was cleared (its version still counts).
	pol, err := policyJSON(env)
	if err != nil {
		return env, key, 0, err
	}
	tok, err := v.Token(ctx, env, key, minValid)
	if err != nil {
		return env, key, 0, err
	}
	resp := vaultapi.TokenResponse{
		Type:     string(tok.Kind),
		Username: tok.User(),
		Token:    tok.Secret.Reveal(),
		// Whole seconds, rounded down: plain RFC 3339 that every client
		// parses, and never later than the real expiry.
		ExpiresAt: tok.ExpiresAt.UTC().Truncate(time.Second),
		Policy:    pol,
		Notice:    tok.Notice,
		// Keyed with the plaintext token: only this vault and whoever can
		// open a sealed token can make it, so a relay cannot swap the
		// policy.
		PolicyMAC: vaultapi.PolicyMAC(tok.Secret.Reveal(), pol),
	}
	if sealTo != nil {
		sealed, err := sealbox.Seal(*sealTo, []byte(tok.Secret.Reveal()))
		if err != nil {
			return env, key, 0, err
		}
		resp.Token, resp.Sealed = sealed, true
	}
	writeJSON(w, http.StatusOK, resp)
	return env, key, http.StatusOK, nil
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) secret.String {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return secret.String{}
	}
	return secret.New(strings.TrimSpace(tok))
}

// errSealRequired refuses a proxy-only environment's request without
// seal_to.
var errSealRequired = errors.New("this environment is proxy-only: the vault gives its tokens only sealed to the sidecar (seal_to), never bare")

// writeError is the one place errors become HTTP answers. Messages are
// written for the user and never contain a secret; causes of 500s go to the
// log only.
func (v *Vault) writeError(w http.ResponseWriter, r *http.Request, env store.Environment, key token.Key, err error) int {
	var (
		bad   *badRequestError
		conn  *token.ConnectError
		retry *token.RetryAfterError
		fe    *token.ForbiddenError
	)
	switch {
	case errors.Is(err, errSealRequired):
		return writeJSON(w, http.StatusForbidden, vaultapi.ErrorResponse{Error: vaultapi.ErrSealRequired, Message: errSealRequired.Error()})
	case errors.As(err, &fe):
		return writeJSON(w, http.StatusForbidden, vaultapi.ErrorResponse{Error: vaultapi.ErrForbiddenByPolicy, Message: fe.Message})
	case errors.Is(err, token.ErrUnauthorized):
		w.Header().Set("WWW-Authenticate", `Bearer realm="azdo-vault"`)
		return writeJSON(w, http.StatusUnauthorized, vaultapi.ErrorResponse{Error: vaultapi.ErrUnauthorized, Message: "environment token not accepted"})
	case errors.As(err, &bad):
		return writeJSON(w, http.StatusBadRequest, vaultapi.ErrorResponse{Error: vaultapi.ErrBadRequest, Message: bad.msg})
	case errors.As(err, &conn) && conn.Reconnect:
		return writeJSON(w, http.StatusConflict, vaultapi.ErrorResponse{Error: vaultapi.ErrReconnectRequired, Message: conn.Error(), ConnectURL: conn.ConnectURL, PATURL: conn.PATURL})
	case errors.As(err, &conn):
		return writeJSON(w, http.StatusNotFound, vaultapi.ErrorResponse{Error: vaultapi.ErrNotConnected, Message: conn.Error(), ConnectURL: conn.ConnectURL, PATURL: conn.PATURL})
	case errors.Is(err, ErrHostNotConfigured):
		return writeJSON(w, http.StatusNotFound, vaultapi.ErrorResponse{Error: vaultapi.ErrNotConnected, Message: fmt.Sprintf("%s is not an Azure DevOps host this runner serves", key.Host)})
	case errors.As(err, &retry):
		secs := int(math.Ceil(retry.After.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		msg := "the identity provider is unavailable; try again later"
		if errors.Is(err, errMisconfigured) {
			msg = errMisconfigured.Error()
		}
		return writeJSON(w, http.StatusServiceUnavailable, vaultapi.ErrorResponse{Error: vaultapi.ErrUnavailable, Message: msg})
	case errors.Is(err, r.Context().Err()) && r.Context().Err() != nil:
		// The client went away; it will not read this.
		return writeJSON(w, http.StatusServiceUnavailable, vaultapi.ErrorResponse{Error: vaultapi.ErrUnavailable, Message: "request cancelled"})
	default:
		v.log.Error("token request failed", "env", env.ID, "host", key.Host, "err", err)
		return writeJSON(w, http.StatusInternalServerError, vaultapi.ErrorResponse{Error: vaultapi.ErrInternal, Message: "internal error; see the vault's log"})
	}
}

func writeJSON(w http.ResponseWriter, code int, body any) int {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // connect_url keeps its "&"
	enc.Encode(body)
	return code
}

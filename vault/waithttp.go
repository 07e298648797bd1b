package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// serveConnectWait is POST /v1/connect/wait: the long-poll of an
// environment that waits for its user to connect (see waitHub).
func (v *Vault) serveConnectWait(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	env, reason, err := authenticate(ctx, v.st, v.binding, v.now(), bearer(r))
	if err != nil {
		if errors.Is(err, token.ErrUnauthorized) {
			v.log.Info("environment token refused", "env", env.ID, "reason", reason)
		}
		v.writeError(w, r, env, token.Key{}, err)
		return
	}
	var req vaultapi.ConnectWaitRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxTokenRequest)).Decode(&req); err != nil {
		v.writeError(w, r, env, token.Key{}, &badRequestError{"body is not a JSON connect wait request"})
		return
	}
	key := v.canonicalKey(token.Key{Host: NormalizeHost(req.Host), Org: normalizeOrg(req.Org)})
	switch {
	case key.Host == "":
		err = &badRequestError{"host is required"}
	case req.WaitSeconds < 0 || req.Cursor < 0:
		err = &badRequestError{"wait_seconds and cursor must not be negative"}
	case !allowsOrg(env.Policy, key):
		// As /v1/token: no connect links for what the policy forbids.
		err = forbidden(env, key)
	}
	if err != nil {
		v.writeError(w, r, env, key, err)
		return
	}
	resp, err := v.connectWait(ctx, w, env, key, req)
	if err != nil {
		v.writeError(w, r, env, key, err)
		return
	}
	level := slog.LevelDebug
	if resp.State != vaultapi.WaitWaiting {
		level = slog.LevelInfo
	}
	v.log.Log(ctx, level, "connect wait", "env", env.ID, "owner", env.Owner, "host", key.Host, "org", key.Org, "state", resp.State, "kind", resp.Kind, "identity", resp.Identity, "reason", resp.Reason)
	writeJSON(w, http.StatusOK, resp)
}

func (v *Vault) connectWait(ctx context.Context, w http.ResponseWriter, env store.Environment, key token.Key, req vaultapi.ConnectWaitRequest) (vaultapi.ConnectWaitResponse, error) {
	wait := min(time.Duration(req.WaitSeconds)*time.Second, MaxConnectWait)
	cursor := req.Cursor
	if wait == 0 {
		// The first call: links to print, and the cursor from which the
		// next calls wait.
		last, err := v.st.LastConnectEventID(ctx)
		if err != nil {
			return vaultapi.ConnectWaitResponse{}, err
		}
		cursor = last
	}
	ce, err := v.connectState(ctx, env, key)
	if err == nil && ce == nil && wait > 0 {
		// Connected between two long-polls: say how, from the event.
		if ev, ok, err := v.hub.catchUp(ctx, waitKey{env.Owner, key.Host}, req.Cursor, true); err == nil && ok {
			return vaultapi.ConnectWaitResponse{State: vaultapi.WaitConnected, Kind: string(ev.Kind), Identity: ev.Identity, Cursor: ev.ID}, nil
		}
	}
	if err != nil || ce == nil || wait == 0 {
		return waitAnswer(vaultapi.WaitConnected, ce, cursor), err
	}
	// The answer may come long after the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 30*time.Second))
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	v.m.connectWaits.Inc()
	defer v.m.connectWaits.Dec()
	for {
		ev, werr := v.hub.wait(wctx, waitKey{env.Owner, key.Host}, cursor)
		if werr != nil {
			if ctx.Err() != nil {
				return vaultapi.ConnectWaitResponse{}, ctx.Err()
			}
			// Timed out (or shutting down): the state as it is now.
			ce, err := v.connectState(ctx, env, key)
			return waitAnswer(vaultapi.WaitConnected, ce, cursor), err
		}
		cursor = ev.ID
		if !ev.OK {
			if ev.Env != "" && ev.Env != env.ID {
				continue // another environment's link; ours is unspent
			}
			ce, err := v.connectState(ctx, env, key)
			if err != nil || ce == nil {
				return waitAnswer(vaultapi.WaitConnected, ce, cursor), err
			}
			resp := waitAnswer(vaultapi.WaitFailed, ce, cursor)
			resp.State, resp.Reason = vaultapi.WaitFailed, ev.Reason
			return resp, nil
		}
		ce, err := v.connectState(ctx, env, key)
		if err != nil {
			return vaultapi.ConnectWaitResponse{}, err
		}
		if ce == nil {
			return vaultapi.ConnectWaitResponse{State: vaultapi.WaitConnected, Kind: string(ev.Kind), Identity: ev.Identity, Cursor: cursor}, nil
		}
		// Connected, but not in a way that serves this org (a PAT for
		// another organization): keep waiting.
	}
}

// waitAnswer is a connect wait answer: connected when ce is nil, else
// waiting with ce's links.
func waitAnswer(connected string, ce *token.ConnectError, cursor int64) vaultapi.ConnectWaitResponse {
	if ce == nil {
		return vaultapi.ConnectWaitResponse{State: connected, Cursor: cursor}
	}
	return vaultapi.ConnectWaitResponse{State: vaultapi.WaitWaiting, Reason: ce.Reason, Reconnect: ce.Reconnect,
		ConnectURL: ce.ConnectURL, PATURL: ce.PATURL, Cursor: cursor}
}

// connectState says whether env's owner has a credential that serves key
// (nil), or else the links to connect, made for a waiting environment.
// Unlike Token it refreshes nothing: a stored grant in good standing
// counts as connected.
func (v *Vault) connectState(ctx context.Context, env store.Environment, key token.Key) (*token.ConnectError, error) {
	p, ok := v.providerMap()[key.Host]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrHostNotConfigured, key.Host)
	}
	creds, err := v.st.Credentials(ctx, env.Owner, key.Host)
	if err != nil {
		return nil, err
	}
	now := v.now()
	var oauthBad, patBad *store.Credential
	for _, c := range preferExactOrg(creds, key.Org) {
		switch {
		case c.Kind == store.OAuth && p.OAuth != nil:
			if c.Status == store.StatusOK {
				return nil, nil
			}
			oauthBad = first(oauthBad, c)
		case c.Kind == store.PAT && p.PAT:
			if c.Status == store.StatusOK && (c.ExpiresAt.IsZero() || now.Before(c.ExpiresAt)) {
				return nil, nil
			}
			patBad = first(patBad, c)
		}
	}
	kind, reconnect, reason := v.connectKind(p), false, ""
	switch {
	case oauthBad != nil:
		kind, reconnect, reason = store.OAuth, true, oauthBad.Reason
	case patBad != nil:
		reconnect, reason = true, patBad.Reason
		if reason == "" {
			reason = "PAT expired"
		}
	}
	err = v.connectLinks(ctx, env, key, kind, reconnect, reason, true)
	var ce *token.ConnectError
	if errors.As(err, &ce) {
		return ce, nil
	}
	return nil, err
}

package vaultsource

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// ConnectWait asks the vault whether env's owner has connected for key,
// holding the request up to wait (0: answer at once, with the links and a
// cursor) for a connect outcome after cursor. Errors are like Token's: a
// *token.RetryAfterError or token.ErrUnavailable when the vault cannot
// answer now, token.ErrUnauthorized for a refused environment token.
func (s *Source) ConnectWait(ctx context.Context, key token.Key, wait time.Duration, cursor int64) (vaultapi.ConnectWaitResponse, error) {
	body, err := json.Marshal(vaultapi.ConnectWaitRequest{Host: key.Host, Org: key.Org, WaitSeconds: int(wait / time.Second), Cursor: cursor})
	if err != nil {
		return vaultapi.ConnectWaitResponse{}, fmt.Errorf("vaultsource: %w", err)
	}
	endpoint := s.base() + vaultapi.ConnectWaitPath
	// The vault holds the request up to wait: the deadline is the wait
	// plus the usual request timeout, on a client whose transport waits
	// that long for the answer's headers.
	ctx, cancel := context.WithTimeout(ctx, wait+s.client.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return vaultapi.ConnectWaitResponse{}, fmt.Errorf("vaultsource: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.envToken.Reveal())
	resp, err := s.waitClient.Do(req)
	if err != nil {
		if r := unreachable(err); r != "" && ctx.Err() == nil {
			return vaultapi.ConnectWaitResponse{}, fmt.Errorf("vaultsource: connect wait for %s: %w", key, &token.UnreachableError{URL: s.base(), Reason: r})
		}
		return vaultapi.ConnectWaitResponse{}, fmt.Errorf("vaultsource: connect wait for %s: %w: %v", key, token.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil || len(b) > MaxResponseSize {
		return vaultapi.ConnectWaitResponse{}, fmt.Errorf("vaultsource: connect wait for %s: reading answer: %w", key, token.ErrUnavailable)
	}
	if resp.StatusCode != http.StatusOK {
		return vaultapi.ConnectWaitResponse{}, s.statusError(key, resp, b)
	}
	var out vaultapi.ConnectWaitResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return vaultapi.ConnectWaitResponse{}, fmt.Errorf("vaultsource: connect wait for %s: %w: invalid JSON", key, ErrProtocol)
	}
	switch out.State {
	case vaultapi.WaitConnected, vaultapi.WaitWaiting, vaultapi.WaitFailed:
	default:
		return vaultapi.ConnectWaitResponse{}, fmt.Errorf("vaultsource: connect wait for %s: %w: unknown state %q", key, ErrProtocol, clean(out.State))
	}
	if out.ConnectURL, err = connectURL(out.ConnectURL); err != nil {
		return vaultapi.ConnectWaitResponse{}, fmt.Errorf("vaultsource: connect wait for %s: %w: %v", key, ErrProtocol, err)
	}
	if out.PATURL, err = connectURL(out.PATURL); err != nil {
		return vaultapi.ConnectWaitResponse{}, fmt.Errorf("vaultsource: connect wait for %s: %w: pat_url: %v", key, ErrProtocol, err)
	}
	out.Reason, out.Identity, out.Kind = clean(out.Reason), clean(out.Identity), clean(out.Kind)
	return out, nil
}

// Probe checks that the vault answers at all (GET /healthz): nil, an
// *token.UnreachableError for a URL where nothing answers, or another
// error naming what answered instead.
func (s *Source) Probe(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base()+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("vaultsource: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if r := unreachable(err); r != "" {
			return &token.UnreachableError{URL: s.base(), Reason: r}
		}
		return fmt.Errorf("cannot reach the vault at %s: %v — check --vault-url and --vault-ca-file", s.base(), err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseSize))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the vault at %s answered GET /healthz with HTTP %d — check --vault-url", s.base(), resp.StatusCode)
	}
	return nil
}

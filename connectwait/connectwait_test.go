package connectwait

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/token"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// fakeVault answers from a script of responses; each call advances the
// fake clock by the wait it was asked for (a long-poll that runs out).
type fakeVault struct {
	mu      sync.Mutex
	now     time.Time
	answers []func(wait time.Duration, cursor int64) (vaultapi.ConnectWaitResponse, error)
	calls   []string
}

func (f *fakeVault) ConnectWait(_ context.Context, key token.Key, wait time.Duration, cursor int64) (vaultapi.ConnectWaitResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("%s wait=%s cursor=%d", key, wait, cursor))
	if len(f.answers) == 0 {
		f.now = f.now.Add(wait)
		return waiting(cursor), nil
	}
	a := f.answers[0]
	f.answers = f.answers[1:]
	return a(wait, cursor)
}

func (f *fakeVault) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }

func (f *fakeVault) Sleep(_ context.Context, d time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	return nil
}

const (
	connectLink = "https://runner.example.com/connect?link=abc"
	patLink     = "https://runner.example.com/pat?link=def"
)

func waiting(cursor int64) vaultapi.ConnectWaitResponse {
	return vaultapi.ConnectWaitResponse{State: vaultapi.WaitWaiting, ConnectURL: connectLink, PATURL: patLink, Cursor: cursor}
}

func answer(r vaultapi.ConnectWaitResponse, err error) func(time.Duration, int64) (vaultapi.ConnectWaitResponse, error) {
	return func(time.Duration, int64) (vaultapi.ConnectWaitResponse, error) { return r, err }
}

var key = token.Key{Host: "dev.azure.com", Org: "contoso"}

func TestWait(t *testing.T) {
	connected := vaultapi.ConnectWaitResponse{State: vaultapi.WaitConnected, Kind: "oauth", Identity: "alice@contoso.com", Cursor: 8}
	tests := []struct {
		name       string
		answers    []func(time.Duration, int64) (vaultapi.ConnectWaitResponse, error)
		wantErr    error
		wantOut    []string
		notOut     []string
		wantWaited bool
	}{
		{
			name:    "connected already: silent",
			answers: []func(time.Duration, int64) (vaultapi.ConnectWaitResponse, error){answer(vaultapi.ConnectWaitResponse{State: vaultapi.WaitConnected}, nil)},
			notOut:  []string{"connect", "Azure"},
		},
		{
			name: "waits, then Entra ID",
			answers: []func(time.Duration, int64) (vaultapi.ConnectWaitResponse, error){
				answer(waiting(7), nil), answer(waiting(7), nil), answer(waiting(7), nil), answer(connected, nil),
			},
			wantOut:    []string{"not connected for dev.azure.com/contoso", connectLink, patLink, "Waiting up to 15m0s", "Azure DevOps (Entra ID) is now connected as alice@contoso.com\n"},
			wantWaited: true,
		},
		{
			name: "PAT",
			answers: []func(time.Duration, int64) (vaultapi.ConnectWaitResponse, error){
				answer(waiting(7), nil), answer(vaultapi.ConnectWaitResponse{State: vaultapi.WaitConnected, Kind: "pat"}, nil),
			},
			wantOut:    []string{"Azure DevOps is now connected with a personal access token\n"},
			wantWaited: true,
		},
		{
			name: "failed link",
			answers: []func(time.Duration, int64) (vaultapi.ConnectWaitResponse, error){
				answer(waiting(7), nil), answer(vaultapi.ConnectWaitResponse{State: vaultapi.WaitFailed, Reason: "signed in as mallory@contoso.com", ConnectURL: connectLink + "2"}, nil),
			},
			wantErr: ErrFailed,
			wantOut: []string{"did not complete: signed in as mallory@contoso.com", "Try again", connectLink + "2"},
		},
		{
			name:    "timeout prints the links again",
			answers: nil, // waiting forever
			wantErr: ErrTimeout,
			wantOut: []string{"timed out waiting for Azure DevOps to be connected (after 15m0s)", "Connect, then run the command again"},
		},
		{
			name: "vault restarting: one line, then connected",
			answers: []func(time.Duration, int64) (vaultapi.ConnectWaitResponse, error){
				answer(waiting(7), nil),
				answer(vaultapi.ConnectWaitResponse{}, fmt.Errorf("dial: %w", token.ErrUnavailable)),
				answer(vaultapi.ConnectWaitResponse{}, fmt.Errorf("dial: %w", token.ErrUnavailable)),
				answer(connected, nil),
			},
			wantOut:    []string{"the vault did not answer", "now connected as alice@contoso.com"},
			wantWaited: true,
		},
		{
			name:    "environment token refused: at once",
			answers: []func(time.Duration, int64) (vaultapi.ConnectWaitResponse, error){answer(vaultapi.ConnectWaitResponse{}, token.ErrUnauthorized)},
			wantErr: token.ErrUnauthorized,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeVault{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), answers: tt.answers}
			var out strings.Builder
			res, err := Wait(context.Background(), f, key, Options{Timeout: 15 * time.Minute, Out: &out, Now: f.Now, Sleep: f.Sleep})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Wait() = %v; want %v", err, tt.wantErr)
			}
			if res.Waited != tt.wantWaited {
				t.Errorf("Waited = %v; want %v", res.Waited, tt.wantWaited)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.notOut {
				if strings.Contains(out.String(), w) {
					t.Errorf("output has %q:\n%s", w, out.String())
				}
			}
			// The block is printed once, however many polls.
			if n := strings.Count(out.String(), "Waiting up to"); n > 1 {
				t.Errorf("the wait notice was printed %d times:\n%s", n, out.String())
			}
			if len(f.calls) > 0 && !strings.HasSuffix(f.calls[0], "wait=0s cursor=0") {
				t.Errorf("first call %q; want an immediate one", f.calls[0])
			}
			for _, c := range f.calls[1:] {
				if strings.Contains(c, "wait=0s") {
					t.Errorf("a later call %q does not long-poll", c)
				}
			}
		})
	}
}

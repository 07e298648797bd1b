// Package storetest is the behavioural contract of store.Store: one suite
// that every implementation (SQLite, PostgreSQL) runs, so that the vault
// can rely on the same semantics whichever store an operator picks.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// Opener opens one more handle on a database; two handles on the same
// database stand for two processes or two replicas. The suite closes every
// handle it opens.
type Opener func(ctx context.Context, now func() time.Time) (store.Store, error)

// NewDatabase creates an empty database for one test and returns the
// Opener of that database. It is called once per test, so tests may run in
// parallel when the implementation allows it.
type NewDatabase func(t *testing.T) Opener

// epoch is where each test's clock starts: UpdatedAt must be exactly this.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 678_000, time.UTC)

// clock is a test's clock, shared by its handles, moved by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// Run runs the contract suite against the store that newDB makes.
func Run(t *testing.T, newDB NewDatabase) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open, another func() store.Store, clk *clock)
	}{
		{"PutCredentialUpserts", testPutCredentialUpserts},
		{"PutCredentialRefusesIncomplete", testPutCredentialRefusesIncomplete},
		{"CredentialsFilters", testCredentialsFilters},
		{"CredentialByID", testCredentialByID},
		{"UpdateCredentialCompareAndSwap", testUpdateCredentialCompareAndSwap},
		{"ConcurrentCompareAndSwap", testConcurrentCompareAndSwap},
		{"ConcurrentPutOneRow", testConcurrentPutOneRow},
		{"DeleteCredential", testDeleteCredential},
		{"ListCredentials", testListCredentials},
		{"DeleteCredentials", testDeleteCredentials},
		{"ListEnvironments", testListEnvironments},
		{"Environments", testEnvironments},
		{"EnvironmentsUnique", testEnvironmentsUnique},
		{"TimesRoundTripInUTC", testTimesRoundTripInUTC},
		{"UseNonce", testUseNonce},
		{"ConcurrentUseNonce", testConcurrentUseNonce},
		{"Flows", testFlows},
		{"ConcurrentTakeFlow", testConcurrentTakeFlow},
		{"MACsRoundTrip", testMACsRoundTrip},
		{"BindLegacy", testBindLegacy},
		{"BindLegacyTampered", testBindLegacyTampered},
		{"ConcurrentBindLegacy", testConcurrentBindLegacy},
		{"EnvironmentPolicy", testEnvironmentPolicy},
		{"ConcurrentSetPolicy", testConcurrentSetPolicy},
		{"AuditEvents", testAuditEvents},
		{"AddAuditEventsAtomic", testAddAuditEventsAtomic},
		{"ConnectEvents", testConnectEvents},
		{"ProviderFingerprints", testProviderFingerprints},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opener := newDB(t)
			clk := &clock{}
			clk.Set(epoch)
			handle := func() store.Store {
				t.Helper()
				s, err := opener(context.Background(), clk.Now)
				if err != nil {
					t.Fatalf("open store: %v", err)
				}
				t.Cleanup(func() {
					if err := s.Close(); err != nil {
						t.Errorf("Close() = %v", err)
					}
				})
				return s
			}
			s := handle()
			tt.fn(t, func() store.Store { return s }, handle, clk)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// same reports whether two credentials are equal, times compared as
// instants.
func same(a, b store.Credential) bool {
	ta, tb := []time.Time{a.ExpiresAt, a.UpdatedAt}, []time.Time{b.ExpiresAt, b.UpdatedAt}
	a.ExpiresAt, a.UpdatedAt, b.ExpiresAt, b.UpdatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	macs := bytes.Equal(a.MAC, b.MAC)
	a.MAC, b.MAC = nil, nil
	return reflect.DeepEqual(a, b) && macs && ta[0].Equal(tb[0]) && ta[1].Equal(tb[1])
}

func testPutCredentialUpserts(t *testing.T, open, _ func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	c := store.Credential{Owner: "ann", Host: "dev.azure.com", Org: "contoso", Kind: store.PAT, Sealed: "b25l",
		ExpiresAt: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	first, err := s.PutCredential(c0, c)
	if err != nil {
		t.Fatal(err)
	}
	if first.Version != 1 || first.Status != store.StatusOK || first.ID == 0 || first.Sealed != "b25l" || !first.UpdatedAt.Equal(epoch) {
		t.Errorf("first PutCredential = %+v; want version 1, status ok, an ID, UpdatedAt %v", first, epoch)
	}
	c.Sealed = "dHdv"
	c.Status, c.Reason = store.StatusReconnectRequired, "PAT expired"
	second, err := s.PutCredential(c0, c)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID != first.ID || second.Version != 2 || second.Sealed != "dHdv" || !second.ExpiresAt.Equal(c.ExpiresAt) ||
		second.Status != store.StatusReconnectRequired || second.Reason != "PAT expired" {
		t.Errorf("second PutCredential = %+v; want ID %d, version 2, the new secret, status and reason", second, first.ID)
	}
	// A put replaces whatever the stored version is: Version is ignored.
	c.Version, c.Sealed, c.Status, c.Reason = 42, "dGhyZWU=", "", ""
	third, err := s.PutCredential(c0, c)
	if err != nil {
		t.Fatal(err)
	}
	if third.ID != first.ID || third.Version != 3 || third.Status != store.StatusOK || third.Reason != "" {
		t.Errorf("third PutCredential (stale Version 42) = %+v; want version 3, status ok", third)
	}
	// Another kind for the same owner, host and org is another row.
	c.Kind = store.OAuth
	oauth, err := s.PutCredential(c0, c)
	if err != nil {
		t.Fatal(err)
	}
	if oauth.ID == first.ID || oauth.Version != 1 {
		t.Errorf("oauth PutCredential = %+v; want a new row (not %d) at version 1", oauth, first.ID)
	}
}

func testPutCredentialRefusesIncomplete(t *testing.T, open, _ func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	tests := []struct {
		name string
		c    store.Credential
	}{
		{"no owner", store.Credential{Host: "h", Org: "o", Kind: store.PAT, Sealed: "eA=="}},
		{"no host", store.Credential{Owner: "a", Org: "o", Kind: store.PAT, Sealed: "eA=="}},
		{"no org", store.Credential{Owner: "a", Host: "h", Kind: store.PAT, Sealed: "eA=="}},
		{"unknown kind", store.Credential{Owner: "a", Host: "h", Org: "o", Kind: "password", Sealed: "eA=="}},
		{"no secret", store.Credential{Owner: "a", Host: "h", Org: "o", Kind: store.PAT}},
	}
	for _, tt := range tests {
		if got, err := s.PutCredential(c0, tt.c); err == nil {
			t.Errorf("%s: PutCredential(%+v) = %+v, nil; want an error", tt.name, tt.c, got)
		}
	}
	if cs, err := s.Credentials(c0, "a", "h"); err != nil || len(cs) != 0 {
		t.Errorf("Credentials after refused puts = %v, %v; want none", cs, err)
	}
}

func testCredentialsFilters(t *testing.T, open, _ func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	put := func(owner, host, org string, kind store.Kind) store.Credential {
		t.Helper()
		c, err := s.PutCredential(c0, store.Credential{Owner: owner, Host: host, Org: org, Kind: kind, Sealed: "eA=="})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a1 := put("ann", "dev.azure.com", store.AllOrgs, store.OAuth)
	a2 := put("ann", "dev.azure.com", "contoso", store.PAT)
	put("ann", "tfs.example:8443", "coll", store.PAT)
	put("bob", "dev.azure.com", "contoso", store.PAT)
	put("Ann", "dev.azure.com", "contoso", store.PAT)

	tests := []struct {
		owner, host string
		want        []int64
	}{
		{"ann", "dev.azure.com", []int64{a1.ID, a2.ID}},
		{"carol", "dev.azure.com", nil},
		{"ann", "example.com", nil},
	}
	for _, tt := range tests {
		cs, err := s.Credentials(c0, tt.owner, tt.host)
		if err != nil {
			t.Fatalf("Credentials(%q, %q) = %v", tt.owner, tt.host, err)
		}
		var got []int64
		for _, c := range cs {
			if c.Owner != tt.owner || c.Host != tt.host {
				t.Errorf("Credentials(%q, %q) returned %+v", tt.owner, tt.host, c)
			}
			got = append(got, c.ID)
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("Credentials(%q, %q) IDs = %v; want %v (in ID order)", tt.owner, tt.host, got, tt.want)
		}
	}
}

func testCredentialByID(t *testing.T, open, _ func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	put, err := s.PutCredential(c0, store.Credential{Owner: "ann", Host: "dev.azure.com", Org: store.AllOrgs, Kind: store.OAuth, Sealed: "eA=="})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Credential(c0, put.ID)
	if err != nil || !same(got, put) {
		t.Errorf("Credential(%d) = %+v, %v; want %+v", put.ID, got, err, put)
	}
	if got, err := s.Credential(c0, put.ID+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Credential(unknown) = %+v, %v; want ErrNotFound", got, err)
	}
}

func testUpdateCredentialCompareAndSwap(t *testing.T, open, _ func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	c, err := s.PutCredential(c0, store.Credential{Owner: "ann", Host: "dev.azure.com", Org: store.AllOrgs, Kind: store.OAuth, Sealed: "djE="})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		name    string
		id      int64
		version int64
		want    error
	}{
		{name: "current version", id: c.ID, version: 1},
		{name: "stale version", id: c.ID, version: 1, want: store.ErrConflict},
		{name: "future version", id: c.ID, version: 7, want: store.ErrConflict},
		{name: "next version", id: c.ID, version: 2},
		{name: "missing row", id: c.ID + 1000, version: 1, want: store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := c
			u.ID, u.Version = tt.id, tt.version
			u.Sealed, u.ExpiresAt, u.Status, u.Reason = fmt.Sprintf("v%d", tt.version+1), exp, store.StatusReconnectRequired, "AADSTS70008"
			got, err := s.UpdateCredential(c0, u)
			if !errors.Is(err, tt.want) {
				t.Fatalf("UpdateCredential(id %d, version %d) = %v; want %v", tt.id, tt.version, err, tt.want)
			}
			if err != nil {
				return
			}
			if got.Version != tt.version+1 || got.Sealed != u.Sealed || !got.ExpiresAt.Equal(exp) ||
				got.Status != store.StatusReconnectRequired || got.Reason != "AADSTS70008" || got.Owner != "ann" {
				t.Errorf("UpdateCredential = %+v; want version %d with the new fields", got, tt.version+1)
			}
			if read, err := s.Credential(c0, tt.id); err != nil || !same(read, got) {
				t.Errorf("Credential after update = %+v, %v; want %+v", read, err, got)
			}
		})
	}
	// The key fields are not updated by UpdateCredential.
	if cs, _ := s.Credentials(c0, "ann", "dev.azure.com"); len(cs) != 1 {
		t.Errorf("Credentials after updates = %+v; want the one row", cs)
	}
}

// testConcurrentCompareAndSwap races writers through two handles (two
// processes or replicas): exactly one writer per version wins, for several
// versions in a row, and no update is lost.
func testConcurrentCompareAndSwap(t *testing.T, open, another func() store.Store, _ *clock) {
	a, b, c0 := open(), another(), ctx(t)
	c, err := a.PutCredential(c0, store.Credential{Owner: "ann", Host: "dev.azure.com", Org: store.AllOrgs, Kind: store.OAuth, Sealed: "djE="})
	if err != nil {
		t.Fatal(err)
	}
	const rounds, writers = 3, 16
	for round := range rounds {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []string
		conflicts := 0
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := a
				if i%2 == 1 {
					s = b
				}
				u := c
				u.Sealed = fmt.Sprintf("r%dw%d", round, i)
				_, err := s.UpdateCredential(c0, u)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					winners = append(winners, u.Sealed)
				case errors.Is(err, store.ErrConflict):
					conflicts++
				default:
					t.Errorf("UpdateCredential = %v; want nil or ErrConflict", err)
				}
			}()
		}
		wg.Wait()
		if len(winners) != 1 || conflicts != writers-1 {
			t.Fatalf("round %d: winners, conflicts = %d, %d; want 1, %d", round, len(winners), conflicts, writers-1)
		}
		got, err := b.Credential(c0, c.ID)
		if err != nil || got.Sealed != winners[0] || got.Version != c.Version+1 {
			t.Fatalf("round %d: stored = %+v, %v; want the winner %q at version %d", round, got, err, winners[0], c.Version+1)
		}
		c = got
	}
}

// testConcurrentPutOneRow: many handles putting the same credential at once
// leave one row, whose version counts every put.
func testConcurrentPutOneRow(t *testing.T, open, another func() store.Store, _ *clock) {
	a, b, c0 := open(), another(), ctx(t)
	const n = 12
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			if _, err := s.PutCredential(c0, store.Credential{Owner: "ann", Host: "dev.azure.com", Org: "contoso", Kind: store.PAT, Sealed: fmt.Sprintf("p%d", i)}); err != nil {
				t.Errorf("PutCredential = %v", err)
			}
		}()
	}
	wg.Wait()
	cs, err := a.Credentials(c0, "ann", "dev.azure.com")
	if err != nil || len(cs) != 1 || cs[0].Version != n {
		t.Errorf("Credentials after %d concurrent puts = %+v, %v; want one row at version %d", n, cs, err, n)
	}
}

func testDeleteCredential(t *testing.T, open, _ func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	c, err := s.PutCredential(c0, store.Credential{Owner: "ann", Host: "dev.azure.com", Org: store.AllOrgs, Kind: store.OAuth, Sealed: "eA=="})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCredential(c0, c.ID); err != nil {
		t.Fatalf("DeleteCredential(%d) = %v", c.ID, err)
	}
	if _, err := s.Credential(c0, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Credential after delete = %v; want ErrNotFound", err)
	}
	if err := s.DeleteCredential(c0, c.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteCredential twice = %v; want ErrNotFound", err)
	}
	if _, err := s.UpdateCredential(c0, c); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateCredential after delete = %v; want ErrNotFound", err)
	}
	again, err := s.PutCredential(c0, c)
	if err != nil || again.ID == c.ID || again.Version != 1 {
		t.Errorf("PutCredential after delete = %+v, %v; want a new row at version 1", again, err)
	}
}

func testEnvironments(t *testing.T, open, another func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	hash := bytes.Repeat([]byte{7}, 32)
	e := store.Environment{ID: "env_1", Owner: "ann", TokenHash: hash,
		CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ExpiresAt: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}
	if err := s.CreateEnvironment(c0, e); err != nil {
		t.Fatal(err)
	}
	// Another handle (the CLI, another replica) sees it at once.
	got, err := another().EnvironmentByTokenHash(c0, hash)
	if err != nil || got.ID != "env_1" || got.Owner != "ann" || !bytes.Equal(got.TokenHash, hash) ||
		!got.CreatedAt.Equal(e.CreatedAt) || !got.ExpiresAt.Equal(e.ExpiresAt) || !got.RevokedAt.IsZero() {
		t.Fatalf("EnvironmentByTokenHash = %+v, %v; want %+v", got, err, e)
	}
	if got, err := s.EnvironmentByTokenHash(c0, bytes.Repeat([]byte{8}, 32)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EnvironmentByTokenHash(unknown) = %+v, %v; want ErrNotFound", got, err)
	}
	at := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	if err := s.RevokeEnvironment(c0, "env_1", at); err != nil {
		t.Fatal(err)
	}
	if got, _ := another().EnvironmentByTokenHash(c0, hash); !got.RevokedAt.Equal(at) {
		t.Errorf("RevokedAt = %v; want %v", got.RevokedAt, at)
	}
	if err := s.RevokeEnvironment(c0, "env_1", at.Add(time.Hour)); err != nil {
		t.Errorf("RevokeEnvironment twice = %v; want nil", err)
	}
	if got, _ := s.EnvironmentByTokenHash(c0, hash); !got.RevokedAt.Equal(at) {
		t.Errorf("second revoke moved RevokedAt to %v; want %v", got.RevokedAt, at)
	}
	if err := s.RevokeEnvironment(c0, "env_404", at); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeEnvironment(unknown) = %v; want ErrNotFound", err)
	}
	// A zero time means "now" by the store's clock.
	if err := s.CreateEnvironment(c0, store.Environment{ID: "env_2", Owner: "ann", TokenHash: bytes.Repeat([]byte{9}, 32)}); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeEnvironment(c0, "env_2", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.EnvironmentByTokenHash(c0, bytes.Repeat([]byte{9}, 32)); !got.RevokedAt.Equal(epoch) || !got.ExpiresAt.IsZero() {
		t.Errorf("RevokeEnvironment(zero time) = RevokedAt %v, ExpiresAt %v; want %v and zero", got.RevokedAt, got.ExpiresAt, epoch)
	}
	for _, bad := range []store.Environment{
		{Owner: "ann", TokenHash: []byte{1}},
		{ID: "env_3", TokenHash: []byte{1}},
		{ID: "env_3", Owner: "ann"},
	} {
		if err := s.CreateEnvironment(c0, bad); err == nil {
			t.Errorf("CreateEnvironment(%+v) = nil; want an error", bad)
		}
	}
}

func testEnvironmentsUnique(t *testing.T, open, _ func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	hash := bytes.Repeat([]byte{7}, 32)
	if err := s.CreateEnvironment(c0, store.Environment{ID: "env_1", Owner: "ann", TokenHash: hash}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		e    store.Environment
	}{
		{"same token hash", store.Environment{ID: "env_2", Owner: "bob", TokenHash: hash}},
		{"same ID", store.Environment{ID: "env_1", Owner: "bob", TokenHash: bytes.Repeat([]byte{8}, 32)}},
	}
	for _, tt := range tests {
		err := s.CreateEnvironment(c0, tt.e)
		if !errors.Is(err, store.ErrDuplicate) {
			t.Errorf("%s: CreateEnvironment = %v; want ErrDuplicate", tt.name, err)
			continue
		}
		// The hash identifies a token: an error never echoes it.
		if bytes.Contains([]byte(err.Error()), []byte("0707070707")) || bytes.Contains([]byte(err.Error()), []byte("\\x07")) {
			t.Errorf("%s: error %q shows the token hash", tt.name, err)
		}
	}
	if got, err := s.EnvironmentByTokenHash(c0, hash); err != nil || got.Owner != "ann" {
		t.Errorf("after refused duplicates: %+v, %v; want ann's env_1", got, err)
	}
}

// testTimesRoundTripInUTC: times come back equal (to the microsecond) and in
// UTC, whatever zone they were written in; zero stays zero.
func testTimesRoundTripInUTC(t *testing.T, open, _ func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	exp := time.Date(2026, 7, 8, 9, 10, 11, 123_456_000, zone)
	c, err := s.PutCredential(c0, store.Credential{Owner: "ann", Host: "dev.azure.com", Org: "o", Kind: store.PAT, Sealed: "eA==", ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Credential(c0, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		got, want time.Time
	}{
		{"PutCredential ExpiresAt", c.ExpiresAt, exp},
		{"Credential ExpiresAt", got.ExpiresAt, exp},
		{"Credential UpdatedAt", got.UpdatedAt, epoch},
	} {
		if !tt.got.Equal(tt.want) || tt.got.Location() != time.UTC {
			t.Errorf("%s = %v; want %v in UTC", tt.name, tt.got, tt.want.UTC())
		}
	}
	z, err := s.PutCredential(c0, store.Credential{Owner: "ann", Host: "dev.azure.com", Org: "p", Kind: store.PAT, Sealed: "eA=="})
	if err != nil || !z.ExpiresAt.IsZero() {
		t.Errorf("PutCredential(no expiry) ExpiresAt = %v, %v; want zero", z.ExpiresAt, err)
	}
	hash := bytes.Repeat([]byte{3}, 32)
	created := time.Date(2026, 1, 1, 12, 0, 0, 999_000, zone)
	if err := s.CreateEnvironment(c0, store.Environment{ID: "env_t", Owner: "ann", TokenHash: hash, CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	e, err := s.EnvironmentByTokenHash(c0, hash)
	if err != nil || !e.CreatedAt.Equal(created) || e.CreatedAt.Location() != time.UTC || !e.ExpiresAt.IsZero() || !e.RevokedAt.IsZero() {
		t.Errorf("EnvironmentByTokenHash = %+v, %v; want CreatedAt %v in UTC, zero expiry and revocation", e, err, created.UTC())
	}
}

func testUseNonce(t *testing.T, open, another func() store.Store, clk *clock) {
	s, c0 := open(), ctx(t)
	h1, h2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	exp := epoch.Add(15 * time.Minute)
	tests := []struct {
		name string
		at   time.Time
		hash []byte
		want error
	}{
		{"first use", epoch, h1, nil},
		{"second use", epoch, h1, store.ErrUsed},
		{"other nonce", epoch, h2, nil},
		{"just before expiry", exp.Add(-time.Microsecond), h1, store.ErrUsed},
		{"after expiry, forgotten", exp, h1, nil},
		{"used again", exp, h1, store.ErrUsed},
	}
	for _, tt := range tests {
		clk.Set(tt.at)
		expires := tt.at.Add(15 * time.Minute)
		if tt.name == "first use" || tt.name == "other nonce" {
			expires = exp
		}
		// NonceUsed tells, without spending, what UseNonce will say.
		if used, err := s.NonceUsed(c0, tt.hash); err != nil || used != (tt.want != nil) {
			t.Errorf("%s: NonceUsed = %v, %v; want %v", tt.name, used, err, tt.want != nil)
		}
		if err := s.UseNonce(c0, tt.hash, expires); !errors.Is(err, tt.want) {
			t.Errorf("%s: UseNonce = %v; want %v", tt.name, err, tt.want)
		}
	}
	if used, err := another().NonceUsed(c0, bytes.Repeat([]byte{3}, 32)); err != nil || used {
		t.Errorf("NonceUsed(never used) = %v, %v; want false", used, err)
	}
	// Another handle (replica) sees the nonce spent.
	if err := another().UseNonce(c0, h1, exp.Add(time.Hour)); !errors.Is(err, store.ErrUsed) {
		t.Errorf("UseNonce through another handle = %v; want ErrUsed", err)
	}
	if err := s.UseNonce(c0, nil, exp); err == nil {
		t.Errorf("UseNonce(empty hash) = nil; want an error")
	}
}

// testConcurrentUseNonce: of many uses of one nonce through two handles,
// exactly one wins.
func testConcurrentUseNonce(t *testing.T, open, another func() store.Store, _ *clock) {
	c0 := ctx(t)
	exactlyOneWins(t, "UseNonce", open(), another(), store.ErrUsed, func(s store.Store) error {
		return s.UseNonce(c0, bytes.Repeat([]byte{5}, 32), epoch.Add(time.Hour))
	})
}

func testFlows(t *testing.T, open, another func() store.Store, clk *clock) {
	s, c0 := open(), ctx(t)
	zone := time.FixedZone("UTC-3", -3*3600)
	f := store.Flow{Owner: "ann", Env: "env_1", Host: "dev.azure.com", Org: "contoso", SealedVerifier: "c2VhbGVk",
		Nonce: "oidc-nonce", Expires: epoch.Add(10 * time.Minute).In(zone)}
	st1, st2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	if err := s.PutFlow(c0, st1, f); err != nil {
		t.Fatal(err)
	}
	if err := s.PutFlow(c0, st1, f); !errors.Is(err, store.ErrDuplicate) {
		t.Errorf("PutFlow(same state) = %v; want ErrDuplicate", err)
	}
	// The callback may reach another replica.
	got, err := another().TakeFlow(c0, st1)
	if err != nil || got.Owner != f.Owner || got.Env != f.Env || got.Host != f.Host || got.Org != f.Org ||
		got.SealedVerifier != f.SealedVerifier || got.Nonce != f.Nonce || !got.Expires.Equal(f.Expires) || got.Expires.Location() != time.UTC {
		t.Fatalf("TakeFlow = %+v, %v; want %+v with Expires in UTC", got, err, f)
	}
	if _, err := s.TakeFlow(c0, st1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeFlow twice = %v; want ErrNotFound", err)
	}
	if _, err := s.TakeFlow(c0, st2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeFlow(unknown) = %v; want ErrNotFound", err)
	}
	// An expired flow is not handed out.
	if err := s.PutFlow(c0, st2, f); err != nil {
		t.Fatal(err)
	}
	clk.Set(f.Expires)
	if got, err := s.TakeFlow(c0, st2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeFlow(expired) = %+v, %v; want ErrNotFound", got, err)
	}
	for _, bad := range []store.Flow{
		{Host: "h", SealedVerifier: "v", Nonce: "n", Expires: epoch},
		{Owner: "a", SealedVerifier: "v", Nonce: "n", Expires: epoch},
		{Owner: "a", Host: "h", Nonce: "n", Expires: epoch},
		{Owner: "a", Host: "h", SealedVerifier: "v", Expires: epoch},
		{Owner: "a", Host: "h", SealedVerifier: "v", Nonce: "n"},
	} {
		if err := s.PutFlow(c0, bytes.Repeat([]byte{9}, 32), bad); err == nil {
			t.Errorf("PutFlow(%+v) = nil; want an error", bad)
		}
	}
	if err := s.PutFlow(c0, nil, f); err == nil {
		t.Errorf("PutFlow(no state hash) = nil; want an error")
	}
}

// testConcurrentTakeFlow: of many callbacks with one state, through two
// handles, exactly one gets the flow.
func testConcurrentTakeFlow(t *testing.T, open, another func() store.Store, _ *clock) {
	a, c0 := open(), ctx(t)
	state := bytes.Repeat([]byte{4}, 32)
	if err := a.PutFlow(c0, state, store.Flow{Owner: "ann", Host: "dev.azure.com", SealedVerifier: "dg==", Nonce: "n", Expires: epoch.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	exactlyOneWins(t, "TakeFlow", a, another(), store.ErrNotFound, func(s store.Store) error {
		_, err := s.TakeFlow(c0, state)
		return err
	})
}

// exactlyOneWins runs op 16 times at once, alternately through handles a
// and b (two replicas), and requires one success and every other call to
// fail with lose.
func exactlyOneWins(t *testing.T, name string, a, b store.Store, lose error, op func(store.Store) error) {
	t.Helper()
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, lost := 0, 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			err := op(s)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, lose):
				lost++
			default:
				t.Errorf("%s = %v; want nil or %v", name, err, lose)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || lost != n-1 {
		t.Errorf("%s: wins, %v = %d, %d; want 1, %d", name, lose, wins, lost, n-1)
	}
}

// ids returns the IDs of cs, in order.
func ids(cs []store.Credential) []int64 {
	var out []int64
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// testListCredentials: the administrator's listing filters by owner and
// host (empty: all), orders by owner, host and ID comparing bytes, carries
// every field but the sealed secret, and sees other handles' writes.
func testListCredentials(t *testing.T, open, another func() store.Store, clk *clock) {
	s, c0 := open(), ctx(t)
	put := func(owner, host, org string, kind store.Kind) store.Credential {
		t.Helper()
		c, err := s.PutCredential(c0, store.Credential{Owner: owner, Host: host, Org: org, Kind: kind, Sealed: "c2VhbGVkLXNlY3JldA=="})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	b1 := put("bob", "dev.azure.com", "contoso", store.PAT)
	a1 := put("ann", "tfs.example:8443", "coll", store.PAT)
	a2 := put("ann", "dev.azure.com", store.AllOrgs, store.OAuth)
	a3 := put("ann", "dev.azure.com", "contoso", store.PAT)
	cap1 := put("Ann", "dev.azure.com", "contoso", store.PAT)
	exp := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	clk.Set(epoch.Add(time.Hour))
	a2.Status, a2.Reason, a2.ExpiresAt = store.StatusReconnectRequired, "AADSTS70008", exp
	a2, err := s.UpdateCredential(c0, a2)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, owner, host string
		want              []int64
	}{
		{"everything", "", "", []int64{cap1.ID, a2.ID, a3.ID, a1.ID, b1.ID}},
		{"one owner", "ann", "", []int64{a2.ID, a3.ID, a1.ID}},
		{"owner is case-sensitive", "Ann", "", []int64{cap1.ID}},
		{"one host", "", "dev.azure.com", []int64{cap1.ID, a2.ID, a3.ID, b1.ID}},
		{"owner and host", "ann", "tfs.example:8443", []int64{a1.ID}},
		{"unknown owner", "carol", "", nil},
		{"unknown host", "", "example.com", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := another().ListCredentials(c0, tt.owner, tt.host)
			if err != nil {
				t.Fatalf("ListCredentials(%q, %q) = %v", tt.owner, tt.host, err)
			}
			if got := ids(cs); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("ListCredentials(%q, %q) IDs = %v; want %v", tt.owner, tt.host, got, tt.want)
			}
			for _, c := range cs {
				if c.Sealed != "" {
					t.Errorf("ListCredentials(%q, %q) returned credential %d with its sealed secret", tt.owner, tt.host, c.ID)
				}
			}
		})
	}
	cs, err := s.ListCredentials(c0, "ann", "dev.azure.com")
	if err != nil || len(cs) != 2 {
		t.Fatalf("ListCredentials(ann, dev.azure.com) = %+v, %v; want 2", cs, err)
	}
	want := a2
	want.Sealed = ""
	if !same(cs[0], want) || cs[0].ExpiresAt.Location() != time.UTC || cs[0].UpdatedAt.Location() != time.UTC {
		t.Errorf("ListCredentials()[0] = %+v; want %+v (times in UTC)", cs[0], want)
	}
}

// testDeleteCredentials: deleting a user's credentials (optionally for one
// host) removes exactly those, reports them without their secrets, and
// refuses an empty owner rather than deleting everyone's.
func testDeleteCredentials(t *testing.T, open, another func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	put := func(owner, host, org string, kind store.Kind) store.Credential {
		t.Helper()
		c, err := s.PutCredential(c0, store.Credential{Owner: owner, Host: host, Org: org, Kind: kind, Sealed: "c2VhbGVkLXNlY3JldA=="})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a1 := put("ann", "dev.azure.com", store.AllOrgs, store.OAuth)
	a2 := put("ann", "tfs.example:8443", "coll", store.PAT)
	a3 := put("ann", "dev.azure.com", "contoso", store.PAT)
	b1 := put("bob", "dev.azure.com", "contoso", store.PAT)

	if got, err := s.DeleteCredentials(c0, "", ""); err == nil {
		t.Errorf("DeleteCredentials(no owner) = %v, nil; want an error", ids(got))
	}
	if got, err := s.DeleteCredentials(c0, "", "dev.azure.com"); err == nil {
		t.Errorf("DeleteCredentials(no owner, a host) = %v, nil; want an error", ids(got))
	}
	tests := []struct {
		name, owner, host string
		want              []int64
	}{
		{"one host", "ann", "tfs.example:8443", []int64{a2.ID}},
		{"unknown owner", "carol", "", nil},
		{"owner is case-sensitive", "ANN", "", nil},
		{"every host, ID order", "ann", "", []int64{a1.ID, a3.ID}},
		{"nothing left", "ann", "", nil},
	}
	for _, tt := range tests {
		got, err := s.DeleteCredentials(c0, tt.owner, tt.host)
		if err != nil {
			t.Fatalf("%s: DeleteCredentials(%q, %q) = %v", tt.name, tt.owner, tt.host, err)
		}
		if fmt.Sprint(ids(got)) != fmt.Sprint(tt.want) {
			t.Errorf("%s: DeleteCredentials(%q, %q) = %v; want %v", tt.name, tt.owner, tt.host, ids(got), tt.want)
		}
		for _, c := range got {
			if c.Sealed != "" || c.Owner != tt.owner || c.Host == "" || c.Kind == "" {
				t.Errorf("%s: DeleteCredentials returned %+v; want its owner, host and kind, no sealed secret", tt.name, c)
			}
		}
	}
	for _, id := range []int64{a1.ID, a2.ID, a3.ID} {
		if _, err := another().Credential(c0, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Credential(%d) after DeleteCredentials = %v; want ErrNotFound", id, err)
		}
	}
	if left, err := another().ListCredentials(c0, "", ""); err != nil || fmt.Sprint(ids(left)) != fmt.Sprint([]int64{b1.ID}) {
		t.Errorf("ListCredentials after deletes = %v, %v; want only bob's %d", ids(left), err, b1.ID)
	}
}

// testListEnvironments: the listing filters by owner (empty: all),
// includes revoked and expired environments, orders by creation time (none
// first) and ID, and never carries the token hash.
func testListEnvironments(t *testing.T, open, another func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	envs := []store.Environment{
		{ID: "env_b", Owner: "ann", CreatedAt: t1},
		{ID: "env_a", Owner: "ann", CreatedAt: t1, ExpiresAt: t1.Add(time.Hour)},
		{ID: "env_c", Owner: "bob", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute), RevokedAt: t0.Add(time.Second)},
		{ID: "env_d", Owner: "carol"},
	}
	for i, e := range envs {
		e.TokenHash = bytes.Repeat([]byte{byte(i + 1)}, 32)
		if err := s.CreateEnvironment(c0, e); err != nil {
			t.Fatal(err)
		}
	}
	byID := map[string]store.Environment{}
	for _, e := range envs {
		byID[e.ID] = e
	}
	tests := []struct {
		name, owner string
		want        []string
	}{
		{"everyone's", "", []string{"env_d", "env_c", "env_a", "env_b"}},
		{"one owner", "ann", []string{"env_a", "env_b"}},
		{"revoked included", "bob", []string{"env_c"}},
		{"unknown owner", "dave", nil},
	}
	for _, tt := range tests {
		got, err := another().ListEnvironments(c0, tt.owner)
		if err != nil {
			t.Fatalf("%s: ListEnvironments(%q) = %v", tt.name, tt.owner, err)
		}
		var gotIDs []string
		for _, e := range got {
			gotIDs = append(gotIDs, e.ID)
			want := byID[e.ID]
			if len(e.TokenHash) != 0 {
				t.Errorf("%s: ListEnvironments(%q) returned %s with its token hash", tt.name, tt.owner, e.ID)
			}
			if e.Owner != want.Owner || !e.CreatedAt.Equal(want.CreatedAt) || !e.ExpiresAt.Equal(want.ExpiresAt) || !e.RevokedAt.Equal(want.RevokedAt) ||
				(!e.CreatedAt.IsZero() && e.CreatedAt.Location() != time.UTC) {
				t.Errorf("%s: ListEnvironments(%q) returned %+v; want %+v (times in UTC)", tt.name, tt.owner, e, want)
			}
		}
		if strings.Join(gotIDs, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: ListEnvironments(%q) = %v; want %v", tt.name, tt.owner, gotIDs, tt.want)
		}
	}
}

// testMACsRoundTrip: the MACs the vault computes are kept with their rows
// and follow every write: put, replace, compare-and-swap, create.
func testMACsRoundTrip(t *testing.T, open, another func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	c := store.Credential{Owner: "ann", Host: "dev.azure.com", Org: store.AllOrgs, Kind: store.OAuth, Sealed: "c2VhbGVk", MAC: []byte("mac-1")}
	put, err := s.PutCredential(c0, c)
	if err != nil || string(put.MAC) != "mac-1" {
		t.Fatalf("PutCredential = %+v, %v; want MAC mac-1", put, err)
	}
	c.Sealed, c.MAC = "c2VhbGVkMg==", []byte("mac-2")
	if put, err = s.PutCredential(c0, c); err != nil || string(put.MAC) != "mac-2" {
		t.Fatalf("PutCredential (replace) = %+v, %v; want MAC mac-2", put, err)
	}
	put.Sealed, put.MAC = "c2VhbGVkMw==", []byte("mac-3")
	if _, err := s.UpdateCredential(c0, put); err != nil {
		t.Fatal(err)
	}
	got, err := another().Credential(c0, put.ID)
	if err != nil || string(got.MAC) != "mac-3" || got.Sealed != "c2VhbGVkMw==" {
		t.Errorf("Credential after update = %+v, %v; want sealed 3 with mac-3", got, err)
	}
	if cs, err := another().Credentials(c0, "ann", "dev.azure.com"); err != nil || len(cs) != 1 || string(cs[0].MAC) != "mac-3" {
		t.Errorf("Credentials = %+v, %v; want one row with mac-3", cs, err)
	}
	hash := bytes.Repeat([]byte{5}, 32)
	if err := s.CreateEnvironment(c0, store.Environment{ID: "env_1", Owner: "ann", TokenHash: hash, MAC: []byte("env-mac")}); err != nil {
		t.Fatal(err)
	}
	if e, err := another().EnvironmentByTokenHash(c0, hash); err != nil || string(e.MAC) != "env-mac" {
		t.Errorf("EnvironmentByTokenHash = %+v, %v; want MAC env-mac", e, err)
	}
}

// fakeBinder binds with SHA-256 of labelled fields: deterministic, so the
// test can tell what BindLegacy wrote.
type fakeBinder struct{}

func (fakeBinder) CredentialMAC(c store.Credential) []byte {
	h := sha256.Sum256([]byte("cred|" + c.Owner + "|" + c.Host + "|" + c.Org + "|" + string(c.Kind) + "|" + c.Sealed))
	return h[:]
}

func (fakeBinder) BindEnvironment(e store.Environment) (tokenHash, mac []byte) {
	th := sha256.Sum256(append([]byte("key|"), e.TokenHash...))
	m := sha256.Sum256(append([]byte("env|"+e.ID+"|"+e.Owner+"|"), th[:]...))
	return th[:], m[:]
}

// testBindLegacy: rows written before binding are counted and bound once,
// in place; a row written without a MAC after that is counted, and stays
// unbound.
func testBindLegacy(t *testing.T, open, another func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	legacy := store.Credential{Owner: "ann", Host: "dev.azure.com", Org: store.AllOrgs, Kind: store.PAT, Sealed: "c2VhbGVk"}
	lc, err := s.PutCredential(c0, legacy)
	if err != nil {
		t.Fatal(err)
	}
	oldHash := bytes.Repeat([]byte{3}, 32)
	exp := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := s.CreateEnvironment(c0, store.Environment{ID: "env_old", Owner: "ann", TokenHash: oldHash, CreatedAt: epoch, ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if c, e, err := s.CountUnbound(c0); err != nil || c != 1 || e != 1 {
		t.Errorf("CountUnbound on a legacy store = %d, %d, %v; want 1, 1", c, e, err)
	}
	b, err := s.BindLegacy(c0, fakeBinder{})
	if err != nil {
		t.Fatalf("BindLegacy = %v", err)
	}
	if len(b.Credentials) != 1 || b.Credentials[0].ID != lc.ID || b.Credentials[0].Sealed != "" ||
		len(b.Environments) != 1 || b.Environments[0].ID != "env_old" || b.Environments[0].Owner != "ann" || b.Environments[0].TokenHash != nil {
		t.Fatalf("BindLegacy bound %+v; want ann's credential %d and env_old, without secrets", b, lc.ID)
	}
	got, err := another().Credential(c0, lc.ID)
	if err != nil || !bytes.Equal(got.MAC, fakeBinder{}.CredentialMAC(lc)) || got.Sealed != legacy.Sealed {
		t.Errorf("bound credential = %+v, %v; want the binder's MAC and the same sealed value", got, err)
	}
	newHash, mac := fakeBinder{}.BindEnvironment(store.Environment{ID: "env_old", Owner: "ann", TokenHash: oldHash, ExpiresAt: exp})
	if e, err := another().EnvironmentByTokenHash(c0, newHash); err != nil || e.ID != "env_old" || !bytes.Equal(e.MAC, mac) || !e.ExpiresAt.Equal(exp) {
		t.Errorf("EnvironmentByTokenHash(rekeyed) = %+v, %v; want env_old with its MAC", e, err)
	}
	if e, err := s.EnvironmentByTokenHash(c0, oldHash); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("EnvironmentByTokenHash(plain hash) = %+v, %v; want ErrNotFound: the old hash is gone", e, err)
	}
	if c, e, err := another().CountUnbound(c0); err != nil || c != 0 || e != 0 {
		t.Errorf("CountUnbound after binding = %d, %d, %v; want 0, 0", c, e, err)
	}
	if b, err := another().BindLegacy(c0, fakeBinder{}); err != nil || len(b.Credentials)+len(b.Environments) != 0 {
		t.Errorf("second BindLegacy = %+v, %v; want nothing bound", b, err)
	}
	// Rows inserted later without the key are counted, and never bound
	// next to bound rows.
	if err := s.CreateEnvironment(c0, store.Environment{ID: "env_forged", Owner: "ann", TokenHash: bytes.Repeat([]byte{4}, 32)}); err != nil {
		t.Fatal(err)
	}
	if c, e, err := another().CountUnbound(c0); err != nil || c != 0 || e != 1 {
		t.Errorf("CountUnbound with a forged row = %d, %d, %v; want 0, 1", c, e, err)
	}
	if b, err := another().BindLegacy(c0, fakeBinder{}); !errors.Is(err, store.ErrBindingTampered) {
		t.Errorf("BindLegacy with a forged row next to bound ones = %+v, %v; want ErrBindingTampered", b, err)
	}
	if e, err := s.EnvironmentByTokenHash(c0, bytes.Repeat([]byte{4}, 32)); err != nil || e.MAC != nil {
		t.Errorf("forged row = %+v, %v; want it unbound (MAC nil)", e, err)
	}
}

// testBindLegacyTampered: unbound rows next to bound ones were written
// without the key; BindLegacy refuses to bless anything then.
func testBindLegacyTampered(t *testing.T, open, _ func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	if _, err := s.PutCredential(c0, store.Credential{Owner: "ann", Host: "dev.azure.com", Org: store.AllOrgs, Kind: store.PAT, Sealed: "c2VhbGVk", MAC: []byte("bound")}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEnvironment(c0, store.Environment{ID: "env_forged", Owner: "ann", TokenHash: bytes.Repeat([]byte{4}, 32)}); err != nil {
		t.Fatal(err)
	}
	if b, err := s.BindLegacy(c0, fakeBinder{}); !errors.Is(err, store.ErrBindingTampered) {
		t.Fatalf("BindLegacy = %+v, %v; want ErrBindingTampered", b, err)
	}
	if e, err := s.EnvironmentByTokenHash(c0, bytes.Repeat([]byte{4}, 32)); err != nil || e.MAC != nil {
		t.Errorf("after refused bind: %+v, %v; want the row untouched", e, err)
	}
}

// testConcurrentBindLegacy: two processes (or replicas) starting together
// bind the old rows once: one reports them, the other nothing.
func testConcurrentBindLegacy(t *testing.T, open, another func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	for i := range 5 {
		if err := s.CreateEnvironment(c0, store.Environment{ID: fmt.Sprintf("env_%d", i), Owner: "ann", TokenHash: bytes.Repeat([]byte{byte(10 + i)}, 32)}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := another(), another()
	var wg sync.WaitGroup
	var got [2]store.Bound
	var errs [2]error
	for i, h := range []store.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = h.BindLegacy(c0, fakeBinder{})
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("BindLegacy = %v, %v", errs[0], errs[1])
	}
	if n := len(got[0].Environments) + len(got[1].Environments); n != 5 {
		t.Errorf("environments bound = %d + %d; want 5 in all (each once)", len(got[0].Environments), len(got[1].Environments))
	}
	for i := range 5 {
		th, _ := fakeBinder{}.BindEnvironment(store.Environment{TokenHash: bytes.Repeat([]byte{byte(10 + i)}, 32)})
		if _, err := s.EnvironmentByTokenHash(c0, th); err != nil {
			t.Errorf("env_%d after concurrent bind: %v; want it rekeyed once", i, err)
		}
	}
}

func testConnectEvents(t *testing.T, open, another func() store.Store, clk *clock) {
	s, other := open(), another()
	c := ctx(t)
	if id, err := s.LastConnectEventID(c); err != nil || id != 0 {
		t.Fatalf("LastConnectEventID() on an empty store = %d, %v; want 0, nil", id, err)
	}
	for _, bad := range []store.ConnectEvent{
		{Host: "dev.azure.com", Kind: store.OAuth, OK: true},
		{Owner: "alice", Kind: store.OAuth, OK: true},
		{Owner: "alice", Host: "dev.azure.com", Kind: "ssh", OK: true},
		{Owner: "alice", Host: "dev.azure.com", Kind: store.OAuth},
	} {
		if _, err := s.AddConnectEvent(c, bad); err == nil {
			t.Errorf("AddConnectEvent(%+v) = nil error; want a refusal", bad)
		}
	}
	ok := store.ConnectEvent{Owner: "alice", Env: "env1", Host: "dev.azure.com", Kind: store.OAuth, OK: true, Identity: "alice@contoso.com"}
	id1, err := s.AddConnectEvent(c, ok)
	if err != nil {
		t.Fatalf("AddConnectEvent: %v", err)
	}
	failed := store.ConnectEvent{Owner: "bob", Host: "dev.azure.com", Kind: store.PAT, Reason: "identity mismatch"}
	id2, err := other.AddConnectEvent(c, failed)
	if err != nil {
		t.Fatalf("AddConnectEvent on another handle: %v", err)
	}
	if id2 <= id1 {
		t.Fatalf("event IDs %d then %d; want increasing", id1, id2)
	}
	// Either handle sees both, in order, with every field.
	got, err := other.ConnectEvents(c, 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("ConnectEvents(0) = %+v, %v; want 2 events", got, err)
	}
	ok.ID, failed.ID = id1, id2
	for i, want := range []store.ConnectEvent{ok, failed} {
		g := got[i]
		if !g.At.Equal(epoch) {
			t.Errorf("event %d At = %v; want %v", i, g.At, epoch)
		}
		g.At = time.Time{}
		if g != want {
			t.Errorf("event %d = %+v; want %+v", i, g, want)
		}
	}
	if got, err := s.ConnectEvents(c, id1); err != nil || len(got) != 1 || got[0].ID != id2 {
		t.Errorf("ConnectEvents(%d) = %+v, %v; want only event %d", id1, got, err, id2)
	}
	if last, err := s.LastConnectEventID(c); err != nil || last != id2 {
		t.Errorf("LastConnectEventID() = %d, %v; want %d", last, err, id2)
	}
	// Old events are forgotten when a new one is added.
	clk.Set(epoch.Add(store.ConnectEventRetention + time.Minute))
	id3, err := s.AddConnectEvent(c, ok)
	if err != nil {
		t.Fatalf("AddConnectEvent: %v", err)
	}
	if got, err := s.ConnectEvents(c, 0); err != nil || len(got) != 1 || got[0].ID != id3 {
		t.Errorf("ConnectEvents(0) after the retention = %+v, %v; want only event %d", got, err, id3)
	}
	if last, err := other.LastConnectEventID(c); err != nil || last != id3 {
		t.Errorf("LastConnectEventID() = %d, %v; want %d", last, err, id3)
	}
}

func testProviderFingerprints(t *testing.T, open, another func() store.Store, _ *clock) {
	s, other := open(), another()
	c := ctx(t)
	if got, err := s.ProviderFingerprints(c); err != nil || len(got) != 0 {
		t.Fatalf("ProviderFingerprints() on an empty store = %v, %v; want none", got, err)
	}
	want := map[string]string{"dev.azure.com": "client-a|tenant-a", "tfs.example.com": ""}
	if err := s.SetProviderFingerprints(c, want); err != nil {
		t.Fatal(err)
	}
	got, err := other.ProviderFingerprints(c)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ProviderFingerprints() = %v, %v; want %v", got, err, want)
	}
	if err := other.SetProviderFingerprints(c, map[string]string{"dev.azure.com": "client-b|tenant-a"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ProviderFingerprints(c); err != nil || len(got) != 1 || got["dev.azure.com"] != "client-b|tenant-a" {
		t.Errorf("ProviderFingerprints() after a replace = %v, %v; want only dev.azure.com's new one", got, err)
	}
}

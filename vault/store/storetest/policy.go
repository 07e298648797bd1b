package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// testEnvironmentPolicy: a policy is stored with its environment, read
// back by token hash and in listings, replaced with its version counting
// up, and seen at once through another handle (another replica).
func testEnvironmentPolicy(t *testing.T, open, another func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	hash := bytes.Repeat([]byte{7}, 32)
	pol := store.Policy{
		AllowRepos:    []string{"dev.azure.com/contoso/Fabrikam/web", "dev.azure.com/contoso/Fabrikam/*"},
		ReadOnlyRepos: []string{"dev.azure.com/contoso/Shared/*"},
		PushRefs:      []string{"refs/heads/agent/*"},
		ProxyOnly:     true,
	}
	if err := s.CreateEnvironment(c0, store.Environment{ID: "env_p", Owner: "ann", TokenHash: hash, Policy: pol, PolicyVersion: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEnvironment(c0, store.Environment{ID: "env_none", Owner: "ann", TokenHash: bytes.Repeat([]byte{8}, 32)}); err != nil {
		t.Fatal(err)
	}
	got, err := another().EnvironmentByTokenHash(c0, hash)
	if err != nil || !reflect.DeepEqual(got.Policy, pol) || got.PolicyVersion != 1 {
		t.Fatalf("EnvironmentByTokenHash = policy %+v v%d, %v; want %+v v1", got.Policy, got.PolicyVersion, err, pol)
	}
	if got, err := s.EnvironmentByTokenHash(c0, bytes.Repeat([]byte{8}, 32)); err != nil || !got.Policy.IsZero() || got.PolicyVersion != 0 {
		t.Fatalf("environment without a policy = %+v v%d, %v; want the zero policy, v0", got.Policy, got.PolicyVersion, err)
	}

	narrower := store.Policy{AllowRepos: []string{"dev.azure.com/contoso/Fabrikam/web"}}
	var seen store.Environment
	mac := func(e store.Environment) []byte { seen = e; return []byte(fmt.Sprintf("mac-v%d", e.PolicyVersion)) }
	upd, err := s.SetEnvironmentPolicy(c0, "env_p", to(narrower), mac)
	if err != nil || upd.ID != "env_p" || upd.Owner != "ann" || !reflect.DeepEqual(upd.Policy, narrower) || upd.PolicyVersion != 2 || len(upd.TokenHash) != 0 {
		t.Fatalf("SetEnvironmentPolicy = %+v, %v; want env_p with %+v v2 and no token hash", upd, err, narrower)
	}
	// The MAC is made over the row as it is stored: new policy, new
	// version, token hash included.
	if seen.ID != "env_p" || seen.Owner != "ann" || seen.PolicyVersion != 2 || !reflect.DeepEqual(seen.Policy, narrower) || !bytes.Equal(seen.TokenHash, hash) {
		t.Errorf("mac saw %+v; want env_p at version 2 with the new policy and its token hash", seen)
	}
	// The next request on any replica reads the new policy and MAC.
	if got, _ := another().EnvironmentByTokenHash(c0, hash); !reflect.DeepEqual(got.Policy, narrower) || got.PolicyVersion != 2 || string(got.MAC) != "mac-v2" {
		t.Errorf("after SetEnvironmentPolicy, another handle reads %+v v%d MAC %q; want %+v v2 mac-v2", got.Policy, got.PolicyVersion, got.MAC, narrower)
	}
	// Clearing is a change too: the version keeps counting.
	if upd, err := another().SetEnvironmentPolicy(c0, "env_p", to(store.Policy{}), mac); err != nil || !upd.Policy.IsZero() || upd.PolicyVersion != 3 {
		t.Errorf("SetEnvironmentPolicy(zero) = %+v v%d, %v; want the zero policy, v3", upd.Policy, upd.PolicyVersion, err)
	}
	if _, err := s.SetEnvironmentPolicy(c0, "env_404", to(narrower), mac); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetEnvironmentPolicy(unknown) = %v; want ErrNotFound", err)
	}
	envs, err := s.ListEnvironments(c0, "ann")
	if err != nil || len(envs) != 2 {
		t.Fatalf("ListEnvironments = %+v, %v; want 2", envs, err)
	}
	if _, err := s.SetEnvironmentPolicy(c0, "env_none", to(pol), nil); err != nil {
		t.Fatal(err)
	}
	envs, _ = another().ListEnvironments(c0, "ann")
	for _, e := range envs {
		switch e.ID {
		case "env_p":
			if !e.Policy.IsZero() || e.PolicyVersion != 3 {
				t.Errorf("listed env_p = %+v v%d; want no policy, v3", e.Policy, e.PolicyVersion)
			}
		case "env_none":
			if !reflect.DeepEqual(e.Policy, pol) || e.PolicyVersion != 1 {
				t.Errorf("listed env_none = %+v v%d; want %+v v1", e.Policy, e.PolicyVersion, pol)
			}
		}
	}
}

// testConcurrentSetPolicy: every update through any replica counts one
// version, and an update made of the current policy loses none.
func testConcurrentSetPolicy(t *testing.T, open, another func() store.Store, _ *clock) {
	a, b, c0 := open(), another(), ctx(t)
	if err := a.CreateEnvironment(c0, store.Environment{ID: "env_c", Owner: "ann", TokenHash: bytes.Repeat([]byte{1}, 32)}); err != nil {
		t.Fatal(err)
	}
	const each = 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for i, s := range []store.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				// Each update adds one ref to the current policy: a lost
				// update would lose a ref.
				add := func(cur store.Environment) (store.Policy, error) {
					p := cur.Policy
					p.PushRefs = append(slices.Clip(p.PushRefs), fmt.Sprintf("refs/heads/h%d-%d", i, j))
					return p, nil
				}
				if _, err := s.SetEnvironmentPolicy(c0, "env_c", add, func(e store.Environment) []byte { return []byte(fmt.Sprint(e.PolicyVersion)) }); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent SetEnvironmentPolicy: %v", err)
	}
	if got, _ := a.EnvironmentByTokenHash(c0, bytes.Repeat([]byte{1}, 32)); got.PolicyVersion != 2*each || string(got.MAC) != fmt.Sprint(2*each) || len(got.Policy.PushRefs) != 2*each {
		t.Errorf("after %d updates: version %d, MAC %q, %d refs; want every update counted and kept", 2*each, got.PolicyVersion, got.MAC, len(got.Policy.PushRefs))
	}
	// A change that fails writes nothing.
	boom := errors.New("boom")
	if _, err := b.SetEnvironmentPolicy(c0, "env_c", func(store.Environment) (store.Policy, error) { return store.Policy{}, boom }, nil); !errors.Is(err, boom) {
		t.Errorf("SetEnvironmentPolicy with a failing change = %v; want its error", err)
	}
	if got, _ := a.EnvironmentByTokenHash(c0, bytes.Repeat([]byte{1}, 32)); got.PolicyVersion != 2*each || len(got.Policy.PushRefs) != 2*each {
		t.Errorf("a failed change wrote version %d with %d refs", got.PolicyVersion, len(got.Policy.PushRefs))
	}
}

// auditIDs returns the IDs of events, for messages.
func auditIDs(es []store.AuditEvent) []int64 {
	var out []int64
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

// testAuditEvents: a batch is stored whole, read back through another
// handle with every field, filtered by owner, environment, repository
// (any case) and time, limited to the newest, and deleted by age.
func testAuditEvents(t *testing.T, open, another func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 123_000, time.UTC)
	push := store.AuditEvent{Time: t0.Add(2 * time.Minute), Env: "env_1", Owner: "ann", Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Repo: "Web",
		Operation: "push", Refs: []store.AuditRef{{Name: "refs/heads/main", Old: "1111111111111111111111111111111111111111", New: "2222222222222222222222222222222222222222"},
			{Name: "refs/heads/agent/x", Old: "0000000000000000000000000000000000000000", New: "3333333333333333333333333333333333333333"}},
		Status: 403, Refused: "ref_not_allowed: refs/heads/main", BytesIn: 1234, BytesOut: 56, DurationMS: 7}
	events := []store.AuditEvent{
		{Time: t0, Env: "env_1", Owner: "ann", Host: "dev.azure.com", Org: "contoso", Project: "Fabrikam", Repo: "web", Operation: "fetch", Status: 200, BytesIn: 10, BytesOut: 99999, DurationMS: 250},
		push,
		{Time: t0.Add(time.Minute), Env: "env_2", Owner: "bob", Host: "tfs.example:8443", Org: "coll", Project: "p", Repo: "other", Operation: "ls-remote", Status: 200},
		{Time: t0.Add(3 * time.Minute), Env: "env_1", Owner: "ann", Host: "dev.azure.com", Operation: "rest", Status: 403, Refused: "unmapped"},
	}
	if err := s.AddAuditEvents(c0, events); err != nil {
		t.Fatal(err)
	}
	all, err := another().AuditEvents(c0, store.AuditFilter{})
	if err != nil || len(all) != 4 {
		t.Fatalf("AuditEvents(all) = %v, %v; want 4 events", auditIDs(all), err)
	}
	// Oldest first; IDs in insertion order.
	wantOrder := []int{0, 2, 1, 3}
	for i, w := range wantOrder {
		got, want := all[i], events[w]
		want.ID = got.ID
		if !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC {
			t.Errorf("event %d Time = %v; want %v in UTC", i, got.Time, want.Time)
		}
		got.Time, want.Time = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("event %d = %+v; want %+v", i, got, want)
		}
	}
	if !(all[0].ID < all[2].ID && all[2].ID < all[1].ID && all[1].ID < all[3].ID) {
		t.Errorf("IDs %v do not follow the order of the batch", auditIDs(all))
	}
	tests := []struct {
		name string
		f    store.AuditFilter
		want []string // Operation@Env
	}{
		{"owner", store.AuditFilter{Owner: "ann"}, []string{"fetch@env_1", "push@env_1", "rest@env_1"}},
		{"env", store.AuditFilter{Env: "env_2"}, []string{"ls-remote@env_2"}},
		{"repo in another case", store.AuditFilter{Repo: "WEB"}, []string{"fetch@env_1", "push@env_1"}},
		{"since is inclusive", store.AuditFilter{Since: t0.Add(time.Minute)}, []string{"ls-remote@env_2", "push@env_1", "rest@env_1"}},
		{"owner and since", store.AuditFilter{Owner: "ann", Since: t0.Add(time.Second)}, []string{"push@env_1", "rest@env_1"}},
		{"limit keeps the newest", store.AuditFilter{Limit: 2}, []string{"push@env_1", "rest@env_1"}},
		{"no match", store.AuditFilter{Owner: "carol"}, nil},
	}
	for _, tt := range tests {
		got, err := s.AuditEvents(c0, tt.f)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var names []string
		for _, e := range got {
			names = append(names, e.Operation+"@"+e.Env)
		}
		if !reflect.DeepEqual(names, tt.want) {
			t.Errorf("%s: AuditEvents(%+v) = %v; want %v", tt.name, tt.f, names, tt.want)
		}
	}
	// Retention: strictly older than the cut-off goes.
	n, err := another().DeleteAuditEvents(c0, t0.Add(2*time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("DeleteAuditEvents = %d, %v; want 2", n, err)
	}
	left, _ := s.AuditEvents(c0, store.AuditFilter{})
	if len(left) != 2 || left[0].Operation != "push" || left[1].Operation != "rest" {
		t.Errorf("after retention: %v; want the push and the rest call", left)
	}
	if n, err := s.DeleteAuditEvents(c0, t0); err != nil || n != 0 {
		t.Errorf("DeleteAuditEvents with nothing to delete = %d, %v; want 0, nil", n, err)
	}
	if err := s.AddAuditEvents(c0, nil); err != nil {
		t.Errorf("AddAuditEvents(nil) = %v; want nil", err)
	}
}

// testAddAuditEventsAtomic: a batch with one incomplete event stores
// nothing.
func testAddAuditEventsAtomic(t *testing.T, open, _ func() store.Store, _ *clock) {
	s, c0 := open(), ctx(t)
	good := store.AuditEvent{Time: epoch, Env: "env_1", Owner: "ann", Host: "dev.azure.com", Operation: "fetch", Status: 200}
	for _, bad := range []store.AuditEvent{
		{Env: "env_1", Owner: "ann", Host: "dev.azure.com", Operation: "fetch"},
		{Time: epoch, Owner: "ann", Host: "dev.azure.com", Operation: "fetch"},
		{Time: epoch, Env: "env_1", Host: "dev.azure.com", Operation: "fetch"},
		{Time: epoch, Env: "env_1", Owner: "ann", Operation: "fetch"},
		{Time: epoch, Env: "env_1", Owner: "ann", Host: "dev.azure.com"},
	} {
		if err := s.AddAuditEvents(c0, []store.AuditEvent{good, bad}); err == nil {
			t.Errorf("AddAuditEvents(good, %+v) = nil; want an error", bad)
		}
	}
	if got, err := s.AuditEvents(c0, store.AuditFilter{}); err != nil || len(got) != 0 {
		t.Errorf("after refused batches: %v, %v; want none stored", auditIDs(got), err)
	}
}

// to is a change that sets p whatever the current policy.
func to(p store.Policy) func(store.Environment) (store.Policy, error) {
	return func(store.Environment) (store.Policy, error) { return p, nil }
}

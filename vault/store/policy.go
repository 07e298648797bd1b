package store

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// encodePolicy is the text a store keeps for p: "" for none, else its JSON.
func encodePolicy(p Policy) (string, error) {
	if p.IsZero() {
		return "", nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("store: encode policy: %w", err)
	}
	return string(b), nil
}

// decodePolicy reads what encodePolicy wrote.
func decodePolicy(s string) (Policy, error) {
	var p Policy
	if s == "" {
		return p, nil
	}
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return Policy{}, fmt.Errorf("store: decode policy: %w", err)
	}
	return p, nil
}

// encodeRefs is the text a store keeps for a push's refs: "" for none.
func encodeRefs(refs []AuditRef) (string, error) {
	if len(refs) == 0 {
		return "", nil
	}
	b, err := json.Marshal(refs)
	if err != nil {
		return "", fmt.Errorf("store: encode audit refs: %w", err)
	}
	return string(b), nil
}

func decodeRefs(s string) ([]AuditRef, error) {
	if s == "" {
		return nil, nil
	}
	var refs []AuditRef
	if err := json.Unmarshal([]byte(s), &refs); err != nil {
		return nil, fmt.Errorf("store: decode audit refs: %w", err)
	}
	return refs, nil
}

// checkAuditEvent refuses an event that AddAuditEvents must not store.
func checkAuditEvent(e AuditEvent) error {
	if e.Time.IsZero() || e.Env == "" || e.Owner == "" || e.Host == "" || e.Operation == "" {
		return errors.New("store: an audit event needs a time, an environment, an owner, a host and an operation")
	}
	return nil
}

// sortAuditEvents orders events oldest first, by time then ID.
func sortAuditEvents(es []AuditEvent) {
	slices.SortFunc(es, func(a, b AuditEvent) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.ID, b.ID))
	})
}

package store

import (
	"errors"
	"time"
)

// ConnectEventRetention is how long the stores keep connect events: longer
// than any wait for a Connect (a link lives 15 minutes), short enough that
// the table stays small.
const ConnectEventRetention = time.Hour

// MaxConnectEvents bounds one ConnectEvents answer.
const MaxConnectEvents = 500

// ConnectEvent records the outcome of a Connect or PAT flow, so that an
// environment waiting for its user (on any replica) learns of it: the user
// connected (OK, with the identity that signed in), or a used link failed
// (Reason: an identity mismatch, a denied consent). Nothing in it is
// secret.
type ConnectEvent struct {
	ID    int64
	Owner string
	Env   string // the environment whose link was used ("" when unknown)
	Host  string
	Kind  Kind
	OK    bool
	// Identity is who signed in (a UPN), "" for a PAT or when unknown.
	Identity string
	// Reason says why a flow failed; "" when OK.
	Reason string
	At     time.Time
}

// checkConnectEvent refuses an event AddConnectEvent must not store.
func checkConnectEvent(e ConnectEvent) error {
	if e.Owner == "" || e.Host == "" || (e.Kind != OAuth && e.Kind != PAT) {
		return errors.New("store: a connect event needs an owner, a host and a kind")
	}
	if !e.OK && e.Reason == "" {
		return errors.New("store: a failed connect event needs a reason")
	}
	return nil
}

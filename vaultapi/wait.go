package vaultapi

// ConnectWaitPath is the path of the connect wait endpoint: an environment
// at start long-polls it until its user has connected.
const ConnectWaitPath = "/v1/connect/wait"

// ConnectWaitRequest is the body of POST /v1/connect/wait, sent with
// "Authorization: Bearer <environment token>" like a token request.
type ConnectWaitRequest struct {
	Host string `json:"host"`
	Org  string `json:"org"`
	// WaitSeconds is how long the vault may hold the request (capped by
	// the vault, 120); 0 answers at once (with the links and a cursor).
	WaitSeconds int `json:"wait_seconds"`
	// Cursor is the cursor of the previous answer: the wait ends with the
	// first connect outcome after it.
	Cursor int64 `json:"cursor"`
}

// Connect wait states (ConnectWaitResponse.State).
const (
	WaitConnected = "connected" // a credential serves the host now
	WaitWaiting   = "waiting"   // not yet: ask again with Cursor
	WaitFailed    = "failed"    // a link was used and failed: Reason says why
)

// ConnectWaitResponse is the 200 answer of POST /v1/connect/wait. Errors
// (401, 400, 503) are ErrorResponse, as for POST /v1/token.
type ConnectWaitResponse struct {
	State string `json:"state"`
	// Kind is "oauth" or "pat": how the user connected (connected only).
	Kind string `json:"kind,omitempty"`
	// Identity is who signed in (Entra ID), when the vault knows it.
	Identity string `json:"identity,omitempty"`
	// Reason says why the last link failed (failed), or why a reconnect is
	// needed (waiting).
	Reason    string `json:"reason,omitempty"`
	Reconnect bool   `json:"reconnect,omitempty"`
	// ConnectURL and PATURL are fresh links (waiting and failed), made
	// for a waiting environment: the pages tell the user they may close
	// the window once done.
	ConnectURL string `json:"connect_url,omitempty"`
	PATURL     string `json:"pat_url,omitempty"`
	Cursor     int64  `json:"cursor"`
}

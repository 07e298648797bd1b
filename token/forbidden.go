package token

import "fmt"

// ForbiddenError says the environment's policy forbids what was asked: the
// vault answered 403 forbidden_by_policy for a host or organization that no
// --allow-repo pattern of the environment allows. It is the vault's
// considered answer, like ConnectError: the cache does not retry it, but
// does not remember it either, so an administrator's env update is seen at
// the next request.
type ForbiddenError struct {
	Key Key
	// Message is the vault's explanation, for the user; never secret.
	Message string
}

// Error implements error.
func (e *ForbiddenError) Error() string {
	msg := fmt.Sprintf("Azure DevOps (%s): forbidden by this environment's policy", e.Key)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

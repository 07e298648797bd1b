package credential

// ClientKey marks a request as sent by this package's Client (our helper,
// git-credential-azdo), as opposed to git's own credential-cache client
// ("credential.helper=cache --socket=<sidecar socket>"), which reaches the
// same socket. Git's client relays git's request as it is (see git's
// credential-cache.c: "action=", "timeout=", then git's credential lines),
// and git writes only the keys it knows, so this key never comes from it.
//
// The difference matters for answers our client must turn into a stderr
// line (MessageKey, with quit=1): git's cache client cannot print it, so
// the Server gives it an empty answer instead and git moves on to the next
// helper — our own, which gets quit=1 and the message. See Server.
const ClientKey = "azdo_client"

// markClient appends the ClientKey line to an encoded request.
func markClient(body []byte) []byte {
	return append(body, ClientKey+"=1\n"...)
}

// fromClient reports whether req came from our Client, and removes the
// mark so the Handler sees git's attributes only.
func fromClient(req *Credential) bool {
	_, ok := req.Get(ClientKey)
	req.Del(ClientKey)
	return ok
}

// forClient returns the answer to write for ans: ans itself for our
// Client; for git's cache client, nil (an empty answer, git asks its next
// helper) when ans is a message for stderr or a quit, since git's client
// would drop the message and git would stop without saying why.
func forClient(ours bool, ans *Credential) *Credential {
	if ours || ans == nil {
		return ans
	}
	if _, msg := ans.Get(MessageKey); msg || ans.Quit {
		return nil
	}
	return ans
}

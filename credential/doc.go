// Package credential speaks git's credential-helper protocol
// (git help credential) and serves it to git.
//
// It has three parts:
//
//   - the codec: Read/Parse and Write/Append for credential descriptions,
//     every attribute up to git 2.46 (capability[], authtype, credential,
//     ephemeral, state[], continue), with git's own rules for url=,
//     multi-valued keys and line limits;
//   - the Unix-socket server and client: the wire protocol is the one git's
//     credential-cache client speaks to its daemon (action=, timeout=, then
//     the credential, write side closed, answer lines back), so both
//     "git credential-cache --socket=<sock>" and our own small client reach
//     the sidecar;
//   - the handler that turns tokens (token.Source) into answers for Azure
//     DevOps hosts.
//
// This package is linked into the small git-credential-azdo binary, whose
// start-up is on git's critical path: it imports only the standard library
// (no net/http), token, azdo and secret.
package credential

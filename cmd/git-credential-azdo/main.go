// Command git-credential-azdo is the git credential helper of azdo-sidecar,
// so that credential.helper=azdo (or its absolute path) works.
//
// Git starts it for every authenticated request, so its start-up is on the
// user's critical path: it is a binary of its own that links only the
// protocol, the socket client, the URL model and the standard library (no
// CLI framework, no HTTP), and does one socket round trip.
//
// Usage: git-credential-azdo [--socket PATH] [--pat-file FILE] [--host HOST[:PORT]]... [--config FILE] get|store|erase
//
// Each flag also reads AZDO_SOCKET, AZDO_PAT_FILE, AZDO_HOST (a
// comma-separated list) and AZDO_CONFIG; the --config file (azdo-sidecar's
// settings file) may set socket, pat-file and host; AZDO_PAT holds a PAT
// directly. Precedence: flag > environment > file > default. With a PAT the
// helper answers in-process (standalone mode); otherwise it asks the
// running sidecar on its socket.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr))
}

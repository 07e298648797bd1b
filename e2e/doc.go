// Package e2e holds the end-to-end tests: real git 2.39, go-git and the
// project's binaries against the Azure DevOps emulator (e2e/azdoemu), the
// Entra ID emulator (e2e/entraemu) and a recorder standing for every other
// host (e2e/recorder), wired together by e2e/testenv.
//
// Run them with `go test ./e2e/...`; `go run ./e2e/cmd/emulators` starts
// the emulators for trying things by hand.
package e2e

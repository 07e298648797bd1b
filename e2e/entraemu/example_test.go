package entraemu_test

import (
	"fmt"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/entraemu"
	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// Seed a grant without a browser, check its access token the way the Azure
// DevOps emulator does, and revoke it.
func Example() {
	srv, err := entraemu.New(entraemu.Config{AccessTokenLifetime: 70 * time.Minute})
	if err != nil {
		panic(err)
	}
	srv.Start()
	defer srv.Close()

	srv.RegisterApp("app-id", secret.New("app-secret"), []string{"https://runner.example/oauth/callback"})
	if _, err := srv.AddUser(entraemu.User{UPN: "alice@contoso.example"}); err != nil {
		panic(err)
	}
	tok, err := srv.IssueTokensForTest("alice@contoso.example")
	if err != nil {
		panic(err)
	}
	sub, err := srv.VerifyAccessToken(tok.AccessToken.Reveal()) // azdoemu's BearerVerifier
	fmt.Println(sub, err, tok.ExpiresIn)
	_ = srv.RevokeUser("alice@contoso.example") // the next refresh fails with AADSTS50173
	// Output: alice@contoso.example <nil> 4200
}

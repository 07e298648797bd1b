package config

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

var sealed = base64.StdEncoding.EncodeToString(make([]byte, 64))

func vaultYAML(providers string) string {
	return "public_url: https://runner.example.com:8443\nproviders:\n" + providers
}

func TestLoadVaultFile(t *testing.T) {
	good := vaultYAML(`  - host: dev.azure.com
    oauth:
      issuer_url: https://login.microsoftonline.com/tid/v2.0
      client_id: 00000000-0000-0000-0000-000000000001
      client_secret_sealed: ` + sealed + `
    pat:
      enabled: true
  - host: TFS.example.com:443
    pat: {enabled: true}
  - host: ado.example.com:8443/Virtual/Dir/
    pat: {enabled: true}
`)
	p := writeFile(t, "vault.yaml", good+"listen: :9000\nstore: sqlite:/tmp/x.db\nkey_file: /k\n", 0o644)
	v, err := LoadVaultFile(p)
	if err != nil {
		t.Fatalf("LoadVaultFile(good) = %v", err)
	}
	if got := v.Providers[2]; got.Host != "ado.example.com:8443" || got.VirtualDir != "Virtual/Dir" {
		t.Errorf("providers[2] host, virtual dir = %q, %q; want ado.example.com:8443, Virtual/Dir", got.Host, got.VirtualDir)
	}
	if len(v.Providers) != 3 || v.Providers[0].OAuth == nil || v.Providers[0].OAuth.ClientSecretSealed != sealed || !v.Providers[0].PAT.Enabled {
		t.Errorf("LoadVaultFile(good) = %+v; want both providers decoded", v)
	}
	if got := v.Providers[1].Host; got != "tfs.example.com" {
		t.Errorf("providers[1].host = %q; want it normalized to tfs.example.com", got)
	}
	if got, want := v.CallbackURL(), "https://runner.example.com:8443/oauth/callback"; got != want {
		t.Errorf("CallbackURL() = %q; want %q", got, want)
	}

	if v.Identity.Claim != "preferred_username" || v.Identity.InsecureSkipOwnerCheck || len(v.Identity.Owners) != 0 {
		t.Errorf("identity without an identity section = %+v; want claim preferred_username, check on, no mapping", v.Identity)
	}
	ident := writeFile(t, "i.yaml", good+"identity:\n  claim: upn\n  owners:\n    alice: alice@contoso.com\n  insecure-skip-owner-check: true\n", 0o644)
	if v, err := LoadVaultFile(ident); err != nil || v.Identity.Claim != "upn" || v.Identity.Owners["alice"] != "alice@contoso.com" || !v.Identity.InsecureSkipOwnerCheck {
		t.Errorf("LoadVaultFile(identity) = %+v, %v; want claim upn, alice mapped, the check off", v, err)
	}

	kebab := writeFile(t, "k.yaml", "public-url: http://127.0.0.1:8080/\nproviders:\n  - host: dev.azure.com\n    oauth: {issuer-url: 'http://127.0.0.1:9/t/v2.0', client-id: c, client-secret-sealed: "+sealed+"}\n", 0o644)
	if v, err := LoadVaultFile(kebab); err != nil || v.Providers[0].OAuth.ClientID != "c" {
		t.Errorf("LoadVaultFile(kebab-case keys) = %+v, %v; want accepted", v, err)
	}
}

func TestLoadVaultFileErrors(t *testing.T) {
	oauth := func(host, issuer, id, secret string) string {
		return "  - host: " + host + "\n    oauth:\n      issuer_url: " + issuer + "\n      client_id: " + id + "\n      client_secret_sealed: " + secret + "\n"
	}
	const issuer = "https://login.microsoftonline.com/tid/v2.0"
	tests := []struct {
		name     string
		yaml     string
		sentinel error
		key      string
	}{
		{name: "unknown top key", yaml: vaultYAML(oauth("dev.azure.com", issuer, "c", sealed)) + "public_urll: x\n", sentinel: ErrUnknownKey, key: "public_urll"},
		{name: "unknown nested key", yaml: vaultYAML("  - host: dev.azure.com\n    oauth:\n      client_idd: x\n"), sentinel: ErrUnknownKey, key: "providers[0].oauth.client_idd"},
		{name: "unknown provider key", yaml: vaultYAML("  - host: dev.azure.com\n    pat: {enabled: true}\n    ssh: {}\n"), sentinel: ErrUnknownKey, key: "providers[0].ssh"},
		{name: "no public url", yaml: "providers:\n" + oauth("dev.azure.com", issuer, "c", sealed), sentinel: ErrMissing, key: "public_url"},
		{name: "public url http", yaml: "public_url: http://runner.example.com\nproviders:\n" + oauth("dev.azure.com", issuer, "c", sealed), sentinel: ErrBadValue, key: "public_url"},
		{name: "public url relative", yaml: "public_url: runner.example.com\nproviders:\n" + oauth("dev.azure.com", issuer, "c", sealed), sentinel: ErrBadValue, key: "public_url"},
		{name: "no providers", yaml: "public_url: https://r.test\n", sentinel: ErrMissing, key: "providers"},
		{name: "bad host", yaml: vaultYAML("  - host: https://dev.azure.com\n    pat: {enabled: true}\n"), sentinel: ErrBadValue, key: "providers[0].host"},
		{name: "services with virtual dir", yaml: vaultYAML("  - host: dev.azure.com/tfs\n    pat: {enabled: true}\n"), sentinel: ErrBadValue, key: "providers[0].host"},
		{name: "bad virtual dir", yaml: vaultYAML("  - host: tfs.example.com/_git\n    pat: {enabled: true}\n"), sentinel: ErrBadValue, key: "providers[0].host"},
		{name: "plain http server", yaml: vaultYAML("  - host: http://tfs.example.com:8080/tfs\n    pat: {enabled: true}\n"), sentinel: ErrBadValue, key: "providers[0].host"},
		{name: "missing host", yaml: vaultYAML("  - pat: {enabled: true}\n"), sentinel: ErrMissing, key: "providers[0].host"},
		{name: "duplicate host", yaml: vaultYAML("  - host: dev.azure.com\n    pat: {enabled: true}\n  - host: DEV.azure.com:443\n    pat: {enabled: true}\n"), sentinel: ErrConflict, key: "providers[1].host"},
		{name: "no method", yaml: vaultYAML("  - host: dev.azure.com\n    pat: {enabled: false}\n"), sentinel: ErrMissing, key: "providers[0]"},
		{name: "no issuer", yaml: vaultYAML(oauth("dev.azure.com", "''", "c", sealed)), sentinel: ErrMissing, key: "providers[0].oauth.issuer_url"},
		{name: "issuer http", yaml: vaultYAML(oauth("dev.azure.com", "http://login.example.com/t", "c", sealed)), sentinel: ErrBadValue, key: "providers[0].oauth.issuer_url"},
		{name: "no client id", yaml: vaultYAML(oauth("dev.azure.com", issuer, "''", sealed)), sentinel: ErrMissing, key: "providers[0].oauth.client_id"},
		{name: "no client secret", yaml: vaultYAML(oauth("dev.azure.com", issuer, "c", "''")), sentinel: ErrMissing, key: "providers[0].oauth.client_secret_sealed"},
		{name: "unsealed client secret", yaml: vaultYAML(oauth("dev.azure.com", issuer, "c", "plain-client-secret~value")), sentinel: ErrBadValue, key: "providers[0].oauth.client_secret_sealed"},
		{name: "providers not a list", yaml: "public_url: https://r.test\nproviders: {host: dev.azure.com}\n", sentinel: ErrBadValue, key: "providers"},
		{name: "enabled not bool", yaml: vaultYAML("  - host: dev.azure.com\n    pat: {enabled: sure}\n"), sentinel: ErrBadValue, key: "providers[0].pat.enabled"},
		{name: "key twice", yaml: vaultYAML("  - host: dev.azure.com\n    host: x.test\n    pat: {enabled: true}\n"), sentinel: ErrBadValue, key: "providers[0].host"},
		{name: "not yaml", yaml: "public_url: [\n", sentinel: ErrBadValue, key: "config"},
		{name: "unknown identity claim", yaml: vaultYAML("  - host: dev.azure.com\n    pat: {enabled: true}\n") + "identity: {claim: sub}\n", sentinel: ErrBadValue, key: "identity.claim"},
		{name: "unknown identity key", yaml: vaultYAML("  - host: dev.azure.com\n    pat: {enabled: true}\n") + "identity: {skip_owner_check: true}\n", sentinel: ErrUnknownKey, key: "identity.skip_owner_check"},
		{name: "owners not a mapping", yaml: vaultYAML("  - host: dev.azure.com\n    pat: {enabled: true}\n") + "identity: {owners: [alice]}\n", sentinel: ErrBadValue, key: "identity.owners"},
		{name: "owner mapped to nothing", yaml: vaultYAML("  - host: dev.azure.com\n    pat: {enabled: true}\n") + "identity: {owners: {alice: ''}}\n", sentinel: ErrBadValue, key: "identity.owners.alice"},
		{name: "oid owner not an object ID", yaml: vaultYAML("  - host: dev.azure.com\n    pat: {enabled: true}\n") + "identity: {claim: oid, owners: {alice: alice@contoso.com}}\n", sentinel: ErrBadValue, key: "identity.owners.alice"},
		{name: "email claim with the common issuer", yaml: vaultYAML(oauth("dev.azure.com", "https://login.microsoftonline.com/common/v2.0", "c", sealed)) + "identity: {claim: email}\n", sentinel: ErrConflict, key: "providers[0].oauth.issuer_url"},
		{name: "email claim with the organizations issuer", yaml: vaultYAML(oauth("dev.azure.com", "https://login.microsoftonline.com/Organizations/oauth2/v2.0", "c", sealed)) + "identity: {claim: email}\n", sentinel: ErrConflict, key: "providers[0].oauth.issuer_url"},
		{name: "skip not bool", yaml: vaultYAML("  - host: dev.azure.com\n    pat: {enabled: true}\n") + "identity: {insecure_skip_owner_check: maybe}\n", sentinel: ErrBadValue, key: "identity.insecure_skip_owner_check"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "vault.yaml", tt.yaml, 0o644)
			_, err := LoadVaultFile(p)
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("LoadVaultFile(%s) = %v; want %v", tt.name, err, tt.sentinel)
			}
			if !strings.Contains("\n"+err.Error(), "\n"+tt.key+": ") {
				t.Errorf("LoadVaultFile(%s) = %q; want the key %q named", tt.name, err, tt.key)
			}
			if strings.Contains(err.Error(), "plain-client-secret~value") {
				t.Errorf("LoadVaultFile(%s) = %q; echoes the client secret", tt.name, err)
			}
		})
	}
	if _, err := LoadVaultFile("/nonexistent/vault.yaml"); !errors.Is(err, ErrMissingFile) {
		t.Errorf("LoadVaultFile(missing) = %v; want ErrMissingFile", err)
	}
}

// TestEmailClaimNeedsATenant: identity.claim email is accepted with an
// issuer that names a tenant, and other claims with a multi-tenant issuer;
// only the combination of the two is refused (see TestLoadVaultFileErrors).
func TestEmailClaimNeedsATenant(t *testing.T) {
	for _, c := range []struct{ issuer, claim string }{
		{"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0", "email"},
		{"https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0", "email"},
		{"https://login.microsoftonline.com/common/v2.0", "oid"},
		{"https://login.microsoftonline.com/organizations/v2.0", "preferred_username"},
	} {
		y := vaultYAML("  - host: dev.azure.com\n    oauth:\n      issuer_url: "+c.issuer+"\n      client_id: c\n      client_secret_sealed: "+sealed+"\n") + "identity: {claim: " + c.claim + "}\n"
		if _, err := LoadVaultFile(writeFile(t, "vault.yaml", y, 0o644)); err != nil {
			t.Errorf("issuer %s with claim %s: %v; want accepted", c.issuer, c.claim, err)
		}
	}
}

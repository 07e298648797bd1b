package entra

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckIssuerPlaceholder(t *testing.T) {
	const tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	p := &Provider{issuerTemplate: "https://login.example/{tenantid}/v2.0"}
	tests := []struct {
		name, iss, tid string
		ok             bool
	}{
		{"own tenant", "https://login.example/" + tid + "/v2.0", tid, true},
		{"iss of another tenant than tid", "https://login.example/00000000-0000-0000-0000-000000000001/v2.0", tid, false},
		{"other host", "https://evil.example/" + tid + "/v2.0", tid, false},
		{"tid not a GUID", "https://login.example/common/v2.0", "common", false},
		{"literal placeholder", "https://login.example/{tenantid}/v2.0", "{tenantid}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.checkIssuer(tt.iss, tt.tid)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrIDToken)) {
				t.Errorf("checkIssuer(%q, %q) = %v; want ok=%t", tt.iss, tt.tid, err, tt.ok)
			}
		})
	}
}

func TestIsTenantIssuer(t *testing.T) {
	const base = "https://login.example/contoso.com/v2.0"
	tests := []struct {
		iss  string
		want bool
	}{
		{"https://login.example/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0", true},
		{"https://evil.example/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0", false},
		{"http://login.example/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0", false},
		{"https://login.example/other.com/v2.0", false},
		{"https://login.example/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0/x", false},
	}
	for _, tt := range tests {
		if got := isTenantIssuer(tt.iss, base); got != tt.want {
			t.Errorf("isTenantIssuer(%q) = %t; want %t", tt.iss, got, tt.want)
		}
	}
}

func TestClassOfStatus(t *testing.T) {
	tests := []struct {
		name   string
		code   string
		aadsts int
		status int
		want   Class
	}{
		{"429 whatever the body", "invalid_grant", 50173, 429, Transient},
		{"503", "", 0, 503, Transient},
		{"aadsts wins over error", "invalid_request", 50173, 400, Permanent},
		{"unknown invalid_grant", "invalid_grant", 1, 400, Permanent},
		{"unknown 4xx page", "http_403", 0, 403, Misconfigured},
		{"unknown app by code", "unauthorized_client", 700016, 400, Misconfigured},
	}
	for _, tt := range tests {
		if got := classOf(tt.code, tt.aadsts, tt.status); got != tt.want {
			t.Errorf("%s: classOf(%q, %d, %d) = %s; want %s", tt.name, tt.code, tt.aadsts, tt.status, got, tt.want)
		}
	}
}

func FuzzNormalizeIssuer(f *testing.F) {
	for _, s := range []string{
		"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
		"https://login.microsoftonline.com/common/oauth2/v2.0/",
		"https://h:1/x/v2.0/.well-known/openid-configuration",
		"https://h/%2F/v2.0", "https://h//v2.0", "https://u@h/t/v2.0", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		base, tenant, err := NormalizeIssuer(raw)
		if err != nil {
			if !errors.Is(err, ErrIssuerURL) {
				t.Fatalf("NormalizeIssuer(%q) error %v is not ErrIssuerURL", raw, err)
			}
			return
		}
		if !strings.HasPrefix(base, "https://") || !strings.HasSuffix(base, "/"+tenant+"/v2.0") || tenant == "" {
			t.Fatalf("NormalizeIssuer(%q) = %q, %q; want https://…/%s/v2.0", raw, base, tenant, tenant)
		}
		again, tenant2, err := NormalizeIssuer(base)
		if err != nil || again != base || tenant2 != tenant {
			t.Fatalf("NormalizeIssuer(%q) = %q, %q, %v; not idempotent (first %q, %q)", base, again, tenant2, err, base, tenant)
		}
	})
}

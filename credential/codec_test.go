package credential

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  *Credential
	}{
		{"empty", "", &Credential{}},
		{"blank line only", "\n", &Credential{}},
		{
			"git 2.39 get",
			"protocol=https\nhost=dev.azure.com\npath=org/proj/_git/repo\nusername=org\n\n",
			&Credential{Protocol: "https", Host: "dev.azure.com", Path: "org/proj/_git/repo", Username: "org"},
		},
		{"EOF ends input", "protocol=https\nhost=x", &Credential{Protocol: "https", Host: "x"}},
		{"blank line ends input", "host=a\n\nhost=b\n", &Credential{Host: "a"}},
		{"CRLF", "host=a\r\nprotocol=https\r\n\r\n", &Credential{Host: "a", Protocol: "https"}},
		{"last wins", "host=a\nhost=b\n", &Credential{Host: "b"}},
		{"value with =", "password=a=b=\n", &Credential{Password: secret.New("a=b=")}},
		{"empty value", "host=\n", &Credential{}},
		{
			"password and expiry",
			"username=u\npassword=p\npassword_expiry_utc=1700000000\n",
			&Credential{Username: "u", Password: secret.New("p"), PasswordExpiry: time.Unix(1700000000, 0).UTC()},
		},
		{"bad expiry is unknown", "password_expiry_utc=soon\n", &Credential{}},
		{"zero expiry is unknown", "password_expiry_utc=0\n", &Credential{}},
		{"oauth refresh token", "oauth_refresh_token=r\n", &Credential{OAuthRefreshToken: secret.New("r")}},
		{
			"wwwauth list",
			"wwwauth[]=Bearer authorization_uri=https://login.microsoftonline.com/t\nwwwauth[]=Basic realm=\"https://dev.azure.com/\"\n",
			&Credential{WWWAuth: []string{"Bearer authorization_uri=https://login.microsoftonline.com/t", `Basic realm="https://dev.azure.com/"`}},
		},
		{"empty value resets list", "wwwauth[]=a\nwwwauth[]=\nwwwauth[]=b\n", &Credential{WWWAuth: []string{"b"}}},
		{
			"git 2.46 capabilities",
			"capability[]=authtype\ncapability[]=state\nprotocol=https\nhost=dev.azure.com\n",
			&Credential{Capabilities: []string{"authtype", "state"}, Protocol: "https", Host: "dev.azure.com"},
		},
		{
			"authtype answer",
			"capability[]=authtype\nauthtype=Bearer\ncredential=tok\nephemeral=1\n",
			&Credential{Capabilities: []string{"authtype"}, AuthType: "Bearer", Credential: secret.New("tok"), Ephemeral: true},
		},
		{
			"state and continue",
			"capability[]=state\nstate[]=helper:a\nstate[]=helper:b\ncontinue=true\n",
			&Credential{Capabilities: []string{"state"}, State: []string{"helper:a", "helper:b"}, Continue: true},
		},
		{"quit 1", "quit=1\n", &Credential{Quit: true}},
		{"quit true", "quit=true\n", &Credential{Quit: true}},
		{"quit yes", "quit=Yes\n", &Credential{Quit: true}},
		{"quit 0", "quit=0\n", &Credential{}},
		{"quit empty", "quit=\n", &Credential{}},
		{"quit integer", "quit=42\n", &Credential{Quit: true}},
		{
			"url expansion",
			"url=https://dev.azure.com/org/proj/_git/repo\n",
			&Credential{Protocol: "https", Host: "dev.azure.com", Path: "org/proj/_git/repo"},
		},
		{
			"url with org@",
			"url=https://org@dev.azure.com/org/proj/_git/repo\n",
			&Credential{Protocol: "https", Host: "dev.azure.com", Path: "org/proj/_git/repo", Username: "org"},
		},
		{
			"url with user and password, decoded",
			"url=https://us%40er:p%3Ass@host.example:8443/a%20b/c/\n",
			&Credential{Protocol: "https", Host: "host.example:8443", Path: "a b/c", Username: "us@er", Password: secret.New("p:ss")},
		},
		{"url plus stays plus", "url=https://h/a+b\n", &Credential{Protocol: "https", Host: "h", Path: "a+b"}},
		{"url bad escape kept", "url=https://h/a%zz%4\n", &Credential{Protocol: "https", Host: "h", Path: "a%zz%4"}},
		{"url no path", "url=https://dev.azure.com\n", &Credential{Protocol: "https", Host: "dev.azure.com"}},
		{"url query ends host", "url=https://h?x=1\n", &Credential{Protocol: "https", Host: "h", Path: "?x=1"}},
		{"url fragment ends host", "url=https://h#x@evil\n", &Credential{Protocol: "https", Host: "h", Path: "#x@evil"}},
		{
			"url resets earlier fields",
			"host=old\nwwwauth[]=x\nurl=https://new/p\n",
			&Credential{Protocol: "https", Host: "new", Path: "p"},
		},
		{
			"fields after url override it",
			"url=https://new/p\nusername=u\n",
			&Credential{Protocol: "https", Host: "new", Path: "p", Username: "u"},
		},
		{
			"unknown keys preserved in order",
			"host=h\nazdo_message=hello\nfuture[]=a\nfuture[]=b\n",
			&Credential{Host: "h", Extra: []Attr{{"azdo_message", "hello"}, {"future[]", "a"}, {"future[]", "b"}}},
		},
		{"unknown list reset", "future[]=a\nfuture[]=\n", &Credential{}},
		{"line at the limit", "host=" + strings.Repeat("a", MaxLine-5) + "\n", &Credential{Host: strings.Repeat("a", MaxLine-5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.input))
			if err != nil {
				t.Fatalf("Parse(%q) error = %v; want nil", tt.input, err)
			}
			if !equal(got, tt.want) {
				t.Errorf("Parse(%q) = %s; want %s", tt.input, dump(got), dump(tt.want))
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	tests := []struct {
		name  string
		input string
	}{
		{"no equals", "protocol https\n"},
		{"no equals after good line", "host=h\njunk\n"},
		{"empty key", "=value\n"},
		{"NUL in value", "host=a\x00b\n"},
		{"NUL in key", "ho\x00st=a\n"},
		{"line too long", "host=" + strings.Repeat("a", MaxLine-4) + "\n"},
		{"line too long at EOF", "host=" + strings.Repeat("a", 200000)},
		{"bad boolean", "quit=maybe\n"},
		{"url without scheme", "url=dev.azure.com/org\n"},
		{"url empty scheme", "url=://dev.azure.com/org\n"},
		{"url newline in host", "url=https://h%0a.evil/p\n"},
		{"url newline in path", "url=https://h/p%0Apassword=x\n"},
		{"url NUL in user", "url=https://u%00@h/\n"},
		{"too many lines", strings.Repeat("wwwauth[]=x\n", maxLines+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.input))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse(%.60q) = %v, %v; want ErrMalformed", tt.input, dump(got), err)
			}
		})
	}
}

// TestParseErrorsHideValues: an error names the key, never the value.
func TestParseErrorsHideValues(t *testing.T) {
	const tok = "eyJ0eXAiOiJKV1Qi-secret"
	for _, in := range []string{
		"password" + tok + "\n",
		"quit=" + tok + "\n",
		"url=" + tok + "\n",
		"url=https://u:" + tok + "%0a@h/\n",
		tok + "\x00=1\n",
	} {
		_, err := Parse([]byte(in))
		if err == nil {
			t.Fatalf("Parse(%q) = nil error; want one", in)
		}
		if strings.Contains(err.Error(), tok) {
			t.Errorf("Parse(%q) error %q contains the secret", in, err)
		}
	}
}

func TestWrite(t *testing.T) {
	exp := time.Unix(1800000000, 0)
	tests := []struct {
		name string
		in   *Credential
		want string
	}{
		{"empty", &Credential{}, ""},
		{
			"basic answer",
			&Credential{Username: "azdo-sidecar", Password: secret.New("pat"), PasswordExpiry: exp},
			"username=azdo-sidecar\npassword=pat\npassword_expiry_utc=1800000000\n",
		},
		{
			"fixed order, capability first",
			&Credential{
				Quit: true, Extra: []Attr{{"azdo_message", "m"}}, WWWAuth: []string{"Basic"},
				PasswordExpiry: exp, OAuthRefreshToken: secret.New("r"), Password: secret.New("p"),
				Username: "u", Path: "o/p", Host: "h", Protocol: "https",
				Ephemeral: true, Credential: secret.New("c"), AuthType: "Bearer",
				Capabilities: []string{CapAuthType},
			},
			"capability[]=authtype\nauthtype=Bearer\ncredential=c\nephemeral=1\nprotocol=https\nhost=h\npath=o/p\n" +
				"username=u\npassword=p\noauth_refresh_token=r\npassword_expiry_utc=1800000000\nwwwauth[]=Basic\nquit=1\nazdo_message=m\n",
		},
		{
			"2.46 attributes dropped without capability",
			&Credential{AuthType: "Bearer", Credential: secret.New("c"), Ephemeral: true, State: []string{"s"}, Continue: true, Host: "h"},
			"host=h\n",
		},
		{
			"state only with state capability",
			&Credential{Capabilities: []string{CapState}, AuthType: "Bearer", State: []string{"a:1", "a:2"}, Continue: true},
			"capability[]=state\ncontinue=1\nstate[]=a:1\nstate[]=a:2\n",
		},
		{"false booleans omitted", &Credential{Capabilities: []string{CapAuthType, CapState}}, "capability[]=authtype\ncapability[]=state\n"},
		{"extra empty value kept", &Credential{Extra: []Attr{{"k", ""}}}, "k=\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tt.in); err != nil {
				t.Fatalf("Write(%s) error = %v", dump(tt.in), err)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("Write(%s) = %q; want %q", dump(tt.in), got, tt.want)
			}
		})
	}
}

func TestWriteRejectsInjection(t *testing.T) {
	tests := []struct {
		name string
		in   *Credential
	}{
		{"newline in password", &Credential{Password: secret.New("p\nhost=evil")}},
		{"CR in username", &Credential{Username: "u\r"}},
		{"NUL in host", &Credential{Host: "h\x00"}},
		{"newline in credential", &Credential{Capabilities: []string{CapAuthType}, Credential: secret.New("a\nb")}},
		{"newline in list value", &Credential{WWWAuth: []string{"a\nquit=1"}}},
		{"empty list value", &Credential{WWWAuth: []string{"a", ""}}},
		{"extra key with =", &Credential{Extra: []Attr{{"a=b", "c"}}}},
		{"extra empty key", &Credential{Extra: []Attr{{"", "c"}}}},
		{"extra shadows known key", &Credential{Extra: []Attr{{"password", "c"}}}},
		{"line too long", &Credential{Host: strings.Repeat("h", MaxLine)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := Write(&buf, tt.in)
			if !errors.Is(err, ErrInvalidValue) {
				t.Fatalf("Write(%s) = %v; want ErrInvalidValue", dump(tt.in), err)
			}
			if buf.Len() != 0 {
				t.Errorf("Write(%s) wrote %q despite the error", dump(tt.in), buf.String())
			}
			if strings.Contains(err.Error(), "host=evil") {
				t.Errorf("error %q contains the value", err)
			}
		})
	}
}

// TestCredentialFormatRedacts: printing a Credential never shows a secret.
func TestCredentialFormatRedacts(t *testing.T) {
	c := &Credential{Password: secret.New("pw-secret"), Credential: secret.New("cr-secret"), OAuthRefreshToken: secret.New("rt-secret")}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(verb, c)
		if strings.Contains(out, "-secret") {
			t.Errorf("Sprintf(%q, c) = %s; leaks a secret", verb, out)
		}
	}
}

// equal compares two credentials, secrets included.
func equal(a, b *Credential) bool {
	if a == nil || b == nil {
		return a == b
	}
	type plain struct {
		C                  Credential
		Pw, OAuth, CredVal string
	}
	pa := plain{*a, a.Password.Reveal(), a.OAuthRefreshToken.Reveal(), a.Credential.Reveal()}
	pb := plain{*b, b.Password.Reveal(), b.OAuthRefreshToken.Reveal(), b.Credential.Reveal()}
	pa.C.Password, pa.C.OAuthRefreshToken, pa.C.Credential = secret.String{}, secret.String{}, secret.String{}
	pb.C.Password, pb.C.OAuthRefreshToken, pb.C.Credential = secret.String{}, secret.String{}, secret.String{}
	if len(pa.C.Capabilities) == 0 {
		pa.C.Capabilities = nil
	}
	if len(pb.C.Capabilities) == 0 {
		pb.C.Capabilities = nil
	}
	for _, p := range []*plain{&pa, &pb} {
		if len(p.C.WWWAuth) == 0 {
			p.C.WWWAuth = nil
		}
		if len(p.C.State) == 0 {
			p.C.State = nil
		}
		if len(p.C.Extra) == 0 {
			p.C.Extra = nil
		}
	}
	return reflect.DeepEqual(pa, pb)
}

// dump shows a credential in tests, secrets included (test output only).
func dump(c *Credential) string {
	if c == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%+v{pw=%q cred=%q rt=%q}", *c, c.Password.Reveal(), c.Credential.Reveal(), c.OAuthRefreshToken.Reveal())
}

package credential

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// FuzzParse feeds arbitrary input to Parse. Whatever Parse accepts must
// write back (or be refused by Write with ErrInvalidValue) and read back
// unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"protocol=https\nhost=dev.azure.com\npath=org/p/_git/r\nusername=org\n\n",
		"capability[]=authtype\ncapability[]=state\nprotocol=https\nhost=dev.azure.com\nwwwauth[]=Bearer x\nwwwauth[]=\n",
		"url=https://u%40x:p@h:1/a%20b/\n",
		"quit=true\nazdo_message=hi\n",
		"password_expiry_utc=1800000000\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Parse(in)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := Write(&buf, c); err != nil {
			return
		}
		// Attributes Write leaves out without their capability.
		want := *c
		if !c.HasCapability(CapAuthType) {
			want.AuthType, want.Credential, want.Ephemeral = "", secret.String{}, false
		}
		if !c.HasCapability(CapState) {
			want.State, want.Continue = nil, false
		}
		got, err := Parse(buf.Bytes())
		if err != nil {
			t.Fatalf("Parse(Write(Parse(%q))) error = %v", in, err)
		}
		if !equal(got, &want) {
			t.Fatalf("Parse(Write(Parse(%q))) = %s; want %s", in, dump(got), dump(&want))
		}
	})
}

// FuzzRoundTrip builds a credential from arbitrary fields: what Write
// accepts, Parse must read back as the same credential.
func FuzzRoundTrip(f *testing.F) {
	f.Add("authtype,state", "https", "dev.azure.com", "org/p/_git/r", "azdo-sidecar", "pat", int64(1800000000), "rt",
		"Basic realm=x\x1fBearer", "Bearer", "tok", true, "a:1\x1fa:2", true, false, "azdo_message", "open https://x/connect?a=b")
	f.Add("", "https", "org.visualstudio.com", "", "org", "", int64(0), "", "", "", "", false, "", false, true, "", "")
	f.Fuzz(func(t *testing.T, caps, proto, host, path, user, pw string, exp int64, rt, www, authtype, cred string,
		ephemeral bool, state string, cont, quit bool, xkey, xval string) {
		in := &Credential{
			Capabilities: split(caps, ","), Protocol: proto, Host: host, Path: path, Username: user,
			Password: secret.New(pw), OAuthRefreshToken: secret.New(rt), WWWAuth: split(www, "\x1f"),
			AuthType: authtype, Credential: secret.New(cred), Ephemeral: ephemeral,
			State: split(state, "\x1f"), Continue: cont, Quit: quit,
		}
		if exp != 0 {
			in.PasswordExpiry = time.Unix(exp, 0)
		}
		if xkey != "" {
			in.Extra = []Attr{{xkey, xval}}
		}
		b, err := Append(nil, in)
		if err != nil {
			return
		}
		want := *in
		if exp <= 0 {
			want.PasswordExpiry = time.Time{}
		} else {
			want.PasswordExpiry = in.PasswordExpiry.UTC()
		}
		if !in.HasCapability(CapAuthType) {
			want.AuthType, want.Credential, want.Ephemeral = "", secret.String{}, false
		}
		if !in.HasCapability(CapState) {
			want.State, want.Continue = nil, false
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(%q) error = %v; Write produced it from %s", b, err, dump(in))
		}
		if !equal(got, &want) {
			t.Fatalf("Parse(%q) = %s; want %s", b, dump(got), dump(&want))
		}
	})
}

func split(s, sep string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, sep)
}

package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		name, in, want string // want "" means an error
	}{
		{name: "cloud", in: "dev.azure.com", want: "dev.azure.com"},
		{name: "upper case", in: "TFS.Example.COM", want: "tfs.example.com"},
		{name: "port", in: "tfs.example.com:8443", want: "tfs.example.com:8443"},
		{name: "default port dropped", in: "tfs.example.com:443", want: "tfs.example.com"},
		{name: "ipv4", in: "127.0.0.1:8080", want: "127.0.0.1:8080"},
		{name: "ipv6", in: "[::1]:8443", want: "[::1]:8443"},
		{name: "bare ipv6", in: "::1", want: "[::1]"},
		{name: "single label", in: "tfs", want: "tfs"},
		{name: "scheme", in: "https://dev.azure.com"},
		{name: "path", in: "tfs.example.com/tfs"},
		{name: "user", in: "org@dev.azure.com"},
		{name: "query", in: "dev.azure.com?x"},
		{name: "empty", in: ""},
		{name: "space", in: "dev azure.com"},
		{name: "bad port", in: "dev.azure.com:x"},
		{name: "port zero", in: "dev.azure.com:0"},
		{name: "port too big", in: "dev.azure.com:65536"},
		{name: "empty port", in: "dev.azure.com:"},
		{name: "empty label", in: "dev..azure.com"},
		{name: "leading hyphen", in: "-dev.azure.com"},
		{name: "bad char", in: "dev.azure.com!"},
		{name: "bracketed name", in: "[dev.azure.com]:443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NormalizeHost("host", tt.in)
			if tt.want == "" {
				var ce *Error
				if !errors.As(err, &ce) || ce.Key != "host" || !errors.Is(err, ErrBadValue) {
					t.Fatalf("NormalizeHost(%q) = %q, %v; want a bad-value error naming host", tt.in, got, err)
				}
				if !strings.Contains(err.Error(), "host[:port]") {
					t.Errorf("NormalizeHost(%q) error %q; want it to say what is allowed", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("NormalizeHost(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// TestErrorsHideUserinfo: a value pasted with credentials in it must not
// come back in an error message.
func TestErrorsHideUserinfo(t *testing.T) {
	const pw = "s3cr3t-pat-value"
	for _, in := range []string{
		"https://user:" + pw + "@dev.azure.com",
		pw + "@dev.azure.com",
		"user:" + pw + "@dev.azure.com/x",
	} {
		_, err := NormalizeHost("host", in)
		if err == nil || strings.Contains(err.Error(), pw) {
			t.Errorf("NormalizeHost(%q) = %v; want an error without the password", in, err)
		}
		_, err = checkURL("vault-url", in)
		if err == nil || strings.Contains(err.Error(), pw) {
			t.Errorf("checkURL(%q) = %v; want an error without the password", in, err)
		}
	}
	for _, in := range []string{
		"https://vault.example.test/?token=" + pw,
		"https://vault.example.test/base?sig=" + pw + "#x",
		"https://vault.example.test/#" + pw,
	} {
		_, err := checkURL("vault-url", in)
		if err == nil || strings.Contains(err.Error(), pw) || !strings.Contains(err.Error(), "vault.example.test") {
			t.Errorf("checkURL(%q) = %v; want an error naming the host, without the query", in, err)
		}
	}
}

func TestParseResolve(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Resolve
		ok   bool
	}{
		{name: "curl form", in: "dev.azure.com:443:127.0.0.1", want: Resolve{"dev.azure.com", "443", "127.0.0.1:443"}, ok: true},
		{name: "upper case host", in: "Dev.Azure.com:443:10.0.0.1", want: Resolve{"dev.azure.com", "443", "10.0.0.1:443"}, ok: true},
		{name: "ipv6", in: "tfs.test:8080:[::1]", want: Resolve{"tfs.test", "8080", "[::1]:8080"}, ok: true},
		{name: "address with port", in: "dev.azure.com:443:127.0.0.1:38123", want: Resolve{"dev.azure.com", "443", "127.0.0.1:38123"}, ok: true},
		{name: "ipv6 with port", in: "dev.azure.com:443:[::1]:9", want: Resolve{"dev.azure.com", "443", "[::1]:9"}, ok: true},
		{name: "no address", in: "dev.azure.com:443"},
		{name: "empty address", in: "dev.azure.com:443:"},
		{name: "bad port", in: "dev.azure.com:https:127.0.0.1"},
		{name: "name address", in: "dev.azure.com:443:localhost"},
		{name: "no host", in: ":443:127.0.0.1"},
		{name: "bad host", in: "a/b:443:127.0.0.1"},
		{name: "bad address port", in: "dev.azure.com:443:127.0.0.1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResolve(tt.in)
			if !tt.ok {
				if !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), "resolve: ") {
					t.Errorf("ParseResolve(%q) = %+v, %v; want a bad-value error naming resolve", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseResolve(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCheckPrivateFile(t *testing.T) {
	tests := []struct {
		name     string
		mode     os.FileMode
		sentinel error
	}{
		{name: "0600", mode: 0o600},
		{name: "0400", mode: 0o400},
		{name: "group readable", mode: 0o640, sentinel: ErrInsecureFile},
		{name: "others readable", mode: 0o604, sentinel: ErrInsecureFile},
		{name: "group writable", mode: 0o620, sentinel: ErrInsecureFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "key", "k", 0o600)
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			err := CheckPrivateFile(FlagKeyFile, p)
			if tt.sentinel == nil {
				if err != nil {
					t.Errorf("CheckPrivateFile(mode %04o) = %v; want nil", tt.mode, err)
				}
				return
			}
			if !errors.Is(err, tt.sentinel) || !strings.HasPrefix(err.Error(), "key-file: ") || !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("CheckPrivateFile(mode %04o) = %v; want %v naming key-file and the fix", tt.mode, err, tt.sentinel)
			}
		})
	}
	if err := CheckPrivateFile(FlagKeyFile, "/nonexistent/key"); !errors.Is(err, ErrMissingFile) {
		t.Errorf("CheckPrivateFile(missing) = %v; want ErrMissingFile", err)
	}
	if err := CheckFile(FlagPATFile, t.TempDir()); !errors.Is(err, ErrBadValue) {
		t.Errorf("CheckFile(directory) = %v; want ErrBadValue", err)
	}
}

func TestReadSecretFile(t *testing.T) {
	const pat = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop"
	tests := []struct {
		name    string
		content string
		want    string
		err     bool
	}{
		{name: "trailing newline", content: pat + "\n", want: pat},
		{name: "surrounding space", content: "  " + pat + " \r\n", want: pat},
		{name: "empty", content: "\n", err: true},
		{name: "two lines", content: pat + "\n" + pat + "\n", err: true},
		{name: "too big", content: strings.Repeat("a", maxSecretSize+1), err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, "pat", tt.content, 0o600)
			got, err := ReadSecretFile(FlagPATFile, p)
			if tt.err {
				if err == nil {
					t.Fatalf("ReadSecretFile(%q) = nil error; want one", tt.name)
				}
				if strings.Contains(err.Error(), pat) || strings.Contains(err.Error(), "aaaaaaaa") {
					t.Errorf("ReadSecretFile error %q contains the file's content", err)
				}
				return
			}
			if err != nil || got.Reveal() != tt.want {
				t.Errorf("ReadSecretFile(%q) = %v, %v; want the PAT", tt.name, got, err)
			}
		})
	}
}

func TestNewLogger(t *testing.T) {
	var b strings.Builder
	l, err := NewLogger(&b, "json", "debug")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hello", "k", "v")
	if !strings.HasPrefix(b.String(), `{"time":`) || !strings.Contains(b.String(), `"msg":"hello"`) {
		t.Errorf("json logger wrote %q; want a JSON line", b.String())
	}
	b.Reset()
	l, _ = NewLogger(&b, "text", "warn")
	l.Info("quiet")
	l.Warn("loud")
	if strings.Contains(b.String(), "quiet") || !strings.Contains(b.String(), "msg=loud") {
		t.Errorf("text/warn logger wrote %q; want only the warning, as text", b.String())
	}
	for _, tt := range []struct{ format, level, key string }{{"xml", "info", FlagLogFormat}, {"text", "loud", FlagLogLevel}} {
		if _, err := NewLogger(&b, tt.format, tt.level); !errors.Is(err, ErrBadValue) || !strings.HasPrefix(err.Error(), tt.key+": ") {
			t.Errorf("NewLogger(%q, %q) = %v; want a bad-value error naming %s", tt.format, tt.level, err, tt.key)
		}
	}
}

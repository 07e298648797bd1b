package config

import (
	"errors"
	"io/fs"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// NormalizeHost checks that s is "host[:port]" — a DNS name or IP address
// (IPv6 in brackets when a port follows), no scheme, user, path or query —
// and returns it in lower case without a ":443" suffix, the form token.Key
// uses. key names the setting for the error.
func NormalizeHost(key, s string) (string, error) {
	bad := func(why string) error {
		return errorf(key, ErrBadValue, "%s %s; want host[:port] such as dev.azure.com or tfs.example.com:8443 (no scheme, user or path)", quote(s), why)
	}
	switch {
	case s == "":
		return "", bad("is empty")
	case strings.Contains(s, "://"):
		return "", bad("has a scheme")
	case strings.Contains(s, "@"):
		return "", bad("has a user")
	case strings.ContainsAny(s, "/?#"):
		return "", bad("has a path")
	case strings.ContainsAny(s, " \t\r\n"):
		return "", bad("has white space")
	}
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		if p == "" {
			return "", bad("has a bad port")
		}
		host, port = h, p
	} else if strings.Count(s, ":") == 1 {
		return "", bad("has a bad port")
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if ip := net.ParseIP(host); ip != nil {
		if ip.To4() == nil {
			host = "[" + ip.String() + "]"
		} else {
			host = ip.String()
		}
	} else if strings.Contains(s, "[") || !validDNSName(host) {
		return "", bad("is not a host name")
	} else if strings.Count(s, ":") > 1 {
		return "", bad("is not a host name")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", bad("has a bad port")
		}
		if n != 443 {
			host += ":" + strconv.Itoa(n)
		}
	}
	return host, nil
}

func validDNSName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// Resolve is one --resolve entry: connections for Host:Port dial Addr.
type Resolve struct {
	Host string // lower case
	Port string
	Addr string // "ip:port" to dial
}

// ParseResolve parses curl's "HOST:PORT:ADDR". ADDR is an IP address
// (IPv6 in brackets); as an extension it may carry its own port
// ("dev.azure.com:443:127.0.0.1:8443"), which lets tests point a real host
// name at an emulator on a random port.
func ParseResolve(s string) (Resolve, error) {
	bad := func(why string) error {
		return errorf("resolve", ErrBadValue, "%s %s; want HOST:PORT:ADDR such as dev.azure.com:443:127.0.0.1", quote(s), why)
	}
	host, rest, ok := strings.Cut(s, ":")
	if !ok || host == "" {
		return Resolve{}, bad("has no host")
	}
	port, addr, ok := strings.Cut(rest, ":")
	if !ok || addr == "" {
		return Resolve{}, bad("has no address")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Resolve{}, bad("has a bad port")
	}
	if _, err := NormalizeHost("resolve", host); err != nil {
		return Resolve{}, bad("has a bad host")
	}
	ip, dport := addr, port
	if h, p, err := net.SplitHostPort(addr); err == nil {
		ip, dport = h, p
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return Resolve{}, bad("has a bad address port")
		}
	} else {
		ip = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	}
	if net.ParseIP(ip) == nil {
		return Resolve{}, bad("has an address that is not an IP")
	}
	return Resolve{Host: strings.ToLower(host), Port: port, Addr: net.JoinHostPort(ip, dport)}, nil
}

// CheckFile checks that the file named by setting key exists and is a
// regular file.
func CheckFile(key, path string) error {
	_, err := statFile(key, path)
	return err
}

func statFile(key, path string) (fs.FileInfo, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, errorf(key, ErrMissingFile, "%s does not exist", quote(path))
	case err != nil:
		return nil, errorf(key, ErrBadValue, "cannot read %s: %v", quote(path), err)
	case !fi.Mode().IsRegular():
		return nil, errorf(key, ErrBadValue, "%s is not a regular file", quote(path))
	}
	return fi, nil
}

// CheckPrivateFile checks that the file exists and that neither group nor
// others may read or write it (mode 0600 or stricter), as the vault's key
// file must be.
func CheckPrivateFile(key, path string) error {
	fi, err := statFile(key, path)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return errorf(key, ErrInsecureFile, "%s has mode %04o; allowed: 0600 or stricter (chmod 600 %s)", quote(path), perm, path)
	}
	return nil
}

// maxSecretSize bounds a secret file (a PAT is 52–84 characters, an
// environment token far less than this).
const maxSecretSize = token.MaxSecretFileSize

// ReadSecretFile reads a secret (PAT, environment token) from the file named
// by setting key, trimming surrounding white space. Errors name the file,
// never its content.
func ReadSecretFile(key, path string) (secret.String, error) {
	if _, err := statFile(key, path); err != nil {
		return secret.String{}, err
	}
	// One reader for every secret file, shared with the credential helper
	// (which must not import this package); its errors name the file,
	// never its content.
	v, err := token.ReadSecretFile(path, "secret")
	if err != nil {
		return secret.String{}, errorf(key, ErrBadValue, "%v", err)
	}
	return v, nil
}

// checkURL checks an absolute http(s) URL without user, query or fragment.
// Plain http is allowed only for loopback hosts.
func checkURL(key, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, errorf(key, ErrBadValue, "%s is not an absolute URL; want https://host[:port][/path]", quote(s))
	}
	if u.User != nil {
		return nil, errorf(key, ErrBadValue, "%s carries a user; credentials never go into URLs", quote(s))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		// The query is not echoed: it is where signatures and tokens ride.
		bare := *u
		bare.RawQuery, bare.Fragment, bare.RawFragment = "", "", ""
		return nil, errorf(key, ErrBadValue, "%s has a query or fragment (not shown); want https://host[:port][/path]", quote(bare.String()))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, errorf(key, ErrBadValue, "%s uses http; allowed: https, or http on a loopback address (127.0.0.1, ::1, localhost)", quote(s))
		}
	default:
		return nil, errorf(key, ErrBadValue, "%s has scheme %q; allowed: https (http on loopback)", quote(s), u.Scheme)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

package credential

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
)

// MaxLine is the longest line, key and "=" included and the newline
// excluded, that the codec reads or writes. Git documents the same limit.
const MaxLine = 65535

// maxLines bounds how many lines one credential description may have, so a
// peer cannot make the decoder grow lists without end.
const maxLines = 1024

// Capabilities git 2.46+ advertises with "capability[]".
const (
	// CapAuthType lets a helper answer with authtype/credential/ephemeral
	// instead of username/password.
	CapAuthType = "authtype"
	// CapState lets a helper keep state[] between rounds and ask for
	// another round with continue.
	CapState = "state"
)

// Sentinel errors of the codec. Errors returned by Read and Write wrap them
// and name the offending key, never a value (values may be secrets).
var (
	// ErrMalformed means the input is not a credential description: a line
	// without "=", a line that is too long, a NUL byte, a bad url or boolean.
	ErrMalformed = errors.New("credential: malformed input")
	// ErrInvalidValue means Write was asked to write a value it cannot
	// represent (newline, carriage return or NUL in it, or a line too long).
	ErrInvalidValue = errors.New("credential: value cannot be written")
)

// Attr is one attribute the codec does not know, kept in input order.
type Attr struct {
	Key, Value string
}

// Credential is one credential description of git's credential-helper
// protocol (git help credential), as git sends it to a helper or a helper
// answers it.
//
// Unknown keys are preserved in Extra, in input order, so that a server can
// read extensions and a round trip loses nothing; Write writes them last.
// Git ignores keys it does not know, which is what makes extensions such
// as MessageKey possible.
type Credential struct {
	// Capabilities are the capability[] values, in order.
	Capabilities []string

	Protocol string
	Host     string // host, with ":port" when the URL had one
	Path     string // only when credential.useHttpPath is set
	Username string // never a secret
	Password secret.String

	// PasswordExpiry is password_expiry_utc (git 2.40); zero when unknown.
	PasswordExpiry time.Time
	// OAuthRefreshToken is oauth_refresh_token (git 2.41).
	OAuthRefreshToken secret.String
	// WWWAuth are the wwwauth[] values (git 2.41): the server's
	// WWW-Authenticate headers.
	WWWAuth []string

	// AuthType, Credential and Ephemeral (git 2.46) are written only when
	// Capabilities holds CapAuthType.
	AuthType   string
	Credential secret.String
	Ephemeral  bool

	// State and Continue (git 2.46) are written only when Capabilities
	// holds CapState.
	State    []string
	Continue bool

	// Quit tells git to stop asking other helpers and not to prompt.
	Quit bool

	// Extra holds attributes the codec does not know.
	Extra []Attr
}

// HasCapability reports whether c advertises capability[]=name.
func (c *Credential) HasCapability(name string) bool {
	return slices.Contains(c.Capabilities, name)
}

// Get returns the value of the last Extra attribute named key, and whether
// there was one.
func (c *Credential) Get(key string) (string, bool) {
	for i := len(c.Extra) - 1; i >= 0; i-- {
		if c.Extra[i].Key == key {
			return c.Extra[i].Value, true
		}
	}
	return "", false
}

// Del removes every Extra attribute named key.
func (c *Credential) Del(key string) {
	c.Extra = slices.DeleteFunc(c.Extra, func(a Attr) bool { return a.Key == key })
}

// Parse parses one credential description from b (see Read).
func Parse(b []byte) (*Credential, error) {
	return Read(bufio.NewReader(bytes.NewReader(b)))
}

// Read reads one credential description from r: key=value lines up to a
// blank line or EOF, like git's credential_read.
//
//   - A trailing "\r" before the newline is dropped.
//   - A line longer than MaxLine, a line without "=", an empty key or a NUL
//     byte is ErrMalformed.
//   - A key ending in "[]" is multi-valued; an empty value clears the list.
//   - A repeated single-valued key: the last one wins.
//   - url=... resets the whole credential and fills protocol, host, path,
//     username and password from the URL, percent-decoded, as git does. A
//     decoded component with a newline or NUL is ErrMalformed.
//   - Booleans (ephemeral, continue, quit) take git's forms: 1/0, true/false,
//     yes/no, on/off, an empty value (false) or an integer.
//   - An unparsable password_expiry_utc means "unknown", as in git.
//
// Read does not read past the blank line that ends the description.
func Read(r *bufio.Reader) (*Credential, error) {
	c := new(Credential)
	for n := 0; ; n++ {
		line, err := readLine(r)
		if err == io.EOF && line == "" {
			return c, nil
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		if line == "" {
			return c, nil
		}
		if n >= maxLines {
			return nil, fmt.Errorf("%w: more than %d lines", ErrMalformed, maxLines)
		}
		if perr := c.set(line); perr != nil {
			return nil, perr
		}
		if err == io.EOF {
			return c, nil
		}
	}
}

// readLine reads one line without its "\n" (and a "\r" before it). It
// returns io.EOF with the last, unterminated line.
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(buf)+len(frag) > MaxLine+2 { // room for "\r\n"
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, MaxLine)
		}
		buf = append(buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil && err != io.EOF {
			return "", fmt.Errorf("credential: read: %w", err)
		}
		line := strings.TrimSuffix(string(buf), "\n")
		line = strings.TrimSuffix(line, "\r")
		if len(line) > MaxLine {
			return "", fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, MaxLine)
		}
		if strings.IndexByte(line, 0) >= 0 {
			return "", fmt.Errorf("%w: NUL byte in input", ErrMalformed)
		}
		if err == io.EOF {
			return line, io.EOF
		}
		return line, nil
	}
}

// set applies one key=value line to c.
func (c *Credential) set(line string) error {
	key, value, ok := strings.Cut(line, "=")
	if !ok {
		return fmt.Errorf("%w: line without '=' (%d bytes)", ErrMalformed, len(line))
	}
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrMalformed)
	}
	var err error
	switch key {
	case "protocol":
		c.Protocol = value
	case "host":
		c.Host = value
	case "path":
		c.Path = value
	case "username":
		c.Username = value
	case "password":
		c.Password = secret.New(value)
	case "url":
		err = c.setURL(value)
	case "password_expiry_utc":
		c.PasswordExpiry = parseExpiry(value)
	case "oauth_refresh_token":
		c.OAuthRefreshToken = secret.New(value)
	case "wwwauth[]":
		c.WWWAuth = appendMulti(c.WWWAuth, value)
	case "capability[]":
		c.Capabilities = appendMulti(c.Capabilities, value)
	case "authtype":
		c.AuthType = value
	case "credential":
		c.Credential = secret.New(value)
	case "ephemeral":
		c.Ephemeral, err = parseBool(key, value)
	case "state[]":
		c.State = appendMulti(c.State, value)
	case "continue":
		c.Continue, err = parseBool(key, value)
	case "quit":
		c.Quit, err = parseBool(key, value)
	default:
		if strings.HasSuffix(key, "[]") && value == "" {
			c.Del(key)
		} else {
			c.Extra = append(c.Extra, Attr{Key: key, Value: value})
		}
	}
	return err
}

// appendMulti adds value to a multi-valued attribute; an empty value resets it.
func appendMulti(list []string, value string) []string {
	if value == "" {
		return nil
	}
	return append(list, value)
}

// parseExpiry reads password_expiry_utc like git: decimal Unix seconds;
// zero, negative or unparsable values mean "unknown".
func parseExpiry(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}

// parseBool reads a boolean the way git_config_bool does.
func parseBool(key, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "", "0", "false", "no", "off":
		return false, nil
	case "1", "true", "yes", "on":
		return true, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n != 0, nil
	}
	return false, fmt.Errorf("%w: %s is not a boolean", ErrMalformed, key)
}

// setURL implements url=: like git's credential_from_url, it clears c and
// fills protocol, host, path, username and password.
func (c *Credential) setURL(raw string) error {
	*c = Credential{}
	proto, rest, ok := strings.Cut(raw, "://")
	if !ok || proto == "" {
		return fmt.Errorf("%w: url has no scheme", ErrMalformed)
	}
	// The authority ends at the first "/", "?" or "#".
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	host := authority
	if at := strings.IndexByte(authority, '@'); at >= 0 {
		// Like git: the first "@" ends the userinfo, and the first ":"
		// before it separates user name and password.
		userinfo := authority[:at]
		host = authority[at+1:]
		user, pass, hasPass := strings.Cut(userinfo, ":")
		c.Username = urlDecode(user)
		if hasPass {
			c.Password = secret.New(urlDecode(pass))
		}
	}
	c.Protocol = proto
	c.Host = urlDecode(host)
	tail = strings.TrimLeft(tail, "/")
	if tail != "" {
		c.Path = strings.TrimRight(urlDecode(tail), "/")
	}
	for _, f := range []struct{ name, v string }{
		{"protocol", c.Protocol}, {"host", c.Host}, {"path", c.Path},
		{"username", c.Username}, {"password", c.Password.Reveal()},
	} {
		if strings.ContainsAny(f.v, "\n\x00") {
			*c = Credential{}
			return fmt.Errorf("%w: url %s contains a newline or NUL", ErrMalformed, f.name)
		}
	}
	return nil
}

// urlDecode decodes %XX escapes like git's url_decode: "+" stays "+", and an
// invalid escape is kept as it is.
func urlDecode(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// Write writes c to w in a fixed order, the order of git's credential_write:
// capability[] first; then authtype, credential and ephemeral (only when c
// advertises CapAuthType); protocol, host, path, username, password,
// oauth_refresh_token, password_expiry_utc, wwwauth[]; continue and state[]
// (only when c advertises CapState); quit; then Extra. Empty values are left
// out. Nothing is written when any value is invalid.
//
// Write is the one place where the secrets of c are revealed.
func Write(w io.Writer, c *Credential) error {
	b, err := Append(nil, c)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	if err != nil {
		return fmt.Errorf("credential: write: %w", err)
	}
	return nil
}

// Append is Write into a byte slice.
func Append(b []byte, c *Credential) ([]byte, error) {
	e := encoder{b: b}
	for _, v := range c.Capabilities {
		e.multi("capability[]", v)
	}
	authtype := c.HasCapability(CapAuthType)
	if authtype {
		e.item("authtype", c.AuthType)
		e.item("credential", c.Credential.Reveal())
		if c.Ephemeral {
			e.item("ephemeral", "1")
		}
	}
	e.item("protocol", c.Protocol)
	e.item("host", c.Host)
	e.item("path", c.Path)
	e.item("username", c.Username)
	e.item("password", c.Password.Reveal())
	e.item("oauth_refresh_token", c.OAuthRefreshToken.Reveal())
	if !c.PasswordExpiry.IsZero() && c.PasswordExpiry.Unix() > 0 {
		e.item("password_expiry_utc", strconv.FormatInt(c.PasswordExpiry.Unix(), 10))
	}
	for _, v := range c.WWWAuth {
		e.multi("wwwauth[]", v)
	}
	if c.HasCapability(CapState) {
		if c.Continue {
			e.item("continue", "1")
		}
		for _, v := range c.State {
			e.multi("state[]", v)
		}
	}
	if c.Quit {
		e.item("quit", "1")
	}
	for _, a := range c.Extra {
		if a.Key == "" || strings.ContainsAny(a.Key, "=\n\r\x00") || knownKeys[a.Key] {
			e.fail(a.Key, "bad extra key")
			continue
		}
		if strings.HasSuffix(a.Key, "[]") {
			e.multi(a.Key, a.Value)
		} else {
			e.line(a.Key, a.Value)
		}
	}
	if e.err != nil {
		return b, e.err
	}
	return e.b, nil
}

// knownKeys are the keys an Extra attribute may not use: they would be read
// back into a typed field.
var knownKeys = map[string]bool{
	"protocol": true, "host": true, "path": true, "username": true,
	"password": true, "url": true, "password_expiry_utc": true,
	"oauth_refresh_token": true, "wwwauth[]": true, "capability[]": true,
	"authtype": true, "credential": true, "ephemeral": true, "state[]": true,
	"continue": true, "quit": true,
}

type encoder struct {
	b     []byte
	lines int
	err   error
}

func (e *encoder) fail(key, why string) {
	if e.err == nil {
		e.err = fmt.Errorf("%w: %s: %s", ErrInvalidValue, key, why)
	}
}

// item appends key=value unless value is empty.
func (e *encoder) item(key, value string) {
	if value != "" {
		e.line(key, value)
	}
}

// multi appends one value of a multi-valued key. An empty value cannot be
// written: it would read back as "clear the list".
func (e *encoder) multi(key, value string) {
	if value == "" {
		e.fail(key, "empty value in a list")
		return
	}
	e.line(key, value)
}

// line appends key=value. A value that git could not read back (newline,
// CR, NUL) or a line over MaxLine is an error: writing it would let the
// value inject attributes.
func (e *encoder) line(key, value string) {
	if e.err != nil {
		return
	}
	if strings.ContainsAny(value, "\n\r\x00") {
		e.fail(key, "value contains a newline, carriage return or NUL")
		return
	}
	if len(key)+1+len(value) > MaxLine {
		e.fail(key, "line too long")
		return
	}
	if e.lines++; e.lines > maxLines {
		e.fail(key, "too many lines")
		return
	}
	e.b = append(e.b, key...)
	e.b = append(e.b, '=')
	e.b = append(e.b, value...)
	e.b = append(e.b, '\n')
}

package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Command is one ref update of a push: "old new ref".
type Command struct {
	Old, New, Ref string
}

// ZeroID reports whether id is the all-zero object ID (a create's old or a
// delete's new).
func ZeroID(id string) bool { return strings.Trim(id, "0") == "" }

// Push is the command section of a git-receive-pack request.
type Push struct {
	Commands []Command
	// Caps are the capabilities the client asked for on its first
	// command (report-status, side-band-64k, ...).
	Caps []string
	// Raw is every byte read from the body, to be sent on before the rest.
	Raw []byte
}

// HasCap reports whether the client asked for capability c.
func (p *Push) HasCap(c string) bool {
	for _, x := range p.Caps {
		if x == c {
			return true
		}
	}
	return false
}

// Limits on the command section, which precedes the pack.
const (
	maxPktLen   = 65520   // git's LARGE_PACKET_MAX
	maxCommands = 10000   // refs in one push
	maxCmdBytes = 8 << 20 // the whole command section
)

// ErrBadCommands wraps every parse failure of ReadCommands.
var ErrBadCommands = errors.New("policy: malformed receive-pack commands")

// ReadCommands reads the ref-update commands at the start of a
// git-receive-pack request body: pkt-lines "old new ref\0caps", then
// "old new ref", then a flush-pkt. It reads exactly up to and including the
// flush, so the pack that follows stays in r to be streamed on; Push.Raw
// holds what was read. An empty body or a lone flush (git's probe request)
// is a push of nothing. A push certificate ("push-cert"), which Azure DevOps
// does not offer, is an error: the proxy cannot vet what it does not parse.
// On error the returned Push still holds in Raw every byte read, so that a
// caller without rules to check can pass the body on unchanged.
func ReadCommands(r io.Reader) (*Push, error) {
	p := &Push{}
	var hdr [4]byte
	for first := true; ; first = false {
		n, err := io.ReadFull(r, hdr[:])
		p.Raw = append(p.Raw, hdr[:n]...)
		if err == io.EOF && first {
			return p, nil
		}
		if err != nil {
			return p, fmt.Errorf("%w: truncated pkt-line header: %v", ErrBadCommands, err)
		}
		size, err := strconv.ParseUint(string(hdr[:]), 16, 16)
		if err != nil {
			return p, fmt.Errorf("%w: bad pkt-line length %q", ErrBadCommands, hdr[:])
		}
		if size == 0 {
			return p, nil
		}
		if size < 4 || size > maxPktLen || len(p.Raw)+int(size) > maxCmdBytes {
			return p, fmt.Errorf("%w: pkt-line length %d", ErrBadCommands, size)
		}
		start := len(p.Raw)
		p.Raw = append(p.Raw, make([]byte, size-4)...)
		if n, err := io.ReadFull(r, p.Raw[start:]); err != nil {
			p.Raw = p.Raw[:start+n]
			return p, fmt.Errorf("%w: truncated pkt-line: %v", ErrBadCommands, err)
		}
		line := p.Raw[start:]
		if first {
			var caps []byte
			line, caps, _ = bytes.Cut(line, []byte{0})
			p.Caps = strings.Fields(string(caps))
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		c, err := parseCommand(string(line))
		if err != nil {
			return p, err
		}
		if len(p.Commands) == maxCommands {
			return p, fmt.Errorf("%w: more than %d commands", ErrBadCommands, maxCommands)
		}
		p.Commands = append(p.Commands, c)
	}
}

// parseCommand reads "old new ref" with SHA-1 or SHA-256 object IDs.
func parseCommand(line string) (Command, error) {
	f := strings.SplitN(line, " ", 3)
	if len(f) != 3 || !isOID(f[0]) || !isOID(f[1]) || len(f[0]) != len(f[1]) || f[2] == "" {
		if strings.HasPrefix(line, "push-cert") || strings.HasPrefix(line, "shallow ") {
			return Command{}, fmt.Errorf("%w: %q is not supported", ErrBadCommands, strings.Fields(line)[0])
		}
		return Command{}, fmt.Errorf("%w: want \"old new ref\"", ErrBadCommands)
	}
	if strings.ContainsAny(f[2], " \x00\r\n") || !strings.HasPrefix(f[2], "refs/") && f[2] != "HEAD" {
		return Command{}, fmt.Errorf("%w: bad ref name", ErrBadCommands)
	}
	return Command{Old: f[0], New: f[1], Ref: f[2]}, nil
}

// isOID reports whether s is 40 or 64 lower-case hex digits.
func isOID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Report builds the git-receive-pack response that refuses every command
// of push: "unpack ok", then "ng REF REASON" per ref (reason for the refs
// the policy refused, "not pushed: another ref of this push was refused"
// for the others), in side-band channel 1 when the client asked for
// side-band(-64k), with lines git prints as "remote: ..." on channel 2. ok
// is false when the client did not ask for report-status: then only an
// HTTP error can tell it.
func Report(push *Push, refused map[string]string, remoteLines []string) (body []byte, ok bool) {
	if !push.HasCap("report-status") && !push.HasCap("report-status-v2") {
		return nil, false
	}
	var report bytes.Buffer
	writePkt(&report, "unpack ok\n")
	for _, c := range push.Commands {
		reason, bad := refused[c.Ref]
		if !bad {
			reason = "not pushed: another ref of this push was refused"
		}
		writePkt(&report, "ng "+c.Ref+" "+oneLine(reason)+"\n")
	}
	report.WriteString("0000")
	band := 0
	switch {
	case push.HasCap("side-band-64k"):
		band = 65519 - 1
	case push.HasCap("side-band"):
		band = 999 - 1
	}
	if band == 0 {
		return report.Bytes(), true
	}
	var out bytes.Buffer
	for _, l := range remoteLines {
		writePkt(&out, "\x02"+oneLine(l)+"\n")
	}
	data := report.Bytes()
	for len(data) > 0 {
		n := min(len(data), band)
		writePkt(&out, "\x01"+string(data[:n]))
		data = data[n:]
	}
	out.WriteString("0000")
	return out.Bytes(), true
}

// writePkt writes s as one pkt-line.
func writePkt(b *bytes.Buffer, s string) {
	fmt.Fprintf(b, "%04x", len(s)+4)
	b.WriteString(s)
}

// oneLine keeps a reason on one line and within a pkt-line.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == 0 {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1000 {
		s = s[:1000]
	}
	return s
}

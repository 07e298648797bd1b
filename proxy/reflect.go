package proxy

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// allowedMethods are the methods an intercepted request may have: what git
// and the Azure DevOps REST API use. TRACE and TRACK echo the request
// (with the injected credential) back, CONNECT inside a tunnel makes no
// sense, and anything else is unknown: 405.
var allowedMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// allowedMethodList is the Allow header of a 405.
const allowedMethodList = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// methodNotAllowed answers a method the proxy does not forward.
func methodNotAllowed(req *http.Request) *http.Response {
	resp := textResponse(req, http.StatusMethodNotAllowed,
		"azdo-sidecar: method "+safeMethod(req.Method)+" is not forwarded to Azure DevOps; allowed: "+allowedMethodList+"\n")
	resp.Header.Set("Allow", allowedMethodList)
	return resp
}

// safeMethod returns m for a message, or "(unusual)" when it is not a
// short token.
func safeMethod(m string) string {
	if len(m) > 16 || strings.IndexFunc(m, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return "(unusual)"
	}
	return m
}

// reflections returns the byte strings that give tok away: its secret and
// the Authorization header carrying it, each as is and base64-encoded at
// each of the three alignments it can have inside a longer base64 text
// (the Basic header encodes "user:secret"; an echoing server may encode
// the whole header line). Each base64 form is cut to the characters that
// depend on the encoded bytes alone.
func reflections(tok token.Token) [][]byte {
	if tok.Secret.IsZero() {
		return nil
	}
	out := base64Forms([]byte(tok.Secret.Reveal()))
	out = append(out, base64Forms([]byte(tok.AuthorizationHeader()))...)
	// Longest first: the whole header is replaced before the secret in it.
	slices.SortStableFunc(out, func(a, b []byte) int { return len(b) - len(a) })
	return out
}

// base64Forms returns s and its aligned base64 encodings.
func base64Forms(s []byte) [][]byte {
	out := [][]byte{s}
	for k := 0; k < 3; k++ {
		enc := base64.RawStdEncoding.EncodeToString(append(make([]byte, k), s...))
		n := k + len(s)
		start := [3]int{0, 2, 3}[k]
		end := n/3*4 + n%3
		if end > len(enc) {
			end = len(enc)
		}
		if end-start >= 8 {
			out = append(out, []byte(enc[start:end]))
		}
	}
	return out
}

// containsAny reports whether b contains one of pats.
func containsAny(b []byte, pats [][]byte) bool {
	for _, p := range pats {
		if bytes.Contains(b, p) {
			return true
		}
	}
	return false
}

// headerReflects reports the name of the first response header whose
// value contains one of pats, or "".
func headerReflects(h http.Header, pats [][]byte) string {
	for name, vs := range h {
		for _, v := range vs {
			if containsAny([]byte(v), pats) {
				return name
			}
		}
	}
	return ""
}

// scrubReader passes a response body through while replacing every
// occurrence of its patterns with as many '*': the length (and so
// Content-Length) stays, and the body keeps streaming. It holds back only
// a tail of what it has read that is the start of a pattern (which the
// next bytes may complete) until more arrives or the body ends; anything
// else is passed on at once, so a server that answers in turns with its
// client (git's negotiation) is never kept waiting.
type scrubReader struct {
	r     io.ReadCloser
	pats  [][]byte
	keep  int
	grams *gramFilter // nil: scan the whole buffer for every pattern
	buf   []byte      // read, scrubbed, not yet returned; buf[:ready] may be returned
	ready int
	err   error
	found func() // called once, at the first occurrence
}

const scrubChunk = 32 << 10

func newScrubReader(r io.ReadCloser, pats [][]byte, found func()) *scrubReader {
	keep := 0
	for _, p := range pats {
		keep = max(keep, len(p)-1)
	}
	return &scrubReader{r: r, pats: pats, keep: keep, grams: newGramFilter(pats), found: found, buf: make([]byte, 0, scrubChunk+keep)}
}

func (s *scrubReader) Read(p []byte) (int, error) {
	for s.ready == 0 {
		if s.err != nil {
			return 0, s.err
		}
		if len(s.buf) == cap(s.buf) {
			s.buf = append(s.buf, 0)[:len(s.buf)] // grow
		}
		n, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+n]
		s.err = err
		s.scrub()
		if err != nil {
			s.ready = len(s.buf)
		} else {
			s.ready = len(s.buf) - s.partialTail()
		}
	}
	n := copy(p, s.buf[:s.ready])
	s.buf = s.buf[:copy(s.buf, s.buf[n:])]
	s.ready -= n
	return n, nil
}

// scrub replaces the patterns in buf. An occurrence starting in the part
// that will be returned lies in buf whole, since none is longer than
// keep+1.
//
// Searching every pattern through every byte cost a fifth of the proxy's
// CPU while streaming a pack (bytes.Index, once per pattern). So buf is
// first sampled with the gram filter, and only the windows around a
// sampled position that may belong to an occurrence are searched, with the
// same longest-first replacement: every occurrence lies whole in one such
// window.
func (s *scrubReader) scrub() {
	if s.grams == nil {
		s.scrubWindow(s.buf)
		return
	}
	span := s.keep + 1 // the longest pattern
	from, to := -1, -1 // the window being gathered
	s.grams.candidates(s.buf, func(j int) {
		lo, hi := max(0, j-span+1), min(len(s.buf), j+span)
		if from >= 0 && lo <= to {
			to = max(to, hi)
			return
		}
		if from >= 0 {
			s.scrubWindow(s.buf[from:to])
		}
		from, to = lo, hi
	})
	if from >= 0 {
		s.scrubWindow(s.buf[from:to])
	}
}

// scrubWindow replaces the patterns in w, longest first.
func (s *scrubReader) scrubWindow(w []byte) {
	for _, pat := range s.pats {
		for from := 0; ; {
			i := bytes.Index(w[from:], pat)
			if i < 0 {
				break
			}
			i += from
			for j := range pat {
				w[i+j] = '*'
			}
			from = i + len(pat)
			if s.found != nil {
				s.found()
				s.found = nil
			}
		}
	}
}

// gramLen is the length of the grams the filter samples.
const gramLen = 8

// gramBits is the size of the filter's bitmap: 2^gramBits bits (32 KiB).
const gramBits = 18

// gramFilter says which positions of a text may lie inside an occurrence
// of one of a set of patterns, looking at a few of them only. It holds
// every gram (8 bytes) of every pattern, hashed into a bitmap. Every
// occurrence of a pattern at least min long contains one of the positions
// 0, step, 2·step, … (step = min-gramLen+1) together with the gram there;
// a position whose gram is not in the bitmap is in no occurrence.
type gramFilter struct {
	bits [1 << gramBits / 64]uint64
	step int
}

// newGramFilter returns the filter for pats, or nil when a pattern is too
// short for sampling to pay.
func newGramFilter(pats [][]byte) *gramFilter {
	if len(pats) == 0 {
		return nil
	}
	short := len(pats[0])
	for _, p := range pats {
		short = min(short, len(p))
	}
	if short < 2*gramLen {
		return nil
	}
	for _, p := range pats {
		// A replacement could complete a pattern that holds '*' across
		// a window's edge: search such patterns everywhere.
		if bytes.IndexByte(p, '*') >= 0 {
			return nil
		}
	}
	f := &gramFilter{step: short - gramLen + 1}
	for _, p := range pats {
		for i := 0; i+gramLen <= len(p); i++ {
			h := gramHash(p[i:])
			f.bits[h/64] |= 1 << (h % 64)
		}
	}
	return f
}

// candidates calls fn with each sampled position of b whose gram is in
// the filter, in increasing order.
func (f *gramFilter) candidates(b []byte, fn func(int)) {
	for j := 0; j+gramLen <= len(b); j += f.step {
		h := gramHash(b[j:])
		if f.bits[h/64]&(1<<(h%64)) != 0 {
			fn(j)
		}
	}
}

// gramHash maps the gram at the start of b to a bit of the filter.
func gramHash(b []byte) uint32 {
	v := binary.LittleEndian.Uint64(b)
	return uint32((v * 0x9E3779B97F4A7C15) >> (64 - gramBits))
}

// partialTail returns the length of the longest tail of buf that is a
// proper prefix of a pattern.
func (s *scrubReader) partialTail() int {
	from := max(0, len(s.buf)-s.keep)
	for i := from; i < len(s.buf); i++ {
		for _, pat := range s.pats {
			if s.buf[i] == pat[0] && len(s.buf)-i < len(pat) && bytes.HasPrefix(pat, s.buf[i:]) {
				return len(s.buf) - i
			}
		}
	}
	return 0
}

func (s *scrubReader) Close() error { return s.r.Close() }

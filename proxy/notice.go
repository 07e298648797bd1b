package proxy

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// This file shows the token's notice (a stored PAT about to expire) to git
// in proxy mode: git prints side-band channel 2 of an upload-pack answer as
// "remote: ..." lines, so the proxy inserts one such packet into the answer
// of the fetch POST that carries the pack, right before its first side-band
// packet. It streams: it reads the pkt-lines before the pack one at a time
// (ACK/NAK, shallow lines) and never the pack.

// Side-band packet limits (git's LARGE_PACKET_MAX and the plain side-band
// limit), header included.
const (
	sideBand64kMax = 65520
	sideBandMax    = 1000
)

// maxNoticePeek bounds the request bytes read to find the first want line.
const maxNoticePeek = 64 << 10

// noticeSideBand reports the largest packet the client of an upload-pack
// POST accepts on side-band, or 0 when the request asked for none (or is
// not a protocol v0/v1 fetch whose first line is a want). It reads the first
// pkt-line of the body (through gzip when git compressed it) and puts every
// byte read back in front of the rest.
func noticeSideBand(req *http.Request) int {
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/git-upload-pack") ||
		req.Body == nil || req.Body == http.NoBody {
		return 0
	}
	body := req.Body
	var raw bytes.Buffer
	var r io.Reader = io.TeeReader(io.LimitReader(body, maxNoticePeek), &raw)
	ok := true
	switch ce := strings.ToLower(req.Header.Get("Content-Encoding")); ce {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			ok = false
			break
		}
		r = zr
	default:
		ok = false
	}
	var line []byte
	if ok {
		line, _ = readPktPayload(r)
	}
	req.Body = &prefixedBody{Reader: io.MultiReader(bytes.NewReader(raw.Bytes()), body), c: body}
	return sideBandOf(line)
}

// sideBandOf reads the capabilities of a first want line
// ("want OID cap cap...").
func sideBandOf(line []byte) int {
	f := strings.Fields(string(line))
	if len(f) < 2 || f[0] != "want" {
		return 0
	}
	band := 0
	for _, c := range f[2:] {
		switch c {
		case "side-band-64k":
			return sideBand64kMax
		case "side-band":
			band = sideBandMax
		}
	}
	return band
}

// readPktPayload reads one pkt-line and returns its payload (nil for a
// flush or other special packet).
func readPktPayload(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 32)
	if err != nil || n > sideBand64kMax {
		return nil, fmt.Errorf("proxy: bad pkt-line length %q", hdr[:])
	}
	if n <= 4 {
		return nil, nil
	}
	b := make([]byte, n-4)
	_, err = io.ReadFull(r, b)
	return b, err
}

// noticePacket frames notice as one side-band channel 2 packet that fits
// in max bytes: "\x02azdo-sidecar: NOTICE\n".
func noticePacket(notice string, max int) []byte {
	text := "azdo-sidecar: " + oneLine(notice)
	if room := max - 4 - 1 - 1; len(text) > room {
		text = strings.ToValidUTF8(text[:room], "")
	}
	return fmt.Appendf(nil, "%04x\x02%s\n", len(text)+4+1+1, text)
}

// withNotice makes resp's body carry pkt before its first side-band
// packet. Only a successful upload-pack answer is touched.
func withNotice(resp *http.Response, pkt []byte) *http.Response {
	if resp.StatusCode != http.StatusOK || resp.Body == nil || resp.Body == http.NoBody ||
		!strings.EqualFold(resp.Header.Get("Content-Type"), "application/x-git-upload-pack-result") {
		return resp
	}
	resp.Body = &noticeBody{rc: resp.Body, pkt: pkt}
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	return resp
}

// noticeBody passes an upload-pack answer on, inserting pkt before the
// first pkt-line whose payload starts with a side-band channel byte (1, 2
// or 3). The lines before it are read one at a time; once pkt is placed
// (or the answer is not pkt-lines) the rest streams through untouched.
type noticeBody struct {
	rc      io.ReadCloser
	pkt     []byte // nil once placed or given up
	pending []byte
	err     error
}

func (b *noticeBody) Read(p []byte) (int, error) {
	for len(b.pending) == 0 && b.pkt != nil && b.err == nil {
		b.next()
	}
	if len(b.pending) > 0 {
		n := copy(p, b.pending)
		b.pending = b.pending[n:]
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	return b.rc.Read(p)
}

// next reads one pkt-line into pending, placing pkt before it when it is
// the first side-band packet.
func (b *noticeBody) next() {
	var hdr [4]byte
	n, err := io.ReadFull(b.rc, hdr[:])
	b.pending = append(b.pending[:0], hdr[:n]...)
	if err != nil {
		b.pkt, b.err = nil, err
		return
	}
	size, err := strconv.ParseUint(string(hdr[:]), 16, 32)
	if err != nil || size > sideBand64kMax {
		b.pkt = nil // not pkt-lines: pass the rest on as it is
		return
	}
	if size <= 4 { // flush, delimiter or empty line
		return
	}
	payload := make([]byte, size-4)
	n, err = io.ReadFull(b.rc, payload)
	if n > 0 && payload[0] >= 1 && payload[0] <= 3 {
		b.pending = append(append(append([]byte(nil), b.pkt...), hdr[:]...), payload[:n]...)
		b.pkt = nil
	} else {
		b.pending = append(b.pending, payload[:n]...)
	}
	if err != nil {
		b.pkt, b.err = nil, err
	}
}

func (b *noticeBody) Close() error { return b.rc.Close() }

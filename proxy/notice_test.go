package proxy

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

const oid = "0123456789abcdef0123456789abcdef01234567"

func uploadPackRequest(t *testing.T, body string, gz bool) *http.Request {
	t.Helper()
	var b bytes.Buffer
	if gz {
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(body))
		zw.Close()
	} else {
		b.WriteString(body)
	}
	req, err := http.NewRequest(http.MethodPost, "https://dev.azure.com/contoso/Web/_git/site/git-upload-pack", bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	return req
}

func TestNoticeSideBandReadsFirstWant(t *testing.T) {
	rest := pkt("want "+oid+"\n") + "0000" + pkt("done\n")
	for _, c := range []struct {
		first string
		gz    bool
		want  int
	}{
		{"want " + oid + " multi_ack_detailed side-band-64k thin-pack agent=git/2.39.2\n", false, sideBand64kMax},
		{"want " + oid + " multi_ack_detailed side-band-64k thin-pack agent=git/2.39.2\n", true, sideBand64kMax},
		{"want " + oid + " side-band ofs-delta\n", false, sideBandMax},
		{"want " + oid + " ofs-delta\n", false, 0},
		{"command=fetch\n", false, 0}, // protocol v2: not handled
	} {
		body := pkt(c.first) + rest
		req := uploadPackRequest(t, body, c.gz)
		orig, _ := io.ReadAll(uploadPackRequest(t, body, c.gz).Body)
		if got := noticeSideBand(req); got != c.want {
			t.Errorf("%q gzip=%v: band %d; want %d", c.first, c.gz, got, c.want)
		}
		if after, _ := io.ReadAll(req.Body); !bytes.Equal(after, orig) {
			t.Errorf("%q gzip=%v: the body changed after the peek", c.first, c.gz)
		}
	}
	get, _ := http.NewRequest(http.MethodGet, "https://dev.azure.com/x/_git/y/info/refs?service=git-upload-pack", nil)
	if noticeSideBand(get) != 0 {
		t.Error("a GET asked for a notice")
	}
}

func TestNoticeBodyInsertsBeforeFirstSideBandPacket(t *testing.T) {
	note := noticePacket("your PAT expires on 2026-12-05; paste a new one at https://vault/pat?link=x", sideBand64kMax)
	if want := pkt("\x02azdo-sidecar: your PAT expires on 2026-12-05; paste a new one at https://vault/pat?link=x\n"); string(note) != want {
		t.Fatalf("packet = %q; want %q", note, want)
	}
	pre := pkt("shallow "+oid+"\n") + "0000" + pkt("ACK "+oid+" common\n") + pkt("ACK "+oid+"\n")
	pack := pkt("\x02Enumerating objects: 3\n") + pkt("\x01PACK....") + "0000"
	for _, c := range []struct {
		name, in, want string
	}{
		{"pack", pre + pack, pre + string(note) + pack},
		{"NAK then pack", pkt("NAK\n") + pack, pkt("NAK\n") + string(note) + pack},
		{"negotiation only", pkt("ACK "+oid+" common\n") + pkt("NAK\n"), pkt("ACK "+oid+" common\n") + pkt("NAK\n")},
		{"error line", pkt("ERR upload-pack: not our ref\n"), pkt("ERR upload-pack: not our ref\n")},
		{"not pkt-lines", "<html>nope</html>", "<html>nope</html>"},
		{"truncated", pkt("NAK\n") + "00ff\x01PA", pkt("NAK\n") + string(note) + "00ff\x01PA"},
	} {
		resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/x-git-upload-pack-result"}, "Content-Length": {"5"}},
			ContentLength: int64(len(c.in)), Body: io.NopCloser(iotest.OneByteReader(strings.NewReader(c.in)))}
		resp = withNotice(resp, note)
		got, _ := io.ReadAll(resp.Body)
		if string(got) != c.want {
			t.Errorf("%s: body = %q; want %q", c.name, got, c.want)
		}
		if resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" {
			t.Errorf("%s: the length of the changed body is still announced", c.name)
		}
	}
	// Another answer is not touched.
	resp := &http.Response{StatusCode: http.StatusForbidden, Header: http.Header{"Content-Type": {"text/plain"}}, Body: io.NopCloser(strings.NewReader("x"))}
	if got, _ := io.ReadAll(withNotice(resp, note).Body); string(got) != "x" {
		t.Errorf("a 403 got %q", got)
	}
}

func TestNoticePacketFitsSideBand(t *testing.T) {
	long := strings.Repeat("é", 2000) + "\nsecond line"
	for _, max := range []int{sideBandMax, sideBand64kMax} {
		p := noticePacket(long, max)
		if len(p) > max {
			t.Errorf("max %d: packet is %d bytes", max, len(p))
		}
		if got := fmt.Sprintf("%04x", len(p)); string(p[:4]) != got {
			t.Errorf("max %d: header %q; want %s", max, p[:4], got)
		}
		if p[4] != 2 || p[len(p)-1] != '\n' || bytes.Count(p, []byte("\n")) != 1 {
			t.Errorf("max %d: not one channel 2 line: %q", max, p[:20])
		}
	}
}

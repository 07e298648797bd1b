package recorder

import (
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRecorderKeepsHeadersAndBodySize(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CertPool()}}}
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/x?y=1", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer leaked-token")
	req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("u:basic-token")))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d; want 200", resp.StatusCode)
	}
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("len(Requests()) = %d; want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.URI != "/x?y=1" || r.BodyBytes != 5 || r.Header.Get("Authorization") != "Bearer leaked-token" {
		t.Errorf("recorded %+v; want POST /x?y=1, 5 body bytes, the Authorization header", r)
	}
	for _, tc := range []struct {
		name, needle string
		want         bool
	}{
		{"token in header", "leaked-token", true},
		{"query", "y=1", true},
		{"token as a Basic password in another header", "basic-token", true},
		{"token in the body", "ell", true},
		{"absent", "other-token", false},
		{"empty", "", false},
	} {
		if got := s.Contains(tc.needle); got != tc.want {
			t.Errorf("%s: Contains(%q) = %v; want %v", tc.name, tc.needle, got, tc.want)
		}
	}
}

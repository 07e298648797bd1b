package connect

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/vault/store"
)

// TestPATSessionCookieIsNotALink: the PAT page's session cookie, used as
// a link in another browser once the link is spent, opens nothing: a
// spent link does not live on through its session.
func TestPATSessionCookieIsNotALink(t *testing.T) {
	tp := newTestPages(t)
	b := tp.browser(t)
	link := tp.link(t, "dev.azure.com", "contoso", store.PAT)
	if r := b.get(link); r.code != http.StatusOK {
		t.Fatalf("link = %d; want 200", r.code)
	}
	var sess string
	u, _ := url.Parse("https://runner.example.com/pat")
	for _, ck := range b.jar.Cookies(u) {
		if ck.Name == patCookie {
			sess = ck.Value
		}
	}
	if sess == "" {
		t.Fatal("no PAT session cookie")
	}
	other := tp.browser(t)
	if r := other.get(link); r.code == http.StatusOK {
		t.Fatalf("the link opened twice")
	}
	if r := other.get("/pat?" + url.Values{"link": {sess}}.Encode()); r.code == http.StatusOK {
		t.Errorf("the session cookie used as a link = %d; want refused", r.code)
	}
}

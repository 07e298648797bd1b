package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/azdo-sidecar/azdo-sidecar/e2e/azdoemu"
	"github.com/azdo-sidecar/azdo-sidecar/vaultapi"
)

// artifactsDir keeps the browser tests' screenshots (gitignored).
const artifactsDir = "artifacts"

// chromium finds Debian's chromium. Without it the browser tests skip,
// unless CI is set: there .ci/run installs it, so its absence is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed and CI is set: .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium); skipping the real-browser test")
	return ""
}

// newChrome starts a headless chromium with a fresh profile, driven over
// the DevTools protocol, stopped at the end of the test. Only this test
// browser ignores certificate errors: the Entra emulator's CA is per run.
// The window is a phone's, so the pages are checked where they are read.
func newChrome(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(390, 844),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancelCtx() // closes the browser
		cancelAlloc()
	})
	// The first run starts the browser; it must not carry a timeout (the
	// timeout would stop the browser), so the steps below get their own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// stepTimeout bounds one browser step.
const stepTimeout = 30 * time.Second

// do runs browser steps with a timeout.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

// get runs one browser action that returns a value, with a timeout.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

// shot saves a full-page screenshot as artifacts/<test>-<name>.png.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := get(t, ctx, chromedp.FullScreenshot(100))
	if err := os.MkdirAll(artifactsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(artifactsDir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", file)
}

// fitsPhone checks that the page has a viewport meta and needs no
// horizontal scrolling in the phone-sized window.
func fitsPhone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	if !get(t, ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth && !!document.querySelector('meta[name=viewport]')`)) {
		t.Errorf("%s: page is wider than a phone screen or has no viewport meta", what)
	}
}

const connectedText = "Connected. Return to your environment; git will work now."

// TestBrowserConnectOAuth: a real browser opens the connect link, goes
// through the Entra emulator's authorize endpoint and lands on the
// "Connected" page; the vault then serves a bearer token Azure DevOps
// accepts. Opening the link again shows the used-link page.
func TestBrowserConnectOAuth(t *testing.T) {
	w := newConnectWorld(t)
	ctx := newChrome(t)
	link := w.connectURL(vaultHost, "contoso", "/connect")

	do(t, ctx, "open the connect link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("continue")))
	confirm := get(t, ctx, chromedp.Text(chromedp.ID("message")))
	fitsPhone(t, ctx, "confirmation page")
	shot(t, ctx, "confirm")
	if want := "Connect Azure DevOps on " + vaultHost + " for " + connectOwner + " (environment "; !strings.HasPrefix(confirm, want) {
		t.Errorf("confirmation page says %q; want it to start %q", confirm, want)
	}
	if c := w.entra.Counts(); c.Authorize != 0 {
		t.Fatalf("the emulator saw %d authorize requests before Continue; want 0", c.Authorize)
	}
	do(t, ctx, "press Continue", chromedp.Click(chromedp.ID("continue")), chromedp.WaitVisible(chromedp.CSS("h1.ok")))
	result := get(t, ctx, chromedp.Text(chromedp.ID("result")))
	loc := get(t, ctx, chromedp.Location())
	fitsPhone(t, ctx, "connected page")
	shot(t, ctx, "connected")
	if result != connectedText || !strings.HasPrefix(loc, w.url+"/oauth/callback?") {
		t.Fatalf("browser ended at %s with %q; want the callback's Connected page", loc, result)
	}
	if c := w.entra.Counts(); c.Authorize != 1 || c.AuthorizationCode != 1 {
		t.Errorf("emulator saw %d authorize and %d code redemptions; want 1 and 1", c.Authorize, c.AuthorizationCode)
	}
	if hint := w.entra.LastLoginHint(); hint != connectUPN {
		t.Errorf("authorize login_hint = %q; want %q", hint, connectUPN)
	}
	w.assertBearerWorks()

	before := w.snapshot()
	do(t, ctx, "open the link again", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("h1.err")))
	result = get(t, ctx, chromedp.Text(chromedp.ID("result")))
	shot(t, ctx, "replayed-link")
	if result != "This link was already used" {
		t.Errorf("replayed link shows %q; want the used-link page", result)
	}
	w.assertStoreUnchanged(before)
}

// TestBrowserConnectPAT: a real browser opens a PAT link, reads the
// instructions, submits an invalid PAT (refused, form kept, nothing
// stored), then a valid one; the vault then serves it as a basic token.
func TestBrowserConnectPAT(t *testing.T) {
	w := newConnectWorld(t)
	pat := azdoemu.NewPAT()
	if err := w.azdo.AddPAT(azdoemu.PAT{Token: pat, Org: "fabrikam", User: connectUPN}); err != nil {
		t.Fatal(err)
	}
	ctx := newChrome(t)
	link := w.connectURL(vsHost, "fabrikam", "/pat")

	do(t, ctx, "open the PAT link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("pat")))
	deepLink := get(t, ctx, chromedp.AttributeValue(chromedp.ID("deeplink"), "href"))
	scope := get(t, ctx, chromedp.Text(chromedp.ID("scope")))
	fitsPhone(t, ctx, "PAT form")
	shot(t, ctx, "form")
	if deepLink.Value != "https://fabrikam.visualstudio.com/_details/security/tokens" || scope != "Code: Read & write" {
		t.Errorf("PAT page deep link %q, scope %q; want the fabrikam token page and Code: Read & write", deepLink.Value, scope)
	}

	before := w.snapshot()
	do(t, ctx, "submit an invalid PAT",
		chromedp.SendKeys(chromedp.ID("pat"), azdoemu.NewPAT().Reveal()),
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.ID("error")))
	msg := get(t, ctx, chromedp.Text(chromedp.ID("error")))
	kept := get(t, ctx, chromedp.Value(chromedp.ID("pat")))
	shot(t, ctx, "invalid-pat")
	if !strings.Contains(msg, "did not accept this token") || kept != "" {
		t.Errorf("invalid PAT: message %q, PAT field %q; want a refusal and an empty field", msg, kept)
	}
	w.assertStoreUnchanged(before)

	do(t, ctx, "submit a valid PAT",
		chromedp.SendKeys(chromedp.ID("pat"), pat.Reveal()),
		chromedp.Click(chromedp.ID("save")),
		chromedp.WaitVisible(chromedp.ID("result")))
	result := get(t, ctx, chromedp.Text(chromedp.ID("result")))
	shot(t, ctx, "saved")
	if result != connectedText {
		t.Fatalf("after a valid PAT the page shows %q", result)
	}
	a := w.token(vsHost, "fabrikam")
	if a.code != 200 || a.ok.Type != vaultapi.TypeBasic || a.ok.Token != pat.Reveal() {
		t.Fatalf("token after the PAT = %d type %q; want 200 basic with the PAT", a.code, a.ok.Type)
	}
	w.assertAzDOAccepts("https://fabrikam.visualstudio.com/_apis/connectionData", basicHeader(a.ok.Username, pat)[len("Authorization: "):], connectUPN)
	w.assertNoSecretsLogged(pat.Reveal())
}

package connect

import (
	"bytes"
	"html/template"
	"net/http"
	"strings"
)

// securityHeaders are sent with every page: nothing loads from anywhere
// (no scripts, images or fonts; inline CSS only), forms post only here,
// no framing, no referrer (a link must never leak through one), no cache.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
	"X-Frame-Options":         "DENY",
	"Referrer-Policy":         "no-referrer",
	"Cache-Control":           "no-store",
	"X-Content-Type-Options":  "nosniff",
	"Content-Type":            "text/html; charset=utf-8",
}

const layout = `{{define "top"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · azdo-vault</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;padding:1rem;background:#f6f7f9;color:#1b1f24}
main{max-width:36rem;margin:0 auto;background:#fff;border:1px solid #d8dde3;border-radius:8px;padding:1rem 1.25rem}
h1{font-size:1.35rem;margin:.2rem 0 .8rem}
.ok{border-left:4px solid #1a7f37;padding-left:.75rem}
.err{border-left:4px solid #cf222e;padding-left:.75rem}
.warn{border-left:4px solid #bf8700;padding-left:.75rem}
label{display:block;font-weight:600;margin-top:.8rem}
input[type=password],input[type=text],input[type=date]{width:100%;box-sizing:border-box;padding:.5rem;font:inherit;border:1px solid #8c959f;border-radius:6px}
button{margin-top:1rem;padding:.55rem 1.1rem;font:inherit;border:0;border-radius:6px;background:#0969da;color:#fff}
code{background:#eff1f3;padding:0 .25rem;border-radius:4px;word-break:break-all}
dt{font-weight:600}dd{margin:0 0 .5rem}
small{color:#57606a}
a{overflow-wrap:anywhere}
</style></head><body><main>{{end}}
{{define "bottom"}}</main></body></html>{{end}}
{{define "close"}}{{if .Waiting}}<p class="ok" id="close"><strong>You can close this window; your environment continues by itself.</strong></p>{{else}}<p><small>You can close this page.</small></p>{{end}}{{end}}

{{define "connected"}}{{template "top" .}}
<h1 class="ok" id="result">Connected. Return to your environment; git will work now.</h1>
<p>Azure DevOps on <code>{{.Host}}</code>{{if .Org}} (organization <code>{{.Org}}</code>){{end}} is connected for <code>{{.Owner}}</code>.{{if .Who}} Signed in as <code>{{.Who}}</code>.{{end}}</p>
{{template "close" .}}
{{template "bottom" .}}{{end}}

{{define "problem"}}{{template "top" .}}
<h1 class="err" id="result">{{.Title}}</h1>
<p id="message">{{.Message}}</p>
<p id="who"><strong>{{if eq .Who "administrator"}}Who must fix this: your administrator.{{else}}Who must fix this: you.{{end}}</strong> {{.Fix}}</p>
{{if .Code}}<p><small>Reference: <code>{{.Code}}</code></small></p>{{end}}
{{template "bottom" .}}{{end}}

{{define "mismatch"}}{{template "top" .}}
<h1 class="err" id="result">This link is for another account</h1>
<p id="message">You signed in as {{.Who}}, but this link connects Azure DevOps for {{.Expected}}. Nothing was saved. Sign in as {{.Expected}}, or ask {{.OwnerName}} for their own link.</p>
<p><small>Reference: <code>owner_mismatch</code></small></p>
{{template "bottom" .}}{{end}}

{{define "confirm"}}{{template "top" .}}
<h1 id="result">Connect Azure DevOps on {{.Host}} for {{.Owner}}?</h1>
<p id="message">Connect Azure DevOps on <code>{{.Host}}</code> for <code>{{.Owner}}</code> (environment <code>{{.Env}}</code>, runner <code>{{.Runner}}</code>).</p>
<p>Continue only if you started this from your own environment and you are {{if .Expected}}<code>{{.Expected}}</code>{{else}}<code>{{.Owner}}</code>{{end}}. You will be asked to sign in with Microsoft Entra ID; the vault then keeps access to Azure DevOps (Code: read &amp; write) for that environment's owner.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="link" value="{{.Link}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit" id="continue">Continue</button>
</form>
<p><small>If someone sent you this link, do not continue: close this page.</small></p>
{{template "bottom" .}}{{end}}

{{define "pat"}}{{template "top" .}}
<h1>Connect Azure DevOps with a personal access token</h1>
{{if .Error}}<p class="err" id="error" role="alert">{{.Error}}</p>{{end}}
<ol>
<li>Open {{if .CreateURL}}<a id="deeplink" href="{{.CreateURL}}" rel="noreferrer noopener" target="_blank">{{.CreateURL}}</a>{{else}}<code>https://{{.Host}}/&lt;organization&gt;/_usersSettings/tokens</code> (User settings &gt; Personal access tokens){{end}} and choose <em>New Token</em>.</li>
<li>Name: <code id="name">{{.TokenName}}</code></li>
<li>Organization: {{if .Org}}<code>{{.Org}}</code>{{else}}yours (enter it below){{end}}, or <em>All accessible organizations</em>.</li>
<li>Expiration: {{.DefaultDays}} days (the default) or longer.</li>
<li>Scopes: <em>Custom defined</em>, then <strong id="scope">Code: Read &amp; write</strong>.</li>
<li>Create it, copy the token and paste it here.</li>
</ol>
<form method="post" action="{{.Action}}" autocomplete="off">
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{if .AskOrg}}<label for="org">Organization</label>
<input type="text" id="org" name="org" value="{{.Org}}" required>{{end}}
<label for="pat">Personal access token</label>
<input type="password" id="pat" name="pat" required autocomplete="off" spellcheck="false">
<label for="expires">Expires on</label>
<input type="date" id="expires" name="expires" value="{{.Expires}}" required>
<label><input type="checkbox" name="all_orgs" value="1"{{if .AllOrgs}} checked{{end}}> The token is for all accessible organizations</label>
<button type="submit" id="save">Check and save</button>
</form>
<p><small>The token is checked against {{.Host}} before it is saved, then kept sealed to this runner's key. It is never shown again.</small></p>
{{template "bottom" .}}{{end}}

{{define "pat_saved"}}{{template "top" .}}
<h1 class="ok" id="result">Connected. Return to your environment; git will work now.</h1>
<p>Your personal access token for <code>{{.Host}}</code>{{if .Org}} (organization <code>{{.Org}}</code>){{end}} was checked and saved for <code>{{.Owner}}</code>.</p>
{{if .Warning}}<p class="warn" id="warning">{{.Warning}}</p>{{end}}
{{template "close" .}}
{{template "bottom" .}}{{end}}
`

var pages = template.Must(template.New("pages").Parse(layout))

// page is the data of every template; unused fields stay empty.
type page struct {
	Title, Host, Org, Owner, Who string
	// problem
	Message, Fix, Code string
	// pat
	Error, CreateURL, TokenName, CSRF, Expires, Action string
	AskOrg, AllOrgs                                    bool
	DefaultDays                                        int
	// pat_saved
	Warning string
	// mismatch, confirm: the identity the owner must sign in as, and the
	// owner's short name
	Expected, OwnerName string
	// confirm: the environment, the runner's host and the link
	Env, Runner, Link string
	// FormTo is an origin the page's form may lead to besides the vault
	// (the identity provider that Continue redirects to: browsers apply
	// form-action to a form's redirects too). Not rendered.
	FormTo string
	// connected, pat_saved: an environment waits for this connection
	Waiting bool
}

// render writes template name with status code and the security headers.
// The page is rendered to a buffer first, so a template error never leaves
// half a page.
func render(w http.ResponseWriter, code int, name string, p page) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, p); err != nil {
		setHeaders(w)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("internal error rendering the page\n"))
		return
	}
	setHeaders(w)
	if p.FormTo != "" {
		w.Header().Set("Content-Security-Policy", strings.Replace(securityHeaders["Content-Security-Policy"], "form-action 'self'", "form-action 'self' "+p.FormTo, 1))
	}
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func setHeaders(w http.ResponseWriter) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
}

// problem is an error page: what happened, who must fix it, and how.
type problem struct {
	status int
	title  string
	msg    string
	who    string // "you" or "administrator"
	fix    string
	code   string // a safe reference (an OAuth error, an AADSTS code)
}

func (h *Handler) renderProblem(w http.ResponseWriter, p problem) {
	render(w, p.status, "problem", page{Title: p.title, Message: p.msg, Who: p.who, Fix: p.fix, Code: p.code})
}

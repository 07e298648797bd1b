package azdoemu

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/url"
	"strconv"
	"strings"
)

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// ServeHTTP implements http.Handler: log, faults, routing, authentication,
// then git or the REST API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cred := parseCredential(r)
	entry := s.logStart(r, cred)
	rec := &recorder{ResponseWriter: w}
	body := &countingReader{r: r.Body}
	r.Body = body
	defer func() {
		s.logEnd(entry, rec.status, body.n)
	}()

	if s.applyFault(rec, r) {
		return
	}
	s.serve(rec, r, cred)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, cred credential) {
	if s.cfg.EchoHeaders && r.URL.Path == EchoPath {
		echo(w, r)
		return
	}
	rt := s.parseRoute(r.Host, r.URL.EscapedPath())
	switch rt.kind {
	case routeNotFound:
		http.Error(w, "404 Not Found", http.StatusNotFound)
		return
	case routeSignin:
		signin(w)
		return
	}
	user, err := s.authenticate(cred, rt.org)
	if err != nil {
		s.unauthorized(w, r, rt)
		return
	}
	switch rt.kind {
	case routeAPI:
		s.serveAPI(w, r, rt, user)
	case routeGit:
		s.serveGit(w, r, rt, user)
	}
}

// echo reflects the request's headers (see EchoPath).
func echo(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("in") == "header" {
		w.Header().Set("X-Echo-Authorization", r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s\r\n", r.Method, r.URL.RequestURI(), r.Proto)
	_ = r.Header.Write(&b)
	io.WriteString(w, b.String())
}

// serveAPI answers the few REST calls clients make.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, rt route, user string) {
	if segs := strings.Split(rt.api, "/"); len(segs) >= 3 && strings.EqualFold(segs[0], "git") && strings.EqualFold(segs[1], "repositories") {
		s.serveRepoAPI(w, r, rt, segs[2], segs[3:])
		return
	}
	if !strings.EqualFold(rt.api, "connectionData") || rt.project != "" {
		writeJSON(w, http.StatusNotFound, map[string]any{
			"$id": "1", "message": "The resource cannot be found.", "typeKey": "NotFoundException", "errorCode": 0,
		})
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	identity := map[string]any{
		"id":                  guidFrom("user:" + user),
		"descriptor":          "Microsoft.IdentityModel.Claims.ClaimsIdentity;" + s.cfg.TenantID + "\\" + user,
		"subjectDescriptor":   "aad." + guidFrom("subject:"+user),
		"providerDisplayName": user,
		"isActive":            true,
		"properties": map[string]any{
			"Account": map[string]string{"$type": "System.String", "$value": user},
		},
		"resourceVersion": 2,
		"metaTypeId":      0,
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"authenticatedUser": identity,
		"authorizedUser":    identity,
		"instanceId":        guidFrom("org:" + strings.ToLower(rt.org)),
		"deploymentId":      guidFrom("deployment:" + strings.ToLower(rt.org)),
		"deploymentType":    "hosted",
		"locationServiceData": map[string]any{
			"serviceOwner":                "00025394-6065-48ca-87d9-7f5672854ef7",
			"defaultAccessMappingMoniker": "PublicAccessMapping",
			"lastChangeId":                1,
			"lastChangeId64":              1,
		},
	})
}

// serveGit runs git-http-backend for a smart HTTP request.
func (s *Server) serveGit(w http.ResponseWriter, r *http.Request, rt route, user string) {
	rp := s.lookup(rt.org, rt.project, rt.repo)
	if rp == nil {
		msg := fmt.Sprintf("TF401019: The Git repository with name or identifier %s does not exist or you do not have permissions for the operation you are attempting.", rt.repo)
		w.Header().Set("X-TFS-ServiceError", urlQueryEscape(msg))
		http.Error(w, msg, http.StatusNotFound)
		return
	}
	switch {
	case rt.rest == "":
		// The web page of the repository.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!DOCTYPE html><html><head><title>%s - Repos</title></head><body></body></html>", rt.repo)
		return
	case rt.rest == "info/refs" && r.Method == http.MethodGet:
		svc := r.URL.Query().Get("service")
		if svc != "git-upload-pack" && svc != "git-receive-pack" {
			// Azure DevOps speaks only the smart protocol.
			http.Error(w, "TF400907: The URL specified appears to be from a Git client that is not supported.", http.StatusForbidden)
			return
		}
	case (rt.rest == "git-upload-pack" || rt.rest == "git-receive-pack") && r.Method == http.MethodPost:
	default:
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}

	// Azure DevOps speaks protocol v1 only: drop the client's request
	// for v2 so that the backend answers v1.
	r.Header.Del("Git-Protocol")

	if rt.rest == "git-upload-pack" {
		ok, replay, err := checkMultiAck(r)
		if err != nil {
			http.Error(w, "400 Bad Request: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = replay
		if !ok {
			msg := "TF401041: The client does not support the multi_ack or multi_ack_detailed capability. Clients must support multi-ack."
			w.Header().Set("X-TFS-ServiceError", urlQueryEscape(msg))
			http.Error(w, msg, http.StatusBadRequest)
			return
		}
	}

	// net/http/cgi refuses chunked bodies; git-http-backend reads to EOF
	// when CONTENT_LENGTH is absent, so pass them on as "unknown length".
	r2 := r.Clone(r.Context())
	r2.Body = r.Body
	if len(r2.TransferEncoding) > 0 {
		r2.TransferEncoding = nil
		r2.ContentLength = -1
	}
	r2.URL.Path = "/" + rp.rel + "/" + rt.rest
	r2.URL.RawPath = ""
	r2.Header.Del("Authorization")
	h := &cgi.Handler{
		Path: s.backend,
		Dir:  s.cfg.Dir,
		Env: append(baseGitEnv(s.cfg.Dir),
			"GIT_PROJECT_ROOT="+s.cfg.Dir,
			"GIT_HTTP_EXPORT_ALL=1",
			"REMOTE_USER="+user,
			"GIT_CONFIG_COUNT=2",
			"GIT_CONFIG_KEY_0=http.receivepack", "GIT_CONFIG_VALUE_0=true",
			"GIT_CONFIG_KEY_1=uploadpack.allowFilter", "GIT_CONFIG_VALUE_1=true",
		),
		Stderr: logfWriter{s.logf},
	}
	h.ServeHTTP(w, r2)
}

// maxWantPeek bounds how much of an upload-pack request is read to find
// the first want line.
const maxWantPeek = 64 << 10

// checkMultiAck reads the first pkt-line of an upload-pack request (gzip
// or not) and reports whether a want line advertises multi_ack or
// multi_ack_detailed. It returns a reader that replays everything it read.
func checkMultiAck(r *http.Request) (ok bool, replay io.ReadCloser, err error) {
	var seen bytes.Buffer
	tee := io.TeeReader(io.LimitReader(r.Body, maxWantPeek), &seen)
	var src io.Reader = tee
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, zerr := gzip.NewReader(tee)
		if zerr != nil {
			return false, nil, fmt.Errorf("bad gzip body: %w", zerr)
		}
		src = zr
	}
	line, perr := readPktLine(src)
	replay = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(seen.Bytes()), r.Body), r.Body}
	if perr != nil {
		return false, nil, perr
	}
	if !strings.HasPrefix(line, "want ") {
		// No want (a flush): nothing to negotiate; let the backend answer.
		return true, replay, nil
	}
	fields := strings.Fields(line)
	for _, c := range fields[2:] {
		if c == "multi_ack" || c == "multi_ack_detailed" {
			return true, replay, nil
		}
	}
	return false, replay, nil
}

var errPkt = errors.New("malformed pkt-line")

// readPktLine reads one pkt-line and returns its payload ("" for a flush).
func readPktLine(r io.Reader) (string, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", errPkt
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil {
		return "", errPkt
	}
	if n < 4 {
		return "", nil
	}
	buf := make([]byte, n-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", errPkt
	}
	return strings.TrimSuffix(string(buf), "\n"), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8; api-version=7.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// guidFrom derives a stable GUID from a string.
func guidFrom(s string) string {
	b := sha256.Sum256([]byte(s))
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// recorder remembers the status a handler wrote.
type recorder struct {
	http.ResponseWriter
	status int
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush lets CGI output stream.
func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingReader counts the bytes read from a request body.
type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// RepoID returns the repository's ID as the REST API shows it: a GUID
// derived from its organization, project and name (case-folded, as Azure
// DevOps compares them).
func RepoID(org, project, name string) string {
	k := keyOf(org, project, name)
	return guidFrom("repo:" + k.org + "/" + k.project + "/" + k.repo)
}

// serveRepoAPI answers GET _apis/git/repositories/{id or name}: the
// repository's id, name and project, as Azure DevOps does; by name it needs
// the project in the path, by ID it does not. Sub-resources answer an empty
// list. Anything else is 404 or 405.
func (s *Server) serveRepoAPI(w http.ResponseWriter, r *http.Request, rt route, ref string, rest []string) {
	notFound := func() {
		writeJSON(w, http.StatusNotFound, map[string]any{
			"$id": "1", "message": "TF401019: The Git repository with name or identifier " + ref + " does not exist or you do not have permissions for the operation you are attempting.",
			"typeKey": "GitRepositoryNotFoundException", "errorCode": 0,
		})
	}
	if r.Method != http.MethodGet {
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	var found *repo
	s.mu.Lock()
	for _, rp := range s.repos {
		if !strings.EqualFold(rp.org, rt.org) {
			continue
		}
		if strings.EqualFold(RepoID(rp.org, rp.project, rp.name), ref) ||
			rt.project != "" && strings.EqualFold(rp.project, rt.project) && strings.EqualFold(rp.name, ref) {
			found = rp
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		notFound()
		return
	}
	if len(rest) > 0 {
		writeJSON(w, http.StatusOK, map[string]any{"count": 0, "value": []any{}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":            RepoID(found.org, found.project, found.name),
		"name":          found.name,
		"defaultBranch": "refs/heads/main",
		"project":       map[string]any{"id": guidFrom("project:" + strings.ToLower(found.org+"/"+found.project)), "name": found.project},
	})
}

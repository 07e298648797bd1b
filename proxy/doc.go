// Package proxy is the sidecar's HTTP proxy: it intercepts CONNECT tunnels to
// Azure DevOps hosts with a per-process, name-constrained CA, injects the
// credential for the request's host and organization, and streams bodies both
// ways. Tunnels to every other host are blind: their bytes are relayed and
// never decrypted.
//
// The proxy is built on github.com/elazarl/goproxy, with its traps avoided:
// its built-in CA is never used, the upstream transport is ours (verified
// TLS, HTTP/1.1 only, timeouts, --resolve, upstream proxy), interception
// speaks HTTP/1.1 only, leaf certificates are cached in a bounded LRU and
// generated once per host, and every connection goroutine goproxy starts is
// ended by closing connections this package tracks itself (net/http's
// Shutdown forgets hijacked connections).
//
// Security rules, each with a test: a credential is written only to a request
// whose CONNECT target and Host header are the same Azure DevOps host; plain
// http requests for Azure DevOps hosts are refused; proxy-only headers are
// stripped before forwarding; no secret reaches a log line, an error, a
// response body or a metric.
package proxy

// Package tools pins the project's chosen dependencies until code imports them.

//go:build tools

package tools

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/coreos/go-oidc/v3/oidc"
	_ "github.com/elazarl/goproxy"
	_ "github.com/go-git/go-git/v5"
	_ "github.com/go-jose/go-jose/v4"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/urfave/cli/v2"
	_ "golang.org/x/crypto/nacl/box"
	_ "golang.org/x/oauth2"
	_ "golang.org/x/sync/singleflight"
	_ "gopkg.in/yaml.v3"
	_ "modernc.org/sqlite"
)

package sidecar

import (
	"context"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/token"
)

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}

func tokenKey() token.Key { return token.Key{Host: "dev.azure.com", Org: "contoso"} }

package proxy

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/azdo-sidecar/azdo-sidecar/secret"
	"github.com/azdo-sidecar/azdo-sidecar/token"
)

// TestScrubFilterMatchesFullScan: the sampled scrub replaces exactly what
// searching every pattern through the whole buffer replaces, on random
// buffers holding occurrences of the patterns (whole, overlapping,
// adjacent, at both ends, cut short) for tokens long and short.
func TestScrubFilterMatchesFullScan(t *testing.T) {
	tokens := []token.Token{
		{Kind: token.Basic, Secret: secret.New(testPAT)},
		{Kind: token.Basic, Secret: secret.New("52charsPATabcdefghijklmnopqrstuvwxyz0123456789ABCDEF")},
		{Kind: token.Bearer, Secret: secret.New("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + strings.Repeat("PayLoad_-x", 120) + ".sig")},
		{Kind: token.Basic, Secret: secret.New("short")},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tok := range tokens {
		pats := reflections(tok)
		filtered := newGramFilter(pats) != nil
		for round := range 300 {
			buf := make([]byte, rng.IntN(70000))
			for i := range buf {
				buf[i] = byte(rng.UintN(256))
			}
			for range rng.IntN(6) {
				p := pats[rng.IntN(len(pats))]
				if rng.IntN(4) == 0 {
					p = p[:rng.IntN(len(p))] // cut short: must stay
				}
				if len(p) > len(buf) {
					continue
				}
				at := rng.IntN(len(buf) - len(p) + 1)
				switch rng.IntN(4) {
				case 0:
					at = 0
				case 1:
					at = len(buf) - len(p)
				}
				copy(buf[at:], p)
			}
			want := bytes.Clone(buf)
			wantFound := 0
			(&scrubReader{pats: pats, buf: want, found: func() { wantFound++ }}).scrubWindow(want)
			got := bytes.Clone(buf)
			gotFound := 0
			s := &scrubReader{pats: pats, keep: maxLen(pats) - 1, grams: newGramFilter(pats), buf: got, found: func() { gotFound++ }}
			s.scrub()
			if !bytes.Equal(got, want) || gotFound != wantFound {
				t.Fatalf("%s (filter %v) round %d: sampled scrub differs from the full scan (found %d, want %d)", tok.Kind, filtered, round, gotFound, wantFound)
			}
			if containsAny(got, pats) {
				t.Fatalf("%s round %d: a pattern survived the scrub", tok.Kind, round)
			}
		}
	}
}

func maxLen(pats [][]byte) int {
	n := 0
	for _, p := range pats {
		n = max(n, len(p))
	}
	return n
}

// BenchmarkScrub measures the scrub of 32 KiB of pack-like (random) data.
func BenchmarkScrub(b *testing.B) {
	pats := reflections(token.Token{Kind: token.Basic, Secret: secret.New("52charsPATabcdefghijklmnopqrstuvwxyz0123456789ABCDEF")})
	buf := make([]byte, scrubChunk)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range buf {
		buf[i] = byte(rng.UintN(256))
	}
	for _, tc := range []struct {
		name  string
		grams *gramFilter
	}{{"full scan", nil}, {"sampled", newGramFilter(pats)}} {
		b.Run(tc.name, func(b *testing.B) {
			s := &scrubReader{pats: pats, keep: maxLen(pats) - 1, grams: tc.grams, buf: buf}
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				s.scrub()
			}
		})
	}
}

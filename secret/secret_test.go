package secret

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const value = "pat-5f2b9c0e-very-secret"

func TestStringNeverPrintsValue(t *testing.T) {
	s := New(value)
	type wrapper struct {
		Name  string
		Token String
	}
	w := wrapper{Name: "x", Token: s}
	outputs := map[string]string{
		"%s":  fmt.Sprintf("%s", s),
		"%v":  fmt.Sprintf("%v", s),
		"%+v": fmt.Sprintf("%+v", w),
		"%#v": fmt.Sprintf("%#v", w),
		"%q":  fmt.Sprintf("%q", s),
		"%x":  fmt.Sprintf("%x", s),
		"%d":  fmt.Sprintf("%d", s),
		"err": fmt.Errorf("wrapped: %v: %w", s, errors.New("cause")).Error(),
	}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(b)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("msg", "token", s, "w", w)
	outputs["slog-json"] = buf.String()
	buf.Reset()
	slog.New(slog.NewTextHandler(&buf, nil)).Info("msg", "token", s)
	outputs["slog-text"] = buf.String()

	for name, out := range outputs {
		if strings.Contains(out, value) {
			t.Errorf("%s leaked the secret: %s", name, out)
		}
		if !strings.Contains(out, Redacted) && name != "%x" && name != "%d" {
			t.Errorf("%s = %q; want it to contain %q", name, out, Redacted)
		}
	}
}

func TestRevealAndZero(t *testing.T) {
	if got := New(value).Reveal(); got != value {
		t.Fatalf("Reveal() = %q; want %q", got, value)
	}
	var z String
	if !z.IsZero() || z.String() != "" {
		t.Fatalf("zero String: IsZero=%v String=%q", z.IsZero(), z.String())
	}
	if !New("a").Equal(New("a")) || New("a").Equal(New("b")) {
		t.Fatal("Equal is wrong")
	}
}

// holder keeps a String in an unexported field, where fmt cannot call its
// methods and prints the struct's fields instead.
type holder struct{ tok String }

func TestUnexportedFieldNeverPrintsValue(t *testing.T) {
	h := holder{tok: New(value)}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		if out := fmt.Sprintf(f, h); strings.Contains(out, value) {
			t.Errorf("Sprintf(%q, holder) = %s; leaked the secret", f, out)
		}
	}
}

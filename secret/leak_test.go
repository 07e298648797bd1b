package secret
import ("fmt";"strings";"testing")
type holder struct{ tok String }
func TestUnexportedFieldLeak(t *testing.T) {
	h := holder{tok: New("supersecretvalue")}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(f, h); strings.Contains(out, "supersecretvalue") { t.Errorf("%s leaked: %s", f, out) }
	}
}

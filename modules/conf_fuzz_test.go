package modules

import (
	"strings"
	"testing"
)

// FuzzParse: any bytes give a config or an error naming the file, never a panic; a parsed config
// yields an environment for any module, with every entry of the form KEY=value.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sampleConf))
	f.Add([]byte("[global]\nPATH=/bin\n"))
	f.Add([]byte("x=1\n"))
	f.Add([]byte("[a]\nk=v\n  cont\n\tcont2\n[a]\nk=w\n"))
	f.Add([]byte("[]\n=\n:\n[[x]]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.conf", data)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.conf") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for sec := range c.Sections {
			for _, kv := range c.Env(sec) {
				if !strings.Contains(kv, "=") {
					t.Fatalf("environment entry without '=': %q", kv)
				}
			}
		}
	})
}

package module

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.Mkdir("modules", 0o755)
	os.WriteFile(filepath.Join("modules", "mine"), []byte("#!/bin/sh\n"), 0o755)
	for name, tc := range map[string]struct {
		raw  map[string]interface{}
		want string // "" for valid
	}{
		"built-in":                      {map[string]interface{}{"module": "uml"}, ""},
		"custom":                        {map[string]interface{}{"module": "mine", "env": map[string]string{"A": "b"}}, ""},
		"debian":                        {map[string]interface{}{"module": "debian", "debian": map[string]interface{}{"dist": "bookworm"}}, ""},
		"missing":                       {map[string]interface{}{}, "module is required"},
		"unknown":                       {map[string]interface{}{"module": "nosuch"}, "module: module not found: \"nosuch\""},
		"debian, dist from the builder": {map[string]interface{}{"module": "debian"}, ""},
		"uml bad mode":                  {map[string]interface{}{"module": "uml", "uml": map[string]interface{}{"kernel_modules": "x"}}, "uml.kernel_modules"},
		"network transport":             {map[string]interface{}{"module": "network", "network": map[string]interface{}{"transport": "slirp", "uml": "dhcp"}}, "only the agent transport"},
	} {
		t.Run(name, func(t *testing.T) {
			err := new(Provisioner).Prepare(tc.raw)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

package umltest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// HostMirror returns the Debian archive this machine's apt uses, read from its sources at test time,
// so that tests and benchmarks fetch from the same place and no registry host name is written into
// the repository. "" means the debian module's default.
func HostMirror(t testing.TB) string {
	t.Helper()
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	uri := regexp.MustCompile(`(?m)^URIs:\s*(\S+)`)
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, m := range uri.FindAllStringSubmatch(string(b), -1) {
			if strings.HasSuffix(strings.TrimSuffix(m[1], "/"), "/debian") {
				return m[1]
			}
		}
	}
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		line := regexp.MustCompile(`(?m)^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s`)
		if m := line.FindStringSubmatch(string(b)); m != nil {
			return m[1]
		}
	}
	t.Log("no Debian mirror in the apt sources: using the debian module's default")
	return ""
}

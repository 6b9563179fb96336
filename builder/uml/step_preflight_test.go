package uml

import (
	"strings"
	"testing"

	"github.com/packer-uml/packer-plugin-uml/modules"
)

// TestTransportProblems: a transport whose host side is missing says what it needs.
func TestTransportProblems(t *testing.T) {
	for _, tc := range []struct {
		opts modules.NetworkOptions
		want string
	}{
		{modules.NetworkOptions{Transport: "slirp", Slirp: "no-such-slirp"}, "runs no-such-slirp, which is not on PATH: install Debian's slirp package"},
		{modules.NetworkOptions{Transport: "daemon", Socket: "/nonexistent/uml.ctl"}, "no switch socket at /nonexistent/uml.ctl: start uml_switch"},
		{modules.NetworkOptions{Transport: "vde", Socket: "/nonexistent/vde.ctl"}, "start vde_switch (vde2)"},
	} {
		got := strings.Join(transportProblems(&tc.opts), "\n")
		if !strings.Contains(got, tc.want) {
			t.Errorf("%+v: got %q, want %q", tc.opts, got, tc.want)
		}
	}
	if p := transportProblems(&modules.NetworkOptions{}); len(p) != 0 {
		t.Errorf("the agent transport needs nothing, got %v", p)
	}
}

package uml

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/modules"
	"github.com/packer-uml/packer-plugin-uml/uml/kernel"
)

// TestPreflightCPUs: more than one processor with Debian 12's kernel (no SMP, ptrace mode) stops
// the build before anything is written, naming cpus and the fix; unset, the guest gets one.
func TestPreflightCPUs(t *testing.T) {
	for _, cpus := range []int{2, 0} {
		state := new(multistep.BasicStateBag)
		var out bytes.Buffer
		state.Put(stateUI, &packersdk.BasicUi{Writer: &out, ErrorWriter: &out})
		step := &stepPreflight{Kernel: "linux.uml", CPUs: cpus, FSType: "ext4"}
		action := step.Run(context.Background(), state)
		step.Cleanup(state)
		err, _ := state.GetOk(stateError)
		if cpus == 2 {
			if action != multistep.ActionHalt || err == nil || !strings.Contains(err.(error).Error(), "cpus = 2") || !strings.Contains(err.(error).Error(), "set cpus = 1") {
				t.Errorf("cpus = 2 with Debian's 6.1: action %v, error %v", action, err)
			}
			continue
		}
		if action != multistep.ActionContinue {
			t.Fatalf("cpus unset with Debian's 6.1: %v", err)
		}
		if n := guestCPUs(0, state.Get(stateKernel).(*kernel.Kernel)); n != 1 {
			t.Errorf("cpus unset with Debian's 6.1: %d processors, want 1", n)
		}
	}
}

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

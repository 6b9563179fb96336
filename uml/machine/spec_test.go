package machine

import (
	"slices"
	"strings"
	"testing"
)

func validSpec() Spec {
	return Spec{Kernel: "/usr/bin/linux.uml", UMID: "u1", UMLDir: "/w", TmpDir: "/w", MemMiB: 256,
		Disks: []string{"/out/a.img", "/out/b.img"}, Init: "/p/plugin", InitParams: []string{"packer_uml=abc"}}
}

func TestArgs(t *testing.T) {
	s := validSpec()
	s.Extra = []string{"loglevel=7", "mem=512M"}
	args, err := s.Args()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mem=256M", "umid=u1", "uml_dir=/w", "ubd0=/out/a.img", "ubd1=/out/b.img",
		"root=/dev/root", "rootfstype=hostfs", "rootflags=/", "ro", "init=/p/plugin",
		"con0=null,fd:1", "con=null", "ssl=null", "ssl1=fd:3,fd:4", "pty.legacy_count=0", "packer_uml=abc"} {
		if !slices.Contains(args, want) {
			t.Errorf("missing %q in %v", want, args)
		}
	}
	if slices.Contains(args, "seccomp=on") {
		t.Errorf("seccomp=on without Seccomp: %v", args)
	}
	// The user's parameters come last, so that they override ours (mem=512M after mem=256M).
	if got := args[len(args)-2:]; got[0] != "loglevel=7" || got[1] != "mem=512M" {
		t.Errorf("user parameters not last: %v", args)
	}
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "ncpus=") }) {
		t.Errorf("ncpus= without CPUs: %v", args)
	}
	s.Seccomp = true
	s.CPUs = 2
	args, _ = s.Args()
	if !slices.Contains(args, "seccomp=on") || !slices.Contains(args, "ncpus=2") {
		t.Errorf("seccomp=on or ncpus=2 missing: %v", args)
	}
}

func TestArgsRejects(t *testing.T) {
	for _, tc := range []struct {
		reason string
		change func(*Spec)
		want   string
	}{
		{"init path with a space would split the command line", func(s *Spec) { s.Init = "/a b/plugin" }, "init"},
		{"disk path with a comma breaks ubd syntax", func(s *Spec) { s.Disks = []string{"/out/a,b.img"} }, "disk"},
		{"disk path with a colon breaks ubd syntax", func(s *Spec) { s.Disks = []string{"/out/a:b.img"} }, "disk"},
		{"no memory", func(s *Spec) { s.MemMiB = 0 }, "memory"},
		{"no kernel", func(s *Spec) { s.Kernel = "" }, "kernel"},
		{"no umid", func(s *Spec) { s.UMID = "" }, "umid"},
		{"UML refuses SMP in ptrace mode", func(s *Spec) { s.CPUs = 2 }, "seccomp"},
	} {
		s := validSpec()
		tc.change(&s)
		_, err := s.Args()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one naming %q", tc.reason, err, tc.want)
		}
	}
}

func TestConsoleTail(t *testing.T) {
	var lines []string
	c := &Console{Keep: 2, OnLine: func(l string) { lines = append(lines, l) }}
	c.Write([]byte("one\r\ntwo\nthr"))
	c.Write([]byte("ee\nfour"))
	if !slices.Equal(lines, []string{"one", "two", "three"}) {
		t.Errorf("lines %q", lines)
	}
	if got := c.Tail(); !slices.Equal(got, []string{"two", "three", "four"}) {
		t.Errorf("tail %q", got)
	}
}

package uml

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

func TestQemuImgConvertArgs(t *testing.T) {
	for _, tc := range []struct {
		reason   string
		format   string
		compress bool
		want     []string
	}{
		{"qcow2, with progress", "qcow2", false, []string{"convert", "-p", "-f", "raw", "-O", "qcow2", "in.raw", "out.partial"}},
		{"compressed clusters", "qcow2", true, []string{"convert", "-p", "-f", "raw", "-O", "qcow2", "-c", "in.raw", "out.partial"}},
		{"vmdk", "vmdk", false, []string{"convert", "-p", "-f", "raw", "-O", "vmdk", "in.raw", "out.partial"}},
	} {
		if got := qemuImgConvertArgs("in.raw", "out.partial", tc.format, tc.compress); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.reason, got, tc.want)
		}
	}
}

func TestParseProgress(t *testing.T) {
	for in, want := range map[string]float64{"    (0.00/100%)": 0, "(42.50/100%)": 42.5, "  (100.00/100%)  ": 100} {
		if got, ok := parseProgress(in); !ok || got != want {
			t.Errorf("parseProgress(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "qemu-img: error", "(abc/100%)", "(50/200%)"} {
		if _, ok := parseProgress(in); ok {
			t.Errorf("parseProgress(%q) accepted", in)
		}
	}
}

// TestConvertProgressThrottles: progress records split across writes are read; a report comes at
// most once an interval, never for 100%.
func TestConvertProgressThrottles(t *testing.T) {
	start := time.Unix(1000, 0)
	now := start
	var got []float64
	p := &convertProgress{interval: 5 * time.Second, last: start, now: func() time.Time { return now },
		report: func(pct float64) { got = append(got, pct) }}
	step := func(d time.Duration, s string) {
		now = now.Add(d)
		p.Write([]byte(s))
	}
	step(0, "    (0.00/100%)\r    (10.")            // too early; the second record is split
	step(6*time.Second, "00/100%)\r")               // 6 s: reported
	step(time.Second, "    (20.00/100%)\r")         // 1 s later: quiet
	step(5*time.Second, "    (30.00/100%)\r    (3") // 5 s later: reported
	step(10*time.Second, "5.00/100%)\r")            // reported
	step(10*time.Second, "    (100.00/100%)\r")     // done: the step says so itself
	if want := []float64{10, 30, 35}; !reflect.DeepEqual(got, want) {
		t.Errorf("reports %v, want %v", got, want)
	}
}

// exportState is a state bag for stepExportImage with a raw image in an output directory.
func exportState(t *testing.T) (multistep.StateBag, *bytes.Buffer, string) {
	t.Helper()
	dir := t.TempDir()
	raw := filepath.Join(dir, "foo.qcow2.raw")
	if err := os.WriteFile(raw, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(raw, 64<<20); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	state := new(multistep.BasicStateBag)
	state.Put(stateUI, &packersdk.BasicUi{Writer: &out, ErrorWriter: &out})
	state.Put(stateImagePath, raw)
	return state, &out, dir
}

// TestExportImageQcow2: the real qemu-img converts the image, the artifact is the qcow2 file, and
// the raw image and the temporary file are gone.
func TestExportImageQcow2(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is not installed: apt-get install qemu-utils (scripts/install-deps)")
	}
	state, out, dir := exportState(t)
	raw := state.Get(stateImagePath).(string)
	if b, err := exec.Command(sbin("mkfs.ext4"), "-q", raw).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, b)
	}
	dst := filepath.Join(dir, "foo.qcow2")
	s := &stepExportImage{Format: "qcow2", Compress: true, Path: dst}
	if action := s.Run(context.Background(), state); action != multistep.ActionContinue {
		t.Fatalf("action %v, error %v\n%s", action, state.Get(stateError), out)
	}
	if got := state.Get(stateArtifactPath); got != dst {
		t.Errorf("artifact path %v, want %s", got, dst)
	}
	info, err := exec.Command("qemu-img", "info", dst).CombinedOutput()
	if err != nil || !strings.Contains(string(info), "file format: qcow2") || !strings.Contains(string(info), "virtual size: 64 MiB") {
		t.Errorf("qemu-img info: %v\n%s", err, info)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("output directory holds %v, want only the qcow2 image", entries)
	}
	if !strings.Contains(out.String(), "Converting the image to qcow2") {
		t.Errorf("UI:\n%s", out)
	}
}

// TestExportImageFailure: a failed conversion fails the step with qemu-img's words and leaves no
// artifact, not even the half-written temporary file.
func TestExportImageFailure(t *testing.T) {
	bin := t.TempDir()
	fake := "#!/bin/sh\nfor last; do :; done\necho half > \"$last\"\necho 'qemu-img: error while writing: No space left on device' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "qemu-img"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	state, out, dir := exportState(t)
	s := &stepExportImage{Format: "vmdk", Path: filepath.Join(dir, "foo.vmdk")}
	if action := s.Run(context.Background(), state); action != multistep.ActionHalt {
		t.Fatalf("action %v, want halt\n%s", action, out)
	}
	err, _ := state.Get(stateError).(error)
	if err == nil || !strings.Contains(err.Error(), "format vmdk") || !strings.Contains(err.Error(), "No space left on device") {
		t.Errorf("error %v, want one naming the format and quoting qemu-img", err)
	}
	for _, name := range []string{"foo.vmdk", "foo.vmdk.partial"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s is left after a failed conversion", name)
		}
	}
	if _, ok := state.GetOk(stateArtifactPath); ok {
		t.Error("a failed conversion produced an artifact path")
	}
}

// TestExportImageTar: the staged archive moves into the output directory, also from another
// filesystem (copied under the temporary name, then renamed).
func TestExportImageTar(t *testing.T) {
	state, out, dir := exportState(t)
	staged := filepath.Join(t.TempDir(), tarStagedName)
	if err := os.WriteFile(staged, []byte("archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	state.Put(stateTarPath, staged)
	dst := filepath.Join(dir, "foo.tar")
	s := &stepExportImage{Format: "tar", Path: dst}
	if action := s.Run(context.Background(), state); action != multistep.ActionContinue {
		t.Fatalf("action %v, error %v\n%s", action, state.Get(stateError), out)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "archive" {
		t.Errorf("artifact %q, %v", b, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("output directory holds %v, want only the archive", entries)
	}
	if _, err := os.Stat(staged); err == nil {
		t.Error("the staged archive stays")
	}

	// Across filesystems: the copy lands under the temporary name first.
	src := filepath.Join(t.TempDir(), "a.tar")
	os.WriteFile(src, []byte("other"), 0o644)
	partial := filepath.Join(dir, "b.tar.partial")
	if err := copyFile(src, partial); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(src, partial); err == nil {
		t.Error("copyFile overwrote an existing file")
	}
}

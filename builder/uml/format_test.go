package uml

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/packer-plugin-sdk/common"
)

// TestFormatDefaults: format defaults to raw, and the artifact's name takes the format's extension
// unless image_name is set; the raw image of another format lies beside the artifact.
func TestFormatDefaults(t *testing.T) {
	for _, tc := range []struct {
		format, imageName   string
		wantName, wantRaw   string
		wantFormat          string
		wantResize, setFree int
	}{
		{format: "", wantName: "foo.img", wantRaw: "foo.img", wantFormat: "raw", setFree: 50, wantResize: 50},
		{format: "raw", wantName: "foo.img", wantRaw: "foo.img", wantFormat: "raw"},
		{format: "qcow2", wantName: "foo.qcow2", wantRaw: "foo.qcow2.raw", wantFormat: "qcow2", setFree: 50, wantResize: 50},
		{format: "vmdk", wantName: "foo.vmdk", wantRaw: "foo.vmdk.raw", wantFormat: "vmdk"},
		{format: "tar", wantName: "foo.tar", wantRaw: "foo.tar.raw", wantFormat: "tar"},
		{format: "qcow2", imageName: "root.img", wantName: "root.img", wantRaw: "root.img.raw", wantFormat: "qcow2"},
	} {
		changes := map[string]interface{}{"format": tc.format}
		if tc.imageName != "" {
			changes["image_name"] = tc.imageName
		}
		if tc.setFree != 0 {
			changes["free_space"] = tc.setFree
		}
		c, err := prepare(t, changes)
		if err != nil {
			t.Errorf("format %q: %v", tc.format, err)
			continue
		}
		if c.Format != tc.wantFormat || c.ImageName != tc.wantName {
			t.Errorf("format %q: format %q, image_name %q; want %q, %q", tc.format, c.Format, c.ImageName, tc.wantFormat, tc.wantName)
		}
		if got, want := c.rawImageFile(), filepath.Join("output-foo", tc.wantRaw); got != want {
			t.Errorf("format %q: raw image %s, want %s", tc.format, got, want)
		}
		if got := c.resizeMiB(); got != tc.wantResize {
			t.Errorf("format %q: resize to %d MiB free, want %d", tc.format, got, tc.wantResize)
		}
	}
}

// TestFormatInvalid: errors name the field and the fix.
func TestFormatInvalid(t *testing.T) {
	for name, tc := range map[string]struct {
		changes map[string]interface{}
		want    []string
	}{
		"unknown format":          {map[string]interface{}{"format": "zip"}, []string{`format "zip" is not supported`, "raw, qcow2, vmdk, tar"}},
		"format case":             {map[string]interface{}{"format": "QCOW2"}, []string{"format", "qcow2"}},
		"format not a string":     {map[string]interface{}{"format": []string{"raw"}}, []string{"format"}},
		"compression with raw":    {map[string]interface{}{"disk_compression": true}, []string{"disk_compression", `"qcow2" only`, `not "raw"`}},
		"compression with vmdk":   {map[string]interface{}{"format": "vmdk", "disk_compression": true}, []string{"disk_compression", `not "vmdk"`}},
		"compression with tar":    {map[string]interface{}{"format": "tar", "disk_compression": true}, []string{"disk_compression"}},
		"compression not a bool":  {map[string]interface{}{"format": "qcow2", "disk_compression": "very"}, []string{"disk_compression"}},
		"image name slash, qcow2": {map[string]interface{}{"format": "qcow2", "image_name": "a/b.qcow2"}, []string{"image_name"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := prepare(t, tc.changes)
			if err == nil {
				t.Fatalf("Prepare(%v) accepted", tc.changes)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
	if _, err := prepare(t, map[string]interface{}{"format": "qcow2", "disk_compression": true}); err != nil {
		t.Errorf("disk_compression with qcow2: %v", err)
	}
}

// TestFormatTarFreeSpaceWarns: free_space means nothing to a tar; the build says so and does not
// resize.
func TestFormatTarFreeSpaceWarns(t *testing.T) {
	var c Config
	warnings, err := c.Prepare(map[string]interface{}{common.BuildNameConfigKey: "foo", "modules": []string{}, "format": "tar", "free_space": 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "free_space") || !strings.Contains(warnings[0], `format "tar"`) {
		t.Errorf("warnings %q, want one about free_space and format tar", warnings)
	}
	if c.resizeMiB() != 0 {
		t.Errorf("a tar build resizes the image")
	}
	var b Builder
	_, warnings, err = b.Prepare(map[string]interface{}{common.BuildNameConfigKey: "foo", "modules": []string{}, "format": "tar", "free_space": 100})
	if err != nil || len(warnings) != 1 {
		t.Errorf("Builder.Prepare: warnings %q, err %v", warnings, err)
	}
}

// TestFormatToolProblems: qcow2 and vmdk without qemu-img name format and both fixes; raw needs
// nothing.
func TestFormatToolProblems(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, format := range []string{"qcow2", "vmdk"} {
		got := strings.Join(formatToolProblems(format), "\n")
		for _, want := range []string{`format "` + format + `"`, "qemu-img", "qemu-utils", `format = "raw"`} {
			if !strings.Contains(got, want) {
				t.Errorf("%s: %q lacks %q", format, got, want)
			}
		}
	}
	if p := formatToolProblems("raw"); len(p) != 0 {
		t.Errorf("raw needs nothing, got %q", p)
	}
}

// TestArtifactNamesItsFile: whatever the format, Files, Id and String name the one file the build
// made, and Destroy removes it with the console log and the then empty directory.
func TestArtifactNamesItsFile(t *testing.T) {
	for _, tc := range []struct{ format, file, str string }{
		{"raw", "foo.img", "Root filesystem image: %s (512 MiB ext4, built with UML kernel 6.1.0)"},
		{"qcow2", "foo.qcow2", "Root filesystem image: %s (qcow2, 512 MiB ext4, built with UML kernel 6.1.0)"},
		{"vmdk", "foo.vmdk", "Root filesystem image: %s (vmdk, 512 MiB ext4, built with UML kernel 6.1.0)"},
		{"tar", "foo.tar", "Root filesystem archive: %s (tar of a 512 MiB ext4 image, built with UML kernel 6.1.0)"},
	} {
		dir := filepath.Join(t.TempDir(), "out")
		os.Mkdir(dir, 0o755)
		path := filepath.Join(dir, tc.file)
		os.WriteFile(path, []byte("x"), 0o644)
		os.WriteFile(consoleLogPath(dir), []byte("x"), 0o644)
		a := &Artifact{ImagePath: path, Format: tc.format, ConsoleLog: consoleLogPath(dir), FSType: "ext4", SizeMiB: 512, KernelVersion: "6.1.0"}
		if got := a.Files(); len(got) != 1 || got[0] != path {
			t.Errorf("%s: Files() = %q", tc.format, got)
		}
		if a.Id() != tc.file || a.State("Format") != tc.format || a.State("ImagePath") != path {
			t.Errorf("%s: Id %q, State(Format) %v, State(ImagePath) %v", tc.format, a.Id(), a.State("Format"), a.State("ImagePath"))
		}
		if want := fmt.Sprintf(tc.str, path); a.String() != want {
			t.Errorf("%s: String()\n%s\nwant\n%s", tc.format, a.String(), want)
		}
		if err := a.Destroy(); err != nil {
			t.Errorf("%s: Destroy: %v", tc.format, err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s: the output directory stays after Destroy (%v)", tc.format, err)
		}
	}
}

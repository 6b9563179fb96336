package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// manifestFile is the manifest post-processor's JSON.
type manifestFile struct {
	Builds []struct {
		Name        string `json:"name"`
		BuilderType string `json:"builder_type"`
		Files       []struct {
			Name string `json:"name"`
			Size int64  `json:"size"`
		} `json:"files"`
		PackerRunUUID string            `json:"packer_run_uuid"`
		CustomData    map[string]string `json:"custom_data"`
	} `json:"builds"`
	LastRunUUID string `json:"last_run_uuid"`
}

// TestPostProcessorsExample builds example/post-processors.pkr.hcl with its variables set, and
// checks what each of Packer's built-in post-processors made from the uml artifact: the checksum
// file holds the image's sha256, the .gz decompresses with gzip to exactly the image's bytes, the
// manifest names the build and its files with their sizes, and the shell-local check ran. The image
// itself is still there (compress kept its input) and clean.
func TestPostProcessorsExample(t *testing.T) {
	p := newProject(t)
	p.copyExample("post-processors.pkr.hcl")
	// Not the defaults: the variables must reach the builder and the post-processors.
	out := p.build("post-processors.pkr.hcl", "-var", "output_directory=dist", "-var", "image_size=96", "-var", "compression_level=1")
	dist := p.path("dist")
	image := filepath.Join(dist, "pp.img")

	// The image survived the chains (compress's keep_input_artifact) and is what the builder made.
	st, err := os.Stat(image)
	if err != nil {
		t.Fatalf("the image is gone after the post-processors: %v\n%s", err, out)
	}
	if st.Size() != 96<<20 {
		t.Errorf("image size %d, want 96 MiB (image_size variable)", st.Size())
	}
	run(t, "/sbin/e2fsck", "-fn", image)
	if motd := debugfs(t, image, "cat /etc/motd"); !strings.Contains(motd, "gzipped, summed and recorded") {
		t.Errorf("/etc/motd: %q", motd)
	}
	sum := fileSHA256(t, image)

	// checksum: "<sha256>\t<file name>", the format `sha256sum -c` reads.
	b, err := os.ReadFile(filepath.Join(dist, "pp.img.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if want := sum + "\tpp.img\n"; string(b) != want {
		t.Errorf("pp.img.sha256 = %q, want %q", b, want)
	}
	cmd := exec.Command("sha256sum", "-c", "pp.img.sha256")
	cmd.Dir = dist
	if o, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(o), "pp.img: OK") {
		t.Errorf("sha256sum -c pp.img.sha256: %v\n%s", err, o)
	}

	// compress: a gzip file that gzip itself decompresses to the image, byte for byte.
	gz := filepath.Join(dist, "pp.img.gz")
	gzSt, err := os.Stat(gz)
	if err != nil {
		t.Fatal(err)
	}
	if head := readHead(t, gz, 2); !bytes.Equal(head, []byte{0x1f, 0x8b}) {
		t.Errorf("pp.img.gz starts with %x, not gzip's magic", head)
	}
	if gzSt.Size() >= st.Size()/4 {
		t.Errorf("pp.img.gz is %d bytes for a %d-byte, mostly empty image: not compressed", gzSt.Size(), st.Size())
	}
	gotSum, gotLen := gunzipSHA256(t, gz)
	if gotLen != st.Size() || gotSum != sum {
		t.Errorf("gzip -dc pp.img.gz: %d bytes, sha256 %s; the image: %d bytes, sha256 %s", gotLen, gotSum, st.Size(), sum)
	}

	// manifest: one entry per chain, both for this build and this run, with the files and sizes.
	b, err = os.ReadFile(filepath.Join(dist, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m manifestFile
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest.json: %v\n%s", err, b)
	}
	if m.LastRunUUID == "" || len(m.Builds) != 2 {
		t.Fatalf("manifest.json: want 2 builds of one run, got:\n%s", b)
	}
	files, custom := map[string]string{}, map[string]map[string]string{}
	for _, build := range m.Builds {
		if build.Name != "pp" || build.BuilderType != "uml" || build.PackerRunUUID != m.LastRunUUID {
			t.Errorf("manifest entry: name %q, builder_type %q, run %q (last run %q)", build.Name, build.BuilderType, build.PackerRunUUID, m.LastRunUUID)
		}
		var names []string
		for _, f := range build.Files {
			names = append(names, f.Name)
			want, err := os.Stat(filepath.Join(dist, f.Name))
			if err != nil {
				t.Errorf("manifest names %q, which is not in the output directory: %v", f.Name, err)
			} else if want.Size() != f.Size {
				t.Errorf("manifest: %s has size %d, the file %d", f.Name, f.Size, want.Size())
			}
		}
		files[build.CustomData["kind"]] = strings.Join(names, " ")
		custom[build.CustomData["kind"]] = build.CustomData
	}
	if files["compressed image"] != "pp.img.gz" || files["image"] != "pp.img pp.img.sha256" {
		t.Errorf("manifest files by kind: %q\n%s", files, b)
	}
	if sizeMiB := custom["image"]["size_mib"]; sizeMiB != "96" {
		t.Errorf("manifest custom_data size_mib = %q, want 96", sizeMiB)
	}

	// shell-local: it ran on the host, e2fsck passed, and it measured the image.
	b, err = os.ReadFile(filepath.Join(dist, "fsck.txt"))
	if err != nil {
		t.Fatalf("the shell-local post-processor left no report: %v\n%s", err, out)
	}
	report := string(b)
	sizeLine := fmt.Sprintf("image pp.img: %d bytes", 96<<20)
	for _, want := range []string{"Pass 5: Checking group summary information", image + ":", sizeLine} {
		if !strings.Contains(report, want) {
			t.Errorf("fsck.txt lacks %q:\n%s", want, report)
		}
	}
	for _, want := range []string{"uml.pp (shell-local): " + sizeLine, "Running post-processor: gzip (type compress)", "Running post-processor: record-image (type manifest)"} {
		if !strings.Contains(out, want) {
			t.Errorf("build output lacks %q:\n%s", want, out)
		}
	}
}

// readHead returns a file's first n bytes.
func readHead(t *testing.T, path string, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// gunzipSHA256 decompresses a file with the host's gzip and returns the sha256 and length of what
// came out.
func gunzipSHA256(t *testing.T, path string) (string, int64) {
	t.Helper()
	cmd := exec.Command("gzip", "-dc", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, copyErr := io.Copy(h, stdout)
	if err := cmd.Wait(); err != nil || copyErr != nil {
		t.Fatalf("gzip -dc %s: %v %v\n%s", path, err, copyErr, stderr.String())
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

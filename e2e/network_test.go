package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// fetchModule fetches $url into the image and prints its sha256; with nodns unset it also resolves
// a name, which needs the network's DNS.
const fetchModule = `#!/bin/sh
set -e
if [ -n "$direct" ]; then unset http_proxy https_proxy; fi
wget -q -O "$TARGET/fetched" "$url"
echo "FETCHED $(sha256sum "$TARGET/fetched" | cut -d' ' -f1)"
if [ -n "$resolve" ]; then echo "RESOLVED $(getent hosts "$resolve" | head -1)"; fi
`

// TestNetworkTransports: a guest command fetches a file from an HTTP server on the host's loopback
// through each transport CI has: the agent's proxy (the default) and libslirp (10.0.2.2 is the
// host's loopback there), and resolves a name through libslirp's DNS.
func TestNetworkTransports(t *testing.T) {
	payload := make([]byte, 3<<20)
	rand.Read(payload)
	sum := sha256.Sum256(payload)
	want := hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(payload) }))
	defer srv.Close()
	port := srv.Listener.Addr().String()[strings.LastIndex(srv.Listener.Addr().String(), ":")+1:]

	for _, tc := range []struct {
		name, network, env string
	}{
		{"agent", ``, fmt.Sprintf(`url = "http://127.0.0.1:%s/file"`, port)},
		{"libslirp", `network { transport = "libslirp" }`,
			fmt.Sprintf(`url = "http://10.0.2.2:%s/file"
      direct = "1"
      resolve = "deb.debian.org"`, port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProject(t)
			p.write("modules/fetch", fetchModule)
			chmodX(t, p.path("modules/fetch"))
			p.write("net.pkr.hcl", fmt.Sprintf(`
source "uml" "net" {
  image_size       = 64
  output_directory = "out"
  chroot           = false
  modules          = ["network", "mkfs", "mount", "fetch"]
  %s
  module_env {
    name = "fetch"
    env = {
      %s
    }
  }
}
build {
  sources = ["source.uml.net"]
}
`, tc.network, tc.env))
			out := p.build("net.pkr.hcl")
			if !strings.Contains(out, "FETCHED "+want) {
				t.Errorf("the guest did not fetch the file whole (want sha256 %s):\n%s", want, out)
			}
			if tc.name == "libslirp" && !strings.Contains(out, "RESOLVED ") || strings.Contains(out, "RESOLVED \n") {
				t.Errorf("no name resolution through libslirp's DNS:\n%s", out)
			}
			if got := debugfs(t, p.path("out/net.img"), "stat /fetched"); !strings.Contains(got, fmt.Sprintf("Size: %d", len(payload))) {
				t.Errorf("the fetched file in the image: %s", got)
			}
		})
	}
}

func chmodX(t *testing.T, path string) {
	t.Helper()
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

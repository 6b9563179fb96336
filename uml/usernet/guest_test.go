package usernet_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
	"github.com/packer-uml/packer-plugin-uml/uml/machine"
	"github.com/packer-uml/packer-plugin-uml/uml/usernet"
)

// configure sets the guest's interface up with the usernet defaults, using the host's iproute2
// (the guest's root is the host's /, through hostfs).
var configure = fmt.Sprintf(`set -e
ip addr add %s/%d dev %s
ip link set %s up
ip route add default via %s
`, usernet.GuestIP, usernet.PrefixLen, usernet.Interface, usernet.Interface, usernet.Gateway)

// bootWithNet starts a helper and a guest on its network, with the interface configured.
func bootWithNet(t *testing.T) (*umltest.Guest, *usernet.Net) {
	t.Helper()
	n, err := usernet.Start(context.Background(), helper(t), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() }) // runs after the guest's own clean-up (registered later)
	g := umltest.Boot(t, umltest.Options{
		ExtraFiles: []*os.File{n.UMLFile()},
		ExtraArgs:  []string{n.UMLArg(machine.ExtraFD(0))},
	})
	t.Logf("guest ready in %s", g.Ready.Round(time.Millisecond))
	g.Sh(t, configure)
	return g, n
}

func TestGuestNetwork(t *testing.T) {
	// Name resolution in the guest goes through libslirp to the host's resolvers: if the host
	// cannot resolve the name, the guest's failure would say nothing about usernet.
	const name = "deb.debian.org"
	hostAddrs, err := net.DefaultResolver.LookupHost(context.Background(), name)
	if err != nil {
		t.Fatalf("the host itself cannot resolve %s (%v): this test needs a host whose name resolution works", name, err)
	}

	// A 5 MiB blob served on the host's loopback only: the guest reaches it as Gateway.
	blob := make([]byte, 5<<20)
	rand.Read(blob)
	sum := sha256.Sum256(blob)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
		w.Write(blob)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	g, n := bootWithNet(t)
	t.Logf("guest's interface:\n%s", g.Sh(t, "ip -br addr show dev "+usernet.Interface+"; ip route"))

	t.Run("HTTPFromHostLoopback", func(t *testing.T) {
		url := fmt.Sprintf("http://%s:%s/blob", usernet.Gateway, port)
		start := time.Now()
		g.Sh(t, "wget --no-proxy -q -O /tmp/blob "+url)
		took := time.Since(start)
		out := g.Sh(t, "sha256sum /tmp/blob; rm /tmp/blob")
		if got := strings.Fields(out); len(got) == 0 || got[0] != hex.EncodeToString(sum[:]) {
			t.Fatalf("sha256 in the guest: %q, want %x", out, sum)
		}
		t.Logf("downloaded %d bytes from the host's 127.0.0.1 in %s: %.1f MB/s", len(blob),
			took.Round(time.Millisecond), float64(len(blob))/took.Seconds()/1e6)
	})

	// A lookup through libslirp's forwarder is UDP (the resolver's default; TCP only for truncated
	// answers): it answering shows UDP works both ways.
	t.Run("DNSOverUDP", func(t *testing.T) {
		out, code, err := g.ShCode(fmt.Sprintf(`rm -f /etc/resolv.conf
echo "nameserver %s" > /etc/resolv.conf
getent hosts %s`, usernet.Nameserver, name))
		if err != nil || code != 0 {
			t.Fatalf("guest could not resolve %s through %s (exit %d, %v): %s\n(the host resolves it to %v)",
				name, usernet.Nameserver, code, err, out, hostAddrs)
		}
		f := strings.Fields(out)
		if len(f) < 2 || net.ParseIP(f[0]) == nil || f[1] != name {
			t.Fatalf("getent hosts %s: %q", name, out)
		}
		t.Logf("guest resolved %s to %s (host: %v)", name, f[0], hostAddrs)
	})

	select {
	case <-n.Done():
		t.Errorf("the helper ended during the test: %v", n.Err())
	default:
	}
}

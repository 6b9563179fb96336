package agent_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/internal/umltest"
	"github.com/packer-uml/packer-plugin-uml/uml/agent"
)

// listeningTCP prints the guest's listening TCP sockets (state 0A in /proc/net/tcp*), one
// "address:port" in hex per line.
const listeningTCP = `cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4 == "0A" { print $2 }'`

// halfClose is a client that CONNECTs through the guest's proxy port, sends "ping", half-closes
// and prints what comes back until EOF: the end of its sending must cross the channel and the
// host's tunnel, and the answer must still come back. Perl because perl-base is always installed.
const halfClose = `use strict; use IO::Socket::INET;
my ($proxy, $target) = @ARGV;
my $s = IO::Socket::INET->new(PeerAddr => $proxy) or die "connect $proxy: $!\n";
syswrite($s, "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\n");
my $head = "";
while ($head !~ /\r\n\r\n/) { sysread($s, my $b, 1) or die "EOF in the proxy's answer: $head\n"; $head .= $b; }
$head =~ m{^HTTP/1\.[01] 200 } or die "CONNECT refused: $head\n";
syswrite($s, "ping");
shutdown($s, 1) or die "shutdown: $!\n";
my $all = "";
while (sysread($s, my $b, 4096)) { $all .= $b; }
print $all;
`

func TestGuestProxy(t *testing.T) {
	g := umltest.Boot(t, umltest.Options{ProxyAddr: agent.DefaultProxyAddr})
	proxy := "http://" + agent.DefaultProxyAddr

	// Only the proxy port listens in the guest (3128 is 0C38).
	if out := g.Sh(t, listeningTCP); strings.TrimSpace(out) != "0100007F:0C38" {
		t.Errorf("listening sockets in the guest:\n%s\nwant only 127.0.0.1:3128 (0100007F:0C38)", out)
	}

	// Plain HTTP: a file served on the host's loopback, which the guest reaches only through the proxy.
	data := make([]byte, 5<<20+321)
	rand.Read(data)
	want := fmt.Sprintf("%x", sha256.Sum256(data))
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(data))
	}))
	defer plain.Close()
	start := time.Now()
	out := g.Sh(t, "http_proxy="+proxy+" wget -q -O /tmp/f "+plain.URL+"/f && sha256sum /tmp/f")
	if !strings.HasPrefix(out, want) {
		t.Errorf("wget through the proxy: guest sha256 %q, want %s", out, want)
	}
	t.Logf("wget: %d bytes in %s", len(data), time.Since(start).Round(time.Millisecond))
	curl := strings.TrimSpace(g.Sh(t, "command -v curl || true")) != ""
	if curl {
		out = g.Sh(t, "curl -sSf -x "+proxy+" -o /tmp/g "+plain.URL+"/f && sha256sum /tmp/g")
		if !strings.HasPrefix(out, want) {
			t.Errorf("curl through the proxy: guest sha256 %q, want %s", out, want)
		}
	} else {
		t.Log("no curl on this host: fetched with wget only")
	}

	// CONNECT: HTTPS to a TLS server on the host.
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tls ok "+r.URL.Path)
	}))
	defer secure.Close()
	out = g.Sh(t, "https_proxy="+proxy+" wget -q --no-check-certificate -O - "+secure.URL+"/w")
	if out != "tls ok /w" {
		t.Errorf("wget https through the proxy: %q", out)
	}
	if curl {
		out = g.Sh(t, "curl -sSfk -x "+proxy+" "+secure.URL+"/c")
		if out != "tls ok /c" {
			t.Errorf("curl https through the proxy: %q", out)
		}
	}

	// CONNECT with a half-close, to a server that answers only after its client stopped sending.
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		c, err := echo.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		b, _ := io.ReadAll(c)
		fmt.Fprintf(c, "got %q", b)
	}()
	if err := g.Client.Upload("", "/tmp/halfclose.pl", 0o644, 0, strings.NewReader(halfClose)); err != nil {
		t.Fatal(err)
	}
	out = g.Sh(t, "perl /tmp/halfclose.pl "+agent.DefaultProxyAddr+" "+echo.Addr().String())
	if out != `got "ping"` {
		t.Errorf("half-closed tunnel answered %q, want %q", out, `got "ping"`)
	}

	// An upstream that cannot be reached is the proxy's 502, which the guest's tool reports.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String() + "/"
	dead.Close()
	out, code, err := g.ShCode("http_proxy=" + proxy + " wget -O /dev/null " + deadURL)
	if err != nil || code == 0 || !strings.Contains(out, "502") {
		t.Errorf("wget of a dead port: exit %d, %v, output %q; want a failure naming 502", code, err, out)
	}
	g.Shutdown(t)
}

func TestNoGuestProxyByDefault(t *testing.T) {
	g := umltest.Boot(t, umltest.Options{})
	if out := g.Sh(t, listeningTCP); strings.TrimSpace(out) != "" {
		t.Errorf("sockets listen in a guest without ProxyAddr:\n%s", out)
	}
	out, code, err := g.ShCode("http_proxy=http://" + agent.DefaultProxyAddr + " wget -q -T 5 -t 1 -O /dev/null http://127.0.0.1:1/")
	if err != nil || code == 0 {
		t.Errorf("wget through a proxy that should not exist: exit %d, %v, output %q", code, err, out)
	}
	g.Shutdown(t)
}

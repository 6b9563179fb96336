package agent

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/packer-uml/packer-plugin-uml/uml/channel"
	"github.com/packer-uml/packer-plugin-uml/uml/netproxy"
)

func TestCheckProxyAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		DefaultProxyAddr: true, "127.0.0.2:8080": true, "[::1]:3128": true,
		"0.0.0.0:3128": false, "10.0.2.15:3128": false, "localhost:3128": false, ":3128": false,
		"127.0.0.1": false, "127.0.0.1:0": false, "127.0.0.1:http": false, "127.0.0.1:70000": false,
	} {
		if err := CheckProxyAddr(addr); (err == nil) != ok {
			t.Errorf("CheckProxyAddr(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

// The names are the wire (spec.md §5).
func TestProxyWireNames(t *testing.T) {
	if OpProxy != "proxy" {
		t.Errorf("OpProxy %q, want \"proxy\"", OpProxy)
	}
	b, _ := json.Marshal(GuestConfig{ProxyAddr: DefaultProxyAddr})
	if want := `{"proxy":"127.0.0.1:3128"}`; string(b) != want {
		t.Errorf("GuestConfig JSON %s, want %s", b, want)
	}
}

// proxyPair connects a host Client serving a netproxy and a guest session forwarding a loopback
// listener's connections, over pipes as the serial line does, without UML. It returns the guest's
// proxy address, the guest's session, and ServeProxy's result.
func proxyPair(t *testing.T) (string, *yamux.Session, <-chan error) {
	t.Helper()
	hr, gw, _ := os.Pipe() // guest → host
	gr, hw, _ := os.Pipe() // host → guest
	guest := struct {
		io.Reader
		io.Writer
		io.Closer
	}{gr, gw, gw}
	host := struct {
		io.Reader
		io.Writer
		io.Closer
	}{hr, hw, hw}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	guestSess := make(chan *yamux.Session, 1)
	go func() {
		sess, err := channel.Serve(guest, ProtocolVersion, "", io.Discard)
		if err != nil {
			t.Error(err)
			close(guestSess)
			return
		}
		guestSess <- sess
		forwardProxyConns(sess, l, log.New(os.Stderr, "guest: ", 0))
	}()
	sess, err := channel.Dial(host, ProtocolVersion, "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(sess, "")
	served := make(chan error, 1)
	go func() { served <- c.ServeProxy(netproxy.New(netproxy.Options{})) }()
	gs := <-guestSess
	t.Cleanup(func() { l.Close(); c.Close(); gr.Close(); hr.Close() })
	return l.Addr().String(), gs, served
}

func TestProxyOverPipes(t *testing.T) {
	addr, guestSess, served := proxyPair(t)
	data := make([]byte, 2<<20+3)
	rand.Read(data)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	defer up.Close()
	pu, _ := url.Parse("http://" + addr)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	defer client.CloseIdleConnections()
	for i := 0; i < 2; i++ { // the second may reuse the stream: one stream is one HTTP connection
		resp, err := client.Get(up.URL + "/f")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GET %d through the guest's port: %d bytes, %v", i, len(got), err)
		}
	}

	// CONNECT, and a half-close from the guest's client that must reach the upstream server.
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
		b, _ := io.ReadAll(c)
		fmt.Fprintf(c, "got %q", b)
	}()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", echo.Addr())
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	io.WriteString(conn, "ping")
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if rest, err := io.ReadAll(br); err != nil || string(rest) != `got "ping"` {
		t.Errorf("tunnel answer %q, %v", rest, err)
	}

	// A guest-opened stream of another kind is closed; the proxy goes on.
	s, err := guestSess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	(&frameWriter{w: s}).writeJSON(frameRequest, &Request{Op: OpExec, Argv: []string{"/bin/true"}})
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := s.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("exec stream opened by the guest: read %d bytes, %v; want EOF", n, err)
	}
	s.Close()
	resp, err = client.Get(up.URL + "/again")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// ServeProxy ends with the session.
	guestSess.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("ServeProxy: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("ServeProxy did not return when the session ended")
	}
}

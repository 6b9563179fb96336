package netproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startProxy runs the proxy on a loopback port and returns a client that uses it, and the count of
// bytes its progress hook saw.
func startProxy(t *testing.T, o Options) (*httptest.Server, *http.Client, *atomic.Int64) {
	t.Helper()
	var seen atomic.Int64
	o.Progress = func(n int64) { seen.Add(n) }
	o.Log = log.New(io.Discard, "", 0)
	p := httptest.NewServer(New(o))
	t.Cleanup(p.Close)
	u, _ := url.Parse(p.URL)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	t.Cleanup(c.CloseIdleConnections)
	return p, c, &seen
}

func TestPlainGetAndPost(t *testing.T) {
	data := make([]byte, 3<<20+7)
	rand.Read(data)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.Write(data)
		case http.MethodPost:
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		}
	}))
	defer up.Close()
	_, c, seen := startProxy(t, Options{})

	resp, err := c.Get(up.URL + "/f")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GET: %d bytes, err %v; want the %d bytes served", len(got), err, len(data))
	}
	if seen.Load() != int64(len(data)) {
		t.Errorf("progress saw %d bytes, want %d", seen.Load(), len(data))
	}

	resp, err = c.Head(up.URL + "/f")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength != int64(len(data)) {
		t.Errorf("HEAD: Content-Length %d, want %d", resp.ContentLength, len(data))
	}

	// A body of unknown length, streamed.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 4; i++ {
			pw.Write(data)
		}
		pw.Close()
	}()
	resp, err = c.Post(up.URL+"/up", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sum := sha256.Sum256(bytes.Repeat(data, 4))
	if want := fmt.Sprintf("%d %s", 4*len(data), hex.EncodeToString(sum[:])); string(body) != want {
		t.Errorf("POST: upstream saw %q, want %q", body, want)
	}
}

// The proxy passes bytes on as they arrive: a response whose end waits for the client's reading
// of its start would hang with a proxy that buffers.
func TestResponseIsStreamed(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A known length: the proxy flushes bodies of unknown length at once anyway.
		w.Header().Set("Content-Length", "13")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	}))
	defer up.Close()
	defer close(release)
	_, c, _ := startProxy(t, Options{})
	line := make(chan string, 1)
	go func() {
		resp, err := c.Get(up.URL)
		if err != nil {
			line <- err.Error()
			return
		}
		defer resp.Body.Close()
		s, _ := bufio.NewReader(resp.Body).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if s != "first\n" {
			t.Errorf("first line %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the start of the response did not arrive before its end")
	}
}

func TestHopByHopHeadersRemoved(t *testing.T) {
	gotHeader := make(chan http.Header, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader <- r.Header.Clone()
		w.Header().Set("Connection", "X-Resp-Hop")
		w.Header().Set("X-Resp-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Resp-Keep", "1")
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	p, _, _ := startProxy(t, Options{})

	conn, err := net.Dial("tcp", p.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s/x HTTP/1.1\r\nHost: elsewhere.invalid\r\nConnection: X-Req-Hop\r\nX-Req-Hop: 1\r\n"+
		"Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nKeep-Alive: 300\r\nTe: trailers\r\n"+
		"X-Req-Keep: 1\r\n\r\n", up.URL)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-gotHeader
	for _, k := range []string{"X-Req-Hop", "Proxy-Connection", "Proxy-Authorization", "Keep-Alive", "Connection"} {
		if v := h.Get(k); v != "" {
			t.Errorf("upstream got hop-by-hop header %s: %q", k, v)
		}
	}
	if h.Get("X-Req-Keep") != "1" {
		t.Errorf("upstream lost an end-to-end header: %v", h)
	}
	if resp.Header.Get("X-Resp-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("client got hop-by-hop response headers: %v", resp.Header)
	}
	if resp.Header.Get("X-Resp-Keep") != "1" {
		t.Errorf("client lost an end-to-end response header: %v", resp.Header)
	}
}

func TestUpstreamErrorsAreBadGateway(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	p, c, _ := startProxy(t, Options{})

	resp, err := c.Get("http://" + dead + "/f")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "proxy: cannot reach http://"+dead+"/f") ||
		!strings.Contains(string(body), "refused") {
		t.Errorf("GET of a dead port: %d %q, want 502 naming the URL and the refusal", resp.StatusCode, body)
	}

	// CONNECT: the client sees the proxy's answer as an error of its own.
	conn := dialProxy(t, p)
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", dead, dead)
	resp, err = http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "proxy: cannot reach "+dead) {
		t.Errorf("CONNECT to a dead port: %d %q", resp.StatusCode, body)
	}

	// The dial function is the one given.
	_, c2, _ := startProxy(t, Options{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return nil, errors.New("no network in this test")
	}})
	resp, err = c2.Get("http://example.invalid/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "no network in this test") {
		t.Errorf("injected dial: %d %q", resp.StatusCode, body)
	}
}

func TestNotAProxyRequest(t *testing.T) {
	p, _, _ := startProxy(t, Options{})
	resp, err := http.Get(p.URL + "/index.html")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "forward proxy") {
		t.Errorf("origin-form request: %d %q, want 400", resp.StatusCode, body)
	}
}

func TestConnectTLS(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secret "+r.URL.Path)
	}))
	defer up.Close()
	_, c, seen := startProxy(t, Options{})
	resp, err := c.Get(up.URL + "/page")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "secret /page" {
		t.Errorf("body %q", body)
	}
	if seen.Load() == 0 {
		t.Error("progress saw nothing of the tunnel")
	}
}

// A client that sends its whole request, then half-closes, still gets the answer: the tunnel passes
// the end of each direction on, and the bytes the client sent with its CONNECT are not lost.
func TestConnectHalfClose(t *testing.T) {
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		c, err := up.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c) // until the client's half-close
		fmt.Fprintf(c, "got %d bytes: %s", len(b), b)
	}()
	p, _, seen := startProxy(t, Options{})
	conn := dialProxy(t, p)
	target := up.Addr().String()
	// "early" rides in the same write as the request.
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\nearly ", target, target)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %s", resp.Status)
	}
	io.WriteString(conn, "late")
	conn.(*net.TCPConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if want := "got 10 bytes: early late"; string(rest) != want {
		t.Errorf("answer %q, want %q", rest, want)
	}
	if seen.Load() != int64(len(rest)) {
		t.Errorf("progress saw %d bytes, want %d", seen.Load(), len(rest))
	}
}

// The transport is the one given, so a cache can sit in front of the network.
func TestInjectedTransport(t *testing.T) {
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("cached " + r.URL.String())), Request: r}, nil
	})
	_, c, _ := startProxy(t, Options{Transport: rt})
	resp, err := c.Get("http://example.invalid/a?b=c")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "cached http://example.invalid/a?b=c" {
		t.Errorf("body %q", body)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func dialProxy(t *testing.T, p *httptest.Server) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", p.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

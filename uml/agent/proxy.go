package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// The guest's network access: the guest has no network interface, so the agent listens on a
// loopback port in the guest and carries each TCP connection to the host in a stream of its own,
// where an HTTP proxy serves it (spec.md §5).

// proxyRequestTimeout bounds how long a guest-opened stream may take to say what it is.
const proxyRequestTimeout = 30 * time.Second

// CheckProxyAddr accepts a loopback IP address and numeric port ("127.0.0.1:3128", "[::1]:3128"):
// the proxy port is for the guest's own processes, never for a network the guest may join later.
func CheckProxyAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("proxy address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("proxy address %q: want a loopback IP address such as %s", addr, DefaultProxyAddr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("proxy address %q: port must be a number from 1 to 65535", addr)
	}
	return nil
}

// ServeProxy serves the streams the guest opens for its proxy port (GuestConfig.ProxyAddr): each
// is one HTTP connection for h, which may take it over (CONNECT) through http.Hijacker. It returns
// nil when the session ends. Call it once per session, and before the guest's first proxied
// connection: yamux closes a session whose new stream stays unaccepted for a minute.
func (c *Client) ServeProxy(h http.Handler) error {
	l := &streamListener{conns: make(chan net.Conn), closed: make(chan struct{}), addr: c.sess.Addr()}
	srv := &http.Server{Handler: h, IdleTimeout: 2 * time.Minute, ReadHeaderTimeout: time.Minute}
	go srv.Serve(l)
	defer srv.Close()
	for {
		s, err := c.sess.AcceptStream()
		if err != nil {
			if c.sess.IsClosed() {
				return nil // the guest powered off or the host closed the session: the usual end
			}
			return fmt.Errorf("proxy: accept stream: %w", err)
		}
		go func() {
			if err := checkProxyStream(s); err != nil {
				log.Printf("agent: guest-opened stream %d closed: %v", s.StreamID(), err)
				streamConn{s}.Close()
				return
			}
			l.push(streamConn{s})
		}()
	}
}

// checkProxyStream reads the first frame of a guest-opened stream: only proxy streams exist.
func checkProxyStream(s *yamux.Stream) error {
	s.SetReadDeadline(time.Now().Add(proxyRequestTimeout))
	defer s.SetReadDeadline(time.Time{})
	payload, err := (&frameReader{r: s}).expect(frameRequest)
	if err != nil {
		return err
	}
	var req Request
	if err := json.Unmarshal(payload, &req); err != nil {
		return fmt.Errorf("decode request: %w", err)
	}
	if req.Op != OpProxy {
		return fmt.Errorf("operation %q cannot be opened by the guest", req.Op)
	}
	return nil
}

// streamListener hands accepted proxy streams to an http.Server.
type streamListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	addr   net.Addr
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *streamListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *streamListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *streamListener) Addr() net.Addr { return l.addr }

// streamConn gives a yamux stream TCP's closing rules. yamux's Close only ends our sending (the
// peer reads EOF, we may still read): that is CloseWrite here, which lets a tunnel pass on a
// half-close. Close must also end a blocked Read, as net.Conn promises and yamux does not.
type streamConn struct{ *yamux.Stream }

func (s streamConn) CloseWrite() error { return s.Stream.Close() }

func (s streamConn) Close() error {
	s.Stream.SetDeadline(time.Now())
	return s.Stream.Close()
}

// forwardProxyConns is the guest's side: it carries each connection l accepts to the host in a
// new stream of sess, until l is closed.
func forwardProxyConns(sess *yamux.Session, l net.Listener, logger *log.Logger) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors, most likely: the connections that hold them will end.
			logger.Printf("proxy: accept: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go func() {
			s, err := sess.OpenStream()
			if err != nil {
				logger.Printf("proxy: open stream: %v", err)
				c.Close()
				return
			}
			if err := (&frameWriter{w: s}).writeJSON(frameRequest, &Request{Op: OpProxy}); err != nil {
				logger.Printf("proxy: send request: %v", err)
				c.Close()
				streamConn{s}.Close()
				return
			}
			if err := splice(c, streamConn{s}); err != nil {
				logger.Printf("proxy: connection from %s: %v", c.RemoteAddr(), err)
			}
		}()
	}
}

// splice copies both ways between a and b until both directions end, passing on the end of each
// as a half-close (a client may send its whole request, half-close, and still read the answer).
// An error in either direction closes both connections and is returned.
func splice(a, b net.Conn) error {
	var once sync.Once
	var first error
	abort := func(err error) {
		once.Do(func() {
			first = err
			a.Close()
			b.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		// Bigger pieces than io.Copy's 32 KiB: each guest system call is costly in UML, and the
		// wrappers keep io.Copy from picking a ReaderFrom that would use small ones.
		if _, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 256<<10)); err != nil {
			abort(err)
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}
	go copyHalf(a, b)
	go copyHalf(b, a)
	wg.Wait()
	a.Close()
	b.Close()
	if first != nil && !errors.Is(first, net.ErrClosed) {
		return first
	}
	return nil
}

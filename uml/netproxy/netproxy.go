// Package netproxy is a forward HTTP proxy that runs on the host and reaches the network as the
// host does. The guest has no network interface of its own: its HTTP clients talk to this proxy
// through the agent's channel, so a build needs neither root nor a helper program for networking.
// It knows nothing of Packer or of the channel: it is an http.Handler.
package netproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// Options configure a proxy; the zero value dials with the host's resolver and network.
type Options struct {
	// Dial opens connections: CONNECT tunnels and, unless Transport is set, plain requests.
	// Default: a net.Dialer with a 30 s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Transport makes plain (non-CONNECT) requests upstream; set it to put a cache in front of the
	// network. Default: an http.Transport that dials with Dial and uses no upstream proxy.
	Transport http.RoundTripper
	// Progress, when set, is called with the number of response bytes each time some reach the
	// client, from plain responses and CONNECT tunnels alike. It is called from many goroutines at
	// once and should be quick.
	Progress func(bytes int64)
	// Log receives errors that happen after the response began (a tunnel that broke, a body cut
	// short); nil discards them.
	Log *log.Logger
}

// New returns the proxy handler.
func New(o Options) http.Handler {
	if o.Dial == nil {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		o.Dial = d.DialContext
	}
	if o.Transport == nil {
		// No upstream proxy even if the host's environment names one: CONNECT tunnels dial
		// directly too, and both kinds of request should reach the same network.
		o.Transport = &http.Transport{
			DialContext:           o.Dial,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   15 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	if o.Log == nil {
		o.Log = log.New(io.Discard, "", 0)
	}
	p := &proxy{o: o}
	// httputil.ReverseProxy already does what a forward proxy needs for plain requests: it drops
	// hop-by-hop headers (those that Connection lists too), streams bodies both ways and passes
	// trailers. The guest's request carries an absolute URI, so the outgoing URL is the incoming one.
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = "" // the URI's authority wins over a Host header (RFC 9112 §3.2.2)
		},
		Transport: o.Transport,
		// Flush at once: a download should reach the guest as fast as it arrives, and the
		// progress hook should see it move.
		FlushInterval: -1,
		ModifyResponse: func(r *http.Response) error {
			if o.Progress != nil {
				r.Body = &countingBody{ReadCloser: r.Body, progress: o.Progress}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			badGateway(w, r.URL.String(), err)
		},
		ErrorLog: o.Log,
	}
	return p
}

type proxy struct {
	o  Options
	rp *httputil.ReverseProxy
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.connect(w, r)
		return
	}
	// A request without an absolute URI is meant for a server, not a proxy: the guest has a
	// client configured wrongly, and forwarding it to ourselves would loop.
	if !r.URL.IsAbs() || r.URL.Host == "" || (r.URL.Scheme != "http" && r.URL.Scheme != "https") {
		http.Error(w, fmt.Sprintf("proxy: %q is not an absolute http or https URI; this is a forward proxy", r.RequestURI), http.StatusBadRequest)
		return
	}
	p.rp.ServeHTTP(w, r)
}

// connect opens a tunnel: dial first, so that a failure is still an HTTP answer, then take the
// connection over and copy both ways.
func (p *proxy) connect(w http.ResponseWriter, r *http.Request) {
	target := r.Host
	if _, port, err := net.SplitHostPort(target); err != nil || port == "" {
		http.Error(w, fmt.Sprintf("proxy: CONNECT target %q is not host:port", target), http.StatusBadRequest)
		return
	}
	upstream, err := p.o.Dial(r.Context(), "tcp", target)
	if err != nil {
		badGateway(w, target, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upstream.Close()
		http.Error(w, "proxy: this connection cannot carry a tunnel", http.StatusInternalServerError)
		return
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		upstream.Close()
		p.o.Log.Printf("CONNECT %s: hijack: %v", target, err)
		return
	}
	// The server's header timeouts are over: a tunnel may stay quiet for long.
	client.SetDeadline(time.Time{})
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		upstream.Close()
		client.Close()
		return
	}
	// buf.Reader may hold bytes the client sent right after its request (a TLS hello that did not
	// wait for our answer): read through it, not past it.
	var down io.Writer = client
	if p.o.Progress != nil {
		down = &countingWriter{w: client, progress: p.o.Progress}
	}
	splice(upstream, buf.Reader, client, down, func(err error) {
		p.o.Log.Printf("CONNECT %s: %v", target, err)
	})
}

// splice copies client→upstream and upstream→client (through fromClient and toClient, which wrap
// the client's connection) until both directions end. The end of one direction is passed on as a
// half-close, since protocols like a TLS close or an HTTP/1.0 request may still answer after their
// peer stops sending. An error in either direction closes both connections.
func splice(upstream net.Conn, fromClient io.Reader, client net.Conn, toClient io.Writer, logf func(error)) {
	var once sync.Once
	abort := func(err error) {
		once.Do(func() {
			if !isClosed(err) {
				logf(err)
			}
			upstream.Close()
			client.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if _, err := io.Copy(upstream, fromClient); err != nil {
			abort(err)
			return
		}
		closeWrite(upstream)
	}()
	go func() {
		defer wg.Done()
		if _, err := io.Copy(toClient, upstream); err != nil {
			abort(err)
			return
		}
		closeWrite(client)
	}()
	wg.Wait()
	upstream.Close()
	client.Close()
}

// closeWrite half-closes c when it can, and closes it when it cannot.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// badGateway answers a request the proxy could not forward, in words the guest's tool prints.
func badGateway(w http.ResponseWriter, target string, err error) {
	if errors.Is(err, context.Canceled) {
		// The client went away: nobody reads an answer.
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	http.Error(w, fmt.Sprintf("proxy: cannot reach %s: %v", target, err), http.StatusBadGateway)
}

// countingBody reports the bytes of a response body as the proxy copies them to the client.
type countingBody struct {
	io.ReadCloser
	progress func(int64)
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.progress(int64(n))
	}
	return n, err
}

// countingWriter reports the bytes a tunnel delivers to the client.
type countingWriter struct {
	w        io.Writer
	progress func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if n > 0 {
		c.progress(int64(n))
	}
	return n, err
}

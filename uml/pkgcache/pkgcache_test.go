package pkgcache

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/packer-uml/packer-plugin-uml/uml/netproxy"
)

const helloDeb = "/debian/pool/main/h/hello/hello_1.0_amd64.deb"

// upstream is a loopback HTTP server with a set of files, which counts the requests for each path.
type upstream struct {
	srv     *httptest.Server
	modTime time.Time

	mu     sync.Mutex
	files  map[string][]byte
	short  map[string]bool // answered with a body cut short
	counts map[string]int
	delay  time.Duration // between 32 KiB chunks of a body
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{
		modTime: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		files:   map[string][]byte{},
		short:   map[string]bool{},
		counts:  map[string]int{},
	}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) add(p string, size int) []byte {
	data := make([]byte, size)
	rand.Read(data)
	u.mu.Lock()
	u.files[p] = data
	u.mu.Unlock()
	return data
}

func (u *upstream) count(p string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.counts[p]
}

func (u *upstream) url(p string) string { return u.srv.URL + p }

// entryPath is where the cache keeps the file that upstream serves at p.
func (u *upstream) entryPath(dir, p string) string {
	return filepath.Join(dir, "http", strings.TrimPrefix(u.srv.URL, "http://"), filepath.FromSlash(p))
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.counts[r.URL.Path]++
	data, ok := u.files[r.URL.Path]
	short, delay := u.short[r.URL.Path], u.delay
	u.mu.Unlock()
	switch {
	case short:
		// Announce the whole length, send half, and hang up.
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", len(data))
		bw.Write(data[:len(data)/2])
		bw.Flush()
	case !ok:
		http.NotFound(w, r)
	case r.Header.Get("Range") != "":
		http.ServeContent(w, r, path.Base(r.URL.Path), u.modTime, bytes.NewReader(data))
	default:
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Last-Modified", u.modTime.Format(http.TimeFormat))
		for off := 0; off < len(data); off += 32 << 10 {
			if _, err := w.Write(data[off:min(off+32<<10, len(data))]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			if delay > 0 {
				time.Sleep(delay)
			}
		}
	}
}

// newCache returns a cache on dir in front of a fresh transport, and a client that uses it.
func newCache(t *testing.T, dir string) (*Cache, *http.Client) {
	t.Helper()
	next := &http.Transport{}
	t.Cleanup(next.CloseIdleConnections)
	c, err := New(dir, next)
	if err != nil {
		t.Fatal(err)
	}
	return c, &http.Client{Transport: c}
}

func get(c *http.Client, u string, header ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func mustGet(t *testing.T, c *http.Client, u string, header ...string) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := get(c, u, header...)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp, body
}

// files lists the regular files under dir, relative to it, and the temporary files among them.
func files(t *testing.T, dir string) (all, temps []string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			all = append(all, rel)
			if strings.HasPrefix(d.Name(), tempPrefix) {
				temps = append(temps, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all, temps
}

func TestMissThenHit(t *testing.T) {
	up := newUpstream(t)
	data := up.add(helloDeb, 300<<10+3)
	dir := t.TempDir()
	c, client := newCache(t, dir)

	resp, body := mustGet(t, client, up.url(helloDeb))
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("first GET: %s, %d bytes; want 200 and the %d bytes served", resp.Status, len(body), len(data))
	}
	if got := resp.Header.Get(Header); got != "miss" {
		t.Errorf("first GET: %s %q, want miss", Header, got)
	}
	if n := up.count(helloDeb); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1", n)
	}
	if stored, err := os.ReadFile(up.entryPath(dir, helloDeb)); err != nil || !bytes.Equal(stored, data) {
		t.Fatalf("entry: %d bytes, %v; want the body", len(stored), err)
	}

	resp, body = mustGet(t, client, up.url(helloDeb))
	if resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("second GET: %s, %d bytes; want 200 and the same bytes", resp.Status, len(body))
	}
	if n := up.count(helloDeb); n != 1 {
		t.Errorf("upstream saw %d requests after a hit, want still 1", n)
	}
	for h, want := range map[string]string{
		Header:           "hit",
		"Content-Length": fmt.Sprint(len(data)),
		"Content-Type":   "application/vnd.debian.binary-package",
		"Last-Modified":  up.modTime.Format(http.TimeFormat),
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("hit: %s %q, want %q", h, got, want)
		}
	}
	if resp.ContentLength != int64(len(data)) {
		t.Errorf("hit: ContentLength %d, want %d", resp.ContentLength, len(data))
	}
	hits, misses, fromCache, fromNet := c.Stats()
	if hits != 1 || misses != 1 || fromCache != int64(len(data)) || fromNet != int64(len(data)) {
		t.Errorf("Stats() = %d, %d, %d, %d; want 1, 1, %d, %d", hits, misses, fromCache, fromNet, len(data), len(data))
	}
	if _, temps := files(t, dir); len(temps) != 0 {
		t.Errorf("temporary files left: %v", temps)
	}
}

func TestMutableAndOtherFilesNotCached(t *testing.T) {
	up := newUpstream(t)
	paths := []string{
		"/debian/dists/bookworm/Release",
		"/debian/dists/bookworm/InRelease",
		"/debian/dists/bookworm/main/binary-amd64/Packages.xz",
		"/debian/dists/bookworm/main/binary-amd64/Packages",
		"/downloads/tool_latest_amd64.deb", // not in a pool
		"/debian/pool/main/h/hello/hello_1.0.orig.tar.gz.asc",
		"/debian/pool/main/h/hello/hello_1.0_amd64.changes",
	}
	for _, p := range paths {
		up.add(p, 1000)
	}
	withQuery := helloDeb + "?x=1"
	up.add(helloDeb, 1000)
	dir := t.TempDir()
	c, client := newCache(t, dir)
	for range 2 {
		for _, p := range paths {
			resp, _ := mustGet(t, client, up.url(p))
			if h := resp.Header.Get(Header); h != "" {
				t.Errorf("%s: %s %q on an answer that is not cacheable", p, Header, h)
			}
		}
		mustGet(t, client, up.url(withQuery))
		mustGet(t, client, up.url(helloDeb), "Authorization", "Bearer x")
	}
	for _, p := range paths {
		if n := up.count(p); n != 2 {
			t.Errorf("%s: upstream saw %d requests, want 2", p, n)
		}
	}
	if n := up.count(helloDeb); n != 4 {
		t.Errorf("%s with a query or with Authorization: upstream saw %d requests, want 4", helloDeb, n)
	}
	if all, _ := files(t, dir); len(all) != 0 {
		t.Errorf("files stored: %v", all)
	}
	if hits, misses, _, _ := c.Stats(); hits != 0 || misses != 0 {
		t.Errorf("Stats() hits %d, misses %d; want 0, 0 for requests that are not cacheable", hits, misses)
	}
}

func TestByHashCached(t *testing.T) {
	up := newUpstream(t)
	data := make([]byte, 5000)
	rand.Read(data)
	sum := sha256.Sum256(data)
	good := "/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + hex.EncodeToString(sum[:])
	up.mu.Lock()
	up.files[good] = data
	up.mu.Unlock()
	// A mirror that answers a by-hash name with other content.
	other := sha256.Sum256([]byte("something else"))
	bad := "/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/" + hex.EncodeToString(other[:])
	up.add(bad, 5000)

	dir := t.TempDir()
	_, client := newCache(t, dir)
	for i := range 2 {
		resp, body := mustGet(t, client, up.url(good))
		if !bytes.Equal(body, data) {
			t.Fatalf("GET %d: wrong bytes", i)
		}
		if want := []string{"miss", "hit"}[i]; resp.Header.Get(Header) != want {
			t.Errorf("GET %d: %s %q, want %q", i, Header, resp.Header.Get(Header), want)
		}
		mustGet(t, client, up.url(bad))
	}
	if n := up.count(good); n != 1 {
		t.Errorf("by-hash file: upstream saw %d requests, want 1", n)
	}
	if n := up.count(bad); n != 2 {
		t.Errorf("by-hash file with the wrong content: upstream saw %d requests, want 2 (never stored)", n)
	}
	if all, _ := files(t, dir); len(all) != 1 {
		t.Errorf("files stored: %v; want only the good by-hash file", all)
	}
}

func TestRangePassesThrough(t *testing.T) {
	up := newUpstream(t)
	data := up.add(helloDeb, 10000)
	dir := t.TempDir()
	_, client := newCache(t, dir)

	// Before the file is cached: not stored.
	resp, body := mustGet(t, client, up.url(helloDeb), "Range", "bytes=100-199")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[100:200]) {
		t.Fatalf("range GET: %s, %d bytes; want 206 and bytes 100-199", resp.Status, len(body))
	}
	if all, _ := files(t, dir); len(all) != 0 {
		t.Fatalf("a partial answer was stored: %v", all)
	}
	// After: still asked upstream.
	mustGet(t, client, up.url(helloDeb))
	resp, body = mustGet(t, client, up.url(helloDeb), "Range", "bytes=-10")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[len(data)-10:]) {
		t.Fatalf("range GET of a cached file: %s, %d bytes; want 206 and the last 10 bytes", resp.Status, len(body))
	}
	if n := up.count(helloDeb); n != 3 {
		t.Errorf("upstream saw %d requests, want 3", n)
	}
}

func TestNotFoundNotCached(t *testing.T) {
	up := newUpstream(t)
	dir := t.TempDir()
	_, client := newCache(t, dir)
	for range 2 {
		resp, _ := mustGet(t, client, up.url(helloDeb))
		if resp.StatusCode != 404 || resp.Header.Get(Header) != "miss" {
			t.Fatalf("GET: %s, %s %q; want 404, miss", resp.Status, Header, resp.Header.Get(Header))
		}
	}
	if n := up.count(helloDeb); n != 2 {
		t.Errorf("upstream saw %d requests, want 2", n)
	}
	if all, _ := files(t, dir); len(all) != 0 {
		t.Errorf("files stored: %v", all)
	}
}

func TestBodyCutShortNotStored(t *testing.T) {
	up := newUpstream(t)
	up.add(helloDeb, 200<<10)
	up.mu.Lock()
	up.short[helloDeb] = true
	up.mu.Unlock()
	dir := t.TempDir()
	_, client := newCache(t, dir)
	for range 2 {
		if _, body, err := get(client, up.url(helloDeb)); err == nil {
			t.Fatalf("GET of a body cut short: %d bytes and no error", len(body))
		}
	}
	if n := up.count(helloDeb); n != 2 {
		t.Errorf("upstream saw %d requests, want 2", n)
	}
	if all, _ := files(t, dir); len(all) != 0 {
		t.Errorf("files left: %v", all)
	}
}

func TestClientGoesAway(t *testing.T) {
	up := newUpstream(t)
	data := up.add(helloDeb, 1<<20)
	up.delay = time.Millisecond
	dir := t.TempDir()
	_, client := newCache(t, dir)

	resp, err := client.Get(up.url(helloDeb))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if all, _ := files(t, dir); len(all) != 0 {
		t.Fatalf("files left after the client went away: %v", all)
	}

	// A client that reads exactly Content-Length bytes and closes without waiting for the end
	// still leaves a whole entry.
	resp, err = client.Get(up.url(helloDeb))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(data))
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if stored, err := os.ReadFile(up.entryPath(dir, helloDeb)); err != nil || !bytes.Equal(stored, data) {
		t.Errorf("entry: %d bytes, %v; want the body", len(stored), err)
	}
	if _, temps := files(t, dir); len(temps) != 0 {
		t.Errorf("temporary files left: %v", temps)
	}
}

func TestConditionalAndNoCache(t *testing.T) {
	up := newUpstream(t)
	data := up.add(helloDeb, 1000)
	dir := t.TempDir()
	_, client := newCache(t, dir)
	mustGet(t, client, up.url(helloDeb))

	resp, body := mustGet(t, client, up.url(helloDeb), "If-Modified-Since", up.modTime.Format(http.TimeFormat))
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 || resp.Header.Get(Header) != "hit" {
		t.Errorf("If-Modified-Since the file's time: %s, %d bytes, %s %q; want 304 from the cache", resp.Status, len(body), Header, resp.Header.Get(Header))
	}
	resp, body = mustGet(t, client, up.url(helloDeb), "If-Modified-Since", up.modTime.Add(-time.Hour).Format(http.TimeFormat))
	if resp.StatusCode != 200 || !bytes.Equal(body, data) || resp.Header.Get(Header) != "hit" {
		t.Errorf("If-Modified-Since an earlier time: %s, %d bytes; want 200 and the file from the cache", resp.Status, len(body))
	}
	if n := up.count(helloDeb); n != 1 {
		t.Fatalf("upstream saw %d requests, want 1", n)
	}

	// no-cache refetches and replaces the entry.
	newData := up.add(helloDeb, 2000)
	resp, body = mustGet(t, client, up.url(helloDeb), "Cache-Control", "no-cache")
	if !bytes.Equal(body, newData) || resp.Header.Get(Header) != "miss" {
		t.Fatalf("no-cache: %d bytes, %s %q; want the new content, miss", len(body), Header, resp.Header.Get(Header))
	}
	resp, body = mustGet(t, client, up.url(helloDeb))
	if !bytes.Equal(body, newData) || resp.Header.Get(Header) != "hit" {
		t.Errorf("after no-cache: %d bytes, %s %q; want the new content, hit", len(body), Header, resp.Header.Get(Header))
	}
}

func TestConcurrentTwoCaches(t *testing.T) {
	up := newUpstream(t)
	up.delay = 200 * time.Microsecond
	var paths []string
	want := map[string][32]byte{}
	for i := range 5 {
		p := fmt.Sprintf("/debian/pool/main/p/pkg%d/pkg%d_1.%d_amd64.deb", i, i, i)
		paths = append(paths, p)
		want[p] = sha256.Sum256(up.add(p, 256<<10+i*1000))
	}
	dir := t.TempDir()
	c1, client1 := newCache(t, dir)
	c2, client2 := newCache(t, dir)
	clients := []*http.Client{client1, client2}

	var wg sync.WaitGroup
	for g := range 20 {
		wg.Go(func() {
			for j := range 3 {
				p := paths[(g+j)%len(paths)]
				_, body, err := get(clients[(g+j)%2], up.url(p))
				if err != nil {
					t.Errorf("goroutine %d: GET %s: %v", g, p, err)
					continue
				}
				if sha256.Sum256(body) != want[p] {
					t.Errorf("goroutine %d: GET %s: wrong bytes (%d)", g, p, len(body))
				}
			}
		})
	}
	wg.Wait()

	all, temps := files(t, dir)
	if len(temps) != 0 {
		t.Errorf("temporary files left: %v", temps)
	}
	if len(all) != len(paths) {
		t.Errorf("entries: %v; want %d", all, len(paths))
	}
	for _, p := range paths {
		stored, err := os.ReadFile(up.entryPath(dir, p))
		if err != nil || sha256.Sum256(stored) != want[p] {
			t.Errorf("entry for %s: %d bytes, %v; not the file", p, len(stored), err)
		}
	}
	h1, m1, _, _ := c1.Stats()
	h2, m2, _, _ := c2.Stats()
	if h1+h2+m1+m2 != 60 {
		t.Errorf("hits+misses = %d, want 60", h1+h2+m1+m2)
	}
	total := 0
	for _, p := range paths {
		total += up.count(p)
	}
	if int64(total) != m1+m2 {
		t.Errorf("upstream saw %d requests, the caches counted %d misses", total, m1+m2)
	}
	t.Logf("%d hits, %d misses", h1+h2, m1+m2)
}

func TestKeys(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		url, want string // want "" means not cacheable
	}{
		{"http://deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "http/deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"},
		{"http://DEB.Debian.org:80/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "http/deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"},
		{"https://deb.debian.org:443/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "https/deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"},
		{"http://127.0.0.1:8080/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "http/127.0.0.1:8080/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"},
		{"http://[::1]:8080/debian/pool/main/h/hello/hello_2.10-3_amd64.deb", "http/[::1]:8080/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"},
		{"http://h/debian/pool/main/h/hello/hello_1.0%7erc1_amd64.deb", "http/h/debian/pool/main/h/hello/hello_1.0~rc1_amd64.deb"},
		{"http://h/debian/pool/main/d/di/di_1.0_amd64.udeb", "http/h/debian/pool/main/d/di/di_1.0_amd64.udeb"},
		{"http://h/debian/pool/main/h/hello/hello_2.10-3.dsc", "http/h/debian/pool/main/h/hello/hello_2.10-3.dsc"},
		{"http://h/debian/pool/main/h/hello/hello_2.10.orig.tar.gz", "http/h/debian/pool/main/h/hello/hello_2.10.orig.tar.gz"},
		{"http://h/debian/pool/main/h/hello/hello_2.10-3.debian.tar.xz", "http/h/debian/pool/main/h/hello/hello_2.10-3.debian.tar.xz"},
		{"http://h/debian/pool/main/h/hello/hello_2.10-3.diff.gz", "http/h/debian/pool/main/h/hello/hello_2.10-3.diff.gz"},
		{"http://h/debian/dists/sid/main/binary-amd64/by-hash/SHA256/" + hash, "http/h/debian/dists/sid/main/binary-amd64/by-hash/SHA256/" + hash},
		{"http://h/debian/dists/sid/main/binary-amd64/by-hash/MD5Sum/" + hash[:32], "http/h/debian/dists/sid/main/binary-amd64/by-hash/MD5Sum/" + hash[:32]},

		{"http://h/debian/dists/sid/main/binary-amd64/by-hash/SHA256/" + hash[:62], ""},
		{"http://h/debian/dists/sid/main/binary-amd64/by-hash/SHA3/" + hash, ""},
		{"http://h/debian/dists/sid/main/binary-amd64/by-hash/SHA256/" + strings.Repeat("zz", 32), ""},
		{"http://h/debian/dists/sid/Release", ""},
		{"http://h/debian/dists/sid/InRelease", ""},
		{"http://h/debian/dists/sid/main/binary-amd64/Packages.xz", ""},
		{"http://h/debian/pool/main/h/hello/hello_2.10.orig.tar.gz.asc", ""},
		{"http://h/debian/pool/main/h/hello/hello_2.10.tar.", ""},
		{"http://h/tool.deb", ""},
		{"http://h/debian/pool/main/h/hello/hello.deb?x=1", ""},
		{"http://h/debian/pool/main/h/hello/hello.deb?", ""},
		{"http://u:p@h/debian/pool/main/h/hello/hello.deb", ""},
		{"ftp://h/debian/pool/main/h/hello/hello.deb", ""},
		// Keys that would reach outside the cache, or alias another key.
		{"http://h/debian/pool/../../../../etc/passwd.deb", ""},
		{"http://h/debian/pool/%2e%2e/%2e%2e/%2e%2e/x.deb", ""},
		{"http://h/debian/pool/..%2f..%2f..%2fx.deb", ""},
		{"http://h/debian/pool/a%2fb.deb", ""},
		{"http://h/debian/pool/..%5c..%5cx.deb", ""},
		{"http://h/debian/pool/./x.deb", ""},
		{"http://h/debian/pool//x.deb", ""},
		{"http://h/debian/pool/.x.deb", ""},
		{"http://h/debian/pool/.pkgcache-0123.tmp/x.deb", ""},
		{"http://h/debian/pool/a%00b.deb", ""},
		{"http://h/debian/pool/a%0ab.deb", ""},
		{"http://h/debian/pool/x.deb/", ""},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		k := keyFor(&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}})
		got := ""
		if k != nil {
			got = k.rel
		}
		if got != tc.want {
			t.Errorf("key of %s = %q, want %q", tc.url, got, tc.want)
		}
	}

	// Hosts that url.Parse would refuse, but a RoundTripper may still be given.
	for _, host := range []string{"..", ".", "", "a/b", "a\\b", "..%2f..", "a b"} {
		u := &url.URL{Scheme: "http", Host: host, Path: helloDeb}
		if k := keyFor(&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}); k != nil {
			t.Errorf("host %q: key %q, want none", host, k.rel)
		}
	}

	u, _ := url.Parse("http://h" + helloDeb)
	for _, r := range []*http.Request{
		{Method: http.MethodHead, URL: u, Header: http.Header{}},
		{Method: http.MethodPost, URL: u, Header: http.Header{}},
		{Method: http.MethodGet, URL: u, Header: http.Header{"Range": {"bytes=0-"}}},
		{Method: http.MethodGet, URL: u, Header: http.Header{"Authorization": {"Basic eDp5"}}},
	} {
		if k := keyFor(r); k != nil {
			t.Errorf("%s with %v: key %q, want none", r.Method, r.Header, k.rel)
		}
	}
}

func FuzzKeyStaysInside(f *testing.F) {
	for _, s := range []string{helloDeb, "/pool/../x.deb", "/pool/%2e%2e/x.deb", "/a/by-hash/MD5Sum/" + strings.Repeat("0", 32)} {
		f.Add("h", s)
	}
	f.Fuzz(func(t *testing.T, host, rawPath string) {
		u := &url.URL{Scheme: "http", Host: host, Path: rawPath}
		if p, err := url.PathUnescape(rawPath); err == nil {
			u.Path, u.RawPath = p, rawPath
		}
		k := keyFor(&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}})
		if k == nil {
			return
		}
		if !filepath.IsLocal(k.rel) || filepath.Clean(k.rel) != k.rel {
			t.Fatalf("host %q path %q: key %q is not a clean local path", host, rawPath, k.rel)
		}
	})
}

// A request that tries to climb out of the cache, or a symbolic link in the cache that leads out
// of it, leaves nothing outside the cache directory; the client still gets its answer.
func TestNothingEscapesTheDir(t *testing.T) {
	up := newUpstream(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "cache")
	outside := filepath.Join(parent, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	_, client := newCache(t, dir)

	for _, p := range []string{
		"/debian/pool/../../../../../escape.deb",
		"/debian/pool/%2e%2e/%2e%2e/%2e%2e/%2e%2e/escape.deb",
		"/debian/pool/..%2f..%2f..%2f..%2fescape.deb",
	} {
		// The upstream answers whatever path it is asked.
		up.add(p, 100)
		if u, err := url.Parse(up.url(p)); err == nil {
			up.add(u.Path, 100)
		}
		resp, _ := mustGet(t, client, up.url(p))
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %s", p, resp.Status)
		}
	}

	// A link inside the cache to a directory outside it.
	host := strings.TrimPrefix(up.srv.URL, "http://")
	if err := os.MkdirAll(filepath.Join(dir, "http", host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "http", host, "debian")); err != nil {
		t.Fatal(err)
	}
	data := up.add(helloDeb, 1000)
	for range 2 {
		_, body := mustGet(t, client, up.url(helloDeb))
		if !bytes.Equal(body, data) {
			t.Fatalf("GET through a cache with a link out: wrong bytes")
		}
	}
	if n := up.count(helloDeb); n != 2 {
		t.Errorf("upstream saw %d requests, want 2 (not stored through the link)", n)
	}

	entries, _ := os.ReadDir(parent)
	if len(entries) != 2 {
		t.Errorf("%s holds %d entries, want only cache and outside", parent, len(entries))
	}
	if out, _ := os.ReadDir(outside); len(out) != 0 {
		t.Errorf("written outside the cache: %v", out)
	}
	if all, _ := files(t, dir); len(all) != 0 {
		t.Errorf("files stored: %v", all)
	}
}

func TestThroughNetproxy(t *testing.T) {
	up := newUpstream(t)
	data := up.add(helloDeb, 500<<10)
	dir := t.TempDir()
	c, _ := newCache(t, dir)
	proxy := httptest.NewServer(netproxy.New(netproxy.Options{Transport: c}))
	t.Cleanup(proxy.Close)
	pu, _ := url.Parse(proxy.URL)
	tr := &http.Transport{Proxy: http.ProxyURL(pu)}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}

	for i, want := range []string{"miss", "hit"} {
		resp, body := mustGet(t, client, up.url(helloDeb))
		if resp.StatusCode != 200 || !bytes.Equal(body, data) {
			t.Fatalf("GET %d through the proxy: %s, %d bytes; want 200 and the file", i, resp.Status, len(body))
		}
		if got := resp.Header.Get(Header); got != want {
			t.Errorf("GET %d: %s %q, want %q", i, Header, got, want)
		}
	}
	if n := up.count(helloDeb); n != 1 {
		t.Errorf("upstream saw %d requests, want 1", n)
	}
	if hits, misses, _, _ := c.Stats(); hits != 1 || misses != 1 {
		t.Errorf("Stats() hits %d, misses %d; want 1, 1", hits, misses)
	}
}

func TestStaleTempsSwept(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "http", "h", "debian", "pool")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(sub, tempPrefix+"old"+tempSuffix)
	fresh := filepath.Join(sub, tempPrefix+"fresh"+tempSuffix)
	entry := filepath.Join(sub, "x.deb")
	for _, p := range []string{old, fresh, entry} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-2 * staleTemp)
	os.Chtimes(old, long, long)
	os.Chtimes(entry, long, long)
	if _, err := New(dir, nil); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{old: false, fresh: true, entry: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}

func TestNewAndDefaultDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	c, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("New did not create %s: %v", dir, err)
	}
	if !filepath.IsAbs(c.Dir()) {
		t.Errorf("Dir() = %q, want an absolute path", c.Dir())
	}
	if _, err := New("", nil); err == nil {
		t.Error("New with an empty directory name: no error")
	}
	t.Setenv("XDG_CACHE_HOME", "/tmp/xdg")
	base, err := os.UserCacheDir()
	if err != nil {
		t.Skip(err)
	}
	if d, err := DefaultDir(); err != nil || d != filepath.Join(base, "packer-plugin-uml", "packages") {
		t.Errorf("DefaultDir() = %q, %v; want it under %s", d, err, base)
	}
}

// TestTwoProcesses runs two copies of the test binary that fetch the same files into one directory
// at the same time.
func TestTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	up := newUpstream(t)
	up.delay = 200 * time.Microsecond
	var urls []string
	want := map[string]string{}
	for i := range 4 {
		p := fmt.Sprintf("/debian/pool/main/q/q%d/q%d_2.%d_all.deb", i, i, i)
		sum := sha256.Sum256(up.add(p, 384<<10+i))
		urls = append(urls, up.url(p))
		want[up.url(p)] = hex.EncodeToString(sum[:])
	}
	dir := t.TempDir()

	cmds := make([]*exec.Cmd, 2)
	outs := make([]*bytes.Buffer, 2)
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmds[i].Env = append(os.Environ(), "PKGCACHE_HELPER_DIR="+dir, "PKGCACHE_HELPER_URLS="+strings.Join(urls, " "))
		outs[i] = new(bytes.Buffer)
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
		n := 0
		sc := bufio.NewScanner(outs[i])
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "SUM" {
				continue
			}
			n++
			if want[f[1]] != f[2] {
				t.Errorf("process %d: %s has sha256 %s, want %s", i, f[1], f[2], want[f[1]])
			}
		}
		if n != 8*2*len(urls) {
			t.Errorf("process %d reported %d fetches, want %d", i, n, 8*2*len(urls))
		}
	}
	all, temps := files(t, dir)
	if len(temps) != 0 || len(all) != len(urls) {
		t.Errorf("files: %v, temporary: %v; want %d entries and no temporary files", all, temps, len(urls))
	}
	_, client := newCache(t, dir)
	for _, u := range urls {
		resp, body := mustGet(t, client, u)
		sum := sha256.Sum256(body)
		if resp.Header.Get(Header) != "hit" || hex.EncodeToString(sum[:]) != want[u] {
			t.Errorf("%s after both processes: %s %q, wrong or right bytes: %v", u, Header, resp.Header.Get(Header), hex.EncodeToString(sum[:]) == want[u])
		}
	}
}

// TestHelperProcess is one of TestTwoProcesses' processes: 8 goroutines each fetch every URL twice.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("PKGCACHE_HELPER_DIR")
	if dir == "" {
		t.Skip("only run by TestTwoProcesses")
	}
	urls := strings.Fields(os.Getenv("PKGCACHE_HELPER_URLS"))
	_, client := newCache(t, dir)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for j := range 2 * len(urls) {
				u := urls[(g+j)%len(urls)]
				_, body, err := get(client, u)
				if err != nil {
					t.Errorf("GET %s: %v", u, err)
					continue
				}
				sum := sha256.Sum256(body)
				mu.Lock()
				fmt.Printf("SUM %s %x\n", u, sum)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

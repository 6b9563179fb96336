// Package pkgcache is a host-side cache of immutable downloads: an http.RoundTripper that wraps
// another and keeps the Debian archive files whose names pin their content, so that the next build
// takes them from disk instead of the network. It is meant for netproxy.Options.Transport, through
// which debootstrap and apt in the guest fetch packages as plain http:// requests. It knows nothing
// of Packer.
//
// # What is cached, and why
//
// Only what can never change under the same URL, so that a hit never needs to ask the network:
//
//   - Pool files: a path with a "pool" directory above a name ending in .deb, .udeb, .dsc,
//     .diff.gz or .tar.<ext> (.tar.xz, .orig.tar.gz, …). The Debian archive never replaces a
//     file in the pool: a new upload has a new version, hence a new name, and the archive refuses
//     the same name with other content. Such a name outside a pool (a "latest.deb" on some web
//     site) is not cached, since nothing promises it stays the same.
//   - by-hash index files: …/by-hash/<MD5Sum|SHA1|SHA256|SHA512>/<hex digest>. The name is
//     the digest of the content; the digest is checked before the file is stored, so a wrong
//     answer from a mirror is never kept.
//
// Nothing else: not Release, InRelease, or Packages*/Sources*/Translation* under their plain
// names, which change at every archive update and would make the guest see a stale archive, nor
// any other URL.
//
// A request is cacheable only if it is a GET with no Range header (a partial answer is not the
// file), no Authorization header and no user information in the URL (a private repository's
// files stay out of a shared cache), and no query (a query may select other content; an empty
// "?" counts as a query). A request with "Cache-Control: no-cache" or "Pragma: no-cache" is not
// answered from the cache but fetched, and a good answer replaces the entry: an escape hatch for
// an entry believed bad. Only a 200 answer with its body whole, without a Content-Encoding (or
// "identity") and without "Cache-Control: no-store", is stored.
//
// # Layout
//
// An entry is a plain file at <dir>/<scheme>/<host>/<URL path>, for example
// ~/.cache/packer-plugin-uml/packages/http/deb.debian.org/debian/pool/main/h/hello/hello_2.10-3_amd64.deb.
// Readable names let a user see, prune (find -atime) or delete what is cached, and need no
// metadata sidecar: the Content-Type follows from the name and Last-Modified is the file's
// modification time, set from the upstream Last-Modified when there was one. The host is
// lower-cased and a default port dropped. The path is split at "/" before percent-decoding, and
// every segment must be non-empty, must not begin with "." (which excludes "." and "..", and keeps
// key names apart from the cache's temporary files), and must contain no "/", "\", NUL or control
// character once decoded; a URL that fails this is simply not cached. All file operations go
// through an os.Root on dir as well, so even a symbolic link placed in the cache cannot lead a key
// outside it.
//
// # Concurrency
//
// Several builds, in separate processes, may share one directory. A miss streams the body to the
// client and, as it goes, into a temporary file ".pkgcache-<random>.tmp" in the entry's directory.
// Once the whole body has arrived, with as many bytes as Content-Length said (and, for by-hash, the
// right digest), the file is synced and renamed into place; rename is atomic, so a reader sees
// either no entry or a whole one. A body cut short, an upstream error, or a client that closes the
// body before its end abandons (removes) the temporary file. Two misses for the same key at once
// both download and both rename; the last rename wins, and both files are whole. Temporary files
// that a killed process left behind are removed by New once they are an hour old.
package pkgcache

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Header is set on every answer to a cacheable request: "hit" when it came from the cache, "miss"
// when it came from the network. Answers to other requests do not carry it.
const Header = "X-Packer-Uml-Cache"

const (
	tempPrefix = ".pkgcache-"
	tempSuffix = ".tmp"
	// staleTemp is the age after which New takes a temporary file for the leftover of a dead
	// process. A live download writes to its file all the time, so its mtime stays recent.
	staleTemp = time.Hour
)

// Cache is an http.RoundTripper that answers cacheable requests from a directory and passes
// everything else to the next RoundTripper. It is safe for concurrent use, also by several
// processes on one directory.
type Cache struct {
	dir  string
	next http.RoundTripper

	// Log, when set before the first request, receives the reasons why an answer was not stored
	// (a body cut short, a full disk, …); nil discards them. They never fail the request.
	Log *log.Logger

	hits, misses, fromCache, fromNetwork atomic.Int64
}

// New returns a cache in dir, which it creates (mode 0o755 less the umask) if needed, in front of
// next. A nil next means an http.Transport like net/http's default but without a proxy from the
// environment, as netproxy's own default.
func New(dir string, next http.RoundTripper) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("pkgcache: empty directory name")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pkgcache: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("pkgcache: %w", err)
	}
	if next == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil
		next = t
	}
	sweepTemps(abs, time.Now().Add(-staleTemp))
	return &Cache{dir: abs, next: next}, nil
}

// DefaultDir is the per-user cache directory: os.UserCacheDir()/packer-plugin-uml/packages.
func DefaultDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("pkgcache: %w", err)
	}
	return filepath.Join(d, "packer-plugin-uml", "packages"), nil
}

// Dir is the cache's directory, as an absolute path.
func (c *Cache) Dir() string { return c.dir }

// Stats reports the answers given from the cache and the cacheable requests that went to the
// network, and the body bytes read from the cache and from the network; bytesFromNetwork counts
// every answer passed on from next, cacheable or not.
func (c *Cache) Stats() (hits, misses, bytesFromCache, bytesFromNetwork int64) {
	return c.hits.Load(), c.misses.Load(), c.fromCache.Load(), c.fromNetwork.Load()
}

// RoundTrip implements http.RoundTripper.
func (c *Cache) RoundTrip(req *http.Request) (*http.Response, error) {
	k := keyFor(req)
	if k == nil {
		resp, err := c.next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		resp.Body = &netBody{ReadCloser: resp.Body, c: c}
		return resp, nil
	}
	if !noCache(req.Header) {
		if resp := c.lookup(req, k); resp != nil {
			return resp, nil
		}
	}
	c.misses.Add(1)
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.Header == nil {
		resp.Header = make(http.Header)
	}
	resp.Header.Set(Header, "miss")
	var tee *teeBody
	if storable(resp) {
		tee = c.startStore(k, resp)
	}
	if tee != nil {
		resp.Body = tee
	} else {
		resp.Body = &netBody{ReadCloser: resp.Body, c: c}
	}
	return resp, nil
}

// key is where a cacheable request's entry lives.
type key struct {
	rel string // slash-separated, relative to the cache dir
	// For by-hash files, the digest that the name promises.
	newHash func() hash.Hash
	digest  []byte
}

var byHashAlgos = map[string]func() hash.Hash{
	"MD5Sum": md5.New,
	"SHA1":   sha1.New,
	"SHA256": sha256.New,
	"SHA512": sha512.New,
}

// keyFor returns the entry of a cacheable request, or nil if the request is not one (see the
// package documentation).
func keyFor(req *http.Request) *key {
	if req.Method != http.MethodGet || req.Header.Get("Range") != "" || req.Header.Get("Authorization") != "" {
		return nil
	}
	u := req.URL
	if u == nil || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery {
		return nil
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return nil
	}
	host := hostDir(scheme, u.Host)
	if host == "" {
		return nil
	}
	segs, ok := pathSegments(u.EscapedPath())
	if !ok {
		return nil
	}
	k := &key{rel: strings.Join(append([]string{scheme, host}, segs...), "/")}
	name := segs[len(segs)-1]
	switch {
	case len(segs) >= 3 && segs[len(segs)-3] == "by-hash":
		newHash, ok := byHashAlgos[segs[len(segs)-2]]
		if !ok {
			return nil
		}
		d, err := hex.DecodeString(name)
		if err != nil || len(d) != newHash().Size() {
			return nil
		}
		k.newHash, k.digest = newHash, d
		return k
	case poolName(name):
		for _, s := range segs[:len(segs)-1] {
			if s == "pool" {
				return k
			}
		}
	}
	return nil
}

// poolName reports whether name is that of a file which the Debian archive keeps in its pool.
func poolName(name string) bool {
	for _, suf := range []string{".deb", ".udeb", ".dsc", ".diff.gz"} {
		if strings.HasSuffix(name, suf) {
			return true
		}
	}
	i := strings.LastIndex(name, ".tar.")
	if i < 0 || i+len(".tar.") == len(name) {
		return false
	}
	for _, r := range name[i+len(".tar."):] {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// hostDir is the directory name of a URL's host: lower-cased, without the scheme's default port;
// "" if it is empty or has characters that do not belong in a host name.
func hostDir(scheme, host string) string {
	host = strings.ToLower(host)
	if scheme == "http" {
		host = strings.TrimSuffix(host, ":80")
	} else {
		host = strings.TrimSuffix(host, ":443")
	}
	if host == "" || host[0] == '.' || len(host) > 255 {
		return ""
	}
	for _, r := range host {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || strings.ContainsRune(".-_:[]", r)) {
			return ""
		}
	}
	return host
}

// pathSegments splits an escaped URL path at its slashes and decodes each segment, or reports
// that the path cannot name a cache entry (see the package documentation).
func pathSegments(escaped string) ([]string, bool) {
	if !strings.HasPrefix(escaped, "/") {
		return nil, false
	}
	raw := strings.Split(escaped[1:], "/")
	segs := make([]string, 0, len(raw))
	for _, r := range raw {
		s, err := url.PathUnescape(r)
		if err != nil || s == "" || s[0] == '.' || len(s) > 255 {
			return nil, false
		}
		for _, c := range []byte(s) {
			if c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
				return nil, false
			}
		}
		segs = append(segs, s)
	}
	return segs, true
}

// noCache reports whether the client asked for an answer that does not come from a cache.
func noCache(h http.Header) bool {
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-cache") {
				return true
			}
		}
	}
	return strings.EqualFold(strings.TrimSpace(h.Get("Pragma")), "no-cache")
}

// storable reports whether an answer to a cacheable request may become an entry.
func storable(resp *http.Response) bool {
	if resp.StatusCode != http.StatusOK {
		return false
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return false // the body is not the file
	}
	for _, v := range resp.Header.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-store") {
				return false
			}
		}
	}
	return true
}

// lookup answers req from its entry, or returns nil if there is none.
func (c *Cache) lookup(req *http.Request, k *key) *http.Response {
	root, err := os.OpenRoot(c.dir)
	if err != nil {
		c.logf("%s: %v", k.rel, err)
		return nil
	}
	f, err := root.Open(k.rel)
	root.Close()
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrInvalid) {
			c.logf("%s: %v", k.rel, err)
		}
		return nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil
	}
	if req.Body != nil {
		req.Body.Close() // RoundTrip owns it
	}
	c.hits.Add(1)
	mod := fi.ModTime().UTC().Truncate(time.Second)
	resp := &http.Response{
		Status:     "200 OK",
		StatusCode: http.StatusOK,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header: http.Header{
			"Content-Type":   {contentType(k.rel)},
			"Content-Length": {strconv.FormatInt(fi.Size(), 10)},
			"Last-Modified":  {mod.Format(http.TimeFormat)},
			Header:           {"hit"},
		},
		ContentLength: fi.Size(),
		Body:          &hitBody{f: f, c: c},
		Request:       req,
	}
	// An If-Modified-Since that the file satisfies gets a 304, as the origin would answer. An
	// If-None-Match would need the origin's ETag, which is not kept: the full answer is also right.
	if ims := req.Header.Get("If-Modified-Since"); ims != "" && req.Header.Get("If-None-Match") == "" {
		if t, err := http.ParseTime(ims); err == nil && !mod.After(t) {
			f.Close()
			resp.Status, resp.StatusCode = "304 Not Modified", http.StatusNotModified
			resp.Header.Del("Content-Length")
			resp.Header.Del("Content-Type")
			resp.ContentLength = 0
			resp.Body = http.NoBody
		}
	}
	return resp
}

func contentType(rel string) string {
	if strings.HasSuffix(rel, ".deb") || strings.HasSuffix(rel, ".udeb") {
		return "application/vnd.debian.binary-package"
	}
	return "application/octet-stream"
}

// startStore opens a temporary file for resp's body and returns the body that fills it, or nil if
// the entry cannot be written (then the answer is only passed on).
func (c *Cache) startStore(k *key, resp *http.Response) *teeBody {
	root, err := os.OpenRoot(c.dir)
	if err != nil {
		c.logf("%s: %v", k.rel, err)
		return nil
	}
	dir := path.Dir(k.rel)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		// For instance a file where a directory should be: a key that is a prefix of another.
		c.logf("%s: %v", k.rel, err)
		root.Close()
		return nil
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmpRel := dir + "/" + tempPrefix + hex.EncodeToString(rnd[:]) + tempSuffix
	f, err := root.OpenFile(tmpRel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		c.logf("%s: %v", k.rel, err)
		root.Close()
		return nil
	}
	b := &teeBody{src: resp.Body, c: c, root: root, tmp: f, tmpRel: tmpRel, rel: k.rel,
		want: resp.ContentLength, digest: k.digest}
	if k.newHash != nil {
		b.h = k.newHash()
	}
	if resp.Uncompressed {
		// The transport took a gzip encoding off: the body is the file, but its length is not
		// the Content-Length that came with it.
		b.want = -1
	}
	if t, err := http.ParseTime(resp.Header.Get("Last-Modified")); err == nil {
		b.modTime = t
	}
	return b
}

// teeBody passes an upstream body to the client and copies it into a temporary file, which becomes
// the entry once the body is known whole, and is removed otherwise.
type teeBody struct {
	src  io.ReadCloser
	c    *Cache
	want int64 // Content-Length, or -1
	seen int64 // bytes read from src; only Read touches it

	mu      sync.Mutex // guards what follows, since Close may come while Read blocks
	root    *os.Root
	tmp     *os.File // nil once the entry is written or given up
	tmpRel  string
	rel     string
	h       hash.Hash
	digest  []byte
	modTime time.Time
}

var errLonger = errors.New("pkgcache: body longer than its Content-Length")

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.src.Read(p)
	if n > 0 {
		b.seen += int64(n)
		b.c.fromNetwork.Add(int64(n))
	}
	if err == nil && n > 0 && b.want >= 0 && b.seen == b.want {
		// Everything announced is here. Take the end of the body now, so that the entry exists
		// by the time the client has the last byte (an http.Transport body answers at once).
		var one [1]byte
		if m, err2 := b.src.Read(one[:]); m > 0 {
			err = errLonger
		} else {
			err = err2
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tmp == nil {
		return n, err
	}
	if n > 0 {
		if _, werr := b.tmp.Write(p[:n]); werr != nil {
			b.abandon(werr)
			return n, err
		}
		if b.h != nil {
			b.h.Write(p[:n])
		}
	}
	switch {
	case err == io.EOF:
		b.commit()
	case err != nil:
		b.abandon(err)
	}
	return n, err
}

// Close ends the body. A body read to its announced length is stored even if the client did not
// read on to the end; anything shorter is given up.
func (b *teeBody) Close() error {
	err := b.src.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tmp != nil {
		if b.want >= 0 && b.seen == b.want {
			b.commit()
		} else {
			b.abandon(errors.New("body closed before its end"))
		}
	}
	return err
}

// commit turns the temporary file into the entry if the body is whole. b.mu is held.
func (b *teeBody) commit() {
	if b.want >= 0 && b.seen != b.want {
		b.abandon(fmt.Errorf("got %d bytes, Content-Length said %d", b.seen, b.want))
		return
	}
	if b.h != nil && !bytes.Equal(b.h.Sum(nil), b.digest) {
		b.abandon(fmt.Errorf("content does not have the digest its name says (%x)", b.h.Sum(nil)))
		return
	}
	// Sync before the rename: after a crash, the name must not point to a file whose data never
	// reached the disk.
	err := b.tmp.Sync()
	if cerr := b.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && !b.modTime.IsZero() {
		err = b.root.Chtimes(b.tmpRel, b.modTime, b.modTime)
	}
	if err == nil {
		err = b.root.Rename(b.tmpRel, b.rel)
	}
	if err != nil {
		b.c.logf("%s: not stored: %v", b.rel, err)
		b.root.Remove(b.tmpRel)
	}
	b.tmp = nil
	b.root.Close()
}

// abandon removes the temporary file. b.mu is held.
func (b *teeBody) abandon(why error) {
	b.c.logf("%s: not stored: %v", b.rel, why)
	b.tmp.Close()
	b.root.Remove(b.tmpRel)
	b.tmp = nil
	b.root.Close()
}

// hitBody is an entry's file as a response body.
type hitBody struct {
	f *os.File
	c *Cache
}

func (b *hitBody) Read(p []byte) (int, error) {
	n, err := b.f.Read(p)
	b.c.fromCache.Add(int64(n))
	return n, err
}

func (b *hitBody) Close() error { return b.f.Close() }

// netBody counts the bytes of an answer that is passed on without being stored.
type netBody struct {
	io.ReadCloser
	c *Cache
}

func (b *netBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.fromNetwork.Add(int64(n))
	return n, err
}

func (c *Cache) logf(format string, args ...any) {
	if c.Log != nil {
		c.Log.Printf("pkgcache: "+format, args...)
	}
}

// sweepTemps removes the temporary files under dir that were last written before cutoff: those of
// processes that died while downloading. Errors are ignored; they only leave litter.
func sweepTemps(dir string, cutoff time.Time) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		name := d.Name()
		if !strings.HasPrefix(name, tempPrefix) || !strings.HasSuffix(name, tempSuffix) {
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.ModTime().Before(cutoff) {
			os.Remove(p)
		}
		return nil
	})
}

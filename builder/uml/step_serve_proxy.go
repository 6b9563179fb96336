package uml

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/uml/agent"
	"github.com/packer-uml/packer-plugin-uml/uml/netproxy"
	"github.com/packer-uml/packer-plugin-uml/uml/pkgcache"
)

// progressInterval is how often the UI hears how much the guest downloaded: one line per interval
// with bytes and rate, never one per package.
const progressInterval = 10 * time.Second

// stepServeProxy serves the guest's HTTP proxy on the host (the agent transport): connections the
// guest's processes make to the agent's loopback port arrive here over the channel, and the host
// dials out with its own resolver and network.
//
// The same proxy also listens on the host's loopback, for the debian module's host phase
// (debian_prefetch.go), so that its downloads fill the same package cache.
//
// Uses: ui, stateAgent. Produces: stateProxyURL (the proxy's URL in the guest) and
// stateHostProxyURL (its URL on the host).
type stepServeProxy struct {
	Enabled bool
	// CacheDir holds the package cache; "" for none.
	CacheDir string

	stop   chan struct{}
	cache  *pkgcache.Cache
	ui     packersdk.Ui
	server *http.Server
}

// stateHostProxyURL (string): the build's proxy on the host's loopback, by stepServeProxy.
const stateHostProxyURL = "host_proxy_url"

func (s *stepServeProxy) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	if !s.Enabled {
		return multistep.ActionContinue
	}
	ui := state.Get(stateUI).(packersdk.Ui)
	client := state.Get(stateAgent).(*agent.Client)
	var received atomic.Int64
	opts := netproxy.Options{
		Progress: func(n int64) { received.Add(n) },
		Log:      log.Default(),
	}
	if s.CacheDir != "" {
		cache, err := pkgcache.New(s.CacheDir, nil)
		if err != nil {
			return haltf(state, "package cache: %w (set cache_dir to a writable directory, or cache = false)", err)
		}
		cache.Log = log.Default()
		opts.Transport = cache
		s.cache = cache
		ui.Say("Package cache: " + cache.Dir())
	}
	s.ui = ui
	handler := netproxy.New(opts)
	go func() {
		if err := client.ServeProxy(handler); err != nil {
			log.Printf("proxy: %v", err)
		}
	}()
	// Host clients: loopback only, an ephemeral port, for this build's own processes.
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err != nil {
		log.Printf("proxy: no listener on the host's loopback: %v", err)
	} else {
		s.server = &http.Server{Handler: handler, ReadHeaderTimeout: time.Minute}
		go s.server.Serve(l)
		state.Put(stateHostProxyURL, "http://"+l.Addr().String())
	}
	s.stop = make(chan struct{})
	go reportDownloads(ui, &received, s.stop)
	state.Put(stateProxyURL, "http://"+agent.DefaultProxyAddr)
	ui.Say("Network: the guest reaches HTTP and HTTPS through the host (proxy http://" + agent.DefaultProxyAddr + " in the guest)")
	return multistep.ActionContinue
}

func (s *stepServeProxy) Cleanup(multistep.StateBag) {
	if s.server != nil {
		s.server.Close()
	}
	if s.stop != nil {
		close(s.stop)
	}
	if s.cache != nil {
		hits, misses, fromCache, fromNetwork := s.cache.Stats()
		s.ui.Say(fmt.Sprintf("Package cache: %d hits (%.1f MiB), %d misses; %.1f MiB from the network",
			hits, float64(fromCache)/(1<<20), misses, float64(fromNetwork)/(1<<20)))
	}
}

// reportDownloads says, every progressInterval in which the guest received something, how much and
// how fast.
func reportDownloads(ui packersdk.Ui, received *atomic.Int64, stop <-chan struct{}) {
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			now := received.Load()
			if now == last {
				continue
			}
			rate := float64(now-last) / progressInterval.Seconds()
			ui.Message(fmt.Sprintf("network: %.1f MiB downloaded through the build's proxy (%.2f MB/s)", float64(now)/(1<<20), rate/1e6))
			last = now
		}
	}
}

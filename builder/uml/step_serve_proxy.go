package uml

import (
	"context"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/uml/agent"
	"github.com/packer-uml/packer-plugin-uml/uml/netproxy"
)

// progressInterval is how often the UI hears how much the guest downloaded: one line per interval
// with bytes and rate, never one per package.
const progressInterval = 10 * time.Second

// stepServeProxy serves the guest's HTTP proxy on the host (the agent transport): connections the
// guest's processes make to the agent's loopback port arrive here over the channel, and the host
// dials out with its own resolver and network.
//
// Uses: ui, stateAgent. Produces: stateProxyURL (the proxy's URL in the guest).
type stepServeProxy struct {
	Enabled bool

	stop chan struct{}
}

func (s *stepServeProxy) Run(_ context.Context, state multistep.StateBag) multistep.StepAction {
	if !s.Enabled {
		return multistep.ActionContinue
	}
	ui := state.Get(stateUI).(packersdk.Ui)
	client := state.Get(stateAgent).(*agent.Client)
	var received atomic.Int64
	handler := netproxy.New(netproxy.Options{
		Progress: func(n int64) { received.Add(n) },
		Log:      log.Default(),
	})
	go func() {
		if err := client.ServeProxy(handler); err != nil {
			log.Printf("proxy: %v", err)
		}
	}()
	s.stop = make(chan struct{})
	go reportDownloads(ui, &received, s.stop)
	state.Put(stateProxyURL, "http://"+agent.DefaultProxyAddr)
	ui.Say("Network: the guest reaches HTTP and HTTPS through the host (proxy http://" + agent.DefaultProxyAddr + " in the guest)")
	return multistep.ActionContinue
}

func (s *stepServeProxy) Cleanup(multistep.StateBag) {
	if s.stop != nil {
		close(s.stop)
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
			ui.Message(fmt.Sprintf("network: %.1f MiB downloaded by the guest (%.2f MB/s)", float64(now)/(1<<20), rate/1e6))
			last = now
		}
	}
}

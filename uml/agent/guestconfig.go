package agent

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// GuestConfigParam is the kernel parameter that carries GuestConfig to the guest's PID 1. The kernel
// hands unknown key=value parameters to init as environment variables.
const GuestConfigParam = "packer_uml"

// Fixed places in the guest, as rootstrap had them.
const (
	// TargetDir is where the image's filesystem is mounted ($TARGET).
	TargetDir = "/tmp/target"
	// HostDir is where the whole host filesystem is mounted read-only ($HOST).
	HostDir = "/tmp/host"
	// GuestStagingDir is where the guest sees GuestConfig.StagingDir.
	GuestStagingDir = "/run/packer-uml/staging"
)

// GuestConfig is what the host tells the guest at boot.
type GuestConfig struct {
	// WorkDir is the host directory Packer runs in, mounted read-write at the same path ($WORKDIR).
	WorkDir string `json:"workdir,omitempty"`
	// StagingDir is a host directory of the build's own, mounted read-write at GuestStagingDir: bulk
	// data of transfers goes through files there (see spec.md §3).
	StagingDir string `json:"staging,omitempty"`
	// ModulesDir is the host directory of the UML kernel's modules, mounted at /lib/modules.
	ModulesDir string `json:"modules,omitempty"`
	// Debug makes the guest's PID 1 and agent log more.
	Debug bool `json:"debug,omitempty"`
	// ProxyAddr, when set, is a loopback TCP address (see CheckProxyAddr) on which the guest agent
	// accepts connections and carries each to the host over the channel (spec.md §5). The host
	// must then run Client.ServeProxy: a proxy stream nobody accepts ends the session.
	ProxyAddr string `json:"proxy,omitempty"`
}

// DefaultProxyAddr is the usual GuestConfig.ProxyAddr: squid's port, which tools' proxy settings
// often assume.
const DefaultProxyAddr = "127.0.0.1:3128"

// Encode returns the config as one kernel parameter. Base64url keeps paths with spaces and other
// characters that the kernel command line would split or drop in one word, and has no '.', which
// the kernel would take for a module parameter.
func (c GuestConfig) Encode() (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return GuestConfigParam + "=" + base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeGuestConfig reads the value of the parameter.
func DecodeGuestConfig(v string) (GuestConfig, error) {
	var c GuestConfig
	if v == "" {
		return c, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return c, fmt.Errorf("decode %s: %w", GuestConfigParam, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decode %s: %w", GuestConfigParam, err)
	}
	return c, nil
}

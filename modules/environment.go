package modules

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// Environment is what the modules of one build see: the variables every module inherits, and each
// module's own, which win (the rootstrap manual's rule).
type Environment struct {
	Global  map[string]string
	Modules map[string]map[string]string
}

// For returns the environment of module name: Global, then the module's own, then extra (a
// provisioner's own variables for one run), then fixed (the places the build defines, $TARGET,
// $HOST, $WORKDIR: a module cannot be told otherwise). Sorted KEY=value elements.
func (e Environment) For(name string, extra, fixed map[string]string) []string {
	merged := map[string]string{}
	for _, layer := range []map[string]string{e.Global, e.Modules[name], extra, fixed} {
		for k, v := range layer {
			merged[k] = v
		}
	}
	return SortedEnv(merged)
}

// Set adds a module's own variables, over what it already has.
func (e *Environment) Set(module string, vars map[string]string) {
	if e.Modules == nil {
		e.Modules = map[string]map[string]string{}
	}
	m := e.Modules[module]
	if m == nil {
		m = map[string]string{}
		e.Modules[module] = m
	}
	for k, v := range vars {
		m[k] = v
	}
}

// InvocationCommand starts the command line by which the `module` provisioner asks the `uml`
// builder's communicator to run a module. Provisioners see the builder only through Packer's
// Communicator interface (in another process), so the request travels as a command; the builder's
// communicator recognises it and runs the module outside the chroot, as the builder's own modules run.
const InvocationCommand = "packer-uml-module"

// Invocation is one module run asked for by the provisioner.
type Invocation struct {
	Name string `json:"name"`
	// Path is the module's host file, empty for a built-in module.
	Path string `json:"path,omitempty"`
	// Env is the provisioner's variables for this run; they override the build's.
	Env map[string]string `json:"env,omitempty"`
}

// Command encodes the invocation as a communicator command line.
func (i Invocation) Command() (string, error) {
	b, err := json.Marshal(i)
	if err != nil {
		return "", err
	}
	return InvocationCommand + " " + base64.RawURLEncoding.EncodeToString(b), nil
}

// ParseInvocation decodes a command line made by Command; ok is false for any other command.
func ParseInvocation(cmd string) (inv Invocation, ok bool, err error) {
	rest, found := strings.CutPrefix(cmd, InvocationCommand+" ")
	if !found {
		return inv, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return inv, true, fmt.Errorf("decode module invocation: %w", err)
	}
	if err := json.Unmarshal(b, &inv); err != nil {
		return inv, true, fmt.Errorf("decode module invocation: %w", err)
	}
	if !validName(inv.Name) {
		return inv, true, fmt.Errorf("module invocation: bad module name %q", inv.Name)
	}
	return inv, true, nil
}

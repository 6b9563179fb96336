package uml

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/internal/hostterm"
	"github.com/packer-uml/packer-plugin-uml/uml/agent"
)

// stepPrepareModules makes the runner that the module steps and the communicator share: every
// module's environment, the proxy, and the debug shell on the user's terminal.
//
// Uses: stateConfig, ui, stateAgent, stateProxyURL, stateHostProxyURL, stateWorkDir, stateImagePath.
// Produces:
// stateModuleRunner.
type stepPrepareModules struct{}

func (s *stepPrepareModules) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	c := state.Get(stateConfig).(*Config)
	ui := state.Get(stateUI).(packersdk.Ui)
	client := state.Get(stateAgent).(*agent.Client)
	proxy, _ := state.Get(stateProxyURL).(string)
	workDir, err := os.Getwd()
	if err != nil {
		return haltf(state, "modules: find the working directory: %w", err)
	}
	r := newModuleRunner(client, ui, c, workDir, proxy)
	_, r.copyHostModules = state.GetOk(stateRunAs)
	r.hostProxy, _ = state.Get(stateHostProxyURL).(string)
	r.hostWorkDir, _ = state.Get(stateWorkDir).(string)
	if image, ok := state.Get(stateImagePath).(string); ok {
		r.hostBase = newHostBase(c.Modules, image)
	}
	r.shell = func(ctx context.Context, env []string, dir string) (int, error) {
		return terminalShell(ctx, client, env, dir)
	}
	state.Put(stateModuleRunner, r)
	return multistep.ActionContinue
}

func (s *stepPrepareModules) Cleanup(multistep.StateBag) {}

// terminalShell runs /bin/sh in the guest on the user's terminal.
func terminalShell(ctx context.Context, client *agent.Client, env []string, dir string) (int, error) {
	t, err := hostterm.Open()
	if err != nil {
		if errors.Is(err, hostterm.ErrNoTerminal) {
			return 0, fmt.Errorf("%w: run packer from a terminal to use debug = true", err)
		}
		return 0, err
	}
	defer t.Close()
	if err := t.MakeRaw(); err != nil {
		return 0, err
	}
	size, _ := t.Size()
	if term := os.Getenv("TERM"); term != "" {
		env = append(env, "TERM="+term)
	}
	env = append(env, "PS1=(module debug) # ")
	return client.ExecTerminal(ctx, agent.ExecRequest{Argv: []string{"/bin/sh", "-i"}, Env: env, Dir: dir}, size, t.Resizes(), t, t)
}

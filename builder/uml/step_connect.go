package uml

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/uml/agent"
	"github.com/packer-uml/packer-plugin-uml/uml/machine"
)

// stepConnect waits for the guest agent's banner and opens the session, within the boot timeout. A
// UML that exits first, or an agent that never answers, fails the build with the console's last lines.
//
// Uses: ui, stateMachine, stateConsole, stateBootStart. Produces: stateAgent.
type stepConnect struct {
	Timeout time.Duration
}

func (s *stepConnect) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get(stateUI).(packersdk.Ui)
	m := state.Get(stateMachine).(*machine.Machine)
	ui.Say("Waiting for the guest agent...")

	client, err := agent.Connect(ctx, m.Channel(), m.Done(), s.Timeout, stagingDir(state), log.Writer())
	if err == nil {
		state.Put(stateAgent, client)
		started := state.Get(stateBootStart).(time.Time)
		ui.Say(fmt.Sprintf("Guest agent ready %s after boot", time.Since(started).Round(time.Millisecond)))
		return multistep.ActionContinue
	}
	if !errors.Is(err, agent.ErrGuestExited) && !errors.Is(err, agent.ErrNotReady) && m.Wait(2*time.Second) {
		// The line closed because UML ended: that is the news, not the closed line.
		err = agent.ErrGuestExited
	}
	switch {
	case errors.Is(err, agent.ErrGuestExited):
		err = fmt.Errorf("UML exited before the guest agent was ready (%v)", m.Err())
	case errors.Is(err, agent.ErrNotReady):
		err = fmt.Errorf("guest agent not ready after boot_timeout (%s): the kernel or uml_args may be wrong", s.Timeout)
	}
	m.Kill(10 * time.Second)
	return halt(state, fmt.Errorf("%w%s", err, consoleTail(state)))
}

func (s *stepConnect) Cleanup(state multistep.StateBag) {
	if c, ok := state.GetOk(stateAgent); ok {
		c.(*agent.Client).Close()
	}
}

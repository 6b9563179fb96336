package uml

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/yamux"

	"github.com/packer-uml/packer-plugin-uml/uml/agent"
	"github.com/packer-uml/packer-plugin-uml/uml/channel"
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

	type dialed struct {
		sess *yamux.Session
		err  error
	}
	result := make(chan dialed, 1)
	go func() {
		sess, err := channel.Dial(m.Channel(), agent.ProtocolVersion, log.Writer())
		result <- dialed{sess, err}
	}()
	timer := time.NewTimer(s.Timeout)
	defer timer.Stop()
	var fail error
	select {
	case r := <-result:
		if r.err == nil {
			client := agent.NewClient(r.sess, stagingDir(state))
			state.Put(stateAgent, client)
			started := state.Get(stateBootStart).(time.Time)
			ui.Say(fmt.Sprintf("Guest agent ready %s after boot", time.Since(started).Round(time.Millisecond)))
			return multistep.ActionContinue
		}
		fail = fmt.Errorf("guest agent did not start: %w", r.err)
	case <-m.Done():
		fail = fmt.Errorf("UML exited before the guest agent was ready (%v)", m.Err())
	case <-timer.C:
		fail = fmt.Errorf("guest agent not ready after boot_timeout (%s): the kernel or uml_args may be wrong", s.Timeout)
	case <-ctx.Done():
		fail = fmt.Errorf("cancelled while waiting for the guest agent")
	}
	m.Kill(10 * time.Second) // unblocks the dial, too
	return halt(state, fmt.Errorf("%w%s", fail, consoleTail(state)))
}

func (s *stepConnect) Cleanup(state multistep.StateBag) {
	if c, ok := state.GetOk(stateAgent); ok {
		c.(*agent.Client).Close()
	}
}

package uml

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/uml/agent"
	"github.com/packer-uml/packer-plugin-uml/uml/machine"
)

// chrootMounts are mounted inside the target for chroot mode, in this order, where the modules did
// not mount them already (the mount module mounts /proc).
var chrootMounts = []struct{ dir, cmd string }{
	{"proc", "mount -t proc proc"},
	{"sys", "mount -t sysfs sysfs"},
	{"dev", "mount --bind /dev"},
	{"dev/pts", "mount --bind /dev/pts"},
}

// chrootMountsRecord lists, in the guest, what stepPrepareChroot mounted, for stepReleaseChroot.
const chrootMountsRecord = "/run/packer-uml/chroot-mounts"

// aptProxyConf points apt in the image at the agent's proxy while provisioners run; it is removed
// before the post-modules, so the image never keeps it.
const aptProxyConf = "etc/apt/apt.conf.d/00packer-uml-proxy"

// stepPrepareChroot readies the image the modules mounted at $TARGET for provisioners, as Packer's
// chroot builders do, and hands them a communicator rooted there (chroot mode) or in the build
// environment.
//
// Uses: ui, stateAgent, stateMachine, stateModuleRunner, stateProxyURL. Produces: stateCommunicator.
type stepPrepareChroot struct {
	Chroot bool
}

func (s *stepPrepareChroot) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get(stateUI).(packersdk.Ui)
	client := state.Get(stateAgent).(*agent.Client)
	proxy, _ := state.Get(stateProxyURL).(string)
	if err := runGuestScript(ctx, client, ui, "chroot", prepareChrootScript(proxy, s.Chroot)); err != nil {
		return halt(state, err)
	}
	m := state.Get(stateMachine).(*machine.Machine)
	comm := &Communicator{Client: client, ConsoleLog: consoleLogPathOf(state),
		Exited:       func() (bool, error) { return m.Exited(), m.Err() },
		ConsoleTail:  func() string { return consoleTail(state) },
		Modules:      state.Get(stateModuleRunner).(*moduleRunner),
		ImageSizeMiB: state.Get(stateConfig).(*Config).ImageSize}
	if s.Chroot {
		comm.Root = agent.TargetDir
	}
	state.Put(stateCommunicator, comm)
	return multistep.ActionContinue
}

func (s *stepPrepareChroot) Cleanup(multistep.StateBag) {}

// prepareChrootScript mounts what a chroot needs and records it; without a mounted target it says
// why provisioners will fail instead.
func prepareChrootScript(proxy string, chroot bool) string {
	t := agent.TargetDir
	var b strings.Builder
	fmt.Fprintf(&b, "if ! mountpoint -q %s; then\n", t)
	if chroot {
		fmt.Fprintf(&b, "  echo 'the image is not mounted at %s after the modules (no mount module?): provisioners in chroot mode will fail; add mount to modules or set chroot = false' >&2\n", t)
	}
	b.WriteString("  exit 0\nfi\n")
	if chroot {
		fmt.Fprintf(&b, ": >%s\n", chrootMountsRecord)
		for _, m := range chrootMounts {
			fmt.Fprintf(&b, "if ! mountpoint -q %[1]s/%[2]s; then mkdir -p %[1]s/%[2]s && %[3]s %[1]s/%[2]s && echo %[2]s >>%[4]s; fi\n", t, m.dir, m.cmd, chrootMountsRecord)
		}
	}
	if proxy != "" {
		fmt.Fprintf(&b, "if [ -d %[1]s/etc/apt/apt.conf.d ]; then printf 'Acquire::http::Proxy \"%[2]s\";\\nAcquire::https::Proxy \"%[2]s\";\\n' >%[1]s/%[3]s; fi\n", t, proxy, aptProxyConf)
	}
	return b.String()
}

// stepReleaseChroot undoes stepPrepareChroot after the provisioners: the apt proxy file goes, and
// what it mounted is unmounted (deepest first), so the post-modules find the target as the modules
// left it. A busy mount is a warning: the guest's PID 1 ends every process and unmounts at power-off.
//
// Uses: ui, stateAgent.
type stepReleaseChroot struct{}

func (s *stepReleaseChroot) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get(stateUI).(packersdk.Ui)
	client := state.Get(stateAgent).(*agent.Client)
	if err := runGuestScript(ctx, client, ui, "chroot", releaseChrootScript()); err != nil {
		ui.Error("Warning: " + err.Error() + " (the guest unmounts everything at power-off, after ending every process)")
	}
	return multistep.ActionContinue
}

func (s *stepReleaseChroot) Cleanup(multistep.StateBag) {}

func releaseChrootScript() string {
	t := agent.TargetDir
	return fmt.Sprintf(`rm -f %[1]s/%[2]s
[ -f %[3]s ] || exit 0
sync
for d in $(tac %[3]s); do umount %[1]s/$d; done
rm -f %[3]s
`, t, aptProxyConf, chrootMountsRecord)
}

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

// imageDevice is the image in the guest: ubd0.
const imageDevice = "/dev/ubda"

// stepMountTarget makes the filesystem on the image and mounts it at $TARGET; in chroot mode it also
// mounts /proc, /sys, /dev and /dev/pts inside it, as Packer's chroot builders do. Then it hands
// provisioners a communicator rooted there.
//
// Uses: ui, stateAgent, stateMachine. Produces: stateCommunicator, stateTargetMounted.
type stepMountTarget struct {
	FSType string
	Chroot bool
}

func (s *stepMountTarget) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get(stateUI).(packersdk.Ui)
	client := state.Get(stateAgent).(*agent.Client)
	ui.Say(fmt.Sprintf("Making a %s filesystem on the image and mounting it at %s...", s.FSType, agent.TargetDir))
	if err := runGuestScript(ctx, client, ui, "mkfs", mkfsScript(s.FSType)); err != nil {
		return halt(state, err)
	}
	if err := runGuestScript(ctx, client, ui, "mount", mountScript(s.FSType, s.Chroot)); err != nil {
		return halt(state, err)
	}
	state.Put(stateTargetMounted, true)
	m := state.Get(stateMachine).(*machine.Machine)
	comm := &Communicator{Client: client, ConsoleLog: consoleLogPathOf(state),
		Exited:      func() (bool, error) { return m.Exited(), m.Err() },
		ConsoleTail: func() string { return consoleTail(state) }}
	if s.Chroot {
		comm.Root = agent.TargetDir
	}
	state.Put(stateCommunicator, comm)
	return multistep.ActionContinue
}

func (s *stepMountTarget) Cleanup(multistep.StateBag) {}

// mkfsScript makes the filesystem quietly and without asking. ext4's inode tables are left for lazy
// initialisation, and the mount below turns off the kernel's background zeroing, so that the sparse
// image stays sparse (a later mount in production finishes the job).
func mkfsScript(fstype string) string {
	switch fstype {
	case "xfs":
		return "mkfs.xfs -q -f " + imageDevice
	case "btrfs":
		return "mkfs.btrfs -q -f " + imageDevice
	case "ext4":
		return "mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 " + imageDevice
	}
	return fmt.Sprintf("mkfs.%s -q -F %s", fstype, imageDevice)
}

// chrootMounts are mounted inside the target, in this order, for chroot mode.
var chrootMounts = []struct{ dir, cmd string }{
	{"proc", "mount -t proc proc"},
	{"sys", "mount -t sysfs sysfs"},
	{"dev", "mount --bind /dev"},
	{"dev/pts", "mount --bind /dev/pts"},
}

func mountScript(fstype string, chroot bool) string {
	t := agent.TargetDir
	opts := ""
	if fstype == "ext4" {
		opts = "-o noinit_itable "
	}
	var b strings.Builder
	fmt.Fprintf(&b, "mkdir -p %s\nmount -t %s %s%s %s\n", t, fstype, opts, imageDevice, t)
	if chroot {
		for _, m := range chrootMounts {
			fmt.Fprintf(&b, "mkdir -p %s/%s\n%s %s/%s\n", t, m.dir, m.cmd, t, m.dir)
		}
	}
	return b.String()
}

// umountScript undoes mountScript: the chroot's mounts (deepest first), then the target.
func umountScript() string {
	t := agent.TargetDir
	var b strings.Builder
	b.WriteString("sync\n")
	for i := len(chrootMounts) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "if mountpoint -q %s/%s; then umount %s/%s; fi\n", t, chrootMounts[i].dir, t, chrootMounts[i].dir)
	}
	fmt.Fprintf(&b, "umount %s\n", t)
	return b.String()
}

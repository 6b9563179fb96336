package uml

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/packer-uml/packer-plugin-uml/uml/agent"
)

// tarStagedName is the archive's file name in the staging directory, where the guest writes it.
const tarStagedName = "artifact.tar"

// guestTarMount is where the guest mounts the image to archive it.
const guestTarMount = "/run/packer-uml/tar"

// stepTarImage archives the image's files in the guest for format tar, after the post-modules and
// before shutdown: only root can read a filesystem image as files with their owners, and the
// guest's root can. The guest mounts the image read-only (the umount post-module has unmounted it),
// or binds the mount that is still there, without the mounts below it; GNU tar then writes the
// archive into the staging directory, which the host sees through hostfs. stepExportImage moves it
// into the output directory once the guest has powered off.
//
// Uses: ui, stateAgent, stateWorkDir. Produces: stateTarPath.
type stepTarImage struct {
	FSType string
}

func (s *stepTarImage) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get(stateUI).(packersdk.Ui)
	client := state.Get(stateAgent).(*agent.Client)
	ui.Say("Archiving the image's files with tar in the guest...")
	start := time.Now()
	if err := runGuestScript(ctx, client, ui, "tar", tarImageScript(s.FSType)); err != nil {
		return haltf(state, "format tar: %w", err)
	}
	staged := filepath.Join(stagingDir(state), tarStagedName)
	st, err := os.Stat(staged)
	if err != nil {
		return haltf(state, "format tar: the guest wrote no archive: %w", err)
	}
	state.Put(stateTarPath, staged)
	ui.Say(fmt.Sprintf("Archived in %s: %s", time.Since(start).Round(100*time.Millisecond), mib(st.Size())))
	return multistep.ActionContinue
}

// Cleanup leaves the staged archive to stepPreflight, which removes the whole work directory.
func (s *stepTarImage) Cleanup(multistep.StateBag) {}

// tarImageScript mounts the image and archives it, in the guest's build environment. Owners are
// stored as numbers: the image's users are not the build environment's (the host's /etc).
// Extended attributes (file capabilities among them) and ACLs are kept; the archive is POSIX
// (pax), which GNU tar picks for them.
func tarImageScript(fstype string) string {
	return fmt.Sprintf(`dev=%[1]s
dir=%[2]s
mkdir -p "$dir"
src=$(findmnt -n -f -o TARGET --source "$dev" || true)
if [ -n "$src" ]; then
	echo "the image is still mounted at $src (no umount in post_modules): archiving that mount, without the mounts below it"
	mount --bind "$src" "$dir"
else
	mount -t %[3]s -o ro "$dev" "$dir"
fi
tar -C "$dir" --numeric-owner --xattrs --acls -cpf %[4]s .
umount "$dir"
sync
`, imageDevice, guestTarMount, fstype, path.Join(agent.GuestStagingDir, tarStagedName))
}

// mib formats a file size for messages.
func mib(bytes int64) string {
	if bytes < 1<<20 {
		return fmt.Sprintf("%d KiB", (bytes+1023)>>10)
	}
	return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20))
}

package uml

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
)

// stepResizeImage gives the finished filesystem about FreeSpaceMiB of free space, shrinking or
// growing it and the image file with it (rootstrap's freespace). It runs on the host after the
// guest powered off: e2fsprogs work on image files without root. ext2/3/4 only (checked by Prepare).
//
// Uses: ui, stateImagePath. Produces: stateImageSizeMiB.
type stepResizeImage struct {
	FreeSpaceMiB int
}

func (s *stepResizeImage) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	if s.FreeSpaceMiB <= 0 {
		return multistep.ActionContinue
	}
	ui := state.Get(stateUI).(packersdk.Ui)
	img := state.Get(stateImagePath).(string)
	ui.Say(fmt.Sprintf("Resizing the filesystem to leave about %d MiB free...", s.FreeSpaceMiB))
	// resize2fs insists on a freshly checked filesystem. Exit status 1 means e2fsck fixed
	// something harmless (such as lazily initialised counters); 2 and up are real trouble.
	if out, err := exec.CommandContext(ctx, sbin("e2fsck"), "-f", "-y", img).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			return haltf(state, "free_space: e2fsck %s: %v\n%s", img, err, lastLines(string(out), 10))
		}
	}
	// Shrinking drops whole block groups, and with them inode tables and bitmaps that counted as
	// used: the free space after one resize is more than asked. Measure again and adjust, until
	// within a MiB (two or three rounds).
	for round := 0; round < 4; round++ {
		info, err := ext4Info(ctx, img)
		if err != nil {
			return haltf(state, "free_space: %w", err)
		}
		want := info.blocks - info.free + int64(s.FreeSpaceMiB)<<20/info.blockSize
		minimum, err := resize2fsMinimum(ctx, img)
		if err != nil {
			return haltf(state, "free_space: %w", err)
		}
		if want < minimum {
			// resize2fs keeps room for its metadata and refuses to go below its own estimate.
			want = minimum
		}
		if diff := want - info.blocks; diff*info.blockSize < 1<<20 && -diff*info.blockSize < 1<<20 {
			break
		}
		if err := resize(ctx, img, info, want); err != nil {
			return haltf(state, "free_space: %w", err)
		}
	}
	info, err := ext4Info(ctx, img)
	if err != nil {
		return haltf(state, "free_space: %w", err)
	}
	newSize := info.blocks * info.blockSize
	used := info.blocks - info.free
	sizeMiB := (newSize + 1<<20 - 1) >> 20
	state.Put(stateImageSizeMiB, int(sizeMiB))
	ui.Say(fmt.Sprintf("Image is now %d MiB (%.1f MiB used, %.1f MiB free)", sizeMiB,
		float64(used*info.blockSize)/(1<<20), float64(info.free*info.blockSize)/(1<<20)))
	return multistep.ActionContinue
}

func (s *stepResizeImage) Cleanup(multistep.StateBag) {}

// resize changes the filesystem to want blocks and the file with it: a file grows before the
// filesystem, and shrinks after it.
func resize(ctx context.Context, img string, info extInfo, want int64) error {
	newSize := want * info.blockSize
	if want > info.blocks {
		if err := os.Truncate(img, newSize); err != nil {
			return fmt.Errorf("grow %s: %w", img, err)
		}
	}
	out, err := exec.CommandContext(ctx, sbin("resize2fs"), img, strconv.FormatInt(want, 10)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("resize2fs %s %d: %v\n%s", img, want, err, lastLines(string(out), 10))
	}
	if want < info.blocks {
		if err := os.Truncate(img, newSize); err != nil {
			return fmt.Errorf("shrink %s: %w", img, err)
		}
	}
	return nil
}

type extInfo struct{ blocks, free, blockSize int64 }

// ext4Info reads the superblock's block count, free blocks and block size with dumpe2fs.
func ext4Info(ctx context.Context, img string) (extInfo, error) {
	out, err := exec.CommandContext(ctx, sbin("dumpe2fs"), "-h", img).Output()
	if err != nil {
		return extInfo{}, fmt.Errorf("dumpe2fs -h %s: %w", img, err)
	}
	var info extInfo
	fields := map[string]*int64{"Block count": &info.blocks, "Free blocks": &info.free, "Block size": &info.blockSize}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if dst, known := fields[k]; ok && known {
			*dst, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	if info.blocks == 0 || info.blockSize == 0 {
		return info, fmt.Errorf("dumpe2fs -h %s: no block count or block size in its output", img)
	}
	return info, nil
}

// resize2fsMinimum asks resize2fs for the smallest size it would shrink the filesystem to, in blocks.
func resize2fsMinimum(ctx context.Context, img string) (int64, error) {
	out, err := exec.CommandContext(ctx, sbin("resize2fs"), "-P", img).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("resize2fs -P %s: %v\n%s", img, err, out)
	}
	const prefix = "Estimated minimum size of the filesystem:"
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("resize2fs -P %s: no estimate in its output: %s", img, out)
}

// sbin finds a system program, also when the user's PATH lacks the sbin directories (an ordinary
// user's PATH on Debian does); the name itself if it is nowhere, for exec's own error.
func sbin(name string) string {
	if p, err := lookSbin(name); err == nil {
		return p
	}
	return name
}

package uml

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/multistep"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/packerbuilderdata"
)

// convertProgressInterval is how often a long conversion reports its progress; a shorter one says
// nothing.
const convertProgressInterval = 5 * time.Second

// stepExportImage makes the artifact of a format other than raw from the finished image, on the
// host, after shutdown and free_space: qcow2 and vmdk with `qemu-img convert`, tar by moving the
// archive stepTarImage staged. The artifact is written under a temporary name (`<name>.partial`)
// and renamed when complete, so a failed or cancelled export leaves nothing that looks like an
// artifact. The raw image is removed after that.
//
// Uses: ui, stateImagePath, stateTarPath (tar). Produces: stateArtifactPath.
type stepExportImage struct {
	Format string
	// Compress is disk_compression (qcow2's compressed clusters).
	Compress bool
	// Path is the artifact's path.
	Path string
}

func (s *stepExportImage) Run(ctx context.Context, state multistep.StateBag) multistep.StepAction {
	ui := state.Get(stateUI).(packersdk.Ui)
	raw := state.Get(stateImagePath).(string)
	dst, err := filepath.Abs(s.Path)
	if err != nil {
		return haltf(state, "format %s: %w", s.Format, err)
	}
	partial := dst + ".partial"
	defer os.Remove(partial) // gone after the rename; a failure's remains
	start := time.Now()
	if s.Format == "tar" {
		ui.Say(fmt.Sprintf("Moving the archive to %s...", dst))
		err = moveFile(state.Get(stateTarPath).(string), dst, partial)
	} else {
		ui.Say(fmt.Sprintf("Converting the image to %s with qemu-img: %s...", s.Format, dst))
		progress := &convertProgress{interval: convertProgressInterval, last: start, now: time.Now,
			report: func(pct float64) { ui.Message(fmt.Sprintf("qemu-img convert: %.0f%%", pct)) }}
		err = qemuImgConvert(ctx, raw, partial, s.Format, s.Compress, progress)
		if err == nil {
			err = os.Rename(partial, dst)
		}
	}
	if err != nil {
		return haltf(state, "format %s: %w", s.Format, err)
	}
	if err := os.Remove(raw); err != nil {
		ui.Error(fmt.Sprintf("Warning: the raw image stays: %v", err))
	}
	state.Put(stateArtifactPath, dst)
	(&packerbuilderdata.GeneratedData{State: state}).Put("ImagePath", dst)
	ui.Say(fmt.Sprintf("%s written in %s: %s on disk", filepath.Base(dst), time.Since(start).Round(100*time.Millisecond), mib(diskUsage(dst))))
	return multistep.ActionContinue
}

func (s *stepExportImage) Cleanup(multistep.StateBag) {}

// qemuImgConvertArgs is the command line that converts the raw image src into dst.
func qemuImgConvertArgs(src, dst, format string, compress bool) []string {
	args := []string{"convert", "-p", "-f", "raw", "-O", format}
	if compress {
		args = append(args, "-c")
	}
	return append(args, src, dst)
}

// qemuImgConvert runs qemu-img convert; its progress goes to progress, its error output into the
// error.
func qemuImgConvert(ctx context.Context, src, dst, format string, compress bool, progress io.Writer) error {
	args := qemuImgConvertArgs(src, dst, format, compress)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "qemu-img", args...)
	cmd.Stdout = progress
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("qemu-img convert: cancelled")
		}
		return fmt.Errorf("qemu-img %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(lastLines(stderr.String(), 5)))
	}
	return nil
}

// convertProgress reads `qemu-img convert -p`'s progress ("    (42.00/100%)\r") and reports it at
// most once an interval, so that a long conversion shows it is alive and a short one stays quiet.
type convertProgress struct {
	interval time.Duration
	last     time.Time
	now      func() time.Time
	report   func(percent float64)
	partial  []byte
}

func (p *convertProgress) Write(b []byte) (int, error) {
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexAny(p.partial, "\r\n")
		if i < 0 {
			if len(p.partial) > 256 { // not progress: forget it
				p.partial = p.partial[:0]
			}
			return len(b), nil
		}
		pct, ok := parseProgress(string(p.partial[:i]))
		p.partial = p.partial[i+1:]
		if now := p.now(); ok && pct < 100 && now.Sub(p.last) >= p.interval {
			p.last = now
			p.report(pct)
		}
	}
}

// parseProgress reads one of qemu-img's progress records, "(42.00/100%)".
func parseProgress(s string) (float64, bool) {
	s, ok := strings.CutPrefix(strings.TrimSpace(s), "(")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "/100%)")
	if !ok {
		return 0, false
	}
	pct, err := strconv.ParseFloat(s, 64)
	return pct, err == nil
}

// moveFile moves src to dst: a rename on the same filesystem, else a copy to partial renamed to
// dst. Run by root, the file becomes root's: the guest, which wrote it, ran as nobody.
func moveFile(src, dst, partial string) error {
	err := os.Rename(src, dst)
	if errors.Is(err, syscall.EXDEV) {
		err = copyFile(src, partial)
		if err == nil {
			err = os.Rename(partial, dst)
		}
		if err == nil {
			os.Remove(src)
		}
	}
	if err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		return os.Lchown(dst, os.Geteuid(), os.Getegid())
	}
	return nil
}

// copyFile copies src to a new file dst and syncs it.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// diskUsage is the disk space a file takes (less than its size when it is sparse).
func diskUsage(path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return st.Blocks * 512
}

// Package uml is the Packer builder `uml`: it boots a User-Mode Linux guest whose root is the host's
// own filesystem, runs Packer's provisioners in it through the guest agent, and produces a root
// filesystem image file. Nothing here needs root.
package uml

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/multistep"
	"github.com/hashicorp/packer-plugin-sdk/multistep/commonsteps"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/packerbuilderdata"
)

// BuilderID identifies this builder's artifacts; it never changes.
const BuilderID = "packer-uml.uml"

// Builder is the `uml` builder.
type Builder struct {
	config Config
	runner multistep.Runner
}

var _ packersdk.Builder = new(Builder)

// ConfigSpec returns the HCL2 spec generated from Config.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare validates the configuration; generated variables become `${build.<name>}`.
func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	warnings, err := b.config.Prepare(raws...)
	if err != nil {
		return nil, warnings, err
	}
	return []string{"ImagePath", "FSType", "KernelVersion"}, warnings, nil
}

// Run builds the image. The step list is the build, in order.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, hook packersdk.Hook) (packersdk.Artifact, error) {
	c := &b.config
	state := new(multistep.BasicStateBag)
	state.Put(stateConfig, c)
	state.Put(stateUI, ui)
	state.Put(stateHook, hook)
	(&packerbuilderdata.GeneratedData{State: state}).Put("FSType", c.FSType)

	var outputDir multistep.Step = &commonsteps.StepOutputDir{Force: c.PackerForce, Path: c.OutputDir}
	if c.imagePath != "" {
		outputDir = stepNothing{} // the rootstrap command writes one file, in a directory that exists
	}
	steps := []multistep.Step{
		&stepPreflight{Kernel: c.Kernel, CPUs: c.CPUs, FSType: c.FSType, Modules: append(slices.Clone(c.Modules), c.PostModules...), Network: c.network(), FreeSpace: c.resizeMiB(), Format: c.Format},
		outputDir,
		&stepCreateImage{Path: c.rawImageFile(), SizeMiB: c.ImageSize, RemoveOnFailure: c.imagePath != ""},
		&stepUnprivileged{ExtraDisks: c.ExtraDisks},
		&stepBoot{MemoryMiB: c.Memory, CPUs: c.CPUs, ExtraDisks: c.ExtraDisks, UMLArgs: c.UMLArgs, NetworkArgs: c.networkArgs(),
			UserNet:   c.network() != nil && c.Network.Transport == "libslirp",
			ProxyAddr: c.proxyAddr(), ConsoleLog: c.consoleLog(), Debug: c.PackerDebug},
		&stepConnect{Timeout: c.BootTimeout},
		&stepServeProxy{Enabled: c.networkEnabled(), CacheDir: c.cacheDir()},
		new(stepPrepareModules),
		&stepRunModules{Field: "modules", Names: c.Modules},
		&stepPrepareChroot{Chroot: c.chroot()},
		new(commonsteps.StepProvision),
		new(stepReleaseChroot),
		&stepRunModules{Field: "post_modules", Names: c.PostModules},
		multistep.If(c.Format == "tar", &stepTarImage{FSType: c.FSType}),
		&stepShutdown{Timeout: c.ShutdownTimeout},
		&stepResizeImage{FreeSpaceMiB: c.resizeMiB()},
		multistep.If(c.Format != defaultFormat, &stepExportImage{Format: c.Format, Compress: c.DiskCompression, Path: c.imageFile()}),
	}
	b.runner = commonsteps.NewRunnerWithPauseFn(steps, c.PackerConfig, ui, state)
	b.runner.Run(ctx, state)

	if err, ok := state.GetOk(stateError); ok {
		return nil, err.(error)
	}
	if _, ok := state.GetOk(multistep.StateCancelled); ok {
		return nil, errors.New("build was cancelled")
	}
	if _, ok := state.GetOk(multistep.StateHalted); ok {
		return nil, errors.New("build was halted")
	}
	k := kernelOf(state)
	size := c.ImageSize
	if resized, ok := state.GetOk(stateImageSizeMiB); ok {
		size = resized.(int)
	}
	path := state.Get(stateImagePath).(string)
	if p, ok := state.GetOk(stateArtifactPath); ok {
		path = p.(string)
	}
	a := &Artifact{
		ImagePath:     path,
		Format:        c.Format,
		ConsoleLog:    c.consoleLog(),
		FSType:        c.FSType,
		SizeMiB:       size,
		KernelPath:    k.Path,
		KernelVersion: k.Version,
	}
	a.StateData = map[string]interface{}{"generated_data": state.Get("generated_data")}
	return a, nil
}

// halt is how a step fails: the error goes to the state bag (so Run returns it) and to the UI.
func halt(state multistep.StateBag, err error) multistep.StepAction {
	state.Put(stateError, err)
	state.Get(stateUI).(packersdk.Ui).Error(err.Error())
	return multistep.ActionHalt
}

// haltf is halt with a formatted error; use %w to keep the cause.
func haltf(state multistep.StateBag, format string, args ...any) multistep.StepAction {
	return halt(state, fmt.Errorf(format, args...))
}

// stepNothing stands in for a step that this kind of build leaves out.
type stepNothing struct{}

func (stepNothing) Run(context.Context, multistep.StateBag) multistep.StepAction {
	return multistep.ActionContinue
}
func (stepNothing) Cleanup(multistep.StateBag) {}

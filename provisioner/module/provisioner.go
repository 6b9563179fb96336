//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config

// Package module is the `uml-module` provisioner: it runs one rootstrap module, built in or custom,
// at its place among the other provisioners of a `uml` build.
package module

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/common"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"

	"github.com/packer-uml/packer-plugin-uml/modules"
)

// Config is the provisioner's configuration.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// The module to run: a built-in one (`network`, `mkfs`, `mount`, `debian`, `uml`, `umount`) or an
	// executable found in the module search path (see `module_paths`).
	Name string `mapstructure:"module" required:"true"`
	// More directories to look for the module in, after rootstrap's (`/usr/lib/rootstrap/modules`,
	// `/etc/rootstrap/modules`, `~/.rootstrap/modules`, `./modules`); later ones win.
	ModulePaths []string `mapstructure:"module_paths"`
	// Variables for this run of the module; they override the build's global ones and the module's
	// own from the builder.
	Env map[string]string `mapstructure:"env"`
	// The `network` module's options, when `module` is `network`.
	Network modules.NetworkOptions `mapstructure:"network"`
	// The `debian` module's options, when `module` is `debian`.
	Debian modules.DebianOptions `mapstructure:"debian"`
	// The `uml` module's options, when `module` is `uml`.
	UML modules.UMLOptions `mapstructure:"uml"`

	ctx    interpolate.Context
	module modules.Module
}

// Provisioner is the `uml-module` provisioner.
type Provisioner struct {
	config Config
}

var _ packersdk.Provisioner = new(Provisioner)

// ConfigSpec returns the HCL2 spec generated from Config.
func (p *Provisioner) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Prepare checks that the module exists and that a standard module's options are complete.
func (p *Provisioner) Prepare(raws ...interface{}) error {
	c := &p.config
	err := config.Decode(c, &config.DecodeOpts{
		PluginType:         "packer.provisioner.uml-module",
		Interpolate:        true,
		InterpolateContext: &c.ctx,
	}, raws...)
	if err != nil {
		return err
	}
	var errs *packersdk.MultiError
	add := func(e ...error) {
		for _, err := range e {
			errs = packersdk.MultiErrorAppend(errs, err)
		}
	}
	workDir, err := os.Getwd()
	if err != nil {
		return err
	}
	home, _ := os.UserHomeDir()
	if c.Name == "" {
		add(errors.New("module is required: the module to run, for example \"uml\" or the name of your own module"))
	} else if c.module, err = modules.Find(c.Name, modules.SearchDirs(home, workDir, c.ModulePaths)); err != nil {
		add(fmt.Errorf("module: %w", err))
	}
	switch c.Name {
	case "network":
		add(c.Network.Validate("network.")...)
		if !c.Network.UsesAgent() {
			add(errors.New("network.transport: only the agent transport can be set up from a provisioner (the others attach a device at boot): set the builder's network block instead"))
		}
	case "debian":
		exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
		add(c.Debian.Validate("debian.", workDir, exists, false)...)
	case "uml":
		add(c.UML.Validate("uml.")...)
	}
	if errs != nil && len(errs.Errors) > 0 {
		return errs
	}
	return nil
}

// Provision asks the builder's communicator to run the module. Only the `uml` builder's
// communicator knows how: any other runs the request as a shell command, which is not found.
func (p *Provisioner) Provision(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, _ map[string]interface{}) error {
	c := &p.config
	env := map[string]string{}
	var typed any
	switch c.Name {
	case "network":
		typed = &c.Network
	case "debian":
		typed = &c.Debian
	case "uml":
		typed = &c.UML
	}
	if typed != nil {
		for k, v := range modules.OptionsEnv(typed) {
			env[k] = v
		}
	}
	for k, v := range c.Env {
		env[k] = v
	}
	command, err := modules.Invocation{Name: c.Name, Path: c.module.Path, Env: env}.Command()
	if err != nil {
		return err
	}
	ui.Say(fmt.Sprintf("Running module %s...", c.Name))
	cmd := &packersdk.RemoteCmd{Command: command}
	if err := cmd.RunWithUi(ctx, comm, ui); err != nil {
		return fmt.Errorf("module %s: %w", c.Name, err)
	}
	switch code := cmd.ExitStatus(); code {
	case 0:
		return nil
	case 127:
		return fmt.Errorf("module %s: the communicator could not run it (exit status 127): the uml-module provisioner works only in builds of the uml builder", c.Name)
	default:
		return fmt.Errorf("module %s failed (exit status %d)", c.Name, code)
	}
}

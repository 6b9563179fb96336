// Command packer-plugin-uml is the Packer plugin, and also, in the guest, its PID 1 and agent, and on
// the host UML's watchdog: one binary serves every side, so the guest always runs the agent that
// matches the host (as kata's agent switches on being PID 1).
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/packer-uml/packer-plugin-uml/builder/uml"
	"github.com/packer-uml/packer-plugin-uml/internal/rootstrapcmd"
	"github.com/packer-uml/packer-plugin-uml/provisioner/module"
	"github.com/packer-uml/packer-plugin-uml/uml/agent"
	"github.com/packer-uml/packer-plugin-uml/uml/machine"
	"github.com/packer-uml/packer-plugin-uml/version"
)

func main() {
	if os.Getpid() == 1 {
		agent.RunInit() // never returns
	}
	if len(os.Args) > 1 && os.Args[1] == machine.WatchdogArg {
		machine.RunWatchdog(os.Args[2:]) // never returns
	}
	if len(os.Args) > 1 && os.Args[1] == rootstrapcmd.Arg {
		os.Exit(rootstrapcmd.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	pps := plugin.NewSet()
	pps.RegisterBuilder(plugin.DEFAULT_NAME, new(uml.Builder))
	// Registered as "module": templates name it uml-module (plugin "uml", component "module").
	pps.RegisterProvisioner("module", new(module.Provisioner))
	pps.SetVersion(version.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err.Error())
		os.Exit(1)
	}
}

// Package version holds the plugin's version, set at release time by goreleaser's ldflags.
package version

import "github.com/hashicorp/packer-plugin-sdk/version"

var (
	// Version is the main version number that is being run at the moment.
	Version = "0.1.0"
	// VersionPrerelease is "dev" for builds from a checkout and empty for releases.
	VersionPrerelease = "dev"
	// VersionMetadata is the optional build metadata of the version.
	VersionMetadata = ""
	// PluginVersion is what `packer-plugin-uml describe` reports.
	PluginVersion = version.NewPluginVersion(Version, VersionPrerelease, VersionMetadata)
)

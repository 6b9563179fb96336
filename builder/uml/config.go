//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config

package uml

import (
	"time"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// Config is the `uml` builder's configuration. Every field's comment is its documentation
// (docs-partials/ is generated from them by packer-sdc struct-markdown); defaults and checks are in
// config_prepare.go.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// The User-Mode Linux kernel to boot: a path, or a name looked up on `PATH`. By default
	// `linux.uml`, then `linux`, from `PATH` (Debian's `user-mode-linux` package installs both). The
	// kernel must have hostfs built in (`CONFIG_HOSTFS=y`).
	Kernel string `mapstructure:"kernel"`
	// The size of the image file in MiB. The file is sparse: blocks the filesystem does not use take
	// no disk space. Defaults to `1024`. rootstrap's `initialsize`.
	ImageSize int `mapstructure:"image_size"`
	// The filesystem to create on the image: `ext2`, `ext3`, `ext4`, `xfs` or `btrfs`. Defaults to
	// `ext4`. The host needs the matching mkfs tool (e2fsprogs, xfsprogs or btrfs-progs), which the
	// guest runs. rootstrap's `fstype`.
	FSType string `mapstructure:"fstype"`
	// The directory that receives the image and the console log. It must not exist unless
	// `packer build -force` is used. Defaults to `output-<build name>`.
	OutputDir string `mapstructure:"output_directory"`
	// The image file's name in `output_directory`. Defaults to `<build name>.img`.
	ImageName string `mapstructure:"image_name"`
	// Memory of the guest in MiB (UML's `mem=`). Defaults to `256`.
	Memory int `mapstructure:"memory"`
	// More image files attached to the guest, in order, as `ubd1`, `ubd2`, ... (`/dev/ubdb`, ...).
	// They must exist; the build never changes their size.
	ExtraDisks []string `mapstructure:"extra_disks"`
	// More kernel parameters, added last so that they override the builder's (rootstrap's
	// `umlargs`). For example `["loglevel=7"]`.
	UMLArgs []string `mapstructure:"uml_args"`
	// Run provisioners inside the image's filesystem with `chroot(2)`, with `/proc`, `/sys`, `/dev` and
	// `/dev/pts` mounted in it, as Packer's chroot builders do; paths given to the `file` provisioner
	// are paths in the image. With `false` they run in the guest's build environment (the host's
	// filesystem, read-only, with a private `/tmp`, `/etc` and `/run`) and the image is mounted at
	// `$TARGET` (`/tmp/target`). Defaults to `true`. A chroot needs a shell in the image for the
	// `shell` provisioner: see the minimal example.
	Chroot config.Trilean `mapstructure:"chroot"`
	// How long to wait for the guest's agent to answer after UML starts. Defaults to `2m`.
	BootTimeout time.Duration `mapstructure:"boot_timeout"`
	// How long the guest may take to sync, unmount and power off. Defaults to `2m`; past it UML is
	// killed and the build fails, because the image may be incomplete.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`

	ctx interpolate.Context
}

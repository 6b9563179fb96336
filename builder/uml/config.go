//go:generate go tool packer-sdc mapstructure-to-hcl2 -type Config

package uml

import (
	"time"

	"github.com/packer-uml/packer-plugin-uml/modules"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
)

// Config is the `uml` builder's configuration. Every field's comment is its documentation
// (docs-partials/ is generated from them by packer-sdc struct-markdown); defaults and checks are in
// config_prepare.go.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`

	// The User-Mode Linux kernel to boot: a path, or a name looked up on `PATH`. By default the
	// kernel that the plugin's `scripts/build-uml-kernel` installed for the user who runs Packer
	// (`~/.local/share/packer-plugin-uml/kernel/linux`, or under `$XDG_DATA_HOME`), else
	// `linux.uml`, then `linux`, from `PATH` (Debian's `user-mode-linux` package installs both). The
	// kernel must have hostfs built in (`CONFIG_HOSTFS=y`). A kernel of Linux 6.16 or later runs in
	// seccomp mode, which starts guest processes many times faster than Debian 12's 6.1 (ptrace mode).
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
	// The artifact's file name in `output_directory`. Defaults to `<build name>` with the format's
	// extension: `.img` (raw), `.qcow2`, `.vmdk` or `.tar`.
	ImageName string `mapstructure:"image_name"`
	// The artifact's format: `raw` (the filesystem image itself, the default), `qcow2` or `vmdk` (the
	// raw image converted with `qemu-img convert` on the host, which needs Debian's `qemu-utils`), or
	// `tar` (an archive of the filesystem's files, made in the guest with GNU tar: numeric owners,
	// modes, device nodes, extended attributes and ACLs kept). Other than for `raw`, the build
	// writes the raw image as `<image_name>.raw` next to the artifact and removes it once the
	// artifact is complete.
	Format string `mapstructure:"format"`
	// Compress the `qcow2` image's clusters (`qemu-img convert -c`): a smaller file, slower to
	// write and to read. `qcow2` only. Defaults to `false`.
	DiskCompression bool `mapstructure:"disk_compression"`
	// Memory of the guest in MiB (UML's `mem=`). Defaults to `256`.
	Memory int `mapstructure:"memory"`
	// Virtual processors of the guest (UML's `ncpus=`), each a host thread. Defaults to the host's
	// CPU count, up to the kernel's `CONFIG_NR_CPUS`, when the kernel was built with `CONFIG_SMP`
	// and runs in seccomp mode (`scripts/build-uml-kernel --smp N` builds one), else `1`: UML has
	// no SMP in ptrace mode, and Debian 12's kernel and the script's default one are built
	// without it. More than `1` with such a kernel fails before the build starts. Several
	// processors speed up work that runs processes side by side (compiling), not a Debian build:
	// see the kernel page of the docs.
	CPUs int `mapstructure:"cpus"`
	// More image files attached to the guest, in order, as `ubd2`, `ubd3`, ... (`/dev/ubdc`, ...):
	// the image is `ubd1` (`/dev/ubdb`, `$IMAGE_DEVICE`), as in rootstrap.
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

	// The modules to run, in order, before the provisioners. Defaults to `["network", "mkfs",
	// "mount", "debian", "uml"]`, rootstrap's order; `[]` runs none. A name is a built-in module or an
	// executable found in the module search path (see `module_paths`).
	Modules []string `mapstructure:"modules"`
	// The modules to run after the provisioners. Defaults to `["umount"]`.
	PostModules []string `mapstructure:"post_modules"`
	// More directories to look for modules in, after rootstrap's (`/usr/lib/rootstrap/modules`,
	// `/etc/rootstrap/modules`, `~/.rootstrap/modules`, `./modules`); a later directory overrides an
	// earlier one and every one overrides the built-in modules. Relative paths start at Packer's
	// working directory.
	ModulePaths []string `mapstructure:"module_paths"`
	// Environment variables every module sees (rootstrap's `[global]` section), for example
	// `{ PATH = "/usr/sbin:/usr/bin:/sbin:/bin", http_proxy = "http://proxy:3128" }`. `PATH` defaults
	// to `/usr/sbin:/usr/bin:/sbin:/bin`.
	Global map[string]string `mapstructure:"global"`
	// The `network` module's options.
	Network modules.NetworkOptions `mapstructure:"network"`
	// The `debian` module's options.
	Debian modules.DebianOptions `mapstructure:"debian"`
	// The `uml` module's options.
	UML modules.UMLOptions `mapstructure:"uml"`
	// Variables of any one module, custom ones included: one block per module, with `name` and `env`.
	ModuleEnv []modules.ModuleEnv `mapstructure:"module_env"`
	// A rootstrap configuration file read as defaults: its `[global]` options give `fstype`,
	// `initialsize` (`image_size`), `freespace` (`free_space`), `modules` (a trailing `umount` becomes
	// `post_modules`), `umlargs` (`uml_args`), `debug` and the global environment; each other section
	// is a module's options. Settings in the template override the file.
	RootstrapConfig string `mapstructure:"rootstrap_config"`
	// Keep immutable downloads the guest makes through the network module's proxy (Debian
	// packages: `.deb` files and by-hash indexes, fetched over plain HTTP) in `cache_dir`, and
	// serve them from there next time. Safe for concurrent builds. Defaults to `true`.
	Cache config.Trilean `mapstructure:"cache"`
	// Where the package cache lives. Defaults to `packer-plugin-uml/packages` in the user's cache
	// directory (`$XDG_CACHE_HOME`, or `~/.cache`).
	CacheDir string `mapstructure:"cache_dir"`
	// After the modules, resize the filesystem so that about this many MiB are free, and the image file
	// with it (rootstrap's `freespace`). `0`, the default, keeps `image_size`. ext2, ext3 and ext4
	// only: xfs cannot shrink and btrfs resizing is not supported here. A `qcow2` or `vmdk` artifact
	// is converted from the resized image; with format `tar` the setting is ignored.
	FreeSpace int `mapstructure:"free_space"`
	// When a module fails, open an interactive shell in the guest on Packer's terminal, with the
	// module's environment (`sh -x $MODULE` runs it again, traced). Leaving the shell with status 1
	// runs the module again, with 2 goes on with the next module, with any other status fails the
	// build. rootstrap's `debug`. Needs a terminal.
	Debug bool `mapstructure:"debug"`

	ctx interpolate.Context
	// rootstrap is the rootstrap configuration: the rootstrap_config file, or what the rootstrap
	// command read from rootstrap's places.
	rootstrap *modules.Config
	// env and moduleDirs are derived by Prepare: every module's environment and where modules are found.
	env        modules.Environment
	moduleDirs []string
	// imagePath, when set (by the rootstrap command), is the image file to write instead of one in
	// output_directory, which is then not created or cleaned.
	imagePath string
}

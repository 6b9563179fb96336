# A custom module, modules/hello, run twice: once by the builder after mkfs and mount, once by the
# uml-module provisioner with variables of its own. It shows what a module sees and how variables
# override each other. Run it from this directory: ./modules is looked up in the directory Packer
# runs in. It needs only Debian's user-mode-linux and e2fsprogs on the host, and no network.
packer {
  required_plugins {
    uml = {
      source  = "github.com/packer-uml/uml"
      version = ">= 0.1.0"
    }
  }
}

source "uml" "custom-module" {
  image_size       = 64
  output_directory = "output-custom"
  # The image stays empty but for /etc/hello: provisioners run in the build environment, where
  # the image is mounted at $TARGET, not chrooted in it (there is no shell in the image).
  chroot = false

  # No network and no Debian: make and mount the filesystem, then run hello. post_modules keeps
  # its default, ["umount"].
  modules = ["mkfs", "mount", "hello"]

  # Every module sees these (rootstrap's [global]).
  global = {
    site     = "example"
    greeting = "Hello from global"
  }

  # Only hello sees these; they override global (rootstrap's [hello] section).
  module_env {
    name = "hello"
    env = {
      greeting = "Hello from module_env"
    }
  }
}

build {
  sources = ["source.uml.custom-module"]

  provisioner "shell" {
    inline = ["cat $TARGET/etc/hello"]
  }

  # The provisioner's env overrides global and module_env, for this run only.
  provisioner "uml-module" {
    module = "hello"
    env = {
      greeting = "Hello from the provisioner"
    }
  }

  provisioner "shell" {
    inline = ["cat $TARGET/etc/hello"]
  }
}

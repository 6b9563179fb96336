# rootstrap.conf, unchanged, in a Packer build: the builder reads it as defaults, and settings
# here override it. Run it from this directory (the file and ./modules are looked up there). It
# needs Debian's user-mode-linux, e2fsprogs and debootstrap on the host.
packer {
  required_plugins {
    uml = {
      source  = "github.com/packer-uml/uml"
      version = ">= 0.1.0"
    }
  }
}

source "uml" "rootstrap" {
  rootstrap_config = "rootstrap.conf"
  output_directory = "output-rootstrap"
  # The rootstrap command has no setting for this; uml_args = ["mem=512M"] would do the same.
  memory = 512
}

build {
  sources = ["source.uml.rootstrap"]

  # Runs after hello and before the file's trailing umount.
  provisioner "shell" {
    inline = ["cat /etc/hello /etc/fstab"]
  }
}

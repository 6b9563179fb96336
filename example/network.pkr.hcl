# One source per network transport; build one with -only, for example
#   packer build -only='uml.libslirp' network.pkr.hcl
# Each fetches Debian's InRelease file with the network module's settings in place. Only `agent`
# (the default) and `libslirp` work without root or host set-up; the others are rootstrap's UML
# transports for hosts that have them (see docs/modules/network.md).
packer {
  required_plugins {
    uml = {
      source  = "github.com/packer-uml/uml"
      version = ">= 0.1.0"
    }
  }
}

variable "url" {
  type        = string
  default     = "http://deb.debian.org/debian/dists/bookworm/InRelease"
  description = "What the guest fetches."
}

locals {
  # No Debian here: make the filesystem, bring up the network, then the provisioner fetches.
  modules = ["network", "mkfs", "mount"]
}

# The default: HTTP and HTTPS through the host over the agent's channel. Nothing on the host.
source "uml" "agent" {
  image_size       = 64
  output_directory = "out-agent"
  chroot           = false
  modules          = local.modules
}

# An IP network (TCP, UDP, DNS) through Debian's libslirp-helper: apt-get install libslirp-helper.
source "uml" "libslirp" {
  image_size       = 64
  output_directory = "out-libslirp"
  chroot           = false
  modules          = local.modules
  network {
    transport = "libslirp"
  }
}

# rootstrap's tuntap: a tap device that root set up for you on the host (host side 192.168.30.1).
source "uml" "tuntap" {
  image_size       = 64
  output_directory = "out-tuntap"
  chroot           = false
  modules          = local.modules
  network {
    transport  = "tuntap"
    host       = "192.168.30.1"
    uml        = "192.168.30.2"
    netmask    = "255.255.255.0"
    gateway    = "192.168.30.1"
    nameserver = "192.168.30.1"
  }
}

# rootstrap's slirp: the legacy slirp program (apt-get install slirp), with its usual addresses.
source "uml" "slirp" {
  image_size       = 64
  output_directory = "out-slirp"
  chroot           = false
  modules          = local.modules
  network {
    transport  = "slirp"
    slirp      = "slirp"
    uml        = "10.0.2.15"
    netmask    = "255.255.255.0"
    gateway    = "10.0.2.2"
    nameserver = "10.0.2.3"
  }
}

# rootstrap's daemon: a uml_switch (uml-utilities) listening on its control socket.
source "uml" "daemon" {
  image_size       = 64
  output_directory = "out-daemon"
  chroot           = false
  modules          = local.modules
  network {
    transport = "daemon"
    socket    = "/tmp/uml.ctl"
    uml       = "dhcp"
  }
}

# A vde_switch (vde2) listening on its control socket.
source "uml" "vde" {
  image_size       = 64
  output_directory = "out-vde"
  chroot           = false
  modules          = local.modules
  network {
    transport = "vde"
    socket    = "/tmp/vde.ctl"
    uml       = "dhcp"
  }
}

build {
  sources = ["source.uml.agent", "source.uml.libslirp", "source.uml.tuntap", "source.uml.slirp", "source.uml.daemon", "source.uml.vde"]

  # chroot = false: this runs in the guest's build environment, with the modules' proxy settings.
  provisioner "shell" {
    inline = ["wget -q -O \"$TARGET/InRelease\" '${var.url}'", "head -3 \"$TARGET/InRelease\""]
  }
}

# The smallest useful build: an empty ext4 image that gets a tiny busybox system, a file and a
# script. It needs only Debian's user-mode-linux and busybox-static packages on the host, and no
# root. The Debian examples install a full system instead.
packer {
  required_plugins {
    uml = {
      source  = "github.com/packer-uml/uml"
      version = ">= 0.1.0"
    }
  }
}

variable "image_size" {
  type        = number
  default     = 512
  description = "Size of the image file in MiB (sparse)."
}

source "uml" "minimal" {
  image_size       = var.image_size
  fstype           = "ext4"
  output_directory = "out"
  # No network and no Debian: make the filesystem and mount it (the umount module runs after the
  # provisioners, as post_modules does by default).
  modules = ["mkfs", "mount"]
}

build {
  sources = ["source.uml.minimal"]

  # The image starts empty: give it a shell before running scripts in it (chroot mode). Busybox
  # is one static binary that is every tool a script needs; as /bin/sh it is the shell that runs
  # the provisioners' commands.
  provisioner "file" {
    source      = "/bin/busybox"
    destination = "/bin/busybox"
  }
  provisioner "file" {
    source      = "/bin/busybox"
    destination = "/bin/sh"
  }
  provisioner "shell" {
    inline = [
      "/bin/busybox --install -s /bin",
      "mkdir -p /etc /tmp /root && chmod 1777 /tmp && chmod 0700 /root",
    ]
  }

  provisioner "file" {
    content     = "Built by packer-plugin-uml without root.\n"
    destination = "/etc/motd"
  }

  provisioner "shell" {
    inline = [
      "echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd",
      "echo 'root:x:0:' > /etc/group",
      "echo 'secret' > /root/hello && chmod 0600 /root/hello",
      "mkdir -p /srv/data && chown 1234:5678 /srv/data",
      "ls -la / /etc",
    ]
  }

  post-processor "checksum" {
    checksum_types = ["sha256"]
    output         = "out/{{.BuildName}}.{{.ChecksumType}}"
  }
}

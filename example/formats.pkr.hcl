# The artifact in another format than the raw image: qcow2 or vmdk (converted on the host with
# qemu-img, from Debian's qemu-utils), or tar (the filesystem's files, archived in the guest with
# their numeric owners, modes and device nodes). A small busybox image, no network: a minute or so.
#
#   packer build formats.pkr.hcl                    # output-formats/formats.qcow2
#   packer build -var format=vmdk formats.pkr.hcl   # output-formats/formats.vmdk
#   packer build -var format=tar formats.pkr.hcl    # output-formats/formats.tar
#
# The checksum post-processor sums whichever file the build made: the artifact is that one file.
packer {
  required_plugins {
    uml = {
      source  = "github.com/packer-uml/uml"
      version = ">= 0.1.0"
    }
  }
}

variable "format" {
  type        = string
  default     = "qcow2"
  description = "The artifact's format: raw, qcow2, vmdk or tar."
}

variable "output_directory" {
  type        = string
  default     = "output-formats"
  description = "Where the artifact, its checksum and the console log go."
}

source "uml" "formats" {
  image_size       = 256
  fstype           = "ext4"
  output_directory = var.output_directory
  format           = var.format
  # qcow2 only: compressed clusters make a smaller file.
  disk_compression = var.format == "qcow2"
  modules          = ["mkfs", "mount"]
  # The provisioners run in the build environment (the host's tools) and write the image at
  # $TARGET, which the chroot's /dev bind mount would hide: so /dev/null lands in the image.
  chroot = false
}

build {
  sources = ["source.uml.formats"]

  provisioner "shell" {
    inline = [
      "mkdir -p $TARGET/bin $TARGET/dev $TARGET/etc $TARGET/root $TARGET/srv/data",
      "cp /bin/busybox $TARGET/bin/busybox && ln -s busybox $TARGET/bin/sh",
      "mknod -m 0666 $TARGET/dev/null c 1 3",
      "echo 'root:x:0:0:root:/root:/bin/sh' > $TARGET/etc/passwd",
      "echo 'Built by packer-plugin-uml, format ${var.format}.' > $TARGET/etc/motd",
      "echo data > $TARGET/srv/data/owned && chown -R 1234:1234 $TARGET/srv/data",
    ]
  }

  post-processor "checksum" {
    checksum_types = ["sha256"]
    output         = "${var.output_directory}/{{.BuildName}}.{{.ChecksumType}}"
  }
}

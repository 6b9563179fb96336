# A Debian bookworm image (the minbase variant), built by the standard modules without root:
# network (the agent's proxy), mkfs, mount, debian, uml, then a shell provisioner chrooted in the
# image, then umount. It needs Debian's user-mode-linux, e2fsprogs and debootstrap on the host, and
# HTTP access to the mirror from the host.
packer {
  required_plugins {
    uml = {
      source  = "github.com/packer-uml/uml"
      version = ">= 0.1.0"
    }
  }
}

variable "dist" {
  type        = string
  default     = "bookworm"
  description = "The Debian distribution to install."
}

variable "mirror" {
  type        = string
  default     = ""
  description = "The Debian archive. Empty means the debian module's default, http://deb.debian.org/debian (debootstrap's own)."
}

source "uml" "debian" {
  image_size       = 2048
  memory           = 512
  output_directory = "output-debian"
  # After the build, shrink the filesystem and the file to leave about 64 MiB free (more if
  # resize2fs's own minimum is larger).
  free_space = 64

  # modules defaults to ["network", "mkfs", "mount", "debian", "uml"] and post_modules to
  # ["umount"]. network needs no block: its transport defaults to agent, which sends the guest's
  # HTTP and HTTPS through the host.

  debian {
    dist    = var.dist
    mirror  = var.mirror
    variant = "minbase"
    # Added by debootstrap to the initial set.
    include = ["less", "ca-certificates"]
    # Installed with apt after debootstrap.
    install = ["hello"]
  }

  uml {
    # Copy the UML kernel's modules from /usr/lib/uml/modules into the image (the default, said
    # out loud). Use "none" for a smaller image.
    kernel_modules = "copy"
  }
}

build {
  sources = ["source.uml.debian"]

  # Runs chrooted in the image, with the image's /bin/sh. apt reaches the mirror through the
  # builder's proxy while provisioners run.
  provisioner "shell" {
    inline = [
      "echo debian-uml > /etc/hostname",
      "hello",
      "cat /etc/fstab",
      "du -sh /usr /var",
    ]
  }

  post-processor "checksum" {
    checksum_types = ["sha256"]
    output         = "output-debian/{{.BuildName}}.{{.ChecksumType}}"
  }

  # keep_input_artifact: without it compress destroys the uncompressed image.
  post-processor "compress" {
    output              = "output-debian/{{.BuildName}}.img.gz"
    keep_input_artifact = true
  }
}

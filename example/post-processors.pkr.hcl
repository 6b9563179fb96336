# A small busybox image (as minimal.pkr.hcl: no network, a minute or so) handed to Packer's own
# post-processors, which ship inside Packer (nothing to `packer plugins install`): shell-local
# checks the image, compress gzips it, checksum sums it, manifest records what was made.
#
#   packer build post-processors.pkr.hcl
#   packer build -var output_directory=dist -var image_size=256 post-processors.pkr.hcl
#
# Leaves, in output_directory: pp.img (the image), pp.img.gz, pp.img.sha256, fsck.txt (the check's
# report) and manifest.json.
#
# How Packer chains post-processors: each top-level `post-processor` block, and each
# `post-processors` block, is a chain of its own that starts from the builder's artifact (the image).
# Inside a `post-processors` block each post-processor gets the previous one's artifact. The image
# survives the build if the first post-processor of any chain keeps it; in the middle of a chain,
# a post-processor that does not keep its input deletes it there and then, whatever other chains
# said: hence keep_input_artifact = true on compress below, whose input is the image itself
# (shell-local passes its input through). checksum, manifest and shell-local always keep theirs.
packer {
  required_version = ">= 1.11.0"
  required_plugins {
    uml = {
      source  = "github.com/packer-uml/uml"
      version = ">= 0.1.0"
    }
  }
}

variable "image_size" {
  type        = number
  default     = 128
  description = "Size of the image file in MiB (sparse; compress reads all of it, zeros included)."
}

variable "output_directory" {
  type        = string
  default     = "output-pp"
  description = "Where the image and everything the post-processors make go."
}

variable "compression_level" {
  type        = number
  default     = 6
  description = "gzip level for the compress post-processor, 1 (fast) to 9 (small)."
}

locals {
  manifest = "${var.output_directory}/manifest.json"
}

source "uml" "pp" {
  image_size       = var.image_size
  fstype           = "ext4"
  output_directory = var.output_directory
  modules          = ["mkfs", "mount"]
}

build {
  sources = ["source.uml.pp"]

  # A shell for the chrooted provisioners, as in minimal.pkr.hcl.
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
      "echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd",
      "echo 'root:x:0:' > /etc/group",
    ]
  }
  provisioner "file" {
    content     = "Built by packer-plugin-uml, then gzipped, summed and recorded by Packer's post-processors.\n"
    destination = "/etc/motd"
  }

  # Chain 1: check the image on the host, then compress it, then record the compressed file.
  post-processors {
    # Runs on the host, as you. build.ImagePath is the image the uml builder made. e2fsck failing
    # fails this chain (and the build): a broken image is neither compressed nor recorded.
    post-processor "shell-local" {
      name = "fsck"
      environment_vars = [
        "IMAGE=${build.ImagePath}",
        "REPORT=${var.output_directory}/fsck.txt",
      ]
      inline = [
        "PATH=$PATH:/usr/sbin:/sbin",
        "e2fsck -fn \"$IMAGE\" > \"$REPORT\" 2>&1",
        "echo \"image $(basename \"$IMAGE\"): $(stat -c %s \"$IMAGE\") bytes, $(du -k \"$IMAGE\" | cut -f1) KiB on disk\" | tee -a \"$REPORT\"",
      ]
    }
    # Its input is the image (shell-local passed it on): without keep_input_artifact = true compress
    # would delete the image once the .gz is written.
    post-processor "compress" {
      name                = "gzip"
      output              = "${var.output_directory}/{{.BuildName}}.img.gz"
      compression_level   = var.compression_level
      keep_input_artifact = true
    }
    post-processor "manifest" {
      name        = "record-gz"
      output      = local.manifest
      strip_path  = true
      custom_data = { kind = "compressed image" }
    }
  }

  # Chain 2: sum the image itself, then record the image and its sum in the same manifest (the
  # manifest post-processor adds a build entry per run and chain: see last_run_uuid).
  post-processors {
    post-processor "checksum" {
      name           = "sha256"
      checksum_types = ["sha256"]
      output         = "${var.output_directory}/{{.BuildName}}.img.{{.ChecksumType}}"
    }
    post-processor "manifest" {
      name        = "record-image"
      output      = local.manifest
      strip_path  = true
      custom_data = { kind = "image", fstype = "ext4", size_mib = "${var.image_size}" }
    }
  }
}

package umltest

import "fmt"

// MinbaseSource is the source block of the minbase bookworm build that the speed issue's benchmark
// (bench/minbase_test.go) times and its correctness test (e2e/fastpath_test.go) compares with a
// root debootstrap: the default modules (network, mkfs, mount, debian, uml, umount), what
// `debootstrap --variant=minbase bookworm` installs, a 2,048 MiB ext4 image, 512 MiB of memory. It
// declares the variable "mirror"; kernel, out and cache are HCL expressions (a quoted string, a
// variable, or null for the builder's default), so that both use one definition of the build.
func MinbaseSource(kernel, out, cache string) string {
	return fmt.Sprintf(`
variable "mirror" {
  type = string
}
source "uml" "minbase" {
  kernel           = %s
  image_size       = 2048
  memory           = 512
  output_directory = %s
  cache_dir        = %s
  debian {
    dist    = "bookworm"
    variant = "minbase"
    mirror  = var.mirror
  }
  uml {
    kernel_modules = "none"
  }
}
`, kernel, out, cache)
}

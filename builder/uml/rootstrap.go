package uml

import (
	"path/filepath"

	"github.com/packer-uml/packer-plugin-uml/modules"
)

// PrepareRootstrap prepares a build for the rootstrap command: conf is what it read from
// rootstrap's places, imagePath the one file it writes (no output directory), and raws the
// settings its command line overrides (image_size, uml_args).
func (b *Builder) PrepareRootstrap(conf *modules.Config, imagePath string, raws map[string]interface{}) ([]string, error) {
	abs, err := filepath.Abs(imagePath)
	if err != nil {
		return nil, err
	}
	b.config.rootstrap = conf
	b.config.imagePath = abs
	raws["packer_build_name"] = "rootstrap"
	return b.config.Prepare(raws)
}

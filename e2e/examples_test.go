package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestExamplesValidate: every template in example/ is formatted as `packer fmt` wants, passes
// `packer validate` with the plugin installed, and `packer inspect` reads it.
func TestExamplesValidate(t *testing.T) {
	templates, _ := filepath.Glob(filepath.Join("..", "example", "*.pkr.hcl"))
	if len(templates) == 0 {
		t.Fatal("no templates in example/")
	}
	p := newProject(t)
	// Copy the whole example directory: templates refer to ./modules and rootstrap.conf.
	run(t, "cp", "-a", filepath.Join("..", "example")+"/.", p.dir)
	os.RemoveAll(filepath.Join(p.dir, "out"))
	for _, tmpl := range templates {
		name := filepath.Base(tmpl)
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for _, args := range [][]string{{"fmt", "-check", "-diff", name}, {"validate", name}, {"inspect", name}} {
				if out, err := p.packer(ctx, args...); err != nil {
					t.Errorf("packer %v: %v\n%s", args, err, out)
				}
			}
		})
	}
}

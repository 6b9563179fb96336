# Integration metadata for the Packer integrations portal (developer.hashicorp.com/packer/integrations),
# in the format of HashiCorp's integration template, as packer-plugin-scaffolding carries it.
#
# Hand-written: scripts/generate-docs.sh (make generate) keeps this file and regenerates the rest of
# .web-docs/ (README.md and components/<type>/<slug>/README.md) from docs/ and docs-partials/. Each
# component block below needs a page docs/<type>s/<slug>.mdx, and the other way round; the script
# checks both.
integration {
  name        = "UML"
  description = "Builds Linux root filesystem images in User-Mode Linux, as an ordinary user: without root, /dev/kvm or a privileged container."
  identifier  = "packer/packer-uml/uml"
  docs {
    process_docs    = true
    readme_location = "./README.md"
    external_url    = "https://github.com/packer-uml/packer-plugin-uml"
  }
  component {
    type = "builder"
    name = "UML"
    slug = "uml"
  }
  component {
    type = "provisioner"
    name = "UML Module"
    slug = "uml-module"
  }
}

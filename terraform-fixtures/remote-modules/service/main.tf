variable "environment" {
  type    = string
  default = "production"
}

module "service" {
  source      = "git::__MODULES_URL__/acme/terraform-modules.git//modules/service?ref=v1"
  name        = "web"
  environment = var.environment
  replicas    = 2
}

module "label" {
  source      = "git::__MODULES_URL__/acme/terraform-modules.git//modules/label?ref=v1"
  name        = "web-dns"
  environment = var.environment
}

resource "terraform_data" "dns" {
  input = { name = module.label.id, target = module.service.name }
}

output "service_name" {
  value = module.service.name
}

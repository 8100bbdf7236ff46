variable "environment" {
  type    = string
  default = "production"
}

module "network" {
  source      = "git::__MODULES_URL__/acme/terraform-modules.git//modules/network?ref=v1"
  name        = "core"
  environment = var.environment
  subnets     = 2
}

output "network_id" {
  value = module.network.id
}

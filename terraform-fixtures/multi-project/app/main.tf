variable "environment" {
  type    = string
  default = "production"
}

module "label" {
  source      = "../modules/label"
  name        = "app"
  environment = var.environment
}

resource "terraform_data" "service" {
  input = {
    name     = module.label.id
    replicas = 2
  }
}

output "service_name" {
  value = module.label.id
}

variable "name" {
  type = string
}

variable "environment" {
  type = string
}

variable "replicas" {
  type    = number
  default = 1
}

module "label" {
  source      = "../label"
  name        = var.name
  environment = var.environment
}

resource "terraform_data" "service" {
  input = { name = module.label.id, replicas = var.replicas }
}

output "name" {
  value = module.label.id
}

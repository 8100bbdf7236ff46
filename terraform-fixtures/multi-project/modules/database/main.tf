variable "environment" {
  type = string
}

module "label" {
  source      = "../label"
  name        = "db"
  environment = var.environment
}

resource "terraform_data" "database" {
  input = {
    identifier = module.label.id
    engine     = "postgres"
    size_gb    = 20
  }
}

output "identifier" {
  value = module.label.id
}

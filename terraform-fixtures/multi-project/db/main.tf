terraform {
  backend "local" {
    path = "__STATE_DIR__/multi-project/db.tfstate"
  }
}

module "database" {
  source      = "../modules/database"
  environment = "production"
}

output "database" {
  value = module.database.identifier
}

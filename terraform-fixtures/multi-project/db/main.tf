module "database" {
  source      = "../modules/database"
  environment = "production"
}

output "database" {
  value = module.database.identifier
}

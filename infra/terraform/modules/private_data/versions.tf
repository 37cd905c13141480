terraform {
  required_version = ">= 1.10, < 2.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.80.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "= 3.6.3"
    }
    postgresql = {
      source  = "cyrilgdn/postgresql"
      version = "= 1.25.0"
    }
  }
}

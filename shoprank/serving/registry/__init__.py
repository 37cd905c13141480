"""Moving models into service: push, infra-validation, labels and promotions."""

"""Serving, cut along the three services it deploys:

- `api/`: the online API the shop calls (`shoprank serve-api`): routes, the recommender and search,
  the event intake;
- `model_server/`: the TF-Serving-compatible model server (`shoprank serve-models`), its clients and
  the base path's layout (versions, `models.config`);
- `registry/`: what moves models into and between versions: push, infra-validation, promotions.

Imports run api -> registry -> model_server, never back (checked by `lint-imports`).
"""

#: The label the online paths ask the model server for; push and promotions move it.
SERVED_LABEL = "stable"

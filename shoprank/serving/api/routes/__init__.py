"""The API routes, one router per concern, mounted by `shoprank.serving.api.app.create_app`."""

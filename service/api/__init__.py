"""The HTTP API of the alert service, one router per resource (wired by ``service.app.create_app``)."""
